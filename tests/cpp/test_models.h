// Helpers for the C++ tests: the shared real models, and a builder for small TFLite models that
// verify as flatbuffers but may be wrong in the ways the reader must catch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace perfsage::testing {

// PERFSAGE_DATA, else the default ctest passes (../shared/data). Empty if it does not exist.
std::string data_dir();
// The real .tflite models, sorted; empty when the data folder is missing.
std::vector<std::string> real_models();
std::vector<uint8_t> read_bytes(const std::string& path);
// True when a missing data folder must fail rather than skip (CI=true).
bool data_required();

struct TestTensor {
  std::vector<int32_t> shape;
  int8_t type = 0;           // TensorType: 0 FLOAT32, 9 INT8
  size_t constant_bytes = 0; // > 0: gets its own buffer with that much data
  bool omit_shape = false;
  int64_t buffer = -1;       // >= 0: use this buffer index instead
  std::string name;          // empty: "t<index>"
};

enum class OptionsKind { kNone, kConv, kDepthwise, kPool, kFullyConnected, kWhile, kIf, kConcatenation, kPack };

struct TestOp {
  int32_t builtin_code = 0;
  std::vector<int32_t> inputs, outputs;
  OptionsKind options = OptionsKind::kNone;
  int32_t stride = 1, filter = 1;       // conv/pool
  int32_t axis = 0;                     // concatenation/pack
  std::vector<int32_t> subgraphs;       // while: cond, body; if: then, else
  std::string custom_code;
  int32_t opcode_index = -1;            // >= 0: force this opcode index
  int32_t deprecated_code = -1;         // >= 0: write this in deprecated_builtin_code
};

struct TestSubgraph {
  std::vector<TestTensor> tensors;
  std::vector<TestOp> ops;
  std::vector<int32_t> inputs, outputs;
};

std::vector<uint8_t> build_model(const std::vector<TestSubgraph>& subgraphs);

// Expects loading `bytes` (as "test.tflite") to throw perfsage::Error whose message starts with
// the source and contains every fragment.
void expect_load_error(const std::vector<uint8_t>& bytes, const std::vector<std::string>& fragments);

}  // namespace perfsage::testing
