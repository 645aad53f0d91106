// Architecture specs: the structure of spec.h read from JSON (json.h), with errors naming the layer.
#include "perfsage/spec.h"

#include <set>

#include "perfsage/error.h"

namespace perfsage {
namespace {

const char* kind_name(JsonValue::Kind k) {
  switch (k) {
    case JsonValue::Kind::kNull: return "null";
    case JsonValue::Kind::kBool: return "a boolean";
    case JsonValue::Kind::kNumber: return "a number";
    case JsonValue::Kind::kString: return "a string";
    case JsonValue::Kind::kArray: return "a list";
    case JsonValue::Kind::kObject: return "an object";
  }
  return "?";
}

// `where()` names the value in errors. It is called only when something is wrong, so that reading a
// valid spec builds no messages (a search loop reads thousands of specs a second).
template <typename Where>
std::vector<int32_t> int_list(const JsonValue& v, const Where& where) {
  if (v.kind != JsonValue::Kind::kArray) fail("spec", where() + " must be a list of ints, got " + kind_name(v.kind));
  std::vector<int32_t> out;
  out.reserve(v.items.size());
  for (const auto& item : v.items) {
    if (item.kind != JsonValue::Kind::kNumber || item.number != static_cast<int32_t>(item.number))
      fail("spec", where() + " must be a list of ints");
    out.push_back(static_cast<int32_t>(item.number));
  }
  return out;
}

// The string `v` holds, moved out of it.
template <typename Where>
std::string text_of(JsonValue& v, const Where& where) {
  if (v.kind != JsonValue::Kind::kString) fail("spec", where() + " must be a string, got " + kind_name(v.kind));
  return std::move(v.text);
}


SpecWeights weights_of(JsonValue& v) {
  if (v.kind != JsonValue::Kind::kObject) fail("spec", std::string("'weights' must be an object, got ") + kind_name(v.kind));
  for (const auto& [key, value] : v.members)
    if (key != "distribution" && key != "sparsity" && key != "dense")
      fail("spec", "weights: unknown key '" + key + "' (expected distribution, sparsity, dense)");
  SpecWeights out;
  if (JsonValue* d = v.find("distribution")) {
    const std::string name = text_of(*d, [] { return std::string("weights.distribution"); });
    if (name == "uniform") out.distribution = WeightDistribution::kUniform;
    else if (name == "normal") out.distribution = WeightDistribution::kNormal;
    else if (name == "laplace") out.distribution = WeightDistribution::kLaplace;
    else if (name == "student_t") out.distribution = WeightDistribution::kStudentT;
    else fail("spec", "weights.distribution must be 'uniform', 'normal', 'laplace' or 'student_t', got '" + name + "'");
  }
  if (const JsonValue* s = v.find("sparsity")) {
    // NaN fails both comparisons, so it is refused too.
    if (s->kind != JsonValue::Kind::kNumber || !(s->number >= 0.0 && s->number <= kMaxSparsity))
      fail("spec", "weights.sparsity must be a number in [0, 0.99], got " +
                       (s->kind == JsonValue::Kind::kNumber ? std::to_string(s->number) : std::string(kind_name(s->kind))));
    out.sparsity = s->number;
  }
  if (JsonValue* d = v.find("dense")) {
    const std::string name = text_of(*d, [] { return std::string("weights.dense"); });
    if (name == "per_tensor") out.dense_per_tensor = true;
    else if (name != "per_channel")
      fail("spec", "weights.dense must be 'per_channel' or 'per_tensor', got '" + name + "'");
  }
  return out;
}

}  // namespace

ModelSpec parse_spec(const std::string& json) { return parse_spec(parse_json(json, "spec")); }

ModelSpec parse_spec(JsonValue root) {  // its layers' parameters move into the spec
  if (root.kind != JsonValue::Kind::kObject) fail("spec", std::string("must be an object, got ") + kind_name(root.kind));
  static const std::set<std::string> top_keys = {"name", "inputs", "layers", "outputs", "weights"};
  for (const auto& [key, value] : root.members)
    if (!top_keys.count(key)) fail("spec", "unknown key '" + key + "' (expected name, inputs, layers, outputs, weights)");

  ModelSpec spec;
  if (auto* name = root.find("name")) spec.name = text_of(*name, [] { return std::string("name"); });
  JsonValue* inputs = root.find("inputs");
  if (!inputs || inputs->kind != JsonValue::Kind::kArray || inputs->items.empty())
    fail("spec", "'inputs' must be a non-empty list of {\"name\", \"shape\"}");
  for (size_t i = 0; i < inputs->items.size(); ++i) {
    JsonValue& in = inputs->items[i];
    const auto where = [i] { return "inputs[" + std::to_string(i) + "]"; };
    if (in.kind != JsonValue::Kind::kObject) fail("spec", where() + " must be an object");
    SpecInput input;
    JsonValue* n = in.find("name");
    input.name = n ? text_of(*n, [&] { return where() + ".name"; }) : "input_" + std::to_string(i);
    const JsonValue* shape = in.find("shape");
    if (!shape) fail("spec", where() + " has no 'shape'");
    input.shape = int_list(*shape, [&] { return where() + ".shape"; });
    if (const JsonValue* range = in.find("range")) {
      const auto& r = range->items;
      if (range->kind != JsonValue::Kind::kArray || r.size() != 2 || r[0].kind != JsonValue::Kind::kNumber ||
          r[1].kind != JsonValue::Kind::kNumber || !(r[0].number < r[1].number))
        fail("spec", where() + ".range must be [lo, hi] with lo < hi");
      input.lo = static_cast<float>(r[0].number);
      input.hi = static_cast<float>(r[1].number);
    }
    spec.inputs.push_back(std::move(input));
  }

  JsonValue* layers = root.find("layers");
  if (!layers || layers->kind != JsonValue::Kind::kArray || layers->items.empty())
    fail("spec", "'layers' must be a non-empty list");
  spec.layers.reserve(layers->items.size());
  for (size_t i = 0; i < layers->items.size(); ++i) {
    JsonValue& l = layers->items[i];
    const auto where = [i] { return "layer " + std::to_string(i); };
    if (l.kind != JsonValue::Kind::kObject) fail("spec", where() + " must be an object");
    SpecLayer layer;
    JsonValue* op = l.find("op");
    if (!op) fail("spec", where() + " has no 'op'");
    layer.op = text_of(*op, [&] { return where() + ".op"; });
    JsonValue* n = l.find("name");
    layer.name = n ? text_of(*n, [&] { return where() + ".name"; }) : layer.op + "_" + std::to_string(i);
    const auto named_where = [&] { return where() + " '" + layer.name + "'"; };
    if (JsonValue* ins = l.find("inputs")) {
      if (ins->kind == JsonValue::Kind::kString) {
        layer.inputs.push_back(std::move(ins->text));
      } else {
        if (ins->kind != JsonValue::Kind::kArray) fail("spec", named_where() + ": 'inputs' must be a list of layer names");
        layer.inputs.reserve(ins->items.size());
        for (auto& item : ins->items) layer.inputs.push_back(text_of(item, [&] { return named_where() + ": inputs"; }));
      }
    }
    layer.params.kind = JsonValue::Kind::kObject;
    layer.params.members.reserve(l.members.size());
    for (auto& member : l.members)
      if (member.first != "op" && member.first != "name" && member.first != "inputs" &&
          !layer.params.find(member.first))
        layer.params.members.push_back(std::move(member));
    spec.layers.push_back(std::move(layer));
  }
  if (JsonValue* outs = root.find("outputs")) {
    if (outs->kind != JsonValue::Kind::kArray) fail("spec", "'outputs' must be a list of layer names");
    for (auto& item : outs->items) spec.outputs.push_back(text_of(item, [] { return std::string("outputs"); }));
  }
  if (JsonValue* weights = root.find("weights")) spec.weights = weights_of(*weights);
  return spec;
}

}  // namespace perfsage
