// The network's math: batches packed from graphs, the forward pass, its hand-written backward pass
// and the loss, templated on the scalar (float for training and prediction, double for gradient
// checks). The formulas are in perfsage/sage.h; SageNetwork (sage_network.cpp) calls these.
// Internal to the core: not installed, not used by the binding.
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels.h"
#include "perfsage/sage.h"

namespace perfsage::math {

template <typename S>
using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename S>
using RowVec = Eigen::Matrix<S, 1, Eigen::Dynamic>;
template <typename S>
using ConstMap = Eigen::Map<const Mat<S>>;
template <typename S>
using ConstVecMap = Eigen::Map<const RowVec<S>>;
template <typename S>
using VecMap = Eigen::Map<RowVec<S>>;
template <typename S>
using MatMap = Eigen::Map<Mat<S>>;
// A row-major matrix, map or block of rows with unit inner stride, passed without a copy.
template <typename S>
using Ref = Eigen::Ref<Mat<S>, 0, Eigen::OuterStride<>>;
template <typename S>
using ConstRef = Eigen::Ref<const Mat<S>, 0, Eigen::OuterStride<>>;

constexpr double kLayerNormEps = 1e-5;

// Matrix products: float (training, prediction) through the dispatching kernel, double (gradient
// checks) through Eigen. All operands are row-major with unit inner stride.
// c (+)= a b
template <typename S, typename C, typename A, typename B>
void product(C&& c, const A& a, const B& b, bool accumulate) {
  if constexpr (std::is_same_v<S, float>) {
    kernels::sgemm(false, a.rows(), b.cols(), a.cols(), a.data(), a.outerStride(), b.data(),
                   b.outerStride(), c.data(), c.outerStride(), accumulate);
  } else if (accumulate) {
    c.noalias() += a * b;
  } else {
    c.noalias() = a * b;
  }
}

// c += a^T b
template <typename S, typename C, typename A, typename B>
void product_tn(C&& c, const A& a, const B& b) {
  if constexpr (std::is_same_v<S, float>) {
    kernels::sgemm(true, a.cols(), b.cols(), a.rows(), a.data(), a.outerStride(), b.data(),
                   b.outerStride(), c.data(), c.outerStride(), true);
  } else {
    c.noalias() += a.transpose() * b;
  }
}

// a b^T, as a new matrix (b is a small weight matrix; its transpose is copied once).
template <typename S, typename A, typename B>
Mat<S> product_nt(const A& a, const B& b) {
  Mat<S> c(a.rows(), b.rows());
  const Mat<S> bt = b.transpose();
  product<S>(c, a, bt, false);
  return c;
}

struct LayerIndex {
  const ParamInfo *w_self = nullptr, *w_in = nullptr, *w_out = nullptr, *bias = nullptr;
  const ParamInfo *ln_gain = nullptr, *ln_bias = nullptr;
};
struct HeadIndex {
  const ParamInfo *weight = nullptr, *bias = nullptr;
};
struct Index {
  const ParamInfo* embedding = nullptr;
  const ParamInfo* family_embedding = nullptr;
  const ParamInfo* readout_constant = nullptr;
  const ParamInfo *readout_weight = nullptr, *readout_bias = nullptr;
  std::vector<LayerIndex> layers;
  std::vector<HeadIndex> head;
};

// Pointers to each parameter of the layout, looked up by name once per call.
Index index_of(const ParamLayout& layout, const SageConfig& c);

template <typename S>
struct Params {
  const S* base;
  ConstMap<S> mat(const ParamInfo* p) const { return ConstMap<S>(base + p->offset, p->rows, p->cols); }
  ConstVecMap<S> vec(const ParamInfo* p) const { return ConstVecMap<S>(base + p->offset, p->cols); }
};

template <typename S>
struct Grads {
  S* base;
  MatMap<S> mat(const ParamInfo* p) const { return MatMap<S>(base + p->offset, p->rows, p->cols); }
  VecMap<S> vec(const ParamInfo* p) const { return VecMap<S>(base + p->offset, p->cols); }
};

// Neighbour lists over a batch's node indices.
struct Csr {
  std::vector<int64_t> start;  // [N + 1]
  std::vector<int64_t> index;
};

template <typename S>
struct Batch {
  Mat<S> h0;                         // [N, F + D + Fam]
  std::vector<int32_t> op_types;     // [N]
  std::vector<int32_t> families;     // [N], when the network has a family embedding
  std::vector<int64_t> graph_start;  // [B + 1]
  Csr in, out;
  Mat<S> graph_features;             // [B, G], standardised
  std::vector<S> target_std;         // [T]: the additive readout sums costs exp(o * std + mean)
  std::vector<float> node_labels;    // [N, T] per-operator labels (NaN: none); empty if no graph has any
};

template <typename S>
struct LayerCache {
  Mat<S> a_in, a_out;                    // aggregated neighbours
  std::vector<int32_t> arg_in, arg_out;  // max aggregation: the node each value came from
  Mat<S> xhat;                           // layer norm: normalised z
  std::vector<S> rstd;                   // layer norm: 1 / sqrt(var + eps) per node
  Mat<S> u;                              // relu output
};

template <typename S>
struct Cache {
  std::vector<Mat<S>> h;             // h[0] input ... h[K] after the last layer
  std::vector<LayerCache<S>> layers;
  Mat<S> sums;                       // [B, H] per-graph node sums
  Mat<S> lse_share;                  // [N, R] each node's share of its graph's log-sum-exp total
  std::vector<int32_t> readout_arg;  // [B, H] max readout's node
  std::vector<Mat<S>> head;          // head[0] = the head's input ... head[L] = its output
  // Additive readout: head[L] holds each node's output o_node [N, T]; share [N, T] is d out / d
  // o_node (the node's share of its graph's total, or 1 at a maximum's node) and const_share
  // [B, T] the learnt constant's.
  Mat<S> share, const_share;
  Mat<S> out;                        // [B, T] the raw graph outputs o
};

// a[i] = AGG over the neighbours j of i of h[j] (zeros without neighbours); `a` is [N, d] already.
// `arg` records, for max, which neighbour each value came from (lowest index among equal values).
template <typename S>
void aggregate(const ConstRef<S>& h, const Csr& csr, Aggregator agg, Ref<S> a, std::vector<int32_t>& arg);

// Finishes head layer j's output `next` (its product already in it): bias, then relu unless last.
template <typename S>
void head_activation(const SageConfig& c, const Params<S>& P, const Index& ix, int32_t j, Ref<S> next);

// Layer norm of every row of z in place (sage.h, step 2): (z - mean) / sqrt(var + eps) * gain +
// bias. `xhat` and `rstd`, where given, keep the normalised rows and 1 / sqrt(var + eps) for the
// backward pass (sized by the caller).
template <typename S, typename Z, typename V>
void layer_norm(Z& z, const V& gain, const V& shift, Mat<S>* xhat = nullptr, std::vector<S>* rstd = nullptr) {
  for (int64_t r = 0; r < z.rows(); ++r) {
    const S mean = z.row(r).mean();
    const S var = (z.row(r).array() - mean).square().mean();
    const S inv = static_cast<S>(1.0) / std::sqrt(var + static_cast<S>(kLayerNormEps));
    if (xhat) {
      (*rstd)[r] = inv;
      xhat->row(r) = (z.row(r).array() - mean) * inv;
      z.row(r) = xhat->row(r).cwiseProduct(gain) + shift;
    } else {
      z.row(r) = ((z.row(r).array() - mean) * inv).matrix().cwiseProduct(gain) + shift;
    }
  }
}

// The additive readout's raw output for one graph (rows [lo, hi) of the nodes' outputs o) and
// target t (sage.h, step 3'): for a max target the largest of the rows and the constant, else
// log(sum_r exp(sd o_rt) + exp(sd constant)) / sd. `share`, where given, gets d(output)/d(o_rt)
// in column t of those rows and `const_share` the constant's (share's rows start at zero).
template <typename S, typename O>
S additive_output(const O& o, int64_t lo, int64_t hi, int64_t t, bool max_target, S sd, S constant,
                  Mat<S>* share = nullptr, S* const_share = nullptr) {
  if (max_target) {
    int64_t best = -1;  // -1: the constant
    S top = constant;
    for (int64_t r = lo; r < hi; ++r)
      if (o(r, t) > top) {
        top = o(r, t);
        best = r;
      }
    if (share) {
      if (best < 0)
        *const_share = static_cast<S>(1);
      else
        (*share)(best, t) = static_cast<S>(1);
    }
    return top;
  }
  S top = sd * constant;
  for (int64_t r = lo; r < hi; ++r) top = std::max(top, sd * o(r, t));
  S total = std::exp(sd * constant - top);
  for (int64_t r = lo; r < hi; ++r) {
    const S e = std::exp(sd * o(r, t) - top);
    total += e;
    if (share) (*share)(r, t) = e;
  }
  if (share) {
    *const_share = std::exp(sd * constant - top) / total;
    for (int64_t r = lo; r < hi; ++r) (*share)(r, t) /= total;
  }
  return (top + std::log(total)) / sd;
}

// One graph's rows of h0 ([num_nodes, input_width] at `rows`, `ld` floats from row to row): its
// standardised features, then its op types' embeddings (and their families').
template <typename S>
void input_rows(const SageConfig& c, const Normalization& norm, const Params<S>& P, const Index& ix,
                const GraphInput& g, S* rows, int64_t ld);
// The first num_node_features columns of those rows only: the standardised features.
template <typename S>
void feature_rows(const SageConfig& c, const Normalization& norm, const GraphInput& g, S* rows, int64_t ld);
// One graph's standardised graph features, into `row` [G].
template <typename S>
void graph_row(const SageConfig& c, const Normalization& norm, const GraphInput& g, S* row);
// Neighbour lists in both directions over the nodes of `count` graphs, numbered by graph_start
// ([count + 1]); `fill` is scratch.
void neighbours(const GraphInput* graphs, int64_t count, const std::vector<int64_t>& graph_start, Csr& in,
                Csr& out, std::vector<int64_t>& fill);

// Packs `count` graphs into one batch: standardised features and embeddings (h0), neighbour lists
// in both directions and standardised graph features.
template <typename S>
void pack(const SageConfig& c, const Normalization& norm, const Params<S>& P, const Index& ix,
          const GraphInput* graphs, int64_t count, Batch<S>& b);

// The forward pass over a packed batch; cache.out holds the raw outputs o [B, T].
template <typename S>
void forward(const SageConfig& c, const Params<S>& P, const Index& ix, const Batch<S>& b,
             Cache<S>& cache);

// Adds d(loss)/d(parameters) to G, given d(loss)/d(o) and the forward pass's cache; `d_node`
// ([N, T] or empty) is the additive readout's d(loss)/d(o_node) from per-operator labels.
template <typename S>
void backward(const SageConfig& c, const Params<S>& P, const Index& ix, const Batch<S>& b,
              const Cache<S>& cache, const Mat<S>& d_out, const Mat<S>& d_node, const Grads<S>& G);

// Additive readout with per-operator labels: the sum over graphs and (sum) targets with labels of
// node_loss_weight * sum_i |c_i - l_i| / sum_i l_i, where c_i = exp(o_node * std + mean), and
// d(sum / count)/d(o_node) into d_node ([N, T], zero elsewhere). Leaves d_node empty and returns 0
// when the batch has no per-operator labels.
template <typename S>
double node_loss_terms(const SageConfig& c, const Normalization& norm, const Batch<S>& b,
                       const Mat<S>& o_node, double count, Mat<S>* d_node);

// Sum of the per-label losses of `o` against `labels` (rows of the batch), and d(sum / count)/d(o).
template <typename S>
double loss_terms(const SageConfig& c, const Normalization& norm, const Mat<S>& o, const float* labels,
                  double count, Mat<S>* d_out);

}  // namespace perfsage::math
