// The recurrent layers: LSTM and SVDF as TensorFlow's converter writes them, with their state in
// variable tensors that the runtime keeps between invocations.
//
// As in writer_layers.cpp, the order of parameter reads decides which error a bad spec gets and the
// order of weights and biases decides the bytes: keep both when editing.
#include <array>
#include <string>
#include <vector>

#include "writer_graph.h"

namespace perfsage::writer {
namespace {

// The LSTM kernel's gate order, in its inputs and in the converter's tensor names.
constexpr std::array<const char*, 4> kGates = {"input", "forget", "cell", "output"};

// The cell clip the converter sets on every fused Keras LSTM, in both dtypes.
constexpr float kCellClip = 10.0f;

// The int16 cell state's scale: a power of two (the integer kernel requires one, at most 2^-9)
// that holds a cell value of +-8, what calibrating a trained LSTM gives the converter.
constexpr float kCellScale = 1.0f / 4096.0f;

// The number of inputs of UNIDIRECTIONAL_SEQUENCE_LSTM, absent ones written as -1.
constexpr size_t kLstmInputs = 24;

// The time-weights' precision: the converter quantises them to 10 bits in an int16 tensor,
// leaving 6 bits of headroom for the sum over the memory.
constexpr int kSvdfTimeBits = 10;

const TensorDef& single_input(Layer& l, size_t rank, const char* layout) {
  l.want_inputs(1, 1);
  const TensorDef& x = l.graph.tensor(l.inputs[0]);
  if (x.shape.size() != rank) l.params.fail(std::string("needs a ") + layout + " input, got " + shape_str(x.shape));
  return x;
}

}  // namespace

// Keras LSTM (no peepholes, projection or layer norm) fused into one UNIDIRECTIONAL_SEQUENCE_LSTM
// over [batch, time, features], batch-major. int8 as the converter writes it: per-tensor int8
// weights, int32 gate biases at the input's scale times the gate's input weights', an int8 output
// state at the output's parameters and an int16 cell state at a power-of-two scale, both
// variable; five intermediates, of which the integer kernel reads the last (the effective hidden
// scale: the output's). Without return_sequences, a STRIDED_SLICE keeps the last step, as the
// converter adds for Keras.
int32_t lstm(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  const Shape shape = single_input(l, 3, "[batch, time, features]").shape;
  const int32_t units = p.positive("units");
  const bool sequences = p.flag("return_sequences", true);
  const int32_t batch = shape[0], features = shape[2];
  std::vector<int32_t> inputs(kLstmInputs, -1);
  inputs[0] = l.inputs[0];
  for (size_t k = 0; k < kGates.size(); ++k)
    inputs[1 + k] = g.weights(l.name + "/input_to_" + kGates[k] + "_weights", {units, features}, features, units, -1);
  for (size_t k = 0; k < kGates.size(); ++k)
    inputs[5 + k] = g.weights(l.name + "/recurrent_to_" + kGates[k] + "_weights", {units, units}, units, units, -1);
  for (size_t k = 0; k < kGates.size(); ++k)
    inputs[12 + k] = g.bias(l.name + "/" + kGates[k] + "_gate_bias", units, l.inputs[0], inputs[1 + k]);
  const std::string sequence_name = sequences ? l.name : l.name + "/sequence";
  const int32_t out = g.activation(sequence_name, {batch, shape[1], units}, -1.0f, 1.0f);
  const TensorDef q = g.tensor(out);
  inputs[18] = g.state(l.name + "/output_state", {batch, units}, fb::TensorType::INT8, g.int8() ? q.scale[0] : 0.0f,
                       g.int8() ? q.zero_point[0] : 0);
  inputs[19] = g.state(l.name + "/cell_state", {batch, units}, fb::TensorType::INT16, kCellScale, 0);
  std::vector<int32_t> intermediates;
  if (g.int8()) {
    for (const char* gate : kGates) intermediates.push_back(g.intermediate(l.name + "/input_to_" + gate + "_intermediate", -1));
    intermediates.push_back(g.intermediate(l.name + "/effective_hidden_scale_intermediate", out));
  }
  g.add_op(fb::BuiltinOperator::UNIDIRECTIONAL_SEQUENCE_LSTM, inputs, {out},
           fb::BuiltinOptions::UnidirectionalSequenceLSTMOptions,
           [](Builder& fbb) {
             return fb::CreateUnidirectionalSequenceLSTMOptions(fbb, fb::ActivationFunctionType::TANH, kCellClip).Union();
           },
           intermediates);
  if (sequences) return out;
  // out[:, -1, :] with the time dimension dropped: begin and end masks over batch and features.
  const int32_t begin_t = g.const_int32(l.name + "/last_begin", {0, -1, 0});
  const int32_t end_t = g.const_int32(l.name + "/last_end", {0, 0, 0});
  const int32_t strides_t = g.const_int32(l.name + "/last_strides", {1, 1, 1});
  const int32_t last = g.same_as(l.name, {batch, units}, out);
  g.add_op(fb::BuiltinOperator::STRIDED_SLICE, {out, begin_t, end_t, strides_t}, {last},
           fb::BuiltinOptions::StridedSliceOptions,
           [](Builder& fbb) { return fb::CreateStridedSliceOptions(fbb, 0b101, 0b101, 0, 0, 0b010).Union(); });
  return last;
}

// SVDF over one frame [batch, features]: `units` x `rank` filters project the frame (feature
// weights), the activation state remembers the last `memory` projections of each filter, time
// weights sum them, and each unit adds up its `rank` filters, a bias and a ReLU (the only
// activation TFLite's integer kernel takes). int8 as the converter writes it: int8 feature
// weights, 10-bit time weights in int16, an int16 activation state, an int32 bias at the state's
// scale times the time weights'.
int32_t svdf(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  const Shape shape = single_input(l, 2, "[batch, features]").shape;
  const int32_t units = p.positive("units");
  const int32_t rank = p.positive("rank", 1);
  const int32_t memory = p.positive("memory");
  const int32_t batch = shape[0], features = shape[1];
  const int32_t filters = units * rank;
  const int32_t feature_w = g.weights(l.name + "/weights_feature", {filters, features}, features, filters, -1);
  const int32_t time_w = g.weights(l.name + "/weights_time", {filters, memory}, memory, 1, -1, kSvdfTimeBits);
  const int32_t state = g.state(l.name + "/activation_state", {batch, memory * filters}, fb::TensorType::INT16,
                                kNormalizedSpread / 32767.0f, 0);
  const int32_t b = g.bias(l.name + "/bias", units, state, time_w);
  const int32_t out = g.activation(l.name, {batch, units}, 0.0f, kNormalizedSpread);
  g.add_op(fb::BuiltinOperator::SVDF, {l.inputs[0], feature_w, time_w, b, state}, {out}, fb::BuiltinOptions::SVDFOptions,
           [rank](Builder& fbb) { return fb::CreateSVDFOptions(fbb, rank, fb::ActivationFunctionType::RELU).Union(); });
  return out;
}

}  // namespace perfsage::writer
