// Where each of the network's parameters sits in its one flat float vector.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "perfsage/sage_config.h"

namespace perfsage {

struct ParamInfo {
  std::string name;
  int64_t rows = 0;    // 1 for vectors
  int64_t cols = 0;
  int64_t offset = 0;  // into the flat vector
  bool is_vector = false;
  bool decays = false;  // weight decay applies (weight matrices; not embeddings, biases, gains)
  int64_t size() const { return rows * cols; }
};

// Parameters are row-vector matrices (out = in W + b), named "embedding", "sage0.w_self",
// "head1.bias", ..., in the order the network uses them.
class ParamLayout {
 public:
  explicit ParamLayout(const SageConfig& config);
  const std::vector<ParamInfo>& params() const { return params_; }
  int64_t size() const { return size_; }
  const ParamInfo* find(const std::string& name) const;
  const ParamInfo& at(const std::string& name) const;  // throws perfsage::Error if unknown

 private:
  void add(const std::string& name, int64_t rows, int64_t cols, bool is_vector, bool decays);
  std::vector<ParamInfo> params_;
  int64_t size_ = 0;
};

}  // namespace perfsage
