// JSON, just what perfsage reads: architecture specs (spec.h) and checkpoint headers.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace perfsage {

// A parsed JSON value (numbers are doubles; ints are checked by whoever reads them).
struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0.0;
  std::string text;
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;  // in document order

  const JsonValue* find(const std::string& key) const;
  JsonValue* find(const std::string& key);
};

// Parses JSON text; throws perfsage::Error naming `source` and the byte offset on bad syntax.
JsonValue parse_json(const std::string& text, const std::string& source);

}  // namespace perfsage
