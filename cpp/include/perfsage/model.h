// A TFLite model as the reader sees it: plain C++ values copied out of a verified flatbuffer.
//
// The reader copies every field it uses (names, shapes, quantisation, options) and records only the
// size and location of constant data, so a Model never points into the caller's bytes and does not
// keep them alive: 10,000 parsed models cost their structure, not their weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "perfsage/inline_vec.h"

namespace perfsage {

// TFLite TensorType codes (the values are the format's).
enum class DType : int8_t {
  kFloat32 = 0, kFloat16 = 1, kInt32 = 2, kUint8 = 3, kInt64 = 4, kString = 5, kBool = 6,
  kInt16 = 7, kComplex64 = 8, kInt8 = 9, kFloat64 = 10, kComplex128 = 11, kUint64 = 12,
  kResource = 13, kVariant = 14, kUint32 = 15, kUint16 = 16, kInt4 = 17, kBfloat16 = 18,
  kInt2 = 19, kUint4 = 20, kFloat8E4M3fn = 21, kFloat8E5M2 = 22,
};

// Storage bits per element (4 for int4, 2 for int2, 0 for string/resource/variant, whose size is not static).
int dtype_bits(DType dtype);
// Lower-case name as numpy/LiteRT spell it ("float32", "int8").
const char* dtype_name(DType dtype);

struct Quantization {
  InlineVec<float, 1> scale;        // one value per tensor, or per channel
  InlineVec<int64_t, 1> zero_point;
  int32_t quantized_dimension = 0;  // the channel axis when per-channel
  bool empty() const { return scale.empty() && zero_point.empty(); }
  bool per_channel() const { return scale.size() > 1; }
};

// What the weight features (features.h) read of a constant tensor's stored integers: how many
// there are, how many are exactly 0, and the sum of log2(1 + |q|) over them. int8 values count as
// stored; int16 values are divided by 256 first, so that both measure 8-bit levels. Zero points are
// ignored: TFLite's integer weights are symmetric. `count` is 0 for a tensor with no such values:
// not constant, float or another type, or emptied by strip_weights without a summary kept.
struct ValueSummary {
  int64_t count = 0;
  int64_t zeros = 0;
  double log2_magnitude_sum = 0.0;
};

// The summary of `bytes` bytes of `dtype` values (int8 or int16, little-endian; an empty summary
// for any other type). A trailing partial value is ignored.
ValueSummary summarize_values(const uint8_t* data, size_t bytes, DType dtype);

struct Tensor {
  std::string name;
  InlineVec<int32_t, 6> shape;           // static shape; dynamic dimensions are 1 here
  std::vector<int32_t> shape_signature;  // -1 marks a dynamic dimension; empty when absent
  DType dtype = DType::kFloat32;
  uint32_t buffer = 0;                   // index into the model's buffers (0: no data)
  uint64_t data_bytes = 0;               // bytes of constant data stored in that buffer
  bool is_constant = false;              // has data (weights, biases, constant shapes, ...), or had
                                         // it before strip_weights emptied its buffer
  bool is_variable = false;              // stateful (e.g. LSTM state)
  bool is_sparse = false;
  Quantization quantization;
  ValueSummary values;                   // of its constant int8/int16 data (see ValueSummary)

  int64_t num_elements() const;  // product of shape (1 for a scalar)
  int64_t num_bytes() const;     // num_elements at the dtype's storage size, rounded up
};

// The builtin options that shape an operator's cost, normalised across the options tables.
// A field the operator's options do not have keeps its default (0, or -1 for `padding`).
struct OperatorOptions {
  int32_t padding = -1;           // TFLite Padding: 0 SAME, 1 VALID
  int32_t stride_h = 0, stride_w = 0, stride_d = 0;
  int32_t dilation_h = 0, dilation_w = 0, dilation_d = 0;
  int32_t filter_h = 0, filter_w = 0;  // pooling window
  int32_t depth_multiplier = 0;
  int32_t fused_activation = 0;   // TFLite ActivationFunctionType: 0 NONE, 1 RELU, 3 RELU6, ...
  int32_t axis = 0;
  bool has_axis = false;
  bool keep_dims = false;
  int32_t block_size = 0;         // depth-to-space / space-to-depth
  bool adj_x = false, adj_y = false;
  bool align_corners = false, half_pixel_centers = false;
  int32_t num_splits = 0;
  bool time_major = false;
  float alpha = 0.0f;             // leaky relu
  float beta = 0.0f;              // softmax
  // Subgraphs the operator runs: IF then/else, WHILE cond/body, CALL_ONCE init.
  std::vector<int32_t> called_subgraphs;
};

struct Operator {
  int32_t opcode_index = 0;
  int32_t builtin_code = 0;   // max(builtin_code, deprecated_builtin_code) of the opcode
  std::string custom_code;    // set for CUSTOM operators
  int32_t version = 1;
  InlineVec<int32_t, 4> inputs;        // tensor indices; -1 is an omitted optional input
  InlineVec<int32_t, 2> outputs;
  std::vector<int32_t> intermediates;
  OperatorOptions options;
  int32_t options_type = 0;   // BuiltinOptions union tag, 0 when absent
};

struct Subgraph {
  std::string name;
  std::vector<Tensor> tensors;
  std::vector<Operator> operators;  // in execution order
  std::vector<int32_t> inputs;
  std::vector<int32_t> outputs;
};

struct Model {
  std::string source;  // file path or caller label; prefixes every error message
  uint32_t version = 0;
  std::string description;
  std::vector<Subgraph> subgraphs;  // subgraph 0 is the entry point
  size_t num_buffers = 0;
  size_t file_bytes = 0;
};

// Parses and verifies a TFLite flatbuffer. Throws perfsage::Error naming `source` and what is wrong.
Model read_model(const uint8_t* data, size_t size, const std::string& source);
// Reads a file from disk, then read_model. The path is the source.
Model read_model_file(const std::string& path);

}  // namespace perfsage
