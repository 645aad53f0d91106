// A layer's parameters, read with checks that name the layer.
#include <algorithm>
#include <cmath>

#include "perfsage/error.h"
#include "writer_graph.h"

namespace perfsage::writer {

void Params::fail(const std::string& what) const { perfsage::fail("spec", label() + ": " + what); }

std::string Params::label() const {
  return "layer " + std::to_string(index_) + " '" + layer_.name + "' (" + layer_.op + ")";
}

int32_t Params::integer(const std::string& key, std::optional<int32_t> fallback) {
  const JsonValue* v = get(key);
  if (!v) return required(key, fallback);
  if (v->kind != JsonValue::Kind::kNumber || v->number != std::floor(v->number) || std::abs(v->number) > 1e9)
    fail("'" + key + "' must be an integer");
  return static_cast<int32_t>(v->number);
}

int32_t Params::positive(const std::string& key, std::optional<int32_t> fallback) {
  const int32_t value = integer(key, fallback);
  if (value <= 0) fail("'" + key + "' must be positive, got " + std::to_string(value));
  return value;
}

std::pair<int32_t, int32_t> Params::pair(const std::string& key, std::optional<int32_t> fallback) {
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

Shape Params::ints(const std::string& key) {
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

std::vector<Shape> Params::int_pairs(const std::string& key) {
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

double Params::number(const std::string& key, double fallback) {
  const JsonValue* v = get(key);
  if (!v) return fallback;
  if (v->kind != JsonValue::Kind::kNumber) fail("'" + key + "' must be a number");
  return v->number;
}

std::pair<double, double> Params::range(const std::string& key, std::pair<double, double> fallback) {
  const JsonValue* v = get(key);
  if (!v) return fallback;
  const bool ok = v->kind == JsonValue::Kind::kArray && v->items.size() == 2 &&
                  v->items[0].kind == JsonValue::Kind::kNumber && v->items[1].kind == JsonValue::Kind::kNumber &&
                  std::isfinite(v->items[0].number) && std::isfinite(v->items[1].number) &&
                  v->items[0].number < v->items[1].number;
  if (!ok) fail("'" + key + "' must be [lo, hi] with lo < hi");
  return {v->items[0].number, v->items[1].number};
}

bool Params::flag(const std::string& key, bool fallback) {
  const JsonValue* v = get(key);
  if (!v) return fallback;
  if (v->kind != JsonValue::Kind::kBool) fail("'" + key + "' must be true or false");
  return v->boolean;
}

size_t Params::choose(const std::string& key, const InlineVec<std::string_view, 4>& allowed) {
  const JsonValue* v = get(key);
  if (!v) return 0;
  if (v->kind == JsonValue::Kind::kString)
    for (size_t i = 0; i < allowed.size(); ++i)
      if (v->text == allowed[i]) return i;
  std::string options;
  for (const std::string_view a : allowed) (options += options.empty() ? "" : ", ") += a;
  fail("'" + key + "' must be one of " + options);
}

std::string Params::choice(const std::string& key, const std::vector<std::string>& allowed) {
  return allowed[choose(key, InlineVec<std::string_view, 4>(allowed.begin(), allowed.end()))];
}

std::string_view Params::choice(const std::string& key, std::initializer_list<const char*> allowed) {
  return allowed.begin()[choose(key, InlineVec<std::string_view, 4>(allowed.begin(), allowed.end()))];
}

std::string Params::text(const std::string& key) {
  const JsonValue* v = get(key);
  if (!v || v->kind != JsonValue::Kind::kString) fail("'" + key + "' must be a string");
  return v->text;
}

void Params::finish() const {
  const std::string* unknown = nullptr;  // the first in key order, as errors have always named it
  for (const auto& [key, value] : layer_.params.members)
    if (std::find(used_.begin(), used_.end(), &value) == used_.end() && (!unknown || key < *unknown)) unknown = &key;
  if (unknown) fail("unknown parameter '" + *unknown + "' for " + layer_.op);
}

const JsonValue* Params::get(const std::string& key) {
  const JsonValue* v = layer_.params.find(key);
  if (v && std::find(used_.begin(), used_.end(), v) == used_.end()) used_.push_back(v);  // read once or more
  return v;
}

int32_t Params::required(const std::string& key, std::optional<int32_t> fallback) const {
  if (!fallback) fail("missing parameter '" + key + "'");
  return *fallback;
}

}  // namespace perfsage::writer
