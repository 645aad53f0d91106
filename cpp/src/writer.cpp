#include "perfsage/writer.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "perfsage/error.h"
#include "perfsage/ops.h"
#include "perfsage/tflite_generated.h"
#include "rng.h"

namespace perfsage {
namespace {

namespace fb = ::perfsage::tflite;
using Shape = std::vector<int32_t>;
using Builder = flatbuffers::FlatBufferBuilder;
using OptionsFn = std::function<flatbuffers::Offset<void>(Builder&)>;

struct TensorDef {
  std::string name;
  Shape shape;
  fb::TensorType type = fb::TensorType::FLOAT32;
  std::vector<uint8_t> data;  // constants only
  std::vector<float> scale;
  std::vector<int64_t> zero_point;
  int32_t quantized_dimension = 0;
  float lo = 0.0f, hi = 0.0f;  // estimated float range of the values
};

struct OpDef {
  fb::BuiltinOperator code;
  std::vector<int32_t> inputs, outputs;
  fb::BuiltinOptions options_type = fb::BuiltinOptions::NONE;
  OptionsFn options;
};

int64_t elements(const Shape& shape) {
  int64_t n = 1;
  for (int32_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& values) {
  std::vector<uint8_t> out(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// The parameters of one layer, read with checks; unknown keys are an error at the end.
class Params {
 public:
  Params(const SpecLayer& layer, std::string label) : layer_(layer), label_(std::move(label)) {}

  [[noreturn]] void fail(const std::string& what) const { perfsage::fail("spec", label_ + ": " + what); }
  const std::string& label() const { return label_; }

  bool has(const std::string& key) const { return layer_.params.count(key) > 0; }

  int32_t integer(const std::string& key, std::optional<int32_t> fallback = std::nullopt) {
    const JsonValue* v = get(key);
    if (!v) return required(key, fallback);
    if (v->kind != JsonValue::Kind::kNumber || v->number != std::floor(v->number) ||
        std::abs(v->number) > 1e9)
      fail("'" + key + "' must be an integer");
    return static_cast<int32_t>(v->number);
  }
  int32_t positive(const std::string& key, std::optional<int32_t> fallback = std::nullopt) {
    const int32_t value = integer(key, fallback);
    if (value <= 0) fail("'" + key + "' must be positive, got " + std::to_string(value));
    return value;
  }
  // An int or an [h, w] pair of positive ints.
  std::pair<int32_t, int32_t> pair(const std::string& key, std::optional<int32_t> fallback = std::nullopt) {
    const JsonValue* v = get(key);
    if (!v) {
      const int32_t value = required(key, fallback);
      return {value, value};
    }
    if (v->kind == JsonValue::Kind::kNumber) {
      const int32_t value = positive(key);
      return {value, value};
    }
    const Shape values = ints(key);
    if (values.size() != 2 || values[0] <= 0 || values[1] <= 0)
      fail("'" + key + "' must be a positive int or a pair [h, w] of positive ints");
    return {values[0], values[1]};
  }
  Shape ints(const std::string& key) {
    const JsonValue* v = get(key);
    if (!v) fail("missing parameter '" + key + "'");
    if (v->kind != JsonValue::Kind::kArray) fail("'" + key + "' must be a list of ints");
    Shape out;
    for (const auto& item : v->items) {
      if (item.kind != JsonValue::Kind::kNumber || item.number != std::floor(item.number))
        fail("'" + key + "' must be a list of ints");
      out.push_back(static_cast<int32_t>(item.number));
    }
    return out;
  }
  std::vector<Shape> int_pairs(const std::string& key) {
    const JsonValue* v = get(key);
    if (!v || v->kind != JsonValue::Kind::kArray) fail("'" + key + "' must be a list of [before, after] pairs");
    std::vector<Shape> out;
    for (const auto& item : v->items) {
      Shape pair;
      if (item.kind == JsonValue::Kind::kArray)
        for (const auto& x : item.items)
          if (x.kind == JsonValue::Kind::kNumber && x.number == std::floor(x.number) && x.number >= 0)
            pair.push_back(static_cast<int32_t>(x.number));
      if (pair.size() != 2 || item.items.size() != 2)
        fail("'" + key + "' must be a list of [before, after] pairs of non-negative ints");
      out.push_back(pair);
    }
    return out;
  }
  double number(const std::string& key, double fallback) {
    const JsonValue* v = get(key);
    if (!v) return fallback;
    if (v->kind != JsonValue::Kind::kNumber) fail("'" + key + "' must be a number");
    return v->number;
  }
  bool flag(const std::string& key, bool fallback) {
    const JsonValue* v = get(key);
    if (!v) return fallback;
    if (v->kind != JsonValue::Kind::kBool) fail("'" + key + "' must be true or false");
    return v->boolean;
  }
  std::string choice(const std::string& key, const std::vector<std::string>& allowed) {
    const JsonValue* v = get(key);
    if (!v) return allowed.front();
    if (v->kind == JsonValue::Kind::kString)
      for (const auto& a : allowed)
        if (v->text == a) return a;
    std::string options;
    for (const auto& a : allowed) options += (options.empty() ? "" : ", ") + a;
    fail("'" + key + "' must be one of " + options);
  }
  void finish() const {
    for (const auto& [key, value] : layer_.params)
      if (!used_.count(key)) fail("unknown parameter '" + key + "' for " + layer_.op);
  }

 private:
  const JsonValue* get(const std::string& key) {
    used_.insert(key);
    auto it = layer_.params.find(key);
    return it == layer_.params.end() ? nullptr : &it->second;
  }
  int32_t required(const std::string& key, std::optional<int32_t> fallback) const {
    if (!fallback) fail("missing parameter '" + key + "'");
    return *fallback;
  }

  const SpecLayer& layer_;
  std::string label_;
  std::set<std::string> used_;
};

// The estimated range of a conv, depthwise, transposed conv or dense output: +-4 sigma of a unit
// variance activation. Trained networks normalise after each of these (batch norm, folded into
// the bias); deriving the range from the input's instead would compound through residual stacks
// into scales no runtime or compiler accepts.
constexpr float kNormalizedSpread = 4.0f;

enum class Activation { kNone, kRelu, kRelu6 };

fb::ActivationFunctionType fused(Activation a) {
  switch (a) {
    case Activation::kRelu: return fb::ActivationFunctionType::RELU;
    case Activation::kRelu6: return fb::ActivationFunctionType::RELU6;
    case Activation::kNone: break;
  }
  return fb::ActivationFunctionType::NONE;
}

class Writer {
 public:
  Writer(const ModelSpec& spec, uint64_t seed, WeightType type)
      : spec_(spec), int8_(type == WeightType::kInt8), rng_(seed ^ 0x7065726673616765ull) {}

  std::vector<uint8_t> run() {
    plan_fusion();
    for (const SpecInput& in : spec_.inputs) {
      if (values_.count(in.name)) perfsage::fail("spec", "input name '" + in.name + "' is used twice");
      if (in.shape.empty()) perfsage::fail("spec", "input '" + in.name + "' has an empty shape");
      for (int32_t d : in.shape)
        if (d <= 0) perfsage::fail("spec", "input '" + in.name + "' has a non-positive size in " + shape_str(in.shape));
      const int32_t t = activation(in.name, in.shape, -1.0f, 1.0f);
      values_[in.name] = t;
      graph_inputs_.push_back(t);
    }
    for (size_t i = 0; i < spec_.layers.size(); ++i) add_layer(i);
    std::vector<std::string> outputs = spec_.outputs;
    if (outputs.empty()) outputs.push_back(spec_.layers.back().name);
    for (const auto& name : outputs) {
      auto it = values_.find(name);
      if (it == values_.end()) perfsage::fail("spec", "output '" + name + "' is not a layer");
      graph_outputs_.push_back(it->second);
    }
    return serialize();
  }

 private:
  // --- fusion -----------------------------------------------------------------------------------
  // A relu/relu6 layer whose single input is the only use of a conv/dense/add/sub/mul output is
  // folded into that layer's fused activation, as the converter does.
  void plan_fusion() {
    std::unordered_map<std::string, int> uses;
    std::unordered_map<std::string, size_t> index;
    for (size_t i = 0; i < spec_.layers.size(); ++i) {
      index[spec_.layers[i].name] = i;
      for (const auto& in : layer_inputs(i)) ++uses[in];
    }
    for (const auto& out : spec_.outputs) ++uses[out];
    if (spec_.outputs.empty()) ++uses[spec_.layers.back().name];
    static const std::set<std::string> fusable = {"conv2d", "depthwise_conv2d", "dense", "add", "sub", "mul"};
    for (size_t i = 0; i < spec_.layers.size(); ++i) {
      const SpecLayer& l = spec_.layers[i];
      if ((l.op != "relu" && l.op != "relu6") || !l.params.empty()) continue;
      const auto ins = layer_inputs(i);
      if (ins.size() != 1) continue;
      auto p = index.find(ins[0]);
      if (p == index.end() || p->second >= i || uses[ins[0]] != 1) continue;
      const SpecLayer& producer = spec_.layers[p->second];
      if (!fusable.count(producer.op) || fused_activation_.count(producer.name)) continue;
      auto act = producer.params.find("activation");
      if (act != producer.params.end() && !(act->second.kind == JsonValue::Kind::kString && act->second.text == "none"))
        continue;
      fused_activation_[producer.name] = l.op == "relu" ? Activation::kRelu : Activation::kRelu6;
      alias_[l.name] = producer.name;
    }
  }

  std::vector<std::string> layer_inputs(size_t i) const {
    const SpecLayer& l = spec_.layers[i];
    if (!l.inputs.empty()) return l.inputs;
    if (i == 0) return {spec_.inputs.front().name};
    return {spec_.layers[i - 1].name};
  }

  // --- tensors ----------------------------------------------------------------------------------
  int32_t add_tensor(TensorDef t) {
    tensors_.push_back(std::move(t));
    return static_cast<int32_t>(tensors_.size() - 1);
  }

  // An activation tensor with the range [lo, hi]; int8 gets asymmetric parameters for it.
  int32_t activation(const std::string& name, const Shape& shape, float lo, float hi) {
    TensorDef t;
    t.name = name;
    t.shape = shape;
    lo = std::min(lo, 0.0f);
    hi = std::max(hi, 0.0f);
    if (hi - lo < 1e-6f) hi = lo + 1e-6f;
    t.lo = lo;
    t.hi = hi;
    if (int8_) {
      t.type = fb::TensorType::INT8;
      const float scale = (hi - lo) / 255.0f;
      const auto zp = static_cast<int64_t>(std::lround(-128.0 - lo / scale));
      t.scale = {scale};
      t.zero_point = {std::clamp<int64_t>(zp, -128, 127)};
    }
    return add_tensor(std::move(t));
  }

  // A tensor carrying `like`'s values rearranged: same type, range and quantisation.
  int32_t same_as(const std::string& name, const Shape& shape, int32_t like) {
    TensorDef t = tensors_[static_cast<size_t>(like)];
    t.name = name;
    t.shape = shape;
    t.data.clear();
    return add_tensor(std::move(t));
  }

  // Runtime-fixed quantisation (softmax, logistic, tanh outputs).
  int32_t fixed(const std::string& name, const Shape& shape, float lo, float hi, float scale, int64_t zp) {
    const int32_t t = activation(name, shape, lo, hi);
    if (int8_) {
      tensors_[static_cast<size_t>(t)].scale = {scale};
      tensors_[static_cast<size_t>(t)].zero_point = {zp};
    }
    return t;
  }

  int32_t const_int32(const std::string& name, const std::vector<int32_t>& values, Shape shape = {}) {
    TensorDef t;
    t.name = name;
    t.shape = shape.empty() ? Shape{static_cast<int32_t>(values.size())} : shape;
    t.type = fb::TensorType::INT32;
    t.data = as_bytes(values);
    return add_tensor(std::move(t));
  }

  // Glorot-uniform weights; int8 quantises them symmetrically per slice along `channel_axis`.
  int32_t weights(const std::string& name, const Shape& shape, int64_t fan_in, int64_t fan_out,
                  int32_t channel_axis) {
    const float limit = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
    std::vector<float> w(static_cast<size_t>(elements(shape)));
    for (float& x : w) x = rng_.uniform(limit);
    TensorDef t;
    t.name = name;
    t.shape = shape;
    t.lo = -limit;
    t.hi = limit;
    if (!int8_) {
      t.data = as_bytes(w);
      return add_tensor(std::move(t));
    }
    // Element i = (outer, channel, inner) in row-major order around the channel axis.
    const auto channels = static_cast<size_t>(shape[static_cast<size_t>(channel_axis)]);
    size_t inner = 1;
    for (size_t d = static_cast<size_t>(channel_axis) + 1; d < shape.size(); ++d) inner *= static_cast<size_t>(shape[d]);
    const size_t outer = w.size() / (channels * inner);
    std::vector<float> absmax(channels, 0.0f);
    for (size_t o = 0, i = 0; o < outer; ++o)
      for (size_t c = 0; c < channels; ++c)
        for (size_t k = 0; k < inner; ++k, ++i) absmax[c] = std::max(absmax[c], std::abs(w[i]));
    t.type = fb::TensorType::INT8;
    t.quantized_dimension = channel_axis;
    std::vector<float> inverse(channels);
    for (size_t c = 0; c < channels; ++c) {
      t.scale.push_back(std::max(absmax[c], 1e-8f) / 127.0f);
      t.zero_point.push_back(0);
      inverse[c] = 1.0f / t.scale[c];
    }
    t.data.resize(w.size());
    for (size_t o = 0, i = 0; o < outer; ++o)
      for (size_t c = 0; c < channels; ++c)
        for (size_t k = 0; k < inner; ++k, ++i) {
          const float q = std::nearbyint(w[i] * inverse[c]);
          t.data[i] = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f)));
        }
    return add_tensor(std::move(t));
  }

  // Bias of `n` values (a folded batch norm's shift: small, not zero, unless `zero`); int32 at
  // in_scale * w_scale. Layers without a bias still get a zero one, as from the converter,
  // because runtimes expect the tensor.
  int32_t bias(const std::string& name, int32_t n, int32_t input, int32_t weight, bool zero = false) {
    std::vector<float> b(static_cast<size_t>(n), 0.0f);
    if (!zero)
      for (float& x : b) x = rng_.uniform(0.1f);
    TensorDef t;
    t.name = name;
    t.shape = {n};
    if (!int8_) {
      t.data = as_bytes(b);
      return add_tensor(std::move(t));
    }
    const TensorDef& in = tensors_[static_cast<size_t>(input)];
    const TensorDef& w = tensors_[static_cast<size_t>(weight)];
    std::vector<int32_t> q(static_cast<size_t>(n));
    t.type = fb::TensorType::INT32;
    for (size_t c = 0; c < q.size(); ++c) {
      const float scale = in.scale[0] * w.scale[c % w.scale.size()];
      t.scale.push_back(scale);
      t.zero_point.push_back(0);
      q[c] = static_cast<int32_t>(std::lround(b[c] / scale));
    }
    t.data = as_bytes(q);
    return add_tensor(std::move(t));
  }

  // A constant operand of elementwise arithmetic (layer norm's gamma, beta, epsilon).
  int32_t const_values(const std::string& name, const std::vector<float>& values) {
    TensorDef t;
    t.name = name;
    t.shape = {static_cast<int32_t>(values.size())};
    t.lo = std::min(0.0f, *std::min_element(values.begin(), values.end()));
    t.hi = std::max(1e-6f, *std::max_element(values.begin(), values.end()));
    if (!int8_) {
      t.data = as_bytes(values);
      return add_tensor(std::move(t));
    }
    const float scale = (t.hi - t.lo) / 255.0f;
    const int64_t zp = std::clamp<int64_t>(std::lround(-128.0 - t.lo / scale), -128, 127);
    t.type = fb::TensorType::INT8;
    t.scale = {scale};
    t.zero_point = {zp};
    for (float v : values)
      t.data.push_back(static_cast<uint8_t>(static_cast<int8_t>(
          std::clamp<long>(std::lround(v / scale) + zp, -128, 127))));
    return add_tensor(std::move(t));
  }

  void add_op(fb::BuiltinOperator code, std::vector<int32_t> inputs, std::vector<int32_t> outputs,
              fb::BuiltinOptions type = fb::BuiltinOptions::NONE, OptionsFn options = nullptr) {
    ops_.push_back(OpDef{code, std::move(inputs), std::move(outputs), type, std::move(options)});
  }

  const TensorDef& tensor(int32_t t) const { return tensors_[static_cast<size_t>(t)]; }
  static float absmax(const TensorDef& t) { return std::max(std::abs(t.lo), std::abs(t.hi)); }

  // --- layers -----------------------------------------------------------------------------------
  int32_t input_value(const Params& p, const std::string& name) const {
    auto it = values_.find(alias_.count(name) ? alias_.at(name) : name);
    if (it == values_.end())
      p.fail("input '" + name + "' is neither a spec input nor an earlier layer");
    return it->second;
  }

  static Shape broadcast(const Params& p, const Shape& a, const Shape& b) {
    Shape out(std::max(a.size(), b.size()), 1);
    for (size_t i = 0; i < out.size(); ++i) {
      const int32_t da = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
      const int32_t db = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
      if (da != db && da != 1 && db != 1)
        p.fail("shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
      out[i] = std::max(da, db);
    }
    return out;
  }

  static void require_rank(const Params& p, const TensorDef& t, size_t rank) {
    if (t.shape.size() != rank)
      p.fail("needs a rank-" + std::to_string(rank) + " input, got " + shape_str(t.shape));
  }

  // Output size and a check that the (dilated) kernel fits the (padded) input.
  static int32_t window_out(const Params& p, int32_t in, int32_t kernel, int32_t stride, int32_t dilation,
                            bool same, const char* axis) {
    const int32_t effective = (kernel - 1) * dilation + 1;
    if (same) return (in + stride - 1) / stride;
    if (effective > in)
      p.fail(std::string("kernel ") + std::to_string(effective) + " is larger than the " + axis +
             " size " + std::to_string(in) + " of its input (padding valid)");
    return (in - effective) / stride + 1;
  }

  void add_layer(size_t i) {
    const SpecLayer& layer = spec_.layers[i];
    Params p(layer, "layer " + std::to_string(i) + " '" + layer.name + "' (" + layer.op + ")");
    if (!names_.insert(layer.name).second || values_.count(layer.name))
      p.fail("name '" + layer.name + "' is already used");
    if (alias_.count(layer.name)) {  // fused into its producer
      p.finish();
      return;
    }
    std::vector<int32_t> in;
    for (const auto& name : layer_inputs(i)) in.push_back(input_value(p, name));
    auto want_inputs = [&](size_t lo, size_t hi) {
      if (in.size() < lo || in.size() > hi)
        p.fail("takes " + (lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi)) +
               " inputs, got " + std::to_string(in.size()));
    };
    const std::string& op = layer.op;
    const std::string& name = layer.name;
    int32_t out = -1;

    auto activation_param = [&]() {
      const std::string a = p.choice("activation", {"none", "relu", "relu6"});
      Activation act = a == "relu" ? Activation::kRelu : a == "relu6" ? Activation::kRelu6 : Activation::kNone;
      if (fused_activation_.count(name)) act = fused_activation_.at(name);
      return act;
    };
    auto clamp_range = [](Activation act, float& lo, float& hi) {
      if (act != Activation::kNone) lo = 0.0f;
      if (act == Activation::kRelu6) hi = std::min(hi, 6.0f);
    };

    if (op == "conv2d" || op == "depthwise_conv2d") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      require_rank(p, x, 4);
      const bool depthwise = op == "depthwise_conv2d";
      const auto [kh, kw] = p.pair("kernel");
      const auto [sh, sw] = p.pair("stride", 1);
      const auto [dh, dw] = p.pair("dilation", 1);
      const bool same = p.choice("padding", {"same", "valid"}) == "same";
      const Activation act = activation_param();
      const bool with_bias = p.flag("bias", true);
      const int32_t cin = x.shape[3];
      const int32_t multiplier = depthwise ? p.positive("depth_multiplier", 1) : 1;
      const int32_t cout = depthwise ? cin * multiplier : p.positive("filters");
      const int32_t oh = window_out(p, x.shape[1], kh, sh, dh, same, "height");
      const int32_t ow = window_out(p, x.shape[2], kw, sw, dw, same, "width");
      const int64_t fan_in = int64_t{kh} * kw * (depthwise ? 1 : cin);
      const int32_t w = depthwise ? weights(name + "/depthwise_kernel", {1, kh, kw, cout}, fan_in, int64_t{kh} * kw * multiplier, 3)
                                  : weights(name + "/kernel", {cout, kh, kw, cin}, fan_in, int64_t{kh} * kw * cout, 0);
      const int32_t b = bias(name + "/bias", cout, in[0], w, !with_bias);
      float lo = -kNormalizedSpread, hi = kNormalizedSpread;
      clamp_range(act, lo, hi);
      out = activation(name, {x.shape[0], oh, ow, cout}, lo, hi);
      const auto padding = same ? fb::Padding::SAME : fb::Padding::VALID;
      if (depthwise) {
        add_op(fb::BuiltinOperator::DEPTHWISE_CONV_2D, {in[0], w, b}, {out}, fb::BuiltinOptions::DepthwiseConv2DOptions,
               [=](Builder& fbb) {
                 return fb::CreateDepthwiseConv2DOptions(fbb, padding, sw, sh, multiplier, fused(act), dw, dh).Union();
               });
      } else {
        add_op(fb::BuiltinOperator::CONV_2D, {in[0], w, b}, {out}, fb::BuiltinOptions::Conv2DOptions,
               [=](Builder& fbb) { return fb::CreateConv2DOptions(fbb, padding, sw, sh, fused(act), dw, dh).Union(); });
      }
    } else if (op == "transpose_conv2d") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
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
      const int32_t shape_t = const_int32(name + "/output_shape", out_shape);
      const int32_t w = weights(name + "/kernel", {cout, kh, kw, cin}, int64_t{kh} * kw * cin, int64_t{kh} * kw * cout, 0);
      const int32_t b = bias(name + "/bias", cout, in[0], w, !with_bias);
      out = activation(name, out_shape, -kNormalizedSpread, kNormalizedSpread);
      const auto padding = same ? fb::Padding::SAME : fb::Padding::VALID;
      add_op(fb::BuiltinOperator::TRANSPOSE_CONV, {shape_t, w, in[0], b}, {out}, fb::BuiltinOptions::TransposeConvOptions,
             [=](Builder& fbb) { return fb::CreateTransposeConvOptions(fbb, padding, sw, sh).Union(); });
    } else if (op == "dense") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      const int32_t units = p.positive("units");
      const Activation act = activation_param();
      const bool with_bias = p.flag("bias", true);
      const int32_t cin = x.shape.back();
      const int32_t w = weights(name + "/kernel", {units, cin}, cin, units, 0);
      const int32_t b = bias(name + "/bias", units, in[0], w, !with_bias);
      const bool keep_dims = x.shape.size() > 2;
      Shape out_shape = x.shape;
      if (keep_dims) {
        out_shape.back() = units;
      } else {
        out_shape = {static_cast<int32_t>(elements(x.shape) / cin), units};
      }
      float lo = -kNormalizedSpread, hi = kNormalizedSpread;
      clamp_range(act, lo, hi);
      out = activation(name, out_shape, lo, hi);
      add_op(fb::BuiltinOperator::FULLY_CONNECTED, {in[0], w, b}, {out}, fb::BuiltinOptions::FullyConnectedOptions,
             [=](Builder& fbb) {
               return fb::CreateFullyConnectedOptions(fbb, fused(act), fb::FullyConnectedOptionsWeightsFormat::DEFAULT, keep_dims).Union();
             });
    } else if (op == "add" || op == "sub" || op == "mul" || op == "squared_difference") {
      want_inputs(2, 2);
      const TensorDef a = tensor(in[0]);
      const TensorDef b = tensor(in[1]);
      const Shape shape = broadcast(p, a.shape, b.shape);
      const Activation act = op == "squared_difference" ? Activation::kNone : activation_param();
      float lo, hi;
      if (op == "add") { lo = a.lo + b.lo; hi = a.hi + b.hi; }
      else if (op == "sub") { lo = a.lo - b.hi; hi = a.hi - b.lo; }
      else if (op == "mul") {
        const float c[] = {a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi};
        lo = *std::min_element(c, c + 4); hi = *std::max_element(c, c + 4);
      } else { lo = 0.0f; hi = (absmax(a) + absmax(b)) * (absmax(a) + absmax(b)); }
      clamp_range(act, lo, hi);
      out = activation(name, shape, lo, hi);
      if (op == "add")
        add_op(fb::BuiltinOperator::ADD, in, {out}, fb::BuiltinOptions::AddOptions,
               [=](Builder& fbb) { return fb::CreateAddOptions(fbb, fused(act)).Union(); });
      else if (op == "sub")
        add_op(fb::BuiltinOperator::SUB, in, {out}, fb::BuiltinOptions::SubOptions,
               [=](Builder& fbb) { return fb::CreateSubOptions(fbb, fused(act)).Union(); });
      else if (op == "mul")
        add_op(fb::BuiltinOperator::MUL, in, {out}, fb::BuiltinOptions::MulOptions,
               [=](Builder& fbb) { return fb::CreateMulOptions(fbb, fused(act)).Union(); });
      else
        add_op(fb::BuiltinOperator::SQUARED_DIFFERENCE, in, {out}, fb::BuiltinOptions::SquaredDifferenceOptions,
               [](Builder& fbb) { return fb::CreateSquaredDifferenceOptions(fbb).Union(); });
    } else if (op == "concat") {
      want_inputs(2, 1000);
      const TensorDef first = tensor(in[0]);
      const auto rank = static_cast<int32_t>(first.shape.size());
      int32_t axis = p.integer("axis", -1);
      if (axis < -rank || axis >= rank) p.fail("axis " + std::to_string(axis) + " is outside rank " + std::to_string(rank));
      if (axis < 0) axis += rank;
      Shape shape = first.shape;
      shape[static_cast<size_t>(axis)] = 0;
      float lo = 0.0f, hi = 0.0f;
      for (int32_t t : in) {
        const TensorDef x = tensor(t);
        for (int32_t d = 0; d < rank; ++d)
          if (x.shape.size() != first.shape.size() || (d != axis && x.shape[static_cast<size_t>(d)] != first.shape[static_cast<size_t>(d)]))
            p.fail("inputs " + shape_str(first.shape) + " and " + shape_str(x.shape) + " differ outside axis " + std::to_string(axis));
        shape[static_cast<size_t>(axis)] += x.shape[static_cast<size_t>(axis)];
        lo = std::min(lo, x.lo);
        hi = std::max(hi, x.hi);
      }
      out = activation(name, shape, lo, hi);
      // Runtimes want int8 concatenation inputs at the output's scale; the converter requantises
      // the inputs that are not (a QUANTIZE from int8 to int8).
      for (size_t k = 0; int8_ && k < in.size(); ++k) {
        const TensorDef& x = tensor(in[k]);
        if (x.scale == tensor(out).scale && x.zero_point == tensor(out).zero_point) continue;
        const int32_t requantized = same_as(name + "/requantize_" + std::to_string(k), x.shape, out);
        add_op(fb::BuiltinOperator::QUANTIZE, {in[k]}, {requantized});
        in[k] = requantized;
      }
      add_op(fb::BuiltinOperator::CONCATENATION, in, {out}, fb::BuiltinOptions::ConcatenationOptions,
             [=](Builder& fbb) { return fb::CreateConcatenationOptions(fbb, axis).Union(); });
    } else if (op == "avg_pool2d" || op == "max_pool2d") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      require_rank(p, x, 4);
      const auto [ph, pw] = p.pair("pool");
      const auto [sh, sw] = p.has("stride") ? p.pair("stride") : std::make_pair(ph, pw);
      const bool same = p.choice("padding", {"valid", "same"}) == "same";
      const int32_t oh = window_out(p, x.shape[1], ph, sh, 1, same, "height");
      const int32_t ow = window_out(p, x.shape[2], pw, sw, 1, same, "width");
      out = same_as(name, {x.shape[0], oh, ow, x.shape[3]}, in[0]);
      const auto padding = same ? fb::Padding::SAME : fb::Padding::VALID;
      add_op(op == "avg_pool2d" ? fb::BuiltinOperator::AVERAGE_POOL_2D : fb::BuiltinOperator::MAX_POOL_2D, in, {out},
             fb::BuiltinOptions::Pool2DOptions,
             [=](Builder& fbb) { return fb::CreatePool2DOptions(fbb, padding, sw, sh, pw, ph).Union(); });
    } else if (op == "global_avg_pool" || op == "mean") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      const auto rank = static_cast<int32_t>(x.shape.size());
      Shape axes;
      bool keep = true;
      if (op == "global_avg_pool") {
        require_rank(p, x, 4);
        axes = {1, 2};
      } else {
        axes = p.ints("axes");
        keep = p.flag("keep_dims", true);
      }
      std::vector<bool> reduced(static_cast<size_t>(rank), false);
      for (int32_t& a : axes) {
        if (a < -rank || a >= rank) p.fail("axis " + std::to_string(a) + " is outside rank " + std::to_string(rank));
        if (a < 0) a += rank;
        reduced[static_cast<size_t>(a)] = true;
      }
      Shape shape;
      for (int32_t d = 0; d < rank; ++d) {
        if (!reduced[static_cast<size_t>(d)]) shape.push_back(x.shape[static_cast<size_t>(d)]);
        else if (keep) shape.push_back(1);
      }
      if (shape.empty()) shape = {1};
      const int32_t axes_t = const_int32(name + "/axes", axes);
      out = same_as(name, shape, in[0]);
      add_op(fb::BuiltinOperator::MEAN, {in[0], axes_t}, {out}, fb::BuiltinOptions::ReducerOptions,
             [=](Builder& fbb) { return fb::CreateReducerOptions(fbb, keep).Union(); });
    } else if (op == "pad") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      const auto pads = p.int_pairs("paddings");
      if (pads.size() != x.shape.size())
        p.fail("needs one [before, after] pair per dimension of " + shape_str(x.shape));
      Shape shape = x.shape;
      std::vector<int32_t> flat;
      for (size_t d = 0; d < pads.size(); ++d) {
        shape[d] += pads[d][0] + pads[d][1];
        flat.insert(flat.end(), pads[d].begin(), pads[d].end());
      }
      const int32_t pads_t = const_int32(name + "/paddings", flat, {static_cast<int32_t>(pads.size()), 2});
      out = same_as(name, shape, in[0]);
      add_op(fb::BuiltinOperator::PAD, {in[0], pads_t}, {out}, fb::BuiltinOptions::PadOptions,
             [](Builder& fbb) { return fb::CreatePadOptions(fbb).Union(); });
    } else if (op == "reshape") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
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
      const int32_t shape_t = const_int32(name + "/shape", shape);
      out = same_as(name, shape, in[0]);
      add_op(fb::BuiltinOperator::RESHAPE, {in[0], shape_t}, {out}, fb::BuiltinOptions::ReshapeOptions,
             [shape](Builder& fbb) { return fb::CreateReshapeOptionsDirect(fbb, &shape).Union(); });
    } else if (op == "resize_bilinear" || op == "resize_nearest") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      require_rank(p, x, 4);
      const auto [h, w] = p.pair("size");
      const int32_t size_t_ = const_int32(name + "/size", {h, w});
      out = same_as(name, {x.shape[0], h, w, x.shape[3]}, in[0]);
      if (op == "resize_bilinear")
        add_op(fb::BuiltinOperator::RESIZE_BILINEAR, {in[0], size_t_}, {out}, fb::BuiltinOptions::ResizeBilinearOptions,
               [](Builder& fbb) { return fb::CreateResizeBilinearOptions(fbb, false, true).Union(); });
      else
        add_op(fb::BuiltinOperator::RESIZE_NEAREST_NEIGHBOR, {in[0], size_t_}, {out},
               fb::BuiltinOptions::ResizeNearestNeighborOptions,
               [](Builder& fbb) { return fb::CreateResizeNearestNeighborOptions(fbb, false, true).Union(); });
    } else if (op == "depth_to_space") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      require_rank(p, x, 4);
      const int32_t block = p.positive("block_size");
      if (x.shape[3] % (block * block) != 0)
        p.fail("channels " + std::to_string(x.shape[3]) + " are not divisible by block_size^2 = " + std::to_string(block * block));
      out = same_as(name, {x.shape[0], x.shape[1] * block, x.shape[2] * block, x.shape[3] / (block * block)}, in[0]);
      add_op(fb::BuiltinOperator::DEPTH_TO_SPACE, in, {out}, fb::BuiltinOptions::DepthToSpaceOptions,
             [=](Builder& fbb) { return fb::CreateDepthToSpaceOptions(fbb, block).Union(); });
    } else if (op == "softmax") {
      want_inputs(1, 1);
      const auto beta = static_cast<float>(p.number("beta", 1.0));
      out = fixed(name, tensor(in[0]).shape, 0.0f, 1.0f, 1.0f / 256.0f, -128);
      add_op(fb::BuiltinOperator::SOFTMAX, in, {out}, fb::BuiltinOptions::SoftmaxOptions,
             [=](Builder& fbb) { return fb::CreateSoftmaxOptions(fbb, beta).Union(); });
    } else if (op == "logistic") {
      want_inputs(1, 1);
      out = fixed(name, tensor(in[0]).shape, 0.0f, 1.0f, 1.0f / 256.0f, -128);
      add_op(fb::BuiltinOperator::LOGISTIC, in, {out});
    } else if (op == "tanh") {
      want_inputs(1, 1);
      out = fixed(name, tensor(in[0]).shape, -1.0f, 1.0f, 1.0f / 128.0f, 0);
      add_op(fb::BuiltinOperator::TANH, in, {out});
    } else if (op == "relu" || op == "relu6") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      out = activation(name, x.shape, 0.0f, op == "relu6" ? std::min(x.hi, 6.0f) : x.hi);
      add_op(op == "relu" ? fb::BuiltinOperator::RELU : fb::BuiltinOperator::RELU6, in, {out});
    } else if (op == "hard_swish") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      out = activation(name, x.shape, -0.375f, std::max(x.hi, 0.5f));
      add_op(fb::BuiltinOperator::HARD_SWISH, in, {out}, fb::BuiltinOptions::HardSwishOptions,
             [](Builder& fbb) { return fb::CreateHardSwishOptions(fbb).Union(); });
    } else if (op == "rsqrt") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      out = activation(name, x.shape, 0.0f, 1.0f / std::sqrt(std::max(x.lo, 1e-3f)));
      add_op(fb::BuiltinOperator::RSQRT, in, {out});
    } else if (op == "batch_matmul") {
      want_inputs(2, 2);
      const TensorDef a = tensor(in[0]);
      const TensorDef b = tensor(in[1]);
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
      const float spread = absmax(a) * absmax(b) * std::sqrt(static_cast<float>(k));
      out = activation(name, shape, -spread, spread);
      add_op(fb::BuiltinOperator::BATCH_MATMUL, in, {out}, fb::BuiltinOptions::BatchMatMulOptions,
             [=](Builder& fbb) { return fb::CreateBatchMatMulOptions(fbb, adj_x, adj_y).Union(); });
    } else if (op == "transpose") {
      want_inputs(1, 1);
      const TensorDef x = tensor(in[0]);
      const Shape perm = p.ints("perm");
      Shape sorted = perm;
      std::sort(sorted.begin(), sorted.end());
      for (size_t d = 0; d < sorted.size(); ++d)
        if (sorted[d] != static_cast<int32_t>(d) || perm.size() != x.shape.size())
          p.fail("perm " + shape_str(perm) + " is not a permutation of the input's " + std::to_string(x.shape.size()) + " dimensions");
      Shape shape;
      for (int32_t d : perm) shape.push_back(x.shape[static_cast<size_t>(d)]);
      const int32_t perm_t = const_int32(name + "/perm", perm);
      out = same_as(name, shape, in[0]);
      add_op(fb::BuiltinOperator::TRANSPOSE, {in[0], perm_t}, {out}, fb::BuiltinOptions::TransposeOptions,
             [](Builder& fbb) { return fb::CreateTransposeOptions(fbb).Union(); });
    } else if (op == "layer_norm") {
      want_inputs(1, 1);
      out = layer_norm(p, name, in[0]);
    } else {
      p.fail("unknown op '" + op + "'");
    }
    p.finish();
    for (const int32_t d : tensor(out).shape)
      if (d <= 0) p.fail("gives a non-positive size in its output " + shape_str(tensor(out).shape));
    values_[name] = out;
  }

  // Keras LayerNormalization over the last axis, as the converter lowers it.
  int32_t layer_norm(Params& p, const std::string& name, int32_t x) {
    const auto epsilon = static_cast<float>(p.number("epsilon", 1e-3));
    if (p.integer("axis", -1) != -1) p.fail("only axis -1 is supported");
    const TensorDef xt = tensor(x);
    const Shape shape = xt.shape;
    const int32_t channels = shape.back();
    Shape reduced = shape;
    reduced.back() = 1;
    const auto last = static_cast<int32_t>(shape.size()) - 1;
    const float m = absmax(xt);
    auto mean = [&](const std::string& n, int32_t input) {
      const int32_t axes = const_int32(n + "/axes", {last});
      const int32_t t = same_as(n, reduced, input);
      add_op(fb::BuiltinOperator::MEAN, {input, axes}, {t}, fb::BuiltinOptions::ReducerOptions,
             [](Builder& fbb) { return fb::CreateReducerOptions(fbb, true).Union(); });
      return t;
    };
    const int32_t mu = mean(name + "/mean", x);
    const int32_t sq = activation(name + "/squared_difference", shape, 0.0f, 4.0f * m * m);
    add_op(fb::BuiltinOperator::SQUARED_DIFFERENCE, {x, mu}, {sq}, fb::BuiltinOptions::SquaredDifferenceOptions,
           [](Builder& fbb) { return fb::CreateSquaredDifferenceOptions(fbb).Union(); });
    const int32_t var = mean(name + "/variance", sq);
    const int32_t eps = const_values(name + "/epsilon", {epsilon});
    const int32_t var_eps = activation(name + "/add_epsilon", reduced, epsilon, 4.0f * m * m + epsilon);
    add_op(fb::BuiltinOperator::ADD, {var, eps}, {var_eps}, fb::BuiltinOptions::AddOptions,
           [](Builder& fbb) { return fb::CreateAddOptions(fbb).Union(); });
    const int32_t inv = activation(name + "/rsqrt", reduced, 0.0f, 1.0f / std::sqrt(epsilon));
    add_op(fb::BuiltinOperator::RSQRT, {var_eps}, {inv});
    const int32_t centered = activation(name + "/centered", shape, -2.0f * m, 2.0f * m);
    add_op(fb::BuiltinOperator::SUB, {x, mu}, {centered}, fb::BuiltinOptions::SubOptions,
           [](Builder& fbb) { return fb::CreateSubOptions(fbb).Union(); });
    const int32_t normed = activation(name + "/normalized", shape, -4.0f, 4.0f);
    add_op(fb::BuiltinOperator::MUL, {centered, inv}, {normed}, fb::BuiltinOptions::MulOptions,
           [](Builder& fbb) { return fb::CreateMulOptions(fbb).Union(); });
    std::vector<float> gamma(static_cast<size_t>(channels)), beta(static_cast<size_t>(channels));
    for (float& g : gamma) g = 1.0f + rng_.uniform(0.1f);
    for (float& b : beta) b = rng_.uniform(0.1f);
    const int32_t gamma_t = const_values(name + "/gamma", gamma);
    const int32_t scaled = activation(name + "/scaled", shape, -4.4f, 4.4f);
    add_op(fb::BuiltinOperator::MUL, {normed, gamma_t}, {scaled}, fb::BuiltinOptions::MulOptions,
           [](Builder& fbb) { return fb::CreateMulOptions(fbb).Union(); });
    const int32_t beta_t = const_values(name + "/beta", beta);
    const int32_t out = activation(name, shape, -4.5f, 4.5f);
    add_op(fb::BuiltinOperator::ADD, {scaled, beta_t}, {out}, fb::BuiltinOptions::AddOptions,
           [](Builder& fbb) { return fb::CreateAddOptions(fbb).Union(); });
    return out;
  }

  // --- serialisation ----------------------------------------------------------------------------
  std::vector<uint8_t> serialize() {
    size_t constant_bytes = 0;
    for (const auto& t : tensors_) constant_bytes += t.data.size();
    Builder fbb(constant_bytes + 4096 + 256 * tensors_.size());

    std::vector<flatbuffers::Offset<fb::Buffer>> buffers = {fb::CreateBuffer(fbb)};
    std::vector<uint32_t> buffer_of(tensors_.size(), 0);
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (tensors_[i].data.empty()) continue;
      buffer_of[i] = static_cast<uint32_t>(buffers.size());
      buffers.push_back(fb::CreateBufferDirect(fbb, &tensors_[i].data));
    }
    std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const TensorDef& t = tensors_[i];
      flatbuffers::Offset<fb::QuantizationParameters> quant = 0;
      if (!t.scale.empty())
        quant = fb::CreateQuantizationParametersDirect(fbb, nullptr, nullptr, &t.scale, &t.zero_point,
                                                       fb::QuantizationDetails::NONE, 0, t.quantized_dimension);
      tensors.push_back(fb::CreateTensorDirect(fbb, &t.shape, t.type, buffer_of[i], t.name.c_str(), quant));
    }
    std::vector<flatbuffers::Offset<fb::OperatorCode>> codes;
    std::map<fb::BuiltinOperator, uint32_t> code_index;
    std::vector<flatbuffers::Offset<fb::Operator>> ops;
    for (const OpDef& op : ops_) {
      auto it = code_index.find(op.code);
      if (it == code_index.end()) {
        const auto code = static_cast<int32_t>(op.code);
        it = code_index.emplace(op.code, static_cast<uint32_t>(codes.size())).first;
        codes.push_back(fb::CreateOperatorCode(fbb, static_cast<int8_t>(std::min(code, 127)), 0, 1, op.code));
      }
      const auto options = op.options ? op.options(fbb) : flatbuffers::Offset<void>();
      ops.push_back(fb::CreateOperatorDirect(fbb, it->second, &op.inputs, &op.outputs, op.options_type, options));
    }
    const auto subgraph = fb::CreateSubGraphDirect(fbb, &tensors, &graph_inputs_, &graph_outputs_, &ops, "main");
    std::vector<flatbuffers::Offset<fb::SubGraph>> subgraphs = {subgraph};
    const std::string description = "perfsage writer" + (spec_.name.empty() ? "" : ": " + spec_.name);
    const auto model = fb::CreateModelDirect(fbb, 3, &codes, &subgraphs, description.c_str(), &buffers);
    fb::FinishModelBuffer(fbb, model);
    return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
  }

  const ModelSpec& spec_;
  bool int8_;
  Rng rng_;
  std::vector<TensorDef> tensors_;
  std::vector<OpDef> ops_;
  std::unordered_map<std::string, int32_t> values_;
  std::set<std::string> names_;
  std::unordered_map<std::string, std::string> alias_;
  std::unordered_map<std::string, Activation> fused_activation_;
  std::vector<int32_t> graph_inputs_, graph_outputs_;
};

}  // namespace

std::vector<uint8_t> build_model(const ModelSpec& spec, uint64_t seed, WeightType type) {
  if (spec.inputs.empty()) fail("spec", "has no inputs");
  if (spec.layers.empty()) fail("spec", "has no layers");
  return Writer(spec, seed, type).run();
}

std::vector<uint8_t> build_model_json(const std::string& spec_json, uint64_t seed, WeightType type) {
  return build_model(parse_spec(spec_json), seed, type);
}

}  // namespace perfsage
