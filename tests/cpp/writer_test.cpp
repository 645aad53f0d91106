// Spec parsing and the writer, from C++: determinism, round trip through the reader, and
// malformed spec text (truncations) failing cleanly, also under the sanitizers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/graph.h"
#include "perfsage/spec.h"
#include "perfsage/tflite_generated.h"
#include "perfsage/writer.h"
#include "writer_graph.h"

namespace perfsage {
namespace {

const char* kSpec = R"({"name": "t", "inputs": [{"name": "x", "shape": [1, 12, 12, 3]}],
  "layers": [
    {"name": "c", "op": "conv2d", "filters": 8, "kernel": 3, "stride": 2},
    {"name": "r", "op": "relu"},
    {"name": "d", "op": "depthwise_conv2d", "kernel": [3, 3], "activation": "relu6"},
    {"name": "s", "op": "add", "inputs": ["d", "r"]},
    {"name": "g", "op": "global_avg_pool"},
    {"name": "f", "op": "reshape", "shape": [1, -1]},
    {"name": "o", "op": "dense", "units": 4},
    {"name": "p", "op": "softmax"}]})";

TEST(Writer, SameSeedSameBytesAndTheReaderAgrees) {
  // Determinism is what lets a dataset row keep only spec + seed.
  for (auto type : {WeightType::kInt8, WeightType::kFloat32, WeightType::kInt16x8}) {
    const auto a = build_model_json(kSpec, 7, type);
    EXPECT_EQ(a, build_model_json(kSpec, 7, type));
    EXPECT_NE(a, build_model_json(kSpec, 8, type));
    const auto graph = load_graph(a.data(), a.size(), "t");
    // conv (relu fused), depthwise, add, mean, reshape, dense, softmax.
    EXPECT_EQ(graph->num_nodes(), 7);
    const DType activations = type == WeightType::kInt8    ? DType::kInt8
                              : type == WeightType::kInt16x8 ? DType::kInt16
                                                             : DType::kFloat32;
    EXPECT_EQ(graph->model().subgraphs[0].tensors[0].dtype, activations);
    EXPECT_EQ(graph->node_costs()[0].macs, 6 * 6 * 8 * 27);
  }
}

TEST(Writer, DtypeNamesAndTheirLayers) {
  // The binding and Python's sampling take both from here: one list of names, one of 16x8 layers.
  EXPECT_EQ(weight_type("int16x8"), WeightType::kInt16x8);
  EXPECT_THROW(weight_type("int16"), std::invalid_argument);
  const auto all = layer_ops(WeightType::kInt8);
  const auto wide = layer_ops(WeightType::kInt16x8);
  EXPECT_EQ(all, layer_ops(WeightType::kFloat32));
  EXPECT_LT(wide.size(), all.size());
  EXPECT_NE(std::find(wide.begin(), wide.end(), "conv2d"), wide.end());
  EXPECT_EQ(std::find(wide.begin(), wide.end(), "hard_swish"), wide.end());
}

TEST(Writer, StrippedModelHasTheSameFeatures) {
  const auto full = build_model_json(kSpec, 1, WeightType::kInt8);
  const auto stripped = strip_weights(full.data(), full.size(), "t");
  EXPECT_LT(stripped.size(), full.size());
  const auto a = load_graph(full.data(), full.size(), "a");
  const auto b = load_graph(stripped.data(), stripped.size(), "b");
  EXPECT_EQ(a->node_features(), b->node_features());
  EXPECT_EQ(a->graph_features(), b->graph_features());
  EXPECT_EQ(strip_weights(stripped.data(), stripped.size(), "b"), stripped);
}

// kSpec with a "weights" field.
std::string with_weights(const std::string& weights) { return "{\"weights\": " + weights + ", " + std::string(kSpec).substr(1); }

// The message of the perfsage::Error `f` throws, or "" when it throws none.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Writer, WeightsFieldIsReadAndItsDefaultsChangeNothing) {
  // Absent and default "weights" must give today's bytes: dataset ids rest on them.
  const ModelSpec spec = parse_spec(with_weights(R"({"distribution": "laplace", "sparsity": 0.5})"));
  EXPECT_EQ(spec.weights.distribution, WeightDistribution::kLaplace);
  EXPECT_EQ(spec.weights.sparsity, 0.5);
  const auto plain = build_model_json(kSpec, 3, WeightType::kInt8);
  EXPECT_EQ(build_model_json(with_weights("{}"), 3, WeightType::kInt8), plain);
  EXPECT_EQ(build_model_json(with_weights(R"({"distribution": "uniform", "sparsity": 0})"), 3, WeightType::kInt8), plain);
  EXPECT_EQ(build_model_json(with_weights(R"({"dense": "per_channel"})"), 3, WeightType::kInt8), plain);
  EXPECT_NE(build_model(spec, 3, WeightType::kInt8), plain);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"3", "'weights' must be an object, got a number"},
      {R"({"distribution": "gamma"})",
       "weights.distribution must be 'uniform', 'normal', 'laplace' or 'student_t', got 'gamma'"},
      {R"({"dense": "per_row"})", "weights.dense must be 'per_channel' or 'per_tensor', got 'per_row'"},
      {R"({"dense": 1})", "weights.dense must be a string, got a number"},
      {R"({"sparsity": 0.995})", "weights.sparsity must be a number in [0, 0.99]"},
      {R"({"sparsity": true})", "weights.sparsity must be a number in [0, 0.99], got a boolean"},
      {R"({"sparse": 0.5})", "weights: unknown key 'sparse'"}};
  for (const auto& [weights, message] : bad)
    EXPECT_NE(error_of([&] { parse_spec(with_weights(weights)); }).find(message), std::string::npos) << weights;
}

TEST(Writer, DenseWeightsPerTensorHaveOneScale) {
  // "dense": "per_tensor" quantises FULLY_CONNECTED kernels as TFLite Micro and MLPerf Tiny models
  // carry them; the bias follows with one scale, and convolutions keep theirs per channel.
  for (const WeightType type : {WeightType::kInt8, WeightType::kInt16x8}) {
    const auto bytes =
        build_model_json(with_weights(R"({"distribution": "student_t", "dense": "per_tensor"})"), 1, type);
    const auto graph = load_graph(bytes.data(), bytes.size(), "t");
    const auto& tensors = graph->model().subgraphs[0].tensors;
    const auto named = [&](const std::string& name) -> const Tensor& {
      const auto it = std::find_if(tensors.begin(), tensors.end(), [&](const Tensor& t) { return t.name == name; });
      EXPECT_NE(it, tensors.end()) << name;
      return *it;
    };
    const Tensor& kernel = named("o/kernel");
    const Tensor& bias = named("o/bias");
    ASSERT_EQ(kernel.quantization.scale.size(), 1u);
    EXPECT_EQ(kernel.quantization.zero_point, std::vector<int64_t>{0});
    ASSERT_EQ(bias.quantization.scale.size(), 1u);
    EXPECT_FLOAT_EQ(bias.quantization.scale[0], named("f").quantization.scale[0] * kernel.quantization.scale[0]);
    EXPECT_EQ(named("c/kernel").quantization.scale.size(), 8u);
    const auto& names = node_feature_names();
    const size_t per_channel =
        static_cast<size_t>(std::find(names.begin(), names.end(), "per_channel_weights") - names.begin());
    const size_t F = names.size();
    EXPECT_EQ(graph->node_features()[5 * F + per_channel], 0.0f);  // the dense node
    EXPECT_EQ(graph->node_features()[0 * F + per_channel], 1.0f);  // the conv
  }
}

TEST(Writer, StudentTWeightsHaveGlorotVarianceAndHeavyTails) {
  // Same variance as Glorot-uniform, so a layer's output range is unchanged; the excess kurtosis
  // of t with 3 degrees of freedom is unbounded, so a large sample's exceeds laplace's 3 by far.
  Rng rng(5);
  std::vector<float> w(200000);
  const float limit = 0.2f;
  writer::draw_weights(rng, WeightDistribution::kStudentT, limit, w);
  double m2 = 0.0, m4 = 0.0;
  for (const float x : w) {
    m2 += static_cast<double>(x) * x;
    m4 += static_cast<double>(x) * x * x * x;
  }
  m2 /= static_cast<double>(w.size());
  m4 /= static_cast<double>(w.size());
  EXPECT_NEAR(m2, limit * limit / 3.0, 0.1 * limit * limit / 3.0);
  EXPECT_GT(m4 / (m2 * m2) - 3.0, 6.0);
}

TEST(Writer, StrippedModelsKeepCheckedWeightSummaries) {
  // Datasets store stripped models: the weight columns come from the summaries strip_weights
  // keeps, which the reader checks as it checks everything else in a file.
  for (const WeightType type : {WeightType::kInt8, WeightType::kInt16x8}) {
    const auto full = build_model_json(with_weights(R"({"distribution": "normal", "sparsity": 0.7})"), 2, type);
    const auto stripped = strip_weights(full.data(), full.size(), "t");
    const auto a = load_graph(full.data(), full.size(), "a");
    const auto b = load_graph(stripped.data(), stripped.size(), "b");
    EXPECT_EQ(a->node_features(), b->node_features());
    const auto& names = node_feature_names();
    const size_t zeros = static_cast<size_t>(std::find(names.begin(), names.end(), "weight_zero_fraction") - names.begin());
    EXPECT_GE(b->node_features()[zeros], 0.69f);  // the conv: 151 of its 216 weights
  }
  const auto full = build_model_json(with_weights(R"({"sparsity": 0.5})"), 2, WeightType::kInt8);
  const auto stripped = strip_weights(full.data(), full.size(), "t");
  // The summaries' records, edited through the object API.
  const auto edited = [&](const auto& edit) {
    std::unique_ptr<tflite::ModelT> model(tflite::GetModel(stripped.data())->UnPack());
    for (const auto& m : model->metadata)
      if (m->name == kWeightSummariesMetadata) edit(model->buffers[m->buffer]->data);
    flatbuffers::FlatBufferBuilder fbb;
    tflite::FinishModelBuffer(fbb, tflite::Model::Pack(fbb, model.get()));
    return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  };
  const auto truncated = edited([](std::vector<uint8_t>& records) { records.pop_back(); });
  EXPECT_NE(error_of([&] { read_model(truncated.data(), truncated.size(), "m"); }).find("not a list of 28-byte records"),
            std::string::npos);
  const auto too_many_zeros = edited([](std::vector<uint8_t>& records) { records[12 + 7] = 0x7f; });
  EXPECT_NE(error_of([&] { read_model(too_many_zeros.data(), too_many_zeros.size(), "m"); }).find("not a valid summary"),
            std::string::npos);
  const auto past = edited([](std::vector<uint8_t>& records) { records[3] = 0x7f; });
  EXPECT_NE(error_of([&] { read_model(past.data(), past.size(), "m"); }).find("names buffer"), std::string::npos);
}

TEST(Writer, RecurrentLayersKeepTheirStateInVariableTensors) {
  // The state tensors are what the runtime keeps between invocations: the reader must see them
  // as such (memory peak), with the int16 cell and activation states of the integer kernels.
  const char* spec = R"({"inputs": [{"name": "x", "shape": [1, 8, 6]}], "layers": [
    {"name": "l", "op": "lstm", "units": 5, "return_sequences": false},
    {"name": "s", "op": "svdf", "units": 4, "memory": 3, "rank": 2}]})";
  for (auto type : {WeightType::kInt8, WeightType::kFloat32}) {
    const auto bytes = build_model_json(spec, 3, type);
    const auto graph = load_graph(bytes.data(), bytes.size(), "rnn");
    ASSERT_EQ(graph->num_nodes(), 3);  // LSTM, the last step's STRIDED_SLICE, SVDF
    const Subgraph& sg = graph->model().subgraphs[0];
    std::vector<DType> states;
    for (const Tensor& t : sg.tensors)
      if (t.is_variable) states.push_back(t.dtype);
    const bool int8 = type == WeightType::kInt8;
    const DType wide = int8 ? DType::kInt16 : DType::kFloat32;
    EXPECT_EQ(states, (std::vector<DType>{int8 ? DType::kInt8 : DType::kFloat32, wide, wide}));
    EXPECT_EQ(sg.operators[0].inputs.size(), 24u);
    EXPECT_EQ(sg.operators[0].intermediates.size(), int8 ? 5u : 0u);
    EXPECT_EQ(graph->node_costs()[0].macs, 8 * 4 * 5 * (6 + 5));  // steps x gates x units x (features + units)
    EXPECT_EQ(graph->node_costs()[2].macs, 8 * (5 + 3));          // filters x (features + memory)
  }
}

TEST(Writer, FloatSectionOfAQuantizedModelIsWrittenInFloat32) {
  // What a converter leaves unquantized: float32 kernels, weights and outputs from DEQUANTIZE to
  // QUANTIZE, the model's own type on both sides; a float32 model has nothing to convert.
  const char* spec = R"({"inputs": [{"name": "x", "shape": [1, 6, 6, 4]}], "layers": [
    {"name": "c", "op": "conv2d", "filters": 8, "kernel": 3},
    {"name": "dq", "op": "dequantize"},
    {"name": "fc", "op": "conv2d", "filters": 8, "kernel": 1},
    {"name": "m", "op": "mul", "inputs": ["fc", "dq"]},
    {"name": "q", "op": "quantize"},
    {"name": "o", "op": "add", "inputs": ["q", "c"]}]})";
  for (auto type : {WeightType::kInt8, WeightType::kInt16x8, WeightType::kFloat32}) {
    SCOPED_TRACE(static_cast<int>(type));
    const auto bytes = build_model_json(spec, 3, type);
    const auto graph = load_graph(bytes.data(), bytes.size(), "fs");
    const Subgraph& sg = graph->model().subgraphs[0];
    const DType own = type == WeightType::kInt8      ? DType::kInt8
                      : type == WeightType::kInt16x8 ? DType::kInt16
                                                     : DType::kFloat32;
    std::vector<DType> outputs, float_conv_inputs;
    for (const auto& op : sg.operators) outputs.push_back(sg.tensors[static_cast<size_t>(op.outputs[0])].dtype);
    if (type == WeightType::kFloat32) {
      EXPECT_EQ(outputs, std::vector<DType>(4, own));  // conv, conv, mul, add
      continue;
    }
    const DType f = DType::kFloat32;
    EXPECT_EQ(outputs, (std::vector<DType>{own, f, f, f, own, own}));
    for (const int32_t t : sg.operators[2].inputs)
      float_conv_inputs.push_back(sg.tensors[static_cast<size_t>(t)].dtype);
    EXPECT_EQ(float_conv_inputs, (std::vector<DType>{f, f, f}));
  }
  // A layer may not mix float32 values with the model's activations.
  const std::string mixed = R"({"inputs": [{"name": "x", "shape": [1, 6, 6, 4]}], "layers": [
    {"name": "dq", "op": "dequantize"}, {"name": "a", "op": "add", "inputs": ["dq", "x"]}]})";
  try {
    build_model_json(mixed, 0, WeightType::kInt8);
    ADD_FAILURE() << "mixed inputs accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input 'x' holds int8 values beside float32 ones"), std::string::npos)
        << e.what();
  }
}

TEST(Writer, TruncatedSpecTextFailsCleanly) {
  // Every prefix of a spec is bad JSON or a bad spec: an Error each time, never a crash.
  const std::string spec = kSpec;
  for (size_t n = 0; n < spec.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_THROW(build_model_json(spec.substr(0, n), 0, WeightType::kInt8), Error);
  }
}

}  // namespace
}  // namespace perfsage
