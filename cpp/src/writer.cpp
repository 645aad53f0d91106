// The spec walk: inputs, relu fusion, each layer through its builder (writer_layers.cpp), outputs.
#include "perfsage/writer.h"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

#include "perfsage/error.h"
#include "writer_graph.h"

namespace perfsage {
namespace {

using writer::Activation;
using writer::GraphBuilder;

// Layers that take inputs of any type: they convert values between types.
const std::set<std::string> kAnyInputOps = {"cast", "quantize"};

// Layers with a 16x8 kernel in LiteRT (int16 activations, int8 weights), as the converter writes
// them with EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8. Missing, because LiteRT
// refuses int16 inputs: arg_max, depth_to_space, hard_swish (Vela too), squared_difference and
// layer_norm, which lowers to it; lstm and svdf, whose builders lay out int8 kernels' scales and
// states only. Vela leaves batch_matmul, div, cast and gather on the CPU.
const std::set<std::string> kInt16x8Ops = {
    "conv2d", "depthwise_conv2d", "transpose_conv2d", "dense", "add", "sub", "mul", "div", "batch_matmul",
    "concat", "split", "split_v", "pack", "unpack", "avg_pool2d", "max_pool2d", "global_avg_pool", "mean", "sum",
    "reduce_max", "gather", "cast", "quantize", "dequantize", "pad", "mirror_pad", "reshape", "resize_bilinear",
    "resize_nearest", "transpose", "strided_slice", "slice", "squeeze", "expand_dims", "softmax", "logistic",
    "tanh", "relu", "relu6", "rsqrt", "maximum", "minimum", "leaky_relu", "exp", "abs", "prelu"};

// A layer's input names, viewed in its spec: its "inputs", or the one name it reads by default.
struct Names {
  const std::string* first = nullptr;
  size_t count = 0;
  const std::string* begin() const { return first; }
  const std::string* end() const { return first + count; }
  size_t size() const { return count; }
  const std::string& operator[](size_t k) const { return first[k]; }
};

class Writer {
 public:
  Writer(const ModelSpec& spec, uint64_t seed, WeightType type, writer::ConstantData constants)
      : spec_(spec), graph_(seed, type, constants, spec.weights) {
    if (spec.inputs.empty()) fail("spec", "has no inputs");
    if (spec.layers.empty()) fail("spec", "has no layers");
    graph_.reserve(spec.inputs.size(), spec.layers.size());
    layer_inputs_.reserve(spec.layers.size());
    values_.reserve(spec.inputs.size() + spec.layers.size());
    for (size_t i = 0; i < spec.layers.size(); ++i) {
      const SpecLayer& l = spec.layers[i];
      if (!l.inputs.empty())
        layer_inputs_.push_back({l.inputs.data(), l.inputs.size()});
      else
        layer_inputs_.push_back({i == 0 ? &spec.inputs.front().name : &spec.layers[i - 1].name, 1});
    }
    build();
  }

  std::vector<uint8_t> serialize() const { return graph_.serialize(graph_inputs_, graph_outputs_, description()); }
  Model model(const std::string& source) && {
    return std::move(graph_).to_model(graph_inputs_, graph_outputs_, description(), source);
  }

 private:
  void build() {
    plan_fusion();
    for (const SpecInput& in : spec_.inputs) {
      if (values_.count(in.name)) fail("spec", "input name '" + in.name + "' is used twice");
      if (in.shape.empty()) fail("spec", "input '" + in.name + "' has an empty shape");
      for (int32_t d : in.shape)
        if (d <= 0) fail("spec", "input '" + in.name + "' has a non-positive size in " + writer::shape_str(in.shape));
      const int32_t t = graph_.activation(in.name, in.shape, in.lo, in.hi);
      values_[in.name] = t;
      graph_inputs_.push_back(t);
    }
    for (size_t i = 0; i < spec_.layers.size(); ++i) add_layer(i);
    // Runtimes run such a model, but it is no network and the reader refuses it.
    if (graph_.num_ops() == 0)
      fail("spec", "writes no operator: its quantize and dequantize layers fold away in a float32 model");
    std::vector<std::string> outputs = spec_.outputs;
    if (outputs.empty()) outputs.push_back(spec_.layers.back().name);
    for (const auto& name : outputs) {
      auto it = find_value(name);
      if (it == values_.end()) fail("spec", "output '" + name + "' is not a layer");
      graph_outputs_.push_back(it->second);
    }
  }

  std::string description() const { return "perfsage writer" + (spec_.name.empty() ? "" : ": " + spec_.name); }

  // A relu/relu6 layer whose single input is the only use of a conv/dense/add/sub/mul output is
  // folded into that layer's fused activation, as the converter does. Also marks the layers whose
  // name an earlier layer has. The maps view the spec's names.
  void plan_fusion() {
    const size_t n = spec_.layers.size();
    std::unordered_map<std::string_view, int> uses(2 * n);
    std::unordered_map<std::string_view, size_t> index(n);  // the last layer of each name
    repeated_.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
      const auto [at, fresh] = index.try_emplace(spec_.layers[i].name, i);
      if (!fresh) {
        repeated_[i] = 1;
        at->second = i;
      }
      for (const auto& in : layer_inputs(i)) ++uses[in];
    }
    for (const auto& out : spec_.outputs) ++uses[out];
    if (spec_.outputs.empty()) ++uses[spec_.layers.back().name];
    static const std::set<std::string> fusable = {"conv2d", "depthwise_conv2d", "dense", "add", "sub", "mul"};
    for (size_t i = 0; i < spec_.layers.size(); ++i) {
      const SpecLayer& l = spec_.layers[i];
      if ((l.op != "relu" && l.op != "relu6") || !l.params.members.empty()) continue;
      const auto& ins = layer_inputs(i);
      if (ins.size() != 1) continue;
      auto p = index.find(ins[0]);
      if (p == index.end() || p->second >= i || uses[ins[0]] != 1) continue;
      const SpecLayer& producer = spec_.layers[p->second];
      if (!fusable.count(producer.op) || fused_activation_.count(producer.name)) continue;
      const JsonValue* act = producer.params.find("activation");
      if (act && !(act->kind == JsonValue::Kind::kString && act->text == "none")) continue;
      fused_activation_[producer.name] = l.op == "relu" ? Activation::kRelu : Activation::kRelu6;
      alias_[l.name] = producer.name;
    }
  }

  // The names layer i reads: its "inputs", or the layer before it (the first: the first input).
  const Names& layer_inputs(size_t i) const { return layer_inputs_[i]; }

  // The tensor a name stands for: a layer's output, or for a relu fused into its producer, the
  // producer's; values_.end() when there is none.
  std::unordered_map<std::string, int32_t>::const_iterator find_value(const std::string& name) const {
    return values_.find(alias_.count(name) ? alias_.at(name) : name);
  }

  int32_t input_value(const writer::Params& p, const std::string& name) const {
    auto it = find_value(name);
    if (it == values_.end()) p.fail("input '" + name + "' is neither a spec input nor an earlier layer");
    return it->second;
  }

  void add_layer(size_t i) {
    const SpecLayer& layer = spec_.layers[i];
    writer::Params p(layer, i);
    if (repeated_[i] || values_.count(layer.name)) p.fail("name '" + layer.name + "' is already used");
    if (alias_.count(layer.name)) {  // fused into its producer
      p.finish();
      return;
    }
    const writer::LayerBuilderFn build = writer::find_layer_builder(layer.op);
    if (!build) p.fail("unknown op '" + layer.op + "'");
    std::vector<int32_t> in;
    in.reserve(layer_inputs(i).size());
    for (const auto& name : layer_inputs(i)) in.push_back(input_value(p, name));
    // In a quantized model, a layer on float32 values (a DEQUANTIZE's or a CAST's) is part of a
    // float section: built as in a float32 model, up to the QUANTIZE that ends the section.
    const bool float_section = graph_.quantized() && !kAnyInputOps.count(layer.op) &&
                               std::any_of(in.begin(), in.end(), [&](int32_t t) {
                                 return graph_.tensor(t).type == writer::fb::TensorType::FLOAT32;
                               });
    if (graph_.int16() && !float_section && !kInt16x8Ops.count(layer.op))
      p.fail("op '" + layer.op + "' has no 16x8 (int16 activation) kernel in LiteRT; build it as int8 or float32");
    graph_.float_section(float_section);
    for (size_t k = 0; k < in.size(); ++k) {
      // Every builder but cast's and quantize's expects the model's activations (int8 with its
      // scale, int16 or float32), or float32 values throughout in a float section; other values
      // (arg_max's indices, cast and quantize outputs of another type) reach other layers only
      // through those two.
      const writer::TensorDef& t = graph_.tensor(in[k]);
      const bool activation = t.type == graph_.activation_type() && (!graph_.quantized() || !t.scale.empty());
      if (activation || kAnyInputOps.count(layer.op)) continue;
      const std::string& name = layer_inputs(i)[k];
      graph_.float_section(false);
      if (float_section)
        p.fail("input '" + name + "' holds " + writer::value_kind(t) +
               " values beside float32 ones (a float section); dequantize it, or quantize the float32 ones");
      p.fail("input '" + name + "' holds " + writer::value_kind(t) + " values, not the model's " +
             writer::type_name(graph_.activation_type()) + " activations; only cast and quantize take them");
    }
    const auto fused = fused_activation_.find(layer.name);
    writer::Layer l{layer.name, layer.op, p, in, graph_,
                    fused == fused_activation_.end() ? std::nullopt : std::optional<Activation>(fused->second)};
    const int32_t out = build(l);
    graph_.float_section(false);
    p.finish();
    const bool single = l.outputs.empty();  // the builder's return is its one output
    const size_t outputs = single ? 1 : l.outputs.size();
    for (size_t k = 0; k < outputs; ++k) {
      const int32_t t = single ? out : l.outputs[k];
      const writer::Shape& shape = graph_.tensor(t).shape;
      for (const int32_t d : shape)
        if (d <= 0) p.fail("gives a non-positive size in its output " + writer::shape_str(shape));
      if (outputs > 1) values_[layer.name + ":" + std::to_string(k)] = t;
    }
    values_[layer.name] = out;
  }

  const ModelSpec& spec_;
  std::vector<Names> layer_inputs_;
  std::vector<char> repeated_;  // layer i's name is an earlier layer's
  GraphBuilder graph_;
  std::unordered_map<std::string, int32_t> values_;
  std::unordered_map<std::string, std::string> alias_;
  std::unordered_map<std::string, Activation> fused_activation_;
  std::vector<int32_t> graph_inputs_, graph_outputs_;
};

}  // namespace

WeightType weight_type(const std::string& name) {
  if (name == "int8") return WeightType::kInt8;
  if (name == "float32") return WeightType::kFloat32;
  if (name == "int16x8") return WeightType::kInt16x8;
  throw std::invalid_argument("dtype must be 'int8', 'float32' or 'int16x8', got '" + name + "'");
}

std::vector<std::string> layer_ops(WeightType type) {
  std::vector<std::string> ops;
  for (const std::string& op : writer::layer_builder_ops())
    if (type != WeightType::kInt16x8 || kInt16x8Ops.count(op)) ops.push_back(op);
  return ops;
}

std::vector<uint8_t> build_model(const ModelSpec& spec, uint64_t seed, WeightType type) {
  return Writer(spec, seed, type, writer::ConstantData::kValues).serialize();
}

Model spec_model(const ModelSpec& spec, uint64_t seed, WeightType type, const std::string& source) {
  return Writer(spec, seed, type, writer::ConstantData::kSizesOnly).model(source);  // a temporary: moves
}

std::vector<uint8_t> build_model_json(const std::string& spec_json, uint64_t seed, WeightType type) {
  return build_model(parse_spec(spec_json), seed, type);
}

}  // namespace perfsage
