// Prediction without the training pass's caches: the forward pass of sage.h over graphs packed
// into reused buffers, so that a worker predicting chunk after chunk, call after call, allocates
// nothing once its buffers have grown to the largest chunk it has seen. Internal to the core.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "sage_math.h"

namespace perfsage::math {

// The buffers of one worker. Each matrix slot keeps the largest size it has been given.
class Workspace {
 public:
  enum Slot {
    kH0, kHA, kHB, kZ, kAIn, kAOut, kProj, kGraph, kHeadA, kHeadB, kPerGraph, kSums, kScores,
    kTypes, kTypeSelf, kTypeIn, kTypeOut, kTypeHead, kSlots
  };

  Workspace() : buffers_(kSlots) {}
  // A [rows, cols] row-major matrix in `slot` (contents undefined), valid until the slot is asked
  // for again. Buffers are aligned as Eigen aligns a matrix's storage, so that each row sits as
  // the same row of an Eigen matrix would (Eigen's reductions then add in the same order).
  MatMap<float> mat(Slot slot, int64_t rows, int64_t cols);
  int64_t bytes() const;  // memory held
  void release();         // frees it all

  std::vector<int64_t> graph_start, fill;
  Csr in, out;
  std::vector<int32_t> arg;
  // The chunk's op types, each once (types), each node's row among them (node_type), and the row of
  // each op type seen (type_row, -1 for the others between chunks).
  std::vector<int32_t> types, node_type, type_row;

 private:
  std::vector<std::vector<float, Eigen::aligned_allocator<float>>> buffers_;
};

// Predictions y_hat for graphs[0, count) (already checked against the configuration) into
// out[g * T + t]: the values SageNetwork::predict documents, forward()'s outputs through
// exp(o * std + mean). With the max aggregator they are equal bit for bit (the products add in the
// same order). With mean or sum, which are linear, the op-type embedding columns of h0 go through
// layer 0's and the head's weights once per op type of the chunk instead of once per node, and
// layer 0 aggregates its neighbours' products instead of their rows: the same values in another
// order of additions, equal to float rounding (sage_test checks both).
void predict_chunk(const SageConfig& c, const Normalization& norm, const Params<float>& P, const Index& ix,
                   const GraphInput* graphs, int64_t count, Workspace& ws, float* out);

}  // namespace perfsage::math
