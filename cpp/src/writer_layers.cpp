// One builder per spec op (spec.h lists them with their parameters), and the table that finds them.
//
// A builder reads its parameters, checks its inputs, adds its constants, output tensor and
// operators to the graph in the order the converter would, and returns the output tensor. The
// order of parameter reads decides which error a bad spec gets; the order of weights and biases
// decides the bytes: keep both when editing.
#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <limits>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "writer_graph.h"

namespace perfsage::writer {

void Layer::want_inputs(size_t lo, size_t hi) const {
  if (inputs.size() < lo || inputs.size() > hi)
    params.fail("takes " + (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)) +
                " inputs, got " + std::to_string(inputs.size()));
}

Activation Layer::activation_param() const {
  const std::string_view a = params.choice("activation", {"none", "relu", "relu6"});
  const Activation chosen = a == "relu" ? Activation::kRelu : a == "relu6" ? Activation::kRelu6 : Activation::kNone;
  return fused_activation ? *fused_activation : chosen;
}

namespace {

// --- shape checks shared by the builders -------------------------------------------------------

Shape broadcast(const Params& p, const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    const int32_t da = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
    const int32_t db = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
    if (da != db && da != 1 && db != 1) p.fail("shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    out[i] = std::max(da, db);
  }
  return out;
}

void require_rank(const Params& p, const TensorDef& t, size_t rank) {
  if (t.shape.size() != rank) p.fail("needs a rank-" + std::to_string(rank) + " input, got " + shape_str(t.shape));
}

// Output size and a check that the (dilated) kernel fits the (padded) input.
int32_t window_out(const Params& p, int32_t in, int32_t kernel, int32_t stride, int32_t dilation, bool same,
                   const char* axis) {
  const int32_t effective = (kernel - 1) * dilation + 1;
  if (same) return (in + stride - 1) / stride;
  if (effective > in)
    p.fail(std::string("kernel ") + std::to_string(effective) + " is larger than the " + axis + " size " +
           std::to_string(in) + " of its input (padding valid)");
  return (in - effective) / stride + 1;
}

void clamp_range(Activation act, float& lo, float& hi) {
  if (act != Activation::kNone) lo = 0.0f;
  if (act == Activation::kRelu6) hi = std::min(hi, 6.0f);
}

// The single input, copied: adding tensors may move the graph's tensor list.
TensorDef only_input(Layer& l) {
  l.want_inputs(1, 1);
  return l.graph.tensor(l.inputs[0]);
}

// --- weighted layers ---------------------------------------------------------------------------

int32_t conv(Layer& l, bool depthwise) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  const TensorDef x = only_input(l);
  require_rank(p, x, 4);
  const auto [kh, kw] = p.pair("kernel");
  const auto [sh, sw] = p.pair("stride", 1);
  const auto [dh, dw] = p.pair("dilation", 1);
  const bool same = p.choice("padding", {"same", "valid"}) == "same";
  const Activation act = l.activation_param();
  const bool with_bias = p.flag("bias", true);
  const int32_t cin = x.shape[3];
  const int32_t multiplier = depthwise ? p.positive("depth_multiplier", 1) : 1;
  const int32_t cout = depthwise ? cin * multiplier : p.positive("filters");
  const int32_t oh = window_out(p, x.shape[1], kh, sh, dh, same, "height");
  const int32_t ow = window_out(p, x.shape[2], kw, sw, dw, same, "width");
  const int64_t fan_in = int64_t{kh} * kw * (depthwise ? 1 : cin);
  const int32_t w = depthwise
                        ? g.weights(l.name + "/depthwise_kernel", {1, kh, kw, cout}, fan_in, int64_t{kh} * kw * multiplier, 3)
                        : g.weights(l.name + "/kernel", {cout, kh, kw, cin}, fan_in, int64_t{kh} * kw * cout, 0);
  const int32_t b = g.bias(l.name + "/bias", cout, l.inputs[0], w, !with_bias);
  float lo = -kNormalizedSpread, hi = kNormalizedSpread;
  clamp_range(act, lo, hi);
  const int32_t out = g.activation(l.name, {x.shape[0], oh, ow, cout}, lo, hi);
  const auto padding = same ? fb::Padding::SAME : fb::Padding::VALID;
  if (depthwise)
    g.add_op(fb::BuiltinOperator::DEPTHWISE_CONV_2D, {l.inputs[0], w, b}, {out}, fb::BuiltinOptions::DepthwiseConv2DOptions,
             [=](Builder& fbb) {
               return fb::CreateDepthwiseConv2DOptions(fbb, padding, sw, sh, multiplier, fused(act), dw, dh).Union();
             });
  else
    g.add_op(fb::BuiltinOperator::CONV_2D, {l.inputs[0], w, b}, {out}, fb::BuiltinOptions::Conv2DOptions,
             [=](Builder& fbb) { return fb::CreateConv2DOptions(fbb, padding, sw, sh, fused(act), dw, dh).Union(); });
  return out;
}

int32_t conv2d(Layer& l) { return conv(l, false); }
int32_t depthwise_conv2d(Layer& l) { return conv(l, true); }

int32_t transpose_conv2d(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  const TensorDef x = only_input(l);
  require_rank(p, x, 4);
  const int32_t cout = p.positive("filters");
  const auto [kh, kw] = p.pair("kernel");
  const auto [sh, sw] = p.pair("stride", 1);
  const bool same = p.choice("padding", {"same", "valid"}) == "same";
  const bool with_bias = p.flag("bias", true);
  const int32_t cin = x.shape[3];
  const int32_t oh = same ? x.shape[1] * sh : (x.shape[1] - 1) * sh + kh;
  const int32_t ow = same ? x.shape[2] * sw : (x.shape[2] - 1) * sw + kw;
  const Shape out_shape = {x.shape[0], oh, ow, cout};
  const int32_t shape_t = g.const_int32(l.name + "/output_shape", out_shape);
  const int32_t w = g.weights(l.name + "/kernel", {cout, kh, kw, cin}, int64_t{kh} * kw * cin, int64_t{kh} * kw * cout, 0);
  const int32_t b = g.bias(l.name + "/bias", cout, l.inputs[0], w, !with_bias);
  const int32_t out = g.activation(l.name, out_shape, -kNormalizedSpread, kNormalizedSpread);
  const auto padding = same ? fb::Padding::SAME : fb::Padding::VALID;
  g.add_op(fb::BuiltinOperator::TRANSPOSE_CONV, {shape_t, w, l.inputs[0], b}, {out}, fb::BuiltinOptions::TransposeConvOptions,
           [=](Builder& fbb) { return fb::CreateTransposeConvOptions(fbb, padding, sw, sh).Union(); });
  return out;
}

// The kernel and bias of the earlier dense layer `owner`, which the converter keeps as one
// constant for all time steps of an unrolled recurrent layer. In int8 the input must have the
// owner's input scale, which the bias's scale holds (int16x8 alike).
std::pair<int32_t, int32_t> shared_dense_weights(Layer& l, const std::string& owner, int32_t units, int32_t cin) {
  GraphBuilder& g = l.graph;
  const int32_t w = g.find(owner + "/kernel"), b = g.find(owner + "/bias");
  if (w < 0 || b < 0 || g.tensor(w).shape != Shape{units, cin})
    l.params.fail("'weights_of' must name an earlier dense layer of " + std::to_string(units) + " units on " +
                  std::to_string(cin) + " features, got '" + owner + "'");
  if (g.quantized() && std::abs(g.tensor(b).scale[0] - g.tensor(l.inputs[0]).scale[0] * g.tensor(w).scale[0]) >
                           1e-6f * g.tensor(b).scale[0])
    l.params.fail("shares the weights of '" + owner + "', whose input has another " +
                  type_name(g.activation_type()) + " scale");
  return {w, b};
}

int32_t dense(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  const TensorDef x = only_input(l);
  const int32_t units = p.positive("units");
  const Activation act = l.activation_param();
  const bool with_bias = p.flag("bias", true);
  const int32_t cin = x.shape.back();
  int32_t w = -1, b = -1;
  if (p.has("weights_of")) {
    std::tie(w, b) = shared_dense_weights(l, p.text("weights_of"), units, cin);
  } else {
    w = g.weights(l.name + "/kernel", {units, cin}, cin, units, g.weight_values().dense_per_tensor ? -1 : 0);
    b = g.bias(l.name + "/bias", units, l.inputs[0], w, !with_bias);
  }
  const bool keep_dims = x.shape.size() > 2;
  Shape out_shape = x.shape;
  if (keep_dims)
    out_shape.back() = units;
  else
    out_shape = {static_cast<int32_t>(elements(x.shape) / cin), units};
  float lo = -kNormalizedSpread, hi = kNormalizedSpread;
  clamp_range(act, lo, hi);
  const int32_t out = g.activation(l.name, out_shape, lo, hi);
  g.add_op(fb::BuiltinOperator::FULLY_CONNECTED, {l.inputs[0], w, b}, {out}, fb::BuiltinOptions::FullyConnectedOptions,
           [=](Builder& fbb) {
             return fb::CreateFullyConnectedOptions(fbb, fused(act), fb::FullyConnectedOptionsWeightsFormat::DEFAULT, keep_dims)
                 .Union();
           });
  return out;
}

// --- elementwise arithmetic: output ranges by interval arithmetic on the inputs' ----------------

struct TwoInputs {
  TensorDef a, b;
  Shape shape;  // broadcast as numpy
};

TwoInputs two_inputs(Layer& l) {
  l.want_inputs(2, 2);
  TwoInputs x{l.graph.tensor(l.inputs[0]), l.graph.tensor(l.inputs[1]), {}};
  x.shape = broadcast(l.params, x.a.shape, x.b.shape);
  return x;
}

// Two inputs, or with "constant" one input and a constant second operand, as models carry what
// the converter cannot fold into a neighbour: input normalisation (Keras Rescaling: a scalar;
// Normalization: a mean and a scale per channel), batch norms after additions or before
// convolutions, layer scales. "constant" is "scalar" (shape [1]) or "channel" (one value per
// element of the input's last dimension); the values are uniform in "constant_range" [`range`],
// drawn from the seeded generator, and quantised per tensor as the converter quantises them.
TwoInputs two_inputs_or_constant(Layer& l, std::pair<double, double> range) {
  Params& p = l.params;
  if (!p.has("constant")) return two_inputs(l);
  if (l.inputs.size() != 1) p.fail("takes one input beside its constant, got " + std::to_string(l.inputs.size()));
  const bool scalar = p.choice("constant", {"scalar", "channel"}) == "scalar";
  const auto [lo, hi] = p.range("constant_range", range);
  GraphBuilder& g = l.graph;
  const Shape& shape = g.tensor(l.inputs[0]).shape;
  std::vector<float> values(scalar ? 1 : static_cast<size_t>(shape.back()));
  for (float& v : values) v = static_cast<float>((lo + hi) / 2) + g.rng().uniform(static_cast<float>((hi - lo) / 2));
  l.inputs.push_back(g.const_values(l.name + "/constant", values));
  return two_inputs(l);
}

// The output of an arithmetic layer with a fused activation, in [lo, hi] before the activation,
// or in [-bound, bound] when the spec knows better than interval arithmetic (a recurrent state,
// whose intervals would widen at every step).
int32_t arithmetic(Layer& l, const TwoInputs& x, Activation act, float lo, float hi, fb::BuiltinOperator code,
                   fb::BuiltinOptions options_type, OptionsFn options) {
  if (l.params.has("bound")) {
    hi = static_cast<float>(l.params.number("bound", 0.0));
    if (!(hi > 0.0f)) l.params.fail("'bound' must be positive");
    lo = -hi;
  }
  clamp_range(act, lo, hi);
  const int32_t out = l.graph.activation(l.name, x.shape, lo, hi);
  l.graph.add_op(code, l.inputs, {out}, options_type, std::move(options));
  return out;
}

// ADD and SUB options. The schema's default pot_scale_int16 (true) limits int16 operands to
// power-of-two scales; the converter's 16x8 models clear it. Int8 and float32 leave the default
// (written as nothing), as before.
OptionsFn add_options(const GraphBuilder& g, Activation act) {
  const bool pot = !g.int16();
  return [=](Builder& fbb) { return fb::CreateAddOptions(fbb, fused(act), pot).Union(); };
}

OptionsFn sub_options(const GraphBuilder& g, Activation act) {
  const bool pot = !g.int16();
  return [=](Builder& fbb) { return fb::CreateSubOptions(fbb, fused(act), pot).Union(); };
}

int32_t add(Layer& l) {
  const TwoInputs x = two_inputs_or_constant(l, {-1.0, 1.0});
  const Activation act = l.activation_param();
  return arithmetic(l, x, act, x.a.lo + x.b.lo, x.a.hi + x.b.hi, fb::BuiltinOperator::ADD, fb::BuiltinOptions::AddOptions,
                    add_options(l.graph, act));
}

int32_t sub(Layer& l) {
  const TwoInputs x = two_inputs_or_constant(l, {-1.0, 1.0});
  const Activation act = l.activation_param();
  return arithmetic(l, x, act, x.a.lo - x.b.hi, x.a.hi - x.b.lo, fb::BuiltinOperator::SUB, fb::BuiltinOptions::SubOptions,
                    sub_options(l.graph, act));
}

int32_t mul(Layer& l) {
  const TwoInputs x = two_inputs_or_constant(l, {0.5, 2.0});
  const Activation act = l.activation_param();
  const float c[] = {x.a.lo * x.b.lo, x.a.lo * x.b.hi, x.a.hi * x.b.lo, x.a.hi * x.b.hi};
  return arithmetic(l, x, act, *std::min_element(c, c + 4), *std::max_element(c, c + 4), fb::BuiltinOperator::MUL,
                    fb::BuiltinOptions::MulOptions, [=](Builder& fbb) { return fb::CreateMulOptions(fbb, fused(act)).Union(); });
}

int32_t squared_difference(Layer& l) {
  const TwoInputs x = two_inputs(l);
  const float spread = GraphBuilder::absmax(x.a) + GraphBuilder::absmax(x.b);
  return arithmetic(l, x, Activation::kNone, 0.0f, spread * spread, fb::BuiltinOperator::SQUARED_DIFFERENCE,
                    fb::BuiltinOptions::SquaredDifferenceOptions,
                    [](Builder& fbb) { return fb::CreateSquaredDifferenceOptions(fbb).Union(); });
}

// Without calibration data the writer cannot tell how near zero a divisor comes (its estimated
// range includes zero, as every int8 range must); a quotient's range assumes divisors no smaller
// than this fraction of their largest magnitude, as one kept in [1, e] (the exp of a logistic,
// which the zoo draws) is. Quotients beyond it saturate in int8 and int16.
constexpr float kDivisorFloor = 0.25f;

int32_t div(Layer& l) {
  const TwoInputs x = two_inputs_or_constant(l, {0.5, 2.0});
  const Activation act = l.activation_param();
  const float spread = GraphBuilder::absmax(x.a) / (kDivisorFloor * std::max(GraphBuilder::absmax(x.b), 1e-6f));
  return arithmetic(l, x, act, x.a.lo < 0.0f || x.b.lo < 0.0f ? -spread : 0.0f, spread, fb::BuiltinOperator::DIV,
                    fb::BuiltinOptions::DivOptions,
                    [=](Builder& fbb) { return fb::CreateDivOptions(fbb, fused(act)).Union(); });
}

int32_t batch_matmul(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  l.want_inputs(2, 2);
  const TensorDef a = g.tensor(l.inputs[0]);
  const TensorDef b = g.tensor(l.inputs[1]);
  if (a.shape.size() < 2 || b.shape.size() < 2) p.fail("inputs must have rank >= 2");
  const bool adj_x = p.flag("adj_x", false), adj_y = p.flag("adj_y", false);
  const size_t ra = a.shape.size(), rb = b.shape.size();
  const int32_t m = adj_x ? a.shape[ra - 1] : a.shape[ra - 2];
  const int32_t k = adj_x ? a.shape[ra - 2] : a.shape[ra - 1];
  const int32_t kb = adj_y ? b.shape[rb - 1] : b.shape[rb - 2];
  const int32_t n = adj_y ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k != kb) p.fail("inner dimensions differ: " + shape_str(a.shape) + " x " + shape_str(b.shape));
  Shape shape = broadcast(p, Shape(a.shape.begin(), a.shape.end() - 2), Shape(b.shape.begin(), b.shape.end() - 2));
  shape.push_back(m);
  shape.push_back(n);
  const float spread = GraphBuilder::absmax(a) * GraphBuilder::absmax(b) * std::sqrt(static_cast<float>(k));
  const int32_t out = g.activation(l.name, shape, -spread, spread);
  g.add_op(fb::BuiltinOperator::BATCH_MATMUL, l.inputs, {out}, fb::BuiltinOptions::BatchMatMulOptions,
           [=](Builder& fbb) { return fb::CreateBatchMatMulOptions(fbb, adj_x, adj_y).Union(); });
  return out;
}

// --- data movement: the output keeps the input's quantisation ------------------------------------

// Runtimes (and Vela) want the quantised inputs of concatenation, pack, maximum and minimum at the
// output's scale; the converter requantises the inputs that are not (a QUANTIZE from int8 to int8,
// or int16 to int16).
void requantize_inputs(Layer& l, int32_t out) {
  GraphBuilder& g = l.graph;
  std::vector<int32_t>& in = l.inputs;
  for (size_t k = 0; g.quantized() && k < in.size(); ++k) {
    const TensorDef& x = g.tensor(in[k]);
    if (x.scale == g.tensor(out).scale && x.zero_point == g.tensor(out).zero_point) continue;
    const int32_t requantized = g.same_as(l.name + "/requantize_" + std::to_string(k), x.shape, out);
    g.add_op(fb::BuiltinOperator::QUANTIZE, {in[k]}, {requantized});
    in[k] = requantized;
  }
}

// One value per dimension of `x`, or a failure naming the parameter.
Shape per_dimension(Params& p, const std::string& key, const TensorDef& x) {
  const Shape values = p.ints(key);
  if (values.size() != x.shape.size())
    p.fail("'" + key + "' needs one value per dimension of " + shape_str(x.shape) + ", got " + shape_str(values));
  return values;
}

// x[begin:end:strides] as Python slices it: negative indices count from the end, indices are
// clamped to the dimension, and a set bit d of begin_mask / end_mask takes dimension d from its start /
// to its end. Strides are positive.
int32_t strided_slice(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  const TensorDef x = only_input(l);
  const Shape begin = per_dimension(p, "begin", x);
  const Shape end = per_dimension(p, "end", x);
  const Shape strides = p.has("strides") ? per_dimension(p, "strides", x) : Shape(x.shape.size(), 1);
  const int32_t begin_mask = p.integer("begin_mask", 0);
  const int32_t end_mask = p.integer("end_mask", 0);
  Shape shape;
  for (size_t d = 0; d < x.shape.size(); ++d) {
    const int32_t n = x.shape[d];
    if (strides[d] <= 0) p.fail("'strides' must be positive, got " + shape_str(strides));
    auto index = [n](int32_t i) { return std::clamp(i < 0 ? i + n : i, 0, n); };
    const int32_t b = (begin_mask >> d) & 1 ? 0 : index(begin[d]);
    const int32_t e = (end_mask >> d) & 1 ? n : index(end[d]);
    shape.push_back(std::max(0, (e - b + strides[d] - 1) / strides[d]));
  }
  const int32_t begin_t = g.const_int32(l.name + "/begin", begin);
  const int32_t end_t = g.const_int32(l.name + "/end", end);
  const int32_t strides_t = g.const_int32(l.name + "/strides", strides);
  const int32_t out = g.same_as(l.name, shape, l.inputs[0]);
  g.add_op(fb::BuiltinOperator::STRIDED_SLICE, {l.inputs[0], begin_t, end_t, strides_t}, {out},
           fb::BuiltinOptions::StridedSliceOptions,
           [=](Builder& fbb) { return fb::CreateStridedSliceOptions(fbb, begin_mask, end_mask).Union(); });
  return out;
}

// `size` elements from `begin` in each dimension; a size of -1 takes the rest of the dimension.
int32_t slice(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  const TensorDef x = only_input(l);
  const Shape begin = per_dimension(p, "begin", x);
  const Shape size = per_dimension(p, "size", x);
  Shape shape;
  for (size_t d = 0; d < x.shape.size(); ++d) {
    const int32_t n = x.shape[d];
    const int32_t s = size[d] == -1 ? n - begin[d] : size[d];
    if (begin[d] < 0 || begin[d] >= n || s <= 0 || begin[d] + s > n)
      p.fail("begin " + shape_str(begin) + " and size " + shape_str(size) + " do not lie inside " + shape_str(x.shape));
    shape.push_back(s);
  }
  const int32_t begin_t = g.const_int32(l.name + "/begin", begin);
  const int32_t size_t_ = g.const_int32(l.name + "/size", size);
  const int32_t out = g.same_as(l.name, shape, l.inputs[0]);
  g.add_op(fb::BuiltinOperator::SLICE, {l.inputs[0], begin_t, size_t_}, {out}, fb::BuiltinOptions::SliceOptions,
           [](Builder& fbb) { return fb::CreateSliceOptions(fbb).Union(); });
  return out;
}

// Drops the size-1 dimensions `axes` (negative ones count from the end), or all of them when absent.
int32_t squeeze(Layer& l) {
  Params& p = l.params;
  const TensorDef x = only_input(l);
  const auto rank = static_cast<int32_t>(x.shape.size());
  std::vector<bool> dropped(x.shape.size(), false);
  Shape axes;
  if (p.has("axes")) {
    axes = p.ints("axes");
    for (int32_t& a : axes) {
      if (a < -rank || a >= rank) p.fail("axis " + std::to_string(a) + " is outside rank " + std::to_string(rank));
      if (a < 0) a += rank;
      if (x.shape[static_cast<size_t>(a)] != 1)
        p.fail("dimension " + std::to_string(a) + " of " + shape_str(x.shape) + " is not 1");
      dropped[static_cast<size_t>(a)] = true;
    }
  } else {
    for (size_t d = 0; d < x.shape.size(); ++d) dropped[d] = x.shape[d] == 1;
  }
  Shape shape;
  for (size_t d = 0; d < x.shape.size(); ++d)
    if (!dropped[d]) shape.push_back(x.shape[d]);
  if (shape.empty()) p.fail("would squeeze " + shape_str(x.shape) + " to a scalar");
  const int32_t out = l.graph.same_as(l.name, shape, l.inputs[0]);
  l.graph.add_op(fb::BuiltinOperator::SQUEEZE, l.inputs, {out}, fb::BuiltinOptions::SqueezeOptions,
                 [axes](Builder& fbb) {
                   return fb::CreateSqueezeOptions(fbb, fbb.CreateVector(axes.data(), axes.size())).Union();
                 });
  return out;
}

// Inserts a size-1 dimension at `axis` (in [-rank - 1, rank], negative ones counting from the end).
int32_t expand_dims(Layer& l) {
  Params& p = l.params;
  const TensorDef x = only_input(l);
  const auto rank = static_cast<int32_t>(x.shape.size());
  int32_t axis = p.integer("axis");
  if (axis < -rank - 1 || axis > rank) p.fail("axis " + std::to_string(axis) + " is outside rank " + std::to_string(rank + 1));
  if (axis < 0) axis += rank + 1;
  Shape shape = x.shape;
  shape.insert(shape.begin() + axis, 1);
  const int32_t axis_t = l.graph.const_int32(l.name + "/axis", {axis});
  const int32_t out = l.graph.same_as(l.name, shape, l.inputs[0]);
  l.graph.add_op(fb::BuiltinOperator::EXPAND_DIMS, {l.inputs[0], axis_t}, {out}, fb::BuiltinOptions::ExpandDimsOptions,
                 [](Builder& fbb) { return fb::CreateExpandDimsOptions(fbb).Union(); });
  return out;
}

int32_t concat(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  std::vector<int32_t>& in = l.inputs;
  l.want_inputs(2, 1000);
  const TensorDef first = g.tensor(in[0]);
  const auto rank = static_cast<int32_t>(first.shape.size());
  int32_t axis = p.integer("axis", -1);
  if (axis < -rank || axis >= rank) p.fail("axis " + std::to_string(axis) + " is outside rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  Shape shape = first.shape;
  shape[static_cast<size_t>(axis)] = 0;
  float lo = 0.0f, hi = 0.0f;
  for (int32_t t : in) {
    const TensorDef x = g.tensor(t);
    for (int32_t d = 0; d < rank; ++d)
      if (x.shape.size() != first.shape.size() ||
          (d != axis && x.shape[static_cast<size_t>(d)] != first.shape[static_cast<size_t>(d)]))
        p.fail("inputs " + shape_str(first.shape) + " and " + shape_str(x.shape) + " differ outside axis " +
               std::to_string(axis));
    shape[static_cast<size_t>(axis)] += x.shape[static_cast<size_t>(axis)];
    lo = std::min(lo, x.lo);
    hi = std::max(hi, x.hi);
  }
  const int32_t out = g.activation(l.name, shape, lo, hi);
  requantize_inputs(l, out);
  g.add_op(fb::BuiltinOperator::CONCATENATION, in, {out}, fb::BuiltinOptions::ConcatenationOptions,
           [=](Builder& fbb) { return fb::CreateConcatenationOptions(fbb, axis).Union(); });
  return out;
}

// Inputs and output share one int8 scale over the union of the inputs' ranges: MAXIMUM and MINIMUM
// compare raw values, and Vela requires the same parameters on all three.
int32_t min_max(Layer& l, fb::BuiltinOperator code) {
  const TwoInputs x = two_inputs(l);
  const int32_t out = l.graph.activation(l.name, x.shape, std::min(x.a.lo, x.b.lo), std::max(x.a.hi, x.b.hi));
  requantize_inputs(l, out);
  l.graph.add_op(code, l.inputs, {out}, fb::BuiltinOptions::MaximumMinimumOptions,
                 [](Builder& fbb) { return fb::CreateMaximumMinimumOptions(fbb).Union(); });
  return out;
}

int32_t maximum(Layer& l) { return min_max(l, fb::BuiltinOperator::MAXIMUM); }
int32_t minimum(Layer& l) { return min_max(l, fb::BuiltinOperator::MINIMUM); }

// `count` outputs with the input's quantisation, cut from it along `axis` with the given sizes.
void split_outputs(Layer& l, const TensorDef& x, int32_t axis, const Shape& sizes) {
  for (size_t k = 0; k < sizes.size(); ++k) {
    Shape shape = x.shape;
    shape[static_cast<size_t>(axis)] = sizes[k];
    l.outputs.push_back(l.graph.same_as(l.name + ":" + std::to_string(k), shape, l.inputs[0]));
  }
}

// An axis parameter in [-rank, rank), made non-negative.
int32_t axis_param(Params& p, const std::string& key, int32_t rank, int32_t fallback) {
  int32_t axis = p.integer(key, fallback);
  if (axis < -rank || axis >= rank) p.fail(key + " " + std::to_string(axis) + " is outside rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

int32_t split(Layer& l) {
  Params& p = l.params;
  const TensorDef x = only_input(l);
  const int32_t count = p.positive("num_splits");
  const int32_t axis = axis_param(p, "axis", static_cast<int32_t>(x.shape.size()), -1);
  const int32_t n = x.shape[static_cast<size_t>(axis)];
  if (n % count != 0) p.fail("dimension " + std::to_string(n) + " does not split into " + std::to_string(count) + " equal parts");
  const int32_t axis_t = l.graph.const_int32(l.name + "/axis", {axis});
  split_outputs(l, x, axis, Shape(static_cast<size_t>(count), n / count));
  l.graph.add_op(fb::BuiltinOperator::SPLIT, {axis_t, l.inputs[0]}, l.outputs, fb::BuiltinOptions::SplitOptions,
                 [=](Builder& fbb) { return fb::CreateSplitOptions(fbb, count).Union(); });
  return l.outputs[0];
}

int32_t split_v(Layer& l) {
  Params& p = l.params;
  const TensorDef x = only_input(l);
  const Shape sizes = p.ints("sizes");
  const int32_t axis = axis_param(p, "axis", static_cast<int32_t>(x.shape.size()), -1);
  int64_t total = 0;
  for (int32_t s : sizes) {
    if (s <= 0) p.fail("'sizes' must be positive, got " + shape_str(sizes));
    total += s;
  }
  if (sizes.empty() || total != x.shape[static_cast<size_t>(axis)])
    p.fail("sizes " + shape_str(sizes) + " do not add up to dimension " + std::to_string(axis) + " of " + shape_str(x.shape));
  const int32_t sizes_t = l.graph.const_int32(l.name + "/size_splits", sizes);
  const int32_t axis_t = l.graph.const_int32(l.name + "/axis", {axis});
  split_outputs(l, x, axis, sizes);
  const auto count = static_cast<int32_t>(sizes.size());
  l.graph.add_op(fb::BuiltinOperator::SPLIT_V, {l.inputs[0], sizes_t, axis_t}, l.outputs, fb::BuiltinOptions::SplitVOptions,
                 [=](Builder& fbb) { return fb::CreateSplitVOptions(fbb, count).Union(); });
  return l.outputs[0];
}

// Stacks equal-shaped inputs along a new dimension `axis` (in [-rank - 1, rank]).
int32_t pack(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  l.want_inputs(1, 1000);
  const TensorDef first = g.tensor(l.inputs[0]);
  const auto rank = static_cast<int32_t>(first.shape.size());
  int32_t axis = p.integer("axis", 0);
  if (axis < -rank - 1 || axis > rank) p.fail("axis " + std::to_string(axis) + " is outside rank " + std::to_string(rank + 1));
  if (axis < 0) axis += rank + 1;
  float lo = 0.0f, hi = 0.0f;
  for (int32_t t : l.inputs) {
    const TensorDef& x = g.tensor(t);
    if (x.shape != first.shape) p.fail("inputs " + shape_str(first.shape) + " and " + shape_str(x.shape) + " differ");
    lo = std::min(lo, x.lo);
    hi = std::max(hi, x.hi);
  }
  Shape shape = first.shape;
  const auto count = static_cast<int32_t>(l.inputs.size());
  shape.insert(shape.begin() + axis, count);
  const int32_t out = g.activation(l.name, shape, lo, hi);
  requantize_inputs(l, out);
  g.add_op(fb::BuiltinOperator::PACK, l.inputs, {out}, fb::BuiltinOptions::PackOptions,
           [=](Builder& fbb) { return fb::CreatePackOptions(fbb, count, axis).Union(); });
  return out;
}

// One output per index of dimension `axis`, without that dimension.
int32_t unpack(Layer& l) {
  Params& p = l.params;
  const TensorDef x = only_input(l);
  const int32_t axis = axis_param(p, "axis", static_cast<int32_t>(x.shape.size()), 0);
  if (x.shape.size() < 2) p.fail("needs an input of rank 2 or more, got " + shape_str(x.shape));
  const int32_t count = x.shape[static_cast<size_t>(axis)];
  Shape shape = x.shape;
  shape.erase(shape.begin() + axis);
  for (int32_t k = 0; k < count; ++k)
    l.outputs.push_back(l.graph.same_as(l.name + ":" + std::to_string(k), shape, l.inputs[0]));
  l.graph.add_op(fb::BuiltinOperator::UNPACK, l.inputs, l.outputs, fb::BuiltinOptions::UnpackOptions,
                 [=](Builder& fbb) { return fb::CreateUnpackOptions(fbb, count, axis).Union(); });
  return l.outputs[0];
}

int32_t pool(Layer& l, fb::BuiltinOperator code) {
  Params& p = l.params;
  const TensorDef x = only_input(l);
  require_rank(p, x, 4);
  const auto [ph, pw] = p.pair("pool");
  const auto [sh, sw] = p.has("stride") ? p.pair("stride") : std::make_pair(ph, pw);
  const bool same = p.choice("padding", {"valid", "same"}) == "same";
  const int32_t oh = window_out(p, x.shape[1], ph, sh, 1, same, "height");
  const int32_t ow = window_out(p, x.shape[2], pw, sw, 1, same, "width");
  const int32_t out = l.graph.same_as(l.name, {x.shape[0], oh, ow, x.shape[3]}, l.inputs[0]);
  const auto padding = same ? fb::Padding::SAME : fb::Padding::VALID;
  l.graph.add_op(code, l.inputs, {out}, fb::BuiltinOptions::Pool2DOptions,
                 [=](Builder& fbb) { return fb::CreatePool2DOptions(fbb, padding, sw, sh, pw, ph).Union(); });
  return out;
}

int32_t avg_pool2d(Layer& l) { return pool(l, fb::BuiltinOperator::AVERAGE_POOL_2D); }
int32_t max_pool2d(Layer& l) { return pool(l, fb::BuiltinOperator::MAX_POOL_2D); }

// MEAN, SUM or REDUCE_MAX over `axes` (negative ones count from the end). A sum's int8 output
// spans the input's range times the number of elements summed; the others keep the input's.
int32_t reduce(Layer& l, const TensorDef& x, Shape axes, bool keep, fb::BuiltinOperator code) {
  const auto rank = static_cast<int32_t>(x.shape.size());
  std::vector<bool> reduced(static_cast<size_t>(rank), false);
  for (int32_t& a : axes) {
    if (a < -rank || a >= rank) l.params.fail("axis " + std::to_string(a) + " is outside rank " + std::to_string(rank));
    if (a < 0) a += rank;
    reduced[static_cast<size_t>(a)] = true;
  }
  Shape shape;
  for (int32_t d = 0; d < rank; ++d) {
    if (!reduced[static_cast<size_t>(d)]) shape.push_back(x.shape[static_cast<size_t>(d)]);
    else if (keep) shape.push_back(1);
  }
  if (shape.empty()) shape = {1};
  const int32_t axes_t = l.graph.const_int32(l.name + "/axes", axes);
  const auto summed = static_cast<float>(elements(x.shape) / elements(shape));
  const int32_t out = code == fb::BuiltinOperator::SUM ? l.graph.activation(l.name, shape, x.lo * summed, x.hi * summed)
                                                       : l.graph.same_as(l.name, shape, l.inputs[0]);
  l.graph.add_op(code, {l.inputs[0], axes_t}, {out}, fb::BuiltinOptions::ReducerOptions,
                 [=](Builder& fbb) { return fb::CreateReducerOptions(fbb, keep).Union(); });
  return out;
}

int32_t global_avg_pool(Layer& l) {
  const TensorDef x = only_input(l);
  require_rank(l.params, x, 4);
  return reduce(l, x, {1, 2}, true, fb::BuiltinOperator::MEAN);
}

int32_t reduction(Layer& l, fb::BuiltinOperator code) {
  const TensorDef x = only_input(l);
  const Shape axes = l.params.ints("axes");
  return reduce(l, x, axes, l.params.flag("keep_dims", true), code);
}

int32_t mean(Layer& l) { return reduction(l, fb::BuiltinOperator::MEAN); }
int32_t sum(Layer& l) { return reduction(l, fb::BuiltinOperator::SUM); }
int32_t reduce_max(Layer& l) { return reduction(l, fb::BuiltinOperator::REDUCE_MAX); }

// PAD's paddings as a constant [rank, 2], and the padded shape; each side at most `limit(d)`.
std::pair<int32_t, Shape> paddings(Layer& l, const TensorDef& x, const std::function<int32_t(int32_t)>& limit) {
  Params& p = l.params;
  const auto pads = p.int_pairs("paddings");
  if (pads.size() != x.shape.size()) p.fail("needs one [before, after] pair per dimension of " + shape_str(x.shape));
  Shape shape = x.shape;
  std::vector<int32_t> flat;
  for (size_t d = 0; d < pads.size(); ++d) {
    if (std::max(pads[d][0], pads[d][1]) > limit(x.shape[d]))
      p.fail("padding " + shape_str(pads[d]) + " is too wide for dimension " + std::to_string(d) + " of " + shape_str(x.shape));
    shape[d] += pads[d][0] + pads[d][1];
    flat.insert(flat.end(), pads[d].begin(), pads[d].end());
  }
  return {l.graph.const_int32(l.name + "/paddings", flat, {static_cast<int32_t>(pads.size()), 2}), shape};
}

int32_t pad(Layer& l) {
  const TensorDef x = only_input(l);
  const auto [pads_t, shape] = paddings(l, x, [](int32_t) { return std::numeric_limits<int32_t>::max(); });
  const int32_t out = l.graph.same_as(l.name, shape, l.inputs[0]);
  l.graph.add_op(fb::BuiltinOperator::PAD, {l.inputs[0], pads_t}, {out}, fb::BuiltinOptions::PadOptions,
                 [](Builder& fbb) { return fb::CreatePadOptions(fbb).Union(); });
  return out;
}

// Pads by mirroring the edge, with it (symmetric, at most the dimension's size on each side) or
// without it (reflect, less than that).
int32_t mirror_pad(Layer& l) {
  const TensorDef x = only_input(l);
  const bool reflect = l.params.choice("mode", {"reflect", "symmetric"}) == "reflect";
  const auto [pads_t, shape] = paddings(l, x, [reflect](int32_t n) { return reflect ? n - 1 : n; });
  const int32_t out = l.graph.same_as(l.name, shape, l.inputs[0]);
  const auto mode = reflect ? fb::MirrorPadMode::REFLECT : fb::MirrorPadMode::SYMMETRIC;
  l.graph.add_op(fb::BuiltinOperator::MIRROR_PAD, {l.inputs[0], pads_t}, {out}, fb::BuiltinOptions::MirrorPadOptions,
                 [=](Builder& fbb) { return fb::CreateMirrorPadOptions(fbb, mode).Union(); });
  return out;
}

int32_t reshape(Layer& l) {
  Params& p = l.params;
  const TensorDef x = only_input(l);
  Shape shape = p.ints("shape");
  int64_t known = 1;
  int wildcard = -1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == -1) {
      if (wildcard >= 0) p.fail("more than one -1 in shape " + shape_str(shape));
      wildcard = static_cast<int>(d);
    } else if (shape[d] <= 0) {
      p.fail("non-positive size in shape " + shape_str(shape));
    } else {
      known *= shape[d];
    }
  }
  const int64_t total = elements(x.shape);
  if (wildcard >= 0) {
    if (total % known != 0) p.fail("cannot reshape " + shape_str(x.shape) + " to " + shape_str(shape));
    shape[static_cast<size_t>(wildcard)] = static_cast<int32_t>(total / known);
  } else if (known != total) {
    p.fail("cannot reshape " + shape_str(x.shape) + " (" + std::to_string(total) + " elements) to " + shape_str(shape));
  }
  const int32_t shape_t = l.graph.const_int32(l.name + "/shape", shape);
  const int32_t out = l.graph.same_as(l.name, shape, l.inputs[0]);
  l.graph.add_op(fb::BuiltinOperator::RESHAPE, {l.inputs[0], shape_t}, {out}, fb::BuiltinOptions::ReshapeOptions,
                 [shape](Builder& fbb) {
                   return fb::CreateReshapeOptions(fbb, fbb.CreateVector(shape.data(), shape.size())).Union();
                 });
  return out;
}

int32_t resize(Layer& l, bool bilinear) {
  const TensorDef x = only_input(l);
  require_rank(l.params, x, 4);
  const auto [h, w] = l.params.pair("size");
  const int32_t size_t_ = l.graph.const_int32(l.name + "/size", {h, w});
  const int32_t out = l.graph.same_as(l.name, {x.shape[0], h, w, x.shape[3]}, l.inputs[0]);
  if (bilinear)
    l.graph.add_op(fb::BuiltinOperator::RESIZE_BILINEAR, {l.inputs[0], size_t_}, {out},
                   fb::BuiltinOptions::ResizeBilinearOptions,
                   [](Builder& fbb) { return fb::CreateResizeBilinearOptions(fbb, false, true).Union(); });
  else
    l.graph.add_op(fb::BuiltinOperator::RESIZE_NEAREST_NEIGHBOR, {l.inputs[0], size_t_}, {out},
                   fb::BuiltinOptions::ResizeNearestNeighborOptions,
                   [](Builder& fbb) { return fb::CreateResizeNearestNeighborOptions(fbb, false, true).Union(); });
  return out;
}

int32_t resize_bilinear(Layer& l) { return resize(l, true); }
int32_t resize_nearest(Layer& l) { return resize(l, false); }

int32_t depth_to_space(Layer& l) {
  Params& p = l.params;
  const TensorDef x = only_input(l);
  require_rank(p, x, 4);
  const int32_t block = p.positive("block_size");
  if (x.shape[3] % (block * block) != 0)
    p.fail("channels " + std::to_string(x.shape[3]) + " are not divisible by block_size^2 = " + std::to_string(block * block));
  const int32_t out =
      l.graph.same_as(l.name, {x.shape[0], x.shape[1] * block, x.shape[2] * block, x.shape[3] / (block * block)}, l.inputs[0]);
  l.graph.add_op(fb::BuiltinOperator::DEPTH_TO_SPACE, l.inputs, {out}, fb::BuiltinOptions::DepthToSpaceOptions,
                 [=](Builder& fbb) { return fb::CreateDepthToSpaceOptions(fbb, block).Union(); });
  return out;
}

int32_t transpose(Layer& l) {
  Params& p = l.params;
  const TensorDef x = only_input(l);
  const Shape perm = p.ints("perm");
  Shape sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (size_t d = 0; d < sorted.size(); ++d)
    if (sorted[d] != static_cast<int32_t>(d) || perm.size() != x.shape.size())
      p.fail("perm " + shape_str(perm) + " is not a permutation of the input's " + std::to_string(x.shape.size()) +
             " dimensions");
  Shape shape;
  for (int32_t d : perm) shape.push_back(x.shape[static_cast<size_t>(d)]);
  const int32_t perm_t = l.graph.const_int32(l.name + "/perm", perm);
  const int32_t out = l.graph.same_as(l.name, shape, l.inputs[0]);
  l.graph.add_op(fb::BuiltinOperator::TRANSPOSE, {l.inputs[0], perm_t}, {out}, fb::BuiltinOptions::TransposeOptions,
                 [](Builder& fbb) { return fb::CreateTransposeOptions(fbb).Union(); });
  return out;
}

// The entries `indices` (constants, as an embedding lookup's) of dimension `axis` [0].
int32_t gather(Layer& l) {
  Params& p = l.params;
  const TensorDef x = only_input(l);
  const int32_t axis = axis_param(p, "axis", static_cast<int32_t>(x.shape.size()), 0);
  const Shape indices = p.ints("indices");
  const int32_t n = x.shape[static_cast<size_t>(axis)];
  if (indices.empty() || *std::min_element(indices.begin(), indices.end()) < 0 ||
      *std::max_element(indices.begin(), indices.end()) >= n)
    p.fail("indices " + shape_str(indices) + " must be a non-empty list in [0, " + std::to_string(n) + ")");
  Shape shape = x.shape;
  shape[static_cast<size_t>(axis)] = static_cast<int32_t>(indices.size());
  const int32_t indices_t = l.graph.const_int32(l.name + "/indices", indices);
  const int32_t out = l.graph.same_as(l.name, shape, l.inputs[0]);
  l.graph.add_op(fb::BuiltinOperator::GATHER, {l.inputs[0], indices_t}, {out}, fb::BuiltinOptions::GatherOptions,
                 [=](Builder& fbb) { return fb::CreateGatherOptions(fbb, axis).Union(); });
  return out;
}

// The index of the largest value along `axis` [-1], as int32, without that dimension.
int32_t arg_max(Layer& l) {
  const TensorDef x = only_input(l);
  const int32_t axis = axis_param(l.params, "axis", static_cast<int32_t>(x.shape.size()), -1);
  Shape shape = x.shape;
  shape.erase(shape.begin() + axis);
  if (shape.empty()) shape = {1};
  const int32_t axis_t = l.graph.const_int32(l.name + "/axis", {axis});
  const int32_t out = l.graph.unquantized(l.name, shape, fb::TensorType::INT32, 0.0f,
                                          static_cast<float>(x.shape[static_cast<size_t>(axis)] - 1));
  l.graph.add_op(fb::BuiltinOperator::ARG_MAX, {l.inputs[0], axis_t}, {out}, fb::BuiltinOptions::ArgMaxOptions,
                 [](Builder& fbb) { return fb::CreateArgMaxOptions(fbb, fb::TensorType::INT32).Union(); });
  return out;
}

// --- type conversion -------------------------------------------------------------------------------

// The integer range of a quantised input's stored values, or the input's own range otherwise:
// what CAST, which ignores quantisation, passes on.
std::pair<float, float> stored_range(const TensorDef& x) {
  if (x.scale.empty()) return {x.lo, x.hi};
  if (x.type == fb::TensorType::INT16) return {-32768.0f, 32767.0f};
  return {-128.0f, 127.0f};
}

// CAST to `to`: each value converted as a C++ static_cast does, quantisation ignored (an int8
// input's stored integers become the output's values), as converters emit it around gathers and
// arg_max. The output is unquantised: a float32 one is an activation of a float32 model; in a
// quantised model QUANTIZE (or another CAST) takes it.
int32_t cast(Layer& l) {
  const TensorDef x = only_input(l);
  const fb::TensorType in_type = x.type;
  const std::vector<fb::TensorType> types = {fb::TensorType::FLOAT32, fb::TensorType::INT32, fb::TensorType::INT8,
                                             fb::TensorType::INT16};
  std::vector<std::string> names;
  for (const fb::TensorType t : types) names.push_back(type_name(t));
  const std::string to = l.params.choice("to", names);
  const fb::TensorType out_type = types[static_cast<size_t>(std::find(names.begin(), names.end(), to) - names.begin())];
  if (in_type == fb::TensorType::FLOAT32 && out_type == fb::TensorType::FLOAT32)
    l.params.fail("casts float32 to float32, which the converter never writes");
  auto [lo, hi] = stored_range(x);
  if (out_type != fb::TensorType::FLOAT32) {  // truncated toward zero, wrapped into narrow types
    lo = std::trunc(lo);
    hi = std::trunc(hi);
    if (out_type == fb::TensorType::INT8 && (lo < -128.0f || hi > 127.0f)) lo = -128.0f, hi = 127.0f;
    if (out_type == fb::TensorType::INT16 && (lo < -32768.0f || hi > 32767.0f)) lo = -32768.0f, hi = 32767.0f;
  }
  const int32_t out = out_type == fb::TensorType::FLOAT32 && !l.graph.quantized()
                          ? l.graph.activation(l.name, x.shape, lo, hi)
                          : l.graph.unquantized(l.name, x.shape, out_type, lo, hi);
  l.graph.add_op(fb::BuiltinOperator::CAST, l.inputs, {out}, fb::BuiltinOptions::CastOptions,
                 [=](Builder& fbb) { return fb::CreateCastOptions(fbb, in_type, out_type).Union(); });
  return out;
}

// QUANTIZE to `to` [the model's activation type]: int8 or int16 values requantised to a range
// `range_scale` [1] times the input's (another scale; int8 <-> int16 as the 16x8 parts of mixed
// models have it), or float32 values (a CAST's, a float section's) quantised. A float32 model has
// no quantisation to change and its converter writes no QUANTIZE: the layer is folded away, its
// output is its input.
int32_t quantize(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  const TensorDef x = only_input(l);
  const std::string own = g.int16() ? "int16" : "int8";
  const std::string to = p.choice("to", {own, own == "int8" ? "int16" : "int8"});
  const double range_scale = p.number("range_scale", 1.0);
  if (!(range_scale > 0.0 && range_scale < 1e6)) p.fail("'range_scale' must be positive");
  const bool from_float = x.type == fb::TensorType::FLOAT32;
  if (!from_float && x.scale.empty())
    p.fail("takes int8 or int16 activations or float32 values, got " + value_kind(x) + " values");
  if (!g.quantized()) return l.inputs[0];
  const auto r = static_cast<float>(range_scale);
  const int32_t out = g.activation_of(to == "int8" ? fb::TensorType::INT8 : fb::TensorType::INT16, l.name, x.shape,
                                      x.lo * r, x.hi * r);
  g.add_op(fb::BuiltinOperator::QUANTIZE, l.inputs, {out});  // no options, as requantize_inputs writes it
  return out;
}

// DEQUANTIZE: the model's int8 or int16 activations to float32 values, the start of a float section
// (the layers that take only float32 values are built as in a float32 model, until a QUANTIZE). A
// float32 model has nothing to dequantize: the layer folds away, as quantize does.
int32_t dequantize(Layer& l) {
  GraphBuilder& g = l.graph;
  const TensorDef x = only_input(l);
  if (!g.model_quantized()) return l.inputs[0];
  if (x.scale.empty()) l.params.fail("takes the model's int8 or int16 activations, got " + value_kind(x) + " values");
  const int32_t out = g.unquantized(l.name, x.shape, fb::TensorType::FLOAT32, x.lo, x.hi);
  g.add_op(fb::BuiltinOperator::DEQUANTIZE, l.inputs, {out});
  return out;
}

// --- activations ---------------------------------------------------------------------------------

int32_t softmax(Layer& l) {
  const TensorDef x = only_input(l);
  const auto beta = static_cast<float>(l.params.number("beta", 1.0));
  const int32_t out = l.graph.fixed(l.name, x.shape, 0.0f, 1.0f, 1.0f / 256.0f, -128);
  l.graph.add_op(fb::BuiltinOperator::SOFTMAX, l.inputs, {out}, fb::BuiltinOptions::SoftmaxOptions,
                 [=](Builder& fbb) { return fb::CreateSoftmaxOptions(fbb, beta).Union(); });
  return out;
}

int32_t logistic(Layer& l) {
  const int32_t out = l.graph.fixed(l.name, only_input(l).shape, 0.0f, 1.0f, 1.0f / 256.0f, -128);
  l.graph.add_op(fb::BuiltinOperator::LOGISTIC, l.inputs, {out});
  return out;
}

int32_t tanh(Layer& l) {
  const int32_t out = l.graph.fixed(l.name, only_input(l).shape, -1.0f, 1.0f, 1.0f / 128.0f, 0);
  l.graph.add_op(fb::BuiltinOperator::TANH, l.inputs, {out});
  return out;
}

int32_t relu(Layer& l) {
  const TensorDef x = only_input(l);
  const int32_t out = l.graph.activation(l.name, x.shape, 0.0f, x.hi);
  l.graph.add_op(fb::BuiltinOperator::RELU, l.inputs, {out});
  return out;
}

int32_t relu6(Layer& l) {
  const TensorDef x = only_input(l);
  const int32_t out = l.graph.activation(l.name, x.shape, 0.0f, std::min(x.hi, 6.0f));
  l.graph.add_op(fb::BuiltinOperator::RELU6, l.inputs, {out});
  return out;
}

int32_t hard_swish(Layer& l) {
  const TensorDef x = only_input(l);
  const int32_t out = l.graph.activation(l.name, x.shape, -0.375f, std::max(x.hi, 0.5f));
  l.graph.add_op(fb::BuiltinOperator::HARD_SWISH, l.inputs, {out}, fb::BuiltinOptions::HardSwishOptions,
                 [](Builder& fbb) { return fb::CreateHardSwishOptions(fbb).Union(); });
  return out;
}

int32_t rsqrt(Layer& l) {
  const TensorDef x = only_input(l);
  const int32_t out = l.graph.activation(l.name, x.shape, 0.0f, 1.0f / std::sqrt(std::max(x.lo, 1e-3f)));
  l.graph.add_op(fb::BuiltinOperator::RSQRT, l.inputs, {out});
  return out;
}

int32_t leaky_relu(Layer& l) {
  const TensorDef x = only_input(l);
  const auto alpha = static_cast<float>(l.params.number("alpha", 0.2));
  const int32_t out = l.graph.activation(l.name, x.shape, std::min(0.0f, alpha * x.lo), std::max(x.hi, alpha * x.lo));
  l.graph.add_op(fb::BuiltinOperator::LEAKY_RELU, l.inputs, {out}, fb::BuiltinOptions::LeakyReluOptions,
                 [=](Builder& fbb) { return fb::CreateLeakyReluOptions(fbb, alpha).Union(); });
  return out;
}

// The upper end is capped so that a wide input range still gives a finite int8 scale.
int32_t exponential(Layer& l) {
  const TensorDef x = only_input(l);
  const int32_t out = l.graph.activation(l.name, x.shape, std::exp(x.lo), std::exp(std::min(x.hi, 16.0f)));
  l.graph.add_op(fb::BuiltinOperator::EXP, l.inputs, {out}, fb::BuiltinOptions::ExpOptions,
                 [](Builder& fbb) { return fb::CreateExpOptions(fbb).Union(); });
  return out;
}

int32_t absolute(Layer& l) {
  const TensorDef x = only_input(l);
  const int32_t out = l.graph.activation(l.name, x.shape, 0.0f, GraphBuilder::absmax(x));
  l.graph.add_op(fb::BuiltinOperator::ABS, l.inputs, {out}, fb::BuiltinOptions::AbsOptions,
                 [](Builder& fbb) { return fb::CreateAbsOptions(fbb).Union(); });
  return out;
}

// Keras PReLU with its slopes shared over all but the last axis: one learnt slope per channel,
// a constant operand in [0, 0.3] (int8: per tensor, as the converter writes it).
int32_t prelu(Layer& l) {
  GraphBuilder& g = l.graph;
  const TensorDef x = only_input(l);
  std::vector<float> slopes(static_cast<size_t>(x.shape.back()));
  for (float& v : slopes) v = 0.15f + g.rng().uniform(0.15f);
  const int32_t alpha = g.const_values(l.name + "/alpha", slopes);
  const float steepest = *std::max_element(slopes.begin(), slopes.end());
  const int32_t out = g.activation(l.name, x.shape, std::min(0.0f, steepest * x.lo), x.hi);
  g.add_op(fb::BuiltinOperator::PRELU, {l.inputs[0], alpha}, {out});
  return out;
}

// --- composite layers ------------------------------------------------------------------------------

// Keras LayerNormalization over the last axis, as the converter lowers it.
int32_t layer_norm(Layer& l) {
  Params& p = l.params;
  GraphBuilder& g = l.graph;
  const std::string& name = l.name;
  const TensorDef xt = only_input(l);
  const int32_t x = l.inputs[0];
  const auto epsilon = static_cast<float>(p.number("epsilon", 1e-3));
  if (p.integer("axis", -1) != -1) p.fail("only axis -1 is supported");
  const Shape shape = xt.shape;
  const int32_t channels = shape.back();
  Shape reduced = shape;
  reduced.back() = 1;
  const auto last = static_cast<int32_t>(shape.size()) - 1;
  const float m = GraphBuilder::absmax(xt);
  auto mean_of = [&](const std::string& n, int32_t input) {
    const int32_t axes = g.const_int32(n + "/axes", {last});
    const int32_t t = g.same_as(n, reduced, input);
    g.add_op(fb::BuiltinOperator::MEAN, {input, axes}, {t}, fb::BuiltinOptions::ReducerOptions,
             [](Builder& fbb) { return fb::CreateReducerOptions(fbb, true).Union(); });
    return t;
  };
  const int32_t mu = mean_of(name + "/mean", x);
  const int32_t sq = g.activation(name + "/squared_difference", shape, 0.0f, 4.0f * m * m);
  g.add_op(fb::BuiltinOperator::SQUARED_DIFFERENCE, {x, mu}, {sq}, fb::BuiltinOptions::SquaredDifferenceOptions,
           [](Builder& fbb) { return fb::CreateSquaredDifferenceOptions(fbb).Union(); });
  const int32_t var = mean_of(name + "/variance", sq);
  const int32_t eps = g.const_values(name + "/epsilon", {epsilon});
  const int32_t var_eps = g.activation(name + "/add_epsilon", reduced, epsilon, 4.0f * m * m + epsilon);
  g.add_op(fb::BuiltinOperator::ADD, {var, eps}, {var_eps}, fb::BuiltinOptions::AddOptions,
           add_options(g, Activation::kNone));
  const int32_t inv = g.activation(name + "/rsqrt", reduced, 0.0f, 1.0f / std::sqrt(epsilon));
  g.add_op(fb::BuiltinOperator::RSQRT, {var_eps}, {inv});
  const int32_t centered = g.activation(name + "/centered", shape, -2.0f * m, 2.0f * m);
  g.add_op(fb::BuiltinOperator::SUB, {x, mu}, {centered}, fb::BuiltinOptions::SubOptions,
           sub_options(g, Activation::kNone));
  const int32_t normed = g.activation(name + "/normalized", shape, -4.0f, 4.0f);
  g.add_op(fb::BuiltinOperator::MUL, {centered, inv}, {normed}, fb::BuiltinOptions::MulOptions,
           [](Builder& fbb) { return fb::CreateMulOptions(fbb).Union(); });
  std::vector<float> gamma(static_cast<size_t>(channels)), beta(static_cast<size_t>(channels));
  for (float& v : gamma) v = 1.0f + g.rng().uniform(0.1f);
  for (float& v : beta) v = g.rng().uniform(0.1f);
  const int32_t gamma_t = g.const_values(name + "/gamma", gamma);
  const int32_t scaled = g.activation(name + "/scaled", shape, -4.4f, 4.4f);
  g.add_op(fb::BuiltinOperator::MUL, {normed, gamma_t}, {scaled}, fb::BuiltinOptions::MulOptions,
           [](Builder& fbb) { return fb::CreateMulOptions(fbb).Union(); });
  const int32_t beta_t = g.const_values(name + "/beta", beta);
  const int32_t out = g.activation(name, shape, -4.5f, 4.5f);
  g.add_op(fb::BuiltinOperator::ADD, {scaled, beta_t}, {out}, fb::BuiltinOptions::AddOptions,
           add_options(g, Activation::kNone));
  return out;
}

struct LayerBuilderEntry {
  const char* op;
  LayerBuilderFn build;
};

// Every spec op: adding one is a builder above and a line here (and its parameters in spec.h).
constexpr LayerBuilderEntry kLayerBuilders[] = {
    {"conv2d", conv2d},
    {"depthwise_conv2d", depthwise_conv2d},
    {"transpose_conv2d", transpose_conv2d},
    {"dense", dense},
    {"lstm", lstm},
    {"svdf", svdf},
    {"add", add},
    {"sub", sub},
    {"mul", mul},
    {"div", div},
    {"squared_difference", squared_difference},
    {"batch_matmul", batch_matmul},
    {"concat", concat},
    {"split", split},
    {"split_v", split_v},
    {"pack", pack},
    {"unpack", unpack},
    {"avg_pool2d", avg_pool2d},
    {"max_pool2d", max_pool2d},
    {"global_avg_pool", global_avg_pool},
    {"mean", mean},
    {"sum", sum},
    {"reduce_max", reduce_max},
    {"gather", gather},
    {"arg_max", arg_max},
    {"cast", cast},
    {"quantize", quantize},
    {"dequantize", dequantize},
    {"pad", pad},
    {"mirror_pad", mirror_pad},
    {"reshape", reshape},
    {"resize_bilinear", resize_bilinear},
    {"resize_nearest", resize_nearest},
    {"depth_to_space", depth_to_space},
    {"transpose", transpose},
    {"strided_slice", strided_slice},
    {"slice", slice},
    {"squeeze", squeeze},
    {"expand_dims", expand_dims},
    {"softmax", softmax},
    {"logistic", logistic},
    {"tanh", tanh},
    {"relu", relu},
    {"relu6", relu6},
    {"hard_swish", hard_swish},
    {"rsqrt", rsqrt},
    {"maximum", maximum},
    {"minimum", minimum},
    {"leaky_relu", leaky_relu},
    {"exp", exponential},
    {"abs", absolute},
    {"prelu", prelu},
    {"layer_norm", layer_norm},
};

}  // namespace

LayerBuilderFn find_layer_builder(const std::string& op) {
  // Every layer of every spec looks its op up: a hash map, built once (thread-safe static), rather
  // than string compares down the table.
  static const std::unordered_map<std::string_view, LayerBuilderFn> by_op = [] {
    std::unordered_map<std::string_view, LayerBuilderFn> map;
    for (const LayerBuilderEntry& e : kLayerBuilders) map.emplace(e.op, e.build);
    return map;
  }();
  const auto it = by_op.find(op);
  return it == by_op.end() ? nullptr : it->second;
}

std::vector<std::string> layer_builder_ops() {
  std::vector<std::string> ops;
  for (const LayerBuilderEntry& e : kLayerBuilders) ops.emplace_back(e.op);
  return ops;
}

}  // namespace perfsage::writer
