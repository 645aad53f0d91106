// The spec path (spec_graph.h): a Graph built from a spec without weights or TFLite bytes must be
// the Graph the reader gives for build_model's bytes, field by field. The Python tests run every
// search space and every op through the same comparison.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/json.h"
#include "perfsage/sage.h"
#include "perfsage/spec_graph.h"
#include "perfsage/spec_predict.h"

namespace perfsage {
namespace {

// Weighted layers of every kind, a relu that fuses, requantised concat inputs, and draws after the
// weights (prelu's slopes, layer norm's gamma and beta) that must come from the same place in the
// generator's stream although the weights before them are never drawn.
const char* kImageSpec = R"({"name": "spec-image", "inputs": [{"name": "x", "shape": [1, 12, 12, 3]}],
  "layers": [
    {"name": "c", "op": "conv2d", "filters": 8, "kernel": 3, "stride": 2},
    {"name": "r", "op": "relu"},
    {"name": "d", "op": "depthwise_conv2d", "kernel": [3, 3], "activation": "relu6", "bias": false},
    {"name": "s", "op": "add", "inputs": ["d", "r"]},
    {"name": "p", "op": "prelu"},
    {"name": "t", "op": "transpose_conv2d", "filters": 4, "kernel": 3, "stride": 2},
    {"name": "j", "op": "concat", "inputs": ["t", "x"], "axis": 3},
    {"name": "g", "op": "global_avg_pool"},
    {"name": "f", "op": "reshape", "shape": [1, -1]},
    {"name": "o", "op": "dense", "units": 4},
    {"name": "sm", "op": "softmax"}]})";

const char* kSequenceSpec = R"({"name": "spec-sequence", "inputs": [{"name": "x", "shape": [1, 8, 6]}],
  "layers": [
    {"name": "l", "op": "lstm", "units": 5},
    {"name": "n", "op": "layer_norm"},
    {"name": "q", "op": "dense", "units": 6},
    {"name": "k", "op": "dense", "units": 6, "inputs": ["n"], "weights_of": "q"},
    {"name": "m", "op": "batch_matmul", "inputs": ["q", "k"], "adj_y": true},
    {"name": "last", "op": "lstm", "units": 4, "return_sequences": false, "inputs": ["l"]},
    {"name": "s", "op": "svdf", "units": 4, "memory": 3, "rank": 2}],
  "outputs": ["m", "s"]})";

void expect_same_options(const OperatorOptions& a, const OperatorOptions& b) {
  EXPECT_EQ(a.padding, b.padding);
  EXPECT_EQ(a.stride_h, b.stride_h);
  EXPECT_EQ(a.stride_w, b.stride_w);
  EXPECT_EQ(a.stride_d, b.stride_d);
  EXPECT_EQ(a.dilation_h, b.dilation_h);
  EXPECT_EQ(a.dilation_w, b.dilation_w);
  EXPECT_EQ(a.dilation_d, b.dilation_d);
  EXPECT_EQ(a.filter_h, b.filter_h);
  EXPECT_EQ(a.filter_w, b.filter_w);
  EXPECT_EQ(a.depth_multiplier, b.depth_multiplier);
  EXPECT_EQ(a.fused_activation, b.fused_activation);
  EXPECT_EQ(a.axis, b.axis);
  EXPECT_EQ(a.has_axis, b.has_axis);
  EXPECT_EQ(a.keep_dims, b.keep_dims);
  EXPECT_EQ(a.block_size, b.block_size);
  EXPECT_EQ(a.adj_x, b.adj_x);
  EXPECT_EQ(a.adj_y, b.adj_y);
  EXPECT_EQ(a.align_corners, b.align_corners);
  EXPECT_EQ(a.half_pixel_centers, b.half_pixel_centers);
  EXPECT_EQ(a.num_splits, b.num_splits);
  EXPECT_EQ(a.time_major, b.time_major);
  EXPECT_EQ(a.alpha, b.alpha);
  EXPECT_EQ(a.beta, b.beta);
  EXPECT_EQ(a.called_subgraphs, b.called_subgraphs);
}

// Every field of the Model but file_bytes; a constant's quantisation scale (weights, biases) may
// be nominal on the spec path, an upper bound of the drawn one.
// `bounded`: the written weights are uniform, so the nominal scales bound the drawn ones (normal
// and laplace draws have no bound).
void expect_same_model(const Model& spec, const Model& read, bool bounded) {
  EXPECT_EQ(spec.source, read.source);
  EXPECT_EQ(spec.version, read.version);
  EXPECT_EQ(spec.description, read.description);
  EXPECT_EQ(spec.num_buffers, read.num_buffers);
  ASSERT_EQ(spec.subgraphs.size(), read.subgraphs.size());
  const Subgraph& a = spec.subgraphs[0];
  const Subgraph& b = read.subgraphs[0];
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.outputs, b.outputs);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const Tensor& x = a.tensors[i];
    const Tensor& y = b.tensors[i];
    SCOPED_TRACE("tensor " + std::to_string(i) + " '" + y.name + "'");
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.shape, y.shape);
    EXPECT_EQ(x.shape_signature, y.shape_signature);
    EXPECT_EQ(x.dtype, y.dtype);
    EXPECT_EQ(x.buffer, y.buffer);
    EXPECT_EQ(x.data_bytes, y.data_bytes);
    EXPECT_EQ(x.is_constant, y.is_constant);
    EXPECT_EQ(x.is_variable, y.is_variable);
    EXPECT_EQ(x.is_sparse, y.is_sparse);
    EXPECT_EQ(x.quantization.zero_point, y.quantization.zero_point);
    EXPECT_EQ(x.quantization.quantized_dimension, y.quantization.quantized_dimension);
    ASSERT_EQ(x.quantization.scale.size(), y.quantization.scale.size());
    for (size_t c = 0; c < x.quantization.scale.size(); ++c) {
      if (!y.is_constant)
        EXPECT_EQ(x.quantization.scale[c], y.quantization.scale[c]) << "channel " << c;
      else if (bounded)
        EXPECT_GE(x.quantization.scale[c] * (1.0f + 1e-6f), y.quantization.scale[c]) << "channel " << c;
    }
  }
  ASSERT_EQ(a.operators.size(), b.operators.size());
  for (size_t i = 0; i < a.operators.size(); ++i) {
    const Operator& x = a.operators[i];
    const Operator& y = b.operators[i];
    SCOPED_TRACE("operator " + std::to_string(i));
    EXPECT_EQ(x.opcode_index, y.opcode_index);
    EXPECT_EQ(x.builtin_code, y.builtin_code);
    EXPECT_EQ(x.custom_code, y.custom_code);
    EXPECT_EQ(x.version, y.version);
    EXPECT_EQ(x.inputs, y.inputs);
    EXPECT_EQ(x.outputs, y.outputs);
    EXPECT_EQ(x.intermediates, y.intermediates);
    EXPECT_EQ(x.options_type, y.options_type);
    expect_same_options(x.options, y.options);
  }
}

// The weight columns come from the spec's distribution on the spec path (spec_graph.h): within
// these of the written model's for every operator, and within the second pair for operators of
// more than 4096 weights. Every other column is equal.
constexpr float kZeroFractionTolerance = 0.1f, kLog2MagnitudeTolerance = 0.6f;
constexpr float kLargeZeroFractionTolerance = 0.01f, kLargeLog2MagnitudeTolerance = 0.15f;
// Heavy tails (Student-t values, or normal and laplace ones under one scale per tensor) leave a
// tensor's figures to its few largest values, whose draw varies: within these for every operator.
constexpr float kHeavyZeroFractionTolerance = 0.75f, kHeavyLog2MagnitudeTolerance = 2.0f;

void expect_same_features(const Graph& spec, const Graph& read, bool heavy_tailed = false) {
  const auto& names = node_feature_names();
  const size_t F = names.size();
  const auto column = [&](const char* name) {
    return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  };
  const size_t zeros = column("weight_zero_fraction"), log2 = column("weight_log2_magnitude");
  const size_t params = column("param_count");
  ASSERT_LT(log2, F);
  ASSERT_EQ(spec.node_features().size(), read.node_features().size());
  for (size_t v = 0; v < static_cast<size_t>(read.num_nodes()); ++v) {
    const float* a = spec.node_features().data() + v * F;
    const float* b = read.node_features().data() + v * F;
    for (size_t f = 0; f < F; ++f)
      if (f != zeros && f != log2) EXPECT_EQ(a[f], b[f]) << "node " << v << " " << names[f];
    const bool large = b[params] > 4096.0f;
    EXPECT_NEAR(a[zeros], b[zeros],
                heavy_tailed ? kHeavyZeroFractionTolerance
                             : large ? kLargeZeroFractionTolerance : kZeroFractionTolerance)
        << "node " << v;
    EXPECT_NEAR(a[log2], b[log2],
                heavy_tailed ? kHeavyLog2MagnitudeTolerance
                             : large ? kLargeLog2MagnitudeTolerance : kLog2MagnitudeTolerance)
        << "node " << v;
  }
}

void expect_same_graph(const Graph& spec, const Graph& read, bool bounded = true, bool heavy_tailed = false) {
  expect_same_features(spec, read, heavy_tailed);
  EXPECT_EQ(spec.graph_features(), read.graph_features());
  EXPECT_EQ(spec.edge_index(), read.edge_index());
  EXPECT_EQ(spec.op_types(), read.op_types());
  ASSERT_EQ(spec.num_nodes(), read.num_nodes());
  for (int64_t v = 0; v < spec.num_nodes(); ++v) {
    const Node& a = spec.nodes()[static_cast<size_t>(v)];
    const Node& b = read.nodes()[static_cast<size_t>(v)];
    EXPECT_EQ(std::vector<int32_t>({a.subgraph, a.op_index, a.call_depth, a.caller}),
              std::vector<int32_t>({b.subgraph, b.op_index, b.call_depth, b.caller}));
    const NodeCost& x = spec.node_costs()[static_cast<size_t>(v)];
    const NodeCost& y = read.node_costs()[static_cast<size_t>(v)];
    EXPECT_EQ(std::vector<int64_t>({x.macs, x.param_count, x.param_bytes, x.input_activation_bytes,
                                    x.output_activation_bytes}),
              std::vector<int64_t>({y.macs, y.param_count, y.param_bytes, y.input_activation_bytes,
                                    y.output_activation_bytes}));
  }
  const GraphTotals& x = spec.totals();
  const GraphTotals& y = read.totals();
  EXPECT_EQ(std::vector<int64_t>({x.macs, x.param_count, x.param_bytes, x.activation_bytes, x.peak_activation_bytes,
                                  x.input_bytes, x.output_bytes, x.longest_path}),
            std::vector<int64_t>({y.macs, y.param_count, y.param_bytes, y.activation_bytes, y.peak_activation_bytes,
                                  y.input_bytes, y.output_bytes, y.longest_path}));
  expect_same_model(spec.model(), read.model(), bounded);
}

TEST(SpecGraph, EqualsTheGraphOfTheWrittenModel) {
  // The spec path's whole promise: whatever reads a Graph cannot tell which way it was made.
  struct Case {
    const char* spec;
    std::vector<WeightType> types;
  };
  const std::vector<Case> cases = {
      {kImageSpec, {WeightType::kInt8, WeightType::kFloat32, WeightType::kInt16x8}},
      {kSequenceSpec, {WeightType::kInt8, WeightType::kFloat32}},  // lstm, svdf, layer_norm: no 16x8
  };
  // Every distribution, pruned or not: normal takes two draws per weight and student_t three, which
  // the spec path must skip too for the draws after the weights to match.
  const std::vector<std::string> weights = {"", R"("weights": {"distribution": "normal", "sparsity": 0.6},)",
                                            R"("weights": {"distribution": "laplace"},)",
                                            R"("weights": {"distribution": "student_t", "dense": "per_tensor"},)",
                                            R"("weights": {"distribution": "student_t", "sparsity": 0.5},)"};
  for (const Case& c : cases)
    for (const WeightType type : c.types)
      for (const uint64_t seed : {0ull, 11ull})
        for (const std::string& values : weights) {
          SCOPED_TRACE(std::string(c.spec).substr(10, 20) + " type " + std::to_string(static_cast<int>(type)) +
                       " seed " + std::to_string(seed) + " " + values);
          const ModelSpec spec = parse_spec("{" + values + std::string(c.spec).substr(1));
          const auto bytes = build_model(spec, seed, type);
          const auto read = load_graph(bytes.data(), bytes.size(), "m");
          const auto built = spec_graph(spec, seed, type, "m");
          expect_same_graph(*built, *read, values.empty(), values.find("student_t") != std::string::npos);
        }
}

TEST(SpecGraph, WeightScalesAreNominalAndBounded) {
  // The one documented difference: a weight's scale is its Glorot limit's, not its largest drawn
  // magnitude's; the activations' scales, which layers derive ranges from, are exact (above).
  const ModelSpec spec = parse_spec(kImageSpec);
  const auto bytes = build_model(spec, 0, WeightType::kInt8);
  const auto read = load_graph(bytes.data(), bytes.size(), "m");
  const Model built = spec_model(spec, 0, WeightType::kInt8, "m");
  EXPECT_EQ(built.file_bytes, 0u);
  const Tensor& kernel = built.subgraphs[0].tensors[1];
  ASSERT_EQ(kernel.name, "c/kernel");
  ASSERT_EQ(kernel.quantization.scale.size(), 8u);
  // [8, 3, 3, 3]: limit sqrt(6 / (27 + 72)) over 127 levels.
  EXPECT_FLOAT_EQ(kernel.quantization.scale[0], std::sqrt(6.0f / 99.0f) / 127.0f);
  EXPECT_NE(kernel.quantization.scale, read->model().subgraphs[0].tensors[1].quantization.scale);
}

TEST(SpecGraph, BadSpecsFailAsTheWriterDoes) {
  // The same checks run, so the same message names the layer, and a batch names the item too.
  const std::string bad = R"({"inputs": [{"name": "x", "shape": [1, 4, 4, 3]}], "layers": [
    {"name": "c", "op": "conv2d", "filters": 8, "kernel": 5, "padding": "valid"}]})";
  std::string written, built;
  try {
    build_model_json(bad, 0, WeightType::kInt8);
  } catch (const Error& e) {
    written = e.what();
  }
  try {
    spec_graph(parse_spec(bad), 0, WeightType::kInt8, "m");
  } catch (const Error& e) {
    built = e.what();
  }
  EXPECT_NE(written.find("layer 0 'c' (conv2d)"), std::string::npos) << written;
  EXPECT_EQ(built, written);

  const auto results = spec_graphs({{kImageSpec, 0, WeightType::kInt8, "good"}, {bad, 0, WeightType::kInt8, "bad"},
                                    {"{", 0, WeightType::kInt8, "text"}},
                                   2);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].graph);
  EXPECT_FALSE(results[1].graph);
  EXPECT_EQ(results[1].error, "bad: " + written);
  EXPECT_FALSE(results[2].graph);
  EXPECT_EQ(results[2].error.rfind("text: spec", 0), 0u) << results[2].error;
}

TEST(SpecGraph, ALayersParametersKeepTheirFirstValueAndTheSmallestUnknownKeyIsNamed) {
  // A layer's parameters are kept in the spec's order: a repeated key keeps its first value, and of
  // several unknown keys the error names the first in key order, whatever their order in the spec.
  const std::string head =
      R"({"inputs": [{"name": "x", "shape": [1, 8, 8, 3]}], "layers": [{"name": "c", "op": "conv2d", )";
  const auto repeated = spec_graph(parse_spec(head + R"("filters": 8, "filters": 16, "kernel": 3}]})"), 0,
                                   WeightType::kInt8, "repeated");
  const auto first = spec_graph(parse_spec(head + R"("filters": 8, "kernel": 3}]})"), 0, WeightType::kInt8, "first");
  EXPECT_EQ(repeated->node_features(), first->node_features());
  for (const char* unknown : {R"("zeta": 1, "alpha": 2)", R"("alpha": 2, "zeta": 1)"}) {
    try {
      spec_graph(parse_spec(head + R"("filters": 8, "kernel": 3, )" + unknown + "}]}"), 0, WeightType::kInt8, "u");
      ADD_FAILURE() << "an unknown parameter was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("unknown parameter 'alpha' for conv2d"), std::string::npos) << e.what();
    }
  }
}

TEST(SpecGraph, BatchMatchesOneAtATimeOnAnyThreadCount) {
  // Worker threads share nothing but the items: every thread count gives the same graphs.
  // Specs as text and as JSON values, as a binding may hand them over.
  std::vector<SpecItem> items;
  std::vector<std::string> kinds;
  for (uint64_t seed = 0; seed < 12; ++seed) {
    kinds.push_back(seed % 2 ? kImageSpec : kSequenceSpec);
    SpecItem item{kinds.back(), seed, WeightType::kInt8, "s" + std::to_string(seed)};
    if (seed % 3 == 0) item.spec = parse_json(kinds.back(), "test");
    items.push_back(item);
  }
  for (const int threads : {1, 3}) {
    const auto results = spec_graphs(items, threads);
    ASSERT_EQ(results.size(), items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      ASSERT_TRUE(results[i].graph) << results[i].error;
      const auto one = spec_graph(parse_spec(kinds[i]), items[i].seed, items[i].type, items[i].source);
      EXPECT_EQ(results[i].graph->node_features(), one->node_features());  // both on the spec path
      EXPECT_EQ(results[i].graph->source(), items[i].source);
    }
  }
}

TEST(SpecGraph, AFeedIsMadeInOrderOnTheCallingThreadAndItsFailureEndsTheBatch) {
  // A binding's feed converts its objects on its own thread while the workers build: item(i) must
  // be called in order on the calling thread, done() once after the last; an exception from
  // item(i) reaches the caller (after the workers join) and done() is not called.
  const auto caller = std::this_thread::get_id();
  for (const int threads : {1, 3}) {
    std::vector<size_t> order;
    int done = 0;
    bool elsewhere = false;
    const auto item = [&](size_t i) {
      elsewhere |= std::this_thread::get_id() != caller;
      order.push_back(i);
      return SpecItem{std::string(i % 2 ? kImageSpec : kSequenceSpec), i, WeightType::kInt8, "f" + std::to_string(i)};
    };
    const auto results = spec_graphs(SpecFeed{40, item, [&] { ++done; }}, threads);
    EXPECT_FALSE(elsewhere);
    EXPECT_EQ(done, 1);
    ASSERT_EQ(order.size(), 40u);
    for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i);
    for (size_t i = 0; i < results.size(); ++i) {
      ASSERT_TRUE(results[i].graph) << results[i].error;
      const auto one = spec_graph(parse_spec(i % 2 ? kImageSpec : kSequenceSpec), i, WeightType::kInt8, "f");
      EXPECT_EQ(results[i].graph->node_features(), one->node_features());
    }
    done = 0;
    const auto failing = [&](size_t i) {
      if (i == 25) throw std::runtime_error("item 25 cannot be converted");
      return item(i);
    };
    EXPECT_THROW(spec_graphs(SpecFeed{40, failing, [&] { ++done; }}, threads), std::runtime_error);
    SageConfig c;
    c.num_targets = 1;
    SageNetwork net(c);
    net.init_parameters(1);
    std::vector<float> out(40);
    EXPECT_THROW(predict_specs(net, SpecFeed{40, failing, [&] { ++done; }}, threads, out.data()), std::runtime_error);
    EXPECT_EQ(done, 0);
  }
}

TEST(SpecPredict, EqualsPredictingTheSpecsGraphsAndNamesBadSpecs) {
  // predict_specs builds, predicts and frees on the workers: the same predictions as the graphs
  // spec_graphs makes, on any thread count; a bad spec is its item's error and a NaN row.
  std::vector<SpecItem> items;
  for (uint64_t seed = 0; seed < 11; ++seed)
    items.push_back({seed == 6 ? std::string(R"({"inputs": [{"name": "x", "shape": [1, 4, 4, 3]}],
        "layers": [{"name": "c", "op": "conv2d", "filters": 8, "kernel": 5, "padding": "valid"}]})")
                               : std::string(seed % 2 ? kImageSpec : kSequenceSpec),
                     seed, WeightType::kInt8, "s" + std::to_string(seed)});
  std::vector<std::shared_ptr<const Graph>> keep;
  std::vector<GraphInput> inputs;
  for (const LoadResult& r : spec_graphs(items, 1))
    if (r.graph) {
      keep.push_back(r.graph);
      inputs.push_back(graph_input(*r.graph));
    }
  ASSERT_EQ(inputs.size(), 10u);
  SageConfig c;
  c.num_targets = 2;
  SageNetwork net(c);
  std::vector<float> labels(inputs.size() * 2, 1.0f);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] += static_cast<float>(i);
  net.fit_normalization(inputs, labels.data());
  net.init_parameters(5);
  for (size_t i = 0; i < net.parameters().size(); ++i) net.parameters()[i] += 0.01f * static_cast<float>(i % 7);
  std::vector<float> expected(inputs.size() * 2);
  net.predict(inputs, 1, expected.data());
  for (const int threads : {1, 3}) {
    std::vector<float> out(items.size() * 2);
    const auto errors = predict_specs(net, items, threads, out.data());
    ASSERT_EQ(errors.size(), items.size());
    for (size_t i = 0, k = 0; i < items.size(); ++i) {
      if (i == 6) {
        EXPECT_EQ(errors[i].rfind("s6: spec: layer 0 'c' (conv2d)", 0), 0u) << errors[i];
        EXPECT_TRUE(std::isnan(out[i * 2]) && std::isnan(out[i * 2 + 1]));
        continue;
      }
      EXPECT_EQ(errors[i], "");
      EXPECT_EQ(out[i * 2], expected[k * 2]) << "item " << i;
      EXPECT_EQ(out[i * 2 + 1], expected[k * 2 + 1]) << "item " << i;
      ++k;
    }
  }
}

}  // namespace
}  // namespace perfsage
