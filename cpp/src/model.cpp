// The model IR's own arithmetic: dtype sizes and names, tensor element and byte counts.
#include "perfsage/model.h"

namespace perfsage {

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
