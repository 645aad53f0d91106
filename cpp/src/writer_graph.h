// The writer's inside (writer.h is its outside). Three jobs, one file each:
//   writer_graph.cpp   the model being written: tensors with their quantisation, operators, and
//                      what they become: the flatbuffer, or the reader's Model without one;
//   writer_layers.cpp  one small builder per spec op, looked up in a table by op name;
//   writer.cpp         the spec walk: inputs, relu fusion, each layer through its builder, outputs;
//   writer_weights.cpp weight values as the spec's "weights" asks, and their expected summary.
// Layer parameters are read through Params (writer_params.cpp), which names the layer in errors.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "perfsage/model.h"
#include "perfsage/spec.h"
#include "perfsage/tflite_generated.h"
#include "perfsage/writer.h"
#include "rng.h"

namespace perfsage::writer {

namespace fb = ::perfsage::tflite;
using Shape = decltype(Tensor::shape);
using Builder = flatbuffers::FlatBufferBuilder;
using OptionsFn = std::function<flatbuffers::Offset<void>(Builder&)>;

int64_t elements(const Shape& shape);
std::string shape_str(const Shape& shape);
// "int8", "int16", "int32", "float32", ... as spec parameters and errors spell them.
std::string type_name(fb::TensorType type);

struct TensorDef {
  std::string name;
  Shape shape;
  fb::TensorType type = fb::TensorType::FLOAT32;
  std::vector<uint8_t> data;  // constants only; weights and biases stay empty when only sizes are kept
  uint64_t data_bytes = 0;    // the constant data's size, kept or not (the buffer the reader sees)
  decltype(Quantization::scale) scale;  // the Model's types, so that to_model moves them
  decltype(Quantization::zero_point) zero_point;
  int32_t quantized_dimension = 0;
  float lo = 0.0f, hi = 0.0f;  // estimated float range of the values
  bool variable = false;       // state the runtime keeps between invocations (recurrent layers)
  ValueSummary values;         // quantised weights with sizes only: expected_summary's
};

// How a weight tensor's elements fall into quantisation slices: element i = (outer, channel,
// inner) in row-major order around the channel axis; per tensor is one channel holding everything.
struct Slices {
  size_t outer = 1, channels = 1, inner = 1;
};

// Generator draws per weight of distribution `d` (what sizes-only skips per weight).
uint64_t draws_per_weight(WeightDistribution d);
// Fills `w` with weights of distribution `d` and the variance of uniform [-limit, limit).
void draw_weights(Rng& rng, WeightDistribution d, float limit, std::vector<float>& w);
// Magnitude pruning: zeroes the round(size * sparsity)-ish smallest |w| (TF-MOT keeps
// round(size * (1 - sparsity))), ties broken by index.
void prune_weights(std::vector<float>& w, double sparsity);
// Symmetric per-slice quantisation to [-qmax, qmax]; `scales` gets each channel's scale.
std::vector<int16_t> quantize_weights(const std::vector<float>& w, const Slices& s, float qmax,
                                      decltype(Quantization::scale)& scales);
// The summary (model.h) that quantising `bits`-bit weights drawn as `weights` asks is expected to
// give, from the distribution alone: what the spec path gives weights, which it never draws.
ValueSummary expected_summary(const SpecWeights& weights, const Slices& s, int bits);


// A tensor's values as errors name them: "int8", or "unquantised int8" for plain integers.
std::string value_kind(const TensorDef& t);

struct OpDef {
  fb::BuiltinOperator code;
  decltype(Operator::inputs) inputs;
  decltype(Operator::outputs) outputs;
  fb::BuiltinOptions options_type = fb::BuiltinOptions::NONE;
  OptionsFn options;
  std::vector<int32_t> intermediates;  // tensors whose quantisation an integer kernel reads
};

enum class Activation { kNone, kRelu, kRelu6 };
fb::ActivationFunctionType fused(Activation a);

// The estimated range of a conv, depthwise, transposed conv or dense output: +-4 sigma of a unit
// variance activation. Trained networks normalise after each of these (batch norm, folded into
// the bias); deriving the range from the input's instead would compound through residual stacks
// into scales no runtime or compiler accepts.
constexpr float kNormalizedSpread = 4.0f;

// The parameters of one layer, read with checks; unknown keys are an error at the end.
class Params {
 public:
  // `index`: the layer's place in the spec, which errors name with it.
  Params(const SpecLayer& layer, size_t index) : layer_(layer), index_(index) { used_.reserve(layer.params.members.size()); }

  [[noreturn]] void fail(const std::string& what) const;
  // "layer 3 'c1' (conv2d)", as errors name the layer; built only when needed.
  std::string label() const;
  bool has(const std::string& key) const { return layer_.params.find(key) != nullptr; }

  int32_t integer(const std::string& key, std::optional<int32_t> fallback = std::nullopt);
  int32_t positive(const std::string& key, std::optional<int32_t> fallback = std::nullopt);
  // An int or an [h, w] pair of positive ints.
  std::pair<int32_t, int32_t> pair(const std::string& key, std::optional<int32_t> fallback = std::nullopt);
  Shape ints(const std::string& key);
  std::vector<Shape> int_pairs(const std::string& key);
  double number(const std::string& key, double fallback);
  // A [lo, hi] pair of finite numbers with lo < hi.
  std::pair<double, double> range(const std::string& key, std::pair<double, double> fallback);
  bool flag(const std::string& key, bool fallback);
  // The value of `key`, one of `allowed` (the first when absent); fails naming the options.
  std::string choice(const std::string& key, const std::vector<std::string>& allowed);
  // The same for fixed options, without building strings: a view of the chosen literal.
  std::string_view choice(const std::string& key, std::initializer_list<const char*> allowed);
  std::string text(const std::string& key);
  void finish() const;

 private:
  const JsonValue* get(const std::string& key);
  size_t choose(const std::string& key, const InlineVec<std::string_view, 4>& allowed);
  int32_t required(const std::string& key, std::optional<int32_t> fallback) const;

  const SpecLayer& layer_;
  size_t index_;
  std::vector<const JsonValue*> used_;  // the parameters read; finish() refuses the others
};

// What a GraphBuilder keeps of weights and biases: their values, for a .tflite file, or their sizes
// only, for a Model that goes straight to a Graph (features and predictions read sizes, never
// values, and drawing the values is most of the writer's time).
enum class ConstantData { kValues, kSizesOnly };

// The model being written: its tensors and operators in order. Each new tensor gets the data and
// the quantisation (int8, int16x8) or none (float32) of its kind; weights and biases draw from the
// seeded generator, so the order of the calls is part of the output. With sizes only, weights and
// biases skip their draws (later draws, as prelu's slopes, stay those of the values' stream) and
// carry nominal quantisation scales (see weights()); everything else is as with values.
class GraphBuilder {
 public:
  GraphBuilder(uint64_t seed, WeightType type, ConstantData constants = ConstantData::kValues,
               SpecWeights weight_values = {})
      : model_type_(type), type_(type), constants_(constants), weight_values_(weight_values),
        rng_(seed ^ 0x7065726673616765ull) {}

  // A float section of a quantized model (float32 values between DEQUANTIZE and QUANTIZE, what a
  // converter leaves unquantized): while on, every question below is answered as for a float32
  // model, so that a layer builds its float32 kernel, float weights and unquantized outputs.
  void float_section(bool on) { type_ = on ? WeightType::kFloat32 : model_type_; }
  bool model_quantized() const { return model_type_ != WeightType::kFloat32; }

  bool int8() const { return type_ == WeightType::kInt8; }
  // 16x8: int16 activations (symmetric, zero point 0), int8 weights, int64 biases.
  bool int16() const { return type_ == WeightType::kInt16x8; }
  bool quantized() const { return type_ != WeightType::kFloat32; }
  // The type of every activation tensor: INT8, INT16 or FLOAT32.
  fb::TensorType activation_type() const;
  Rng& rng() { return rng_; }
  // The spec's "weights" (spec.h).
  const SpecWeights& weight_values() const { return weight_values_; }
  // Adding a tensor may move the others: a builder that keeps one across such calls copies it.
  const TensorDef& tensor(int32_t t) const { return tensors_[static_cast<size_t>(t)]; }
  // The tensor called `name`, or -1.
  int32_t find(const std::string& name) const;
  static float absmax(const TensorDef& t);

  // An activation tensor with the range [lo, hi]; int8 gets asymmetric parameters for it, int16
  // symmetric ones (zero point 0, as the 16x8 kernels require).
  int32_t activation(const std::string& name, const Shape& shape, float lo, float hi);
  // The same with an explicit type (INT8, INT16 or FLOAT32), whatever the model's: QUANTIZE's
  // int8 <-> int16 outputs.
  int32_t activation_of(fb::TensorType type, const std::string& name, const Shape& shape, float lo, float hi);
  // A tensor carrying `like`'s values rearranged: same type, range and quantisation.
  int32_t same_as(const std::string& name, const Shape& shape, int32_t like);
  // Runtime-fixed quantisation (softmax, logistic, tanh outputs): `scale` and `zp` in int8; in
  // int16 every one of them is 1/32768 at 0 (the kernels' Q0.15 outputs).
  int32_t fixed(const std::string& name, const Shape& shape, float lo, float hi, float scale, int64_t zp);
  int32_t const_int32(const std::string& name, const Shape& values, Shape shape = {});
  // A tensor computed at run time that carries plain values, unquantised in every dtype: ARG_MAX's
  // int32 indices, CAST's outputs. [lo, hi] is the range of those values.
  int32_t unquantized(const std::string& name, const Shape& shape, fb::TensorType type, float lo, float hi);
  // Weights with Glorot-uniform's variance, drawn and pruned as the spec's "weights" asks (by
  // default Glorot-uniform, unpruned); int8 and int16x8 quantise them symmetrically per slice along
  // `channel_axis`, or per tensor when it is -1, to `bits` bits (int8 up to 8, int16 above, as
  // SVDF's time weights). Each slice's scale is its largest magnitude over the largest level; with
  // sizes only, which draws no values, it is the Glorot limit's (the bound of uniform magnitudes),
  // and the summary of the quantised values is expected_summary's.
  int32_t weights(const std::string& name, const Shape& shape, int64_t fan_in, int64_t fan_out,
                  int32_t channel_axis, int bits = 8);
  // Bias of `n` values (a folded batch norm's shift: small, not zero, unless `zero`); int32 (int8)
  // or int64 (int16x8) at in_scale * w_scale, one scale per weight scale. Layers without a bias
  // still get a zero one, as from the converter, because runtimes expect the tensor.
  int32_t bias(const std::string& name, int32_t n, int32_t input, int32_t weight, bool zero = false);
  // A constant operand of elementwise arithmetic (layer norm's gamma, beta, epsilon).
  int32_t const_values(const std::string& name, const std::vector<float>& values);
  // A variable tensor holding a recurrent layer's state: float32, or in int8 models `type` at
  // `scale` and `zero_point`, spanning what that type holds at that scale.
  int32_t state(const std::string& name, const Shape& shape, fb::TensorType type, float scale, int64_t zero_point);
  // An operator's intermediate tensor, of shape [0]: `like`'s type and quantisation, or float32
  // and unquantised when `like` is -1.
  int32_t intermediate(const std::string& name, int32_t like);

  // Room for a spec's tensors and operators, which layers add a few at a time.
  void reserve(size_t inputs, size_t layers) {
    tensors_.reserve(inputs + 4 * layers);
    ops_.reserve(2 * layers);
  }
  size_t num_ops() const { return ops_.size(); }
  void add_op(fb::BuiltinOperator code, decltype(OpDef::inputs) inputs, decltype(OpDef::outputs) outputs,
              fb::BuiltinOptions type = fb::BuiltinOptions::NONE, OptionsFn options = nullptr,
              std::vector<int32_t> intermediates = {});

  // The finished .tflite: one subgraph "main", operator codes in order of first use, one buffer
  // per constant tensor after the empty buffer 0. Needs the values (ConstantData::kValues).
  std::vector<uint8_t> serialize(const std::vector<int32_t>& inputs, const std::vector<int32_t>& outputs,
                                 const std::string& description) const;
  // What read_model(serialize(...), source) gives, without the flatbuffer: the same tensors,
  // buffers, operator codes and options (through the reader's own reading of options), except
  // file_bytes, 0 for a model never serialised, and with sizes only, the nominal weight and bias
  // scales. The tensors' and operators' vectors move into the Model: the builder is spent.
  Model to_model(const std::vector<int32_t>& inputs, const std::vector<int32_t>& outputs,
                 const std::string& description, const std::string& source) &&;

 private:
  int32_t add_tensor(TensorDef t);
  bool sizes_only() const { return constants_ == ConstantData::kSizesOnly; }
  // The buffer of each tensor: 0 (none) or the next after the empty buffer 0, in tensor order.
  std::vector<uint32_t> buffer_of_tensors() const;
  // The operator codes in order of first use, and each operator's index into them.
  std::vector<fb::BuiltinOperator> operator_codes(std::vector<uint32_t>& code_of_op) const;

  WeightType model_type_;
  WeightType type_;  // model_type_, or float32 in a float section
  ConstantData constants_;
  SpecWeights weight_values_;
  Rng rng_;
  std::vector<TensorDef> tensors_;
  std::vector<OpDef> ops_;
};

// What a layer builder gets: the layer's parameters, its input tensors (already resolved; a
// builder may replace one, as concat does with requantised inputs) and the graph to add to.
struct Layer {
  const std::string& name;
  const std::string& op;
  Params& params;
  std::vector<int32_t>& inputs;
  GraphBuilder& graph;
  std::optional<Activation> fused_activation;  // a following relu/relu6 folded into this layer
  // All outputs of a multi-output op (split, unpack), which later layers name "<layer>:<i>"; the
  // builder returns the first. Empty for single-output ops.
  std::vector<int32_t> outputs = {};

  // Fails unless the layer has between `lo` and `hi` inputs.
  void want_inputs(size_t lo, size_t hi) const;
  // The "activation" parameter, or the fused one when a relu layer was folded into this one.
  Activation activation_param() const;
};

// Adds the operators of one layer and returns its output tensor.
using LayerBuilderFn = int32_t (*)(Layer&);

// The recurrent layers (writer_recurrent.cpp).
int32_t lstm(Layer& l);
int32_t svdf(Layer& l);

// The builder of a spec op, or null when no op has that name.
LayerBuilderFn find_layer_builder(const std::string& op);
// Every spec op, in table order.
std::vector<std::string> layer_builder_ops();

}  // namespace perfsage::writer
