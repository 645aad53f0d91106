#include "perfsage/ops.h"

#include <stdexcept>
#include <unordered_map>

#include "perfsage/tflite_generated.h"

namespace perfsage {
namespace {

std::vector<std::string> make_names() {
  using tflite::BuiltinOperator;
  const int32_t max_code = static_cast<int32_t>(BuiltinOperator::MAX);
  std::vector<std::string> names(static_cast<size_t>(max_code) + 1);
  for (int32_t code = 0; code <= max_code; ++code) {
    const char* name = tflite::EnumNameBuiltinOperator(static_cast<BuiltinOperator>(code));
    names[static_cast<size_t>(code)] = (name && *name) ? name : "UNUSED_" + std::to_string(code);
  }
  return names;
}

}  // namespace

const std::vector<std::string>& op_names() {
  static const std::vector<std::string> names = make_names();
  return names;
}

int32_t op_vocabulary_size() { return static_cast<int32_t>(op_names().size()); }

const std::string& op_name(int32_t builtin_code) {
  const auto& names = op_names();
  if (builtin_code < 0 || builtin_code >= static_cast<int32_t>(names.size()))
    throw std::out_of_range("unknown builtin operator code " + std::to_string(builtin_code));
  return names[static_cast<size_t>(builtin_code)];
}

int32_t op_code(const std::string& name) {
  static const std::unordered_map<std::string, int32_t> codes = [] {
    std::unordered_map<std::string, int32_t> map;
    const auto& names = op_names();
    for (size_t i = 0; i < names.size(); ++i) map.emplace(names[i], static_cast<int32_t>(i));
    return map;
  }();
  auto it = codes.find(name);
  return it == codes.end() ? -1 : it->second;
}

}  // namespace perfsage
