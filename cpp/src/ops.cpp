#include "perfsage/ops.h"

#include <stdexcept>
#include <unordered_map>
#include <vector>

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

struct Family {
  const char* name;
  std::vector<const char*> ops;
};

const std::vector<Family>& family_table() {
  static const std::vector<Family> table = {
      {"other", {}},
      {"convolution", {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D", "CONV_3D_TRANSPOSE"}},
      {"matmul", {"FULLY_CONNECTED", "BATCH_MATMUL", "EMBEDDING_LOOKUP"}},
      {"recurrent",
       {"LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "RNN",
        "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN", "SVDF"}},
      {"pooling", {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"}},
      {"reduction",
       {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL", "ARG_MAX",
        "ARG_MIN", "CUMSUM"}},
      {"binary",
       {"ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "POW", "FLOOR_DIV",
        "FLOOR_MOD", "ADD_N", "LESS", "GREATER", "EQUAL", "NOT_EQUAL", "LESS_EQUAL", "GREATER_EQUAL",
        "LOGICAL_AND", "LOGICAL_OR", "SELECT", "SELECT_V2", "ATAN2", "PRELU"}},
      {"unary",
       {"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU",
        "ELU", "GELU", "EXP", "LOG", "SQRT", "RSQRT", "ABS", "NEG", "SQUARE", "SIN", "COS", "FLOOR",
        "CEIL", "ROUND", "SIGN", "LOGICAL_NOT"}},
      {"normalization", {"SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION"}},
      {"conversion", {"QUANTIZE", "DEQUANTIZE", "CAST"}},
      {"reshape", {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE"}},
      {"movement",
       {"TRANSPOSE", "CONCATENATION", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "SLICE", "STRIDED_SLICE",
        "GATHER", "GATHER_ND", "TILE", "REVERSE_V2", "BROADCAST_TO"}},
      {"padding", {"PAD", "PADV2", "MIRROR_PAD"}},
      {"resampling",
       {"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH",
        "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"}},
  };
  return table;
}

}  // namespace

int32_t op_family_count() { return static_cast<int32_t>(family_table().size()); }

int32_t op_family(int32_t builtin_code) {
  static const std::vector<int32_t> families = [] {
    std::vector<int32_t> out(static_cast<size_t>(op_vocabulary_size()), 0);
    const auto& table = family_table();
    for (size_t f = 0; f < table.size(); ++f)
      for (const char* name : table[f].ops) {
        const int32_t c = op_code(name);
        if (c >= 0) out[static_cast<size_t>(c)] = static_cast<int32_t>(f);
      }
    return out;
  }();
  if (builtin_code < 0 || builtin_code >= static_cast<int32_t>(families.size())) return 0;
  return families[static_cast<size_t>(builtin_code)];
}

const std::string& op_family_name(int32_t family) {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const Family& f : family_table()) out.emplace_back(f.name);
    return out;
  }();
  if (family < 0 || family >= static_cast<int32_t>(names.size()))
    throw std::out_of_range("unknown operator family " + std::to_string(family));
  return names[static_cast<size_t>(family)];
}

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
