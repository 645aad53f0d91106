// The model IR's own arithmetic: dtype sizes and names, tensor element and byte counts.
#include "perfsage/model.h"

#include <array>
#include <cmath>
#include <cstdlib>

namespace perfsage {
namespace {

// log2(1 + |q|) for every int8 level, so that summarising a tensor is a table lookup per value.
const std::array<double, 256>& int8_log2_table() {
  static const std::array<double, 256> table = [] {
    std::array<double, 256> out{};
    for (int q = -128; q < 128; ++q) out[static_cast<size_t>(q + 128)] = std::log2(1.0 + std::abs(q));
    return out;
  }();
  return table;
}

}  // namespace

ValueSummary summarize_values(const uint8_t* data, size_t bytes, DType dtype) {
  ValueSummary s;
  if (dtype == DType::kInt8) {
    // A histogram first: one increment per value, then 256 products summed in level order (the
    // same bits whatever order the values come in). Four interleaved histograms, so that runs of
    // one value (a pruned tensor's zeros) do not wait on the same counter.
    std::array<std::array<uint64_t, 256>, 4> counts{};
    size_t i = 0;
    for (; i + 4 <= bytes; i += 4)
      for (size_t k = 0; k < 4; ++k) ++counts[k][static_cast<uint8_t>(data[i + k] ^ 0x80)];  // level + 128
    for (; i < bytes; ++i) ++counts[0][static_cast<uint8_t>(data[i] ^ 0x80)];
    std::array<uint64_t, 256> histogram{};
    for (size_t b = 0; b < histogram.size(); ++b) histogram[b] = counts[0][b] + counts[1][b] + counts[2][b] + counts[3][b];
    const auto& table = int8_log2_table();
    for (size_t b = 0; b < histogram.size(); ++b) s.log2_magnitude_sum += static_cast<double>(histogram[b]) * table[b];
    s.count = static_cast<int64_t>(bytes);
    s.zeros = static_cast<int64_t>(histogram[128]);
  } else if (dtype == DType::kInt16) {
    s.count = static_cast<int64_t>(bytes / 2);
    for (size_t i = 0; i + 1 < bytes; i += 2) {
      const auto q = static_cast<int16_t>(static_cast<uint16_t>(data[i] | (data[i + 1] << 8)));
      s.zeros += q == 0;
      s.log2_magnitude_sum += std::log2(1.0 + std::abs(q) / 256.0);
    }
  }
  return s;
}

int dtype_bits(DType dtype) {
  switch (dtype) {
    case DType::kBool: case DType::kInt8: case DType::kUint8: return 8;
    case DType::kFloat8E4M3fn: case DType::kFloat8E5M2: return 8;
    case DType::kInt4: case DType::kUint4: return 4;
    case DType::kInt2: return 2;
    case DType::kFloat16: case DType::kBfloat16: case DType::kInt16: case DType::kUint16: return 16;
    case DType::kFloat32: case DType::kInt32: case DType::kUint32: return 32;
    case DType::kFloat64: case DType::kInt64: case DType::kUint64: case DType::kComplex64: return 64;
    case DType::kComplex128: return 128;
    case DType::kString: case DType::kResource: case DType::kVariant: return 0;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kInt32: return "int32";
    case DType::kUint8: return "uint8";
    case DType::kInt64: return "int64";
    case DType::kString: return "string";
    case DType::kBool: return "bool";
    case DType::kInt16: return "int16";
    case DType::kComplex64: return "complex64";
    case DType::kInt8: return "int8";
    case DType::kFloat64: return "float64";
    case DType::kComplex128: return "complex128";
    case DType::kUint64: return "uint64";
    case DType::kResource: return "resource";
    case DType::kVariant: return "variant";
    case DType::kUint32: return "uint32";
    case DType::kUint16: return "uint16";
    case DType::kInt4: return "int4";
    case DType::kBfloat16: return "bfloat16";
    case DType::kInt2: return "int2";
    case DType::kUint4: return "uint4";
    case DType::kFloat8E4M3fn: return "float8_e4m3fn";
    case DType::kFloat8E5M2: return "float8_e5m2";
  }
  return "unknown";
}

int64_t Tensor::num_elements() const {
  int64_t count = 1;
  for (int32_t dim : shape) count *= dim;  // the reader bounds the product, so this cannot overflow
  return count;
}

int64_t Tensor::num_bytes() const { return (num_elements() * dtype_bits(dtype) + 7) / 8; }

}  // namespace perfsage
