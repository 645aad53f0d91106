#include "perfsage/sage.h"

#include <Eigen/Dense>
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "kernels.h"
#include "parallel.h"
#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/graph.h"
#include "perfsage/ops.h"
#include "rng.h"

namespace perfsage {

const char* to_string(Aggregator a) {
  switch (a) {
    case Aggregator::kMean: return "mean";
    case Aggregator::kSum: return "sum";
    case Aggregator::kMax: return "max";
  }
  return "?";
}
const char* to_string(Direction d) {
  switch (d) {
    case Direction::kIn: return "in";
    case Direction::kOut: return "out";
    case Direction::kBoth: return "both";
  }
  return "?";
}
const char* to_string(LossKind l) {
  switch (l) {
    case LossKind::kMape: return "mape";
    case LossKind::kLogMse: return "log_mse";
  }
  return "?";
}

namespace {

template <typename Enum, size_t N>
Enum parse_name(const std::string& name, const std::string& field, const Enum (&values)[N]) {
  std::string allowed;
  for (Enum v : values) {
    if (name == to_string(v)) return v;
    allowed += (allowed.empty() ? "" : ", ") + std::string("'") + to_string(v) + "'";
  }
  throw Error(field + ": '" + name + "' is not one of " + allowed);
}

}  // namespace

Aggregator parse_aggregator(const std::string& name, const std::string& field) {
  static const Aggregator values[] = {Aggregator::kMean, Aggregator::kSum, Aggregator::kMax};
  return parse_name(name, field, values);
}
Direction parse_direction(const std::string& name, const std::string& field) {
  static const Direction values[] = {Direction::kIn, Direction::kOut, Direction::kBoth};
  return parse_name(name, field, values);
}
LossKind parse_loss(const std::string& name, const std::string& field) {
  static const LossKind values[] = {LossKind::kMape, LossKind::kLogMse};
  return parse_name(name, field, values);
}

void SageConfig::resolve() {
  if (num_node_features == 0) num_node_features = static_cast<int32_t>(node_feature_names().size());
  if (num_graph_features == 0) num_graph_features = static_cast<int32_t>(graph_feature_names().size());
  if (vocabulary == 0) vocabulary = op_vocabulary_size();
  auto check = [](const char* field, int64_t value, int64_t lo, int64_t hi) {
    if (value < lo || value > hi)
      throw Error(std::string(field) + " must be in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "], got " + std::to_string(value));
  };
  check("num_node_features", num_node_features, 1, 1 << 16);
  check("num_graph_features", num_graph_features, 0, 1 << 16);
  check("vocabulary", vocabulary, 1, 1 << 20);
  check("embedding_dim", embedding_dim, 0, 4096);
  check("hidden", hidden, 1, 4096);
  check("layers", layers, 0, 64);
  check("readout_channels", readout_channels, 0, 4096);
  check("head_layers", head_layers, 1, 16);
  check("head_hidden", head_hidden, 1, 4096);
  check("num_targets", num_targets, 1, 1024);
}

// ---------------------------------------------------------------------------------------------
// Parameter layout

ParamLayout::ParamLayout(const SageConfig& c) {
  add("embedding", c.vocabulary, c.embedding_dim, false, false);
  int64_t width = c.num_node_features + c.embedding_dim;
  for (int32_t k = 0; k < c.layers; ++k) {
    const std::string p = "sage" + std::to_string(k) + ".";
    add(p + "w_self", width, c.hidden, false, true);
    if (c.uses_in()) add(p + "w_in", width, c.hidden, false, true);
    if (c.uses_out()) add(p + "w_out", width, c.hidden, false, true);
    add(p + "bias", 1, c.hidden, true, false);
    if (c.layer_norm) {
      add(p + "ln_gain", 1, c.hidden, true, false);
      add(p + "ln_bias", 1, c.hidden, true, false);
    }
    width = c.hidden;
  }
  if (c.readout_channels > 0) {
    add("readout.weight", width, c.readout_channels, false, true);
    add("readout.bias", 1, c.readout_channels, true, false);
  }
  width = 3 * width + c.readout_channels + c.num_graph_features;
  for (int32_t j = 0; j < c.head_layers; ++j) {
    const int64_t out = j + 1 < c.head_layers ? c.head_hidden : c.num_targets;
    const std::string p = "head" + std::to_string(j) + ".";
    add(p + "weight", width, out, false, true);
    add(p + "bias", 1, out, true, false);
    width = out;
  }
}

void ParamLayout::add(const std::string& name, int64_t rows, int64_t cols, bool is_vector,
                      bool decays) {
  ParamInfo info;
  info.name = name;
  info.rows = rows;
  info.cols = cols;
  info.offset = size_;
  info.is_vector = is_vector;
  info.decays = decays;
  size_ += rows * cols;
  params_.push_back(std::move(info));
}

const ParamInfo* ParamLayout::find(const std::string& name) const {
  for (const ParamInfo& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

const ParamInfo& ParamLayout::at(const std::string& name) const {
  const ParamInfo* p = find(name);
  if (!p) throw Error("no parameter named '" + name + "' in this network");
  return *p;
}

// ---------------------------------------------------------------------------------------------
// Inputs

GraphInput graph_input(const Graph& graph) {
  GraphInput g;
  g.node_features = graph.node_features().data();
  g.op_types = graph.op_types().data();
  g.edges = graph.edge_index().data();
  g.graph_features = graph.graph_features().data();
  g.num_nodes = graph.num_nodes();
  g.num_edges = graph.num_edges();
  return g;
}

namespace {

template <typename S>
inline S slog(S v) {
  return v >= 0 ? std::log1p(v) : -std::log1p(-v);
}

// slog in float. Most node features are small whole numbers (strides, ranks, flags, kernel sizes),
// so those come from a table of log1pf's own results: identical values, without the libm call
// that otherwise costs a tenth of a small graph's prediction.
inline float slog_float(float v) {
  constexpr int kTable = 256;
  static const auto table = [] {
    std::array<float, kTable> t{};
    for (int i = 0; i < kTable; ++i) t[i] = std::log1p(static_cast<float>(i));
    return t;
  }();
  const float a = std::abs(v);
  const int whole = static_cast<int>(a);
  const float mag = (a < kTable && static_cast<float>(whole) == a) ? table[whole] : std::log1p(a);
  return v < 0 ? -mag : mag;
}

}  // namespace

void GraphSet::reserve(int64_t graphs, int64_t nodes, int64_t edges) {
  const size_t F = num_node_features_ ? num_node_features_ : node_feature_names().size();
  const size_t G = num_graph_features_ ? num_graph_features_ : graph_feature_names().size();
  node_offset_.reserve(static_cast<size_t>(graphs + 1));
  edge_offset_.reserve(static_cast<size_t>(graphs + 1));
  op_types_.reserve(static_cast<size_t>(nodes));
  edges_.reserve(static_cast<size_t>(2 * edges));
  node_features_.reserve(static_cast<size_t>(nodes) * F);
  graph_features_.reserve(static_cast<size_t>(graphs) * G);
}

void GraphSet::add(const Graph& graph) {
  add(graph_input(graph), static_cast<int32_t>(node_feature_names().size()),
      static_cast<int32_t>(graph_feature_names().size()));
}

void GraphSet::extend(const std::vector<const Graph*>& graphs) {
  int64_t nodes = node_offset_.back(), edges = edge_offset_.back();
  for (const Graph* g : graphs) {
    nodes += g->num_nodes();
    edges += g->num_edges();
  }
  reserve(size() + static_cast<int64_t>(graphs.size()), nodes, edges);
  for (const Graph* g : graphs) add(*g);
}

void GraphSet::add(const GraphInput& g, int32_t num_node_features, int32_t num_graph_features) {
  if (size() == 0) {
    num_node_features_ = num_node_features;
    num_graph_features_ = num_graph_features;
  } else if (num_node_features != num_node_features_ || num_graph_features != num_graph_features_) {
    throw Error("GraphSet: graph " + std::to_string(size()) + " has " +
                std::to_string(num_node_features) + " node and " +
                std::to_string(num_graph_features) + " graph features, the set has " +
                std::to_string(num_node_features_) + " and " + std::to_string(num_graph_features_));
  }
  const int64_t nf = g.num_nodes * num_node_features;
  for (int64_t i = 0; i < nf; ++i) {
    const float v = g.node_features[i];
    node_features_.push_back(g.slog_applied ? v : slog_float(v));  // as predict computes it
  }
  for (int64_t i = 0; i < num_graph_features; ++i) {
    const float v = g.graph_features[i];
    graph_features_.push_back(g.slog_applied ? v : slog_float(v));
  }
  op_types_.insert(op_types_.end(), g.op_types, g.op_types + g.num_nodes);
  edges_.insert(edges_.end(), g.edges, g.edges + 2 * g.num_edges);
  node_offset_.push_back(node_offset_.back() + g.num_nodes);
  edge_offset_.push_back(edge_offset_.back() + g.num_edges);
}

GraphInput GraphSet::at(int64_t i) const {
  if (i < 0 || i >= size())
    throw std::out_of_range("GraphSet index " + std::to_string(i) + " out of range [0, " +
                            std::to_string(size()) + ")");
  const size_t n0 = static_cast<size_t>(node_offset_[i]);
  const size_t e0 = static_cast<size_t>(edge_offset_[i]);
  GraphInput g;
  g.num_nodes = node_offset_[i + 1] - node_offset_[i];
  g.num_edges = edge_offset_[i + 1] - edge_offset_[i];
  g.node_features = node_features_.data() + n0 * num_node_features_;
  g.op_types = op_types_.data() + n0;
  g.edges = edges_.data() + 2 * e0;
  g.graph_features = graph_features_.data() + static_cast<size_t>(i) * num_graph_features_;
  g.slog_applied = true;
  return g;
}

int64_t GraphSet::memory_bytes() const {
  return static_cast<int64_t>(node_features_.capacity() * sizeof(float) +
                              op_types_.capacity() * sizeof(int32_t) +
                              edges_.capacity() * sizeof(int64_t) +
                              graph_features_.capacity() * sizeof(float) +
                              (node_offset_.capacity() + edge_offset_.capacity()) * sizeof(int64_t));
}

void check_graph_input(const GraphInput& g, const SageConfig& c, const std::string& what) {
  if (g.num_nodes < 1) throw Error(what + ": the graph has no nodes");
  if (g.num_edges < 0) throw Error(what + ": negative edge count");
  for (int64_t v = 0; v < g.num_nodes; ++v)
    if (g.op_types[v] < 0 || g.op_types[v] >= c.vocabulary)
      throw Error(what + ": node " + std::to_string(v) + " has op type " +
                  std::to_string(g.op_types[v]) + ", outside the vocabulary [0, " +
                  std::to_string(c.vocabulary) + ")");
  for (int64_t e = 0; e < 2 * g.num_edges; ++e)
    if (g.edges[e] < 0 || g.edges[e] >= g.num_nodes)
      throw Error(what + ": edge " + std::to_string(e % g.num_edges) + " has endpoint " +
                  std::to_string(g.edges[e]) + ", outside [0, " + std::to_string(g.num_nodes) + ")");
}

// ---------------------------------------------------------------------------------------------
// The network's math

namespace {

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
  const ParamInfo *readout_weight = nullptr, *readout_bias = nullptr;
  std::vector<LayerIndex> layers;
  std::vector<HeadIndex> head;
};

Index index_of(const ParamLayout& layout, const SageConfig& c) {
  Index ix;
  ix.embedding = &layout.at("embedding");
  ix.readout_weight = layout.find("readout.weight");
  ix.readout_bias = layout.find("readout.bias");
  for (int32_t k = 0; k < c.layers; ++k) {
    const std::string p = "sage" + std::to_string(k) + ".";
    LayerIndex l;
    l.w_self = &layout.at(p + "w_self");
    l.w_in = layout.find(p + "w_in");
    l.w_out = layout.find(p + "w_out");
    l.bias = &layout.at(p + "bias");
    l.ln_gain = layout.find(p + "ln_gain");
    l.ln_bias = layout.find(p + "ln_bias");
    ix.layers.push_back(l);
  }
  for (int32_t j = 0; j < c.head_layers; ++j) {
    const std::string p = "head" + std::to_string(j) + ".";
    ix.head.push_back({&layout.at(p + "weight"), &layout.at(p + "bias")});
  }
  return ix;
}

// Parameters seen in scalar S (float: the stored vector itself; double: a converted copy).
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
  Mat<S> h0;                         // [N, F + D]
  std::vector<int32_t> op_types;     // [N]
  std::vector<int64_t> graph_start;  // [B + 1]
  Csr in, out;
  Mat<S> graph_features;             // [B, G], standardised
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
  std::vector<Mat<S>> head;          // head[0] = readout ‖ graph features ... head[L] = o
};

template <typename S>
void pack(const SageConfig& c, const Normalization& norm, const Params<S>& P, const Index& ix,
          const GraphInput* graphs, int64_t count, Batch<S>& b) {
  const int64_t F = c.num_node_features, D = c.embedding_dim, G = c.num_graph_features;
  b.graph_start.assign(1, 0);
  int64_t edges = 0;
  for (int64_t i = 0; i < count; ++i) {
    b.graph_start.push_back(b.graph_start.back() + graphs[i].num_nodes);
    edges += graphs[i].num_edges;
  }
  const int64_t N = b.graph_start.back();
  b.h0.resize(N, F + D);
  b.op_types.resize(static_cast<size_t>(N));
  b.graph_features.resize(count, G);
  b.in.start.assign(static_cast<size_t>(N + 1), 0);
  b.out.start.assign(static_cast<size_t>(N + 1), 0);
  b.in.index.resize(static_cast<size_t>(edges));
  b.out.index.resize(static_cast<size_t>(edges));

  const auto embedding = P.mat(ix.embedding);
  for (int64_t i = 0; i < count; ++i) {
    const GraphInput& g = graphs[i];
    const int64_t n0 = b.graph_start[i];
    Eigen::Map<const Mat<float>> raw(g.node_features, g.num_nodes, F);
    auto x = b.h0.block(n0, 0, g.num_nodes, F);
    if (g.slog_applied) {
      x = raw.template cast<S>();
    } else if constexpr (std::is_same_v<S, float>) {
      for (int64_t v = 0; v < g.num_nodes; ++v)
        for (int64_t f = 0; f < F; ++f) x(v, f) = slog_float(raw(v, f));
    } else {
      const auto r = raw.template cast<S>().array();
      x = (r.abs().log1p() * r.sign()).matrix();
    }
    for (int64_t f = 0; f < F; ++f) {
      const S mean = static_cast<S>(norm.node_mean[f]);
      const S inv = static_cast<S>(1.0) / static_cast<S>(norm.node_std[f]);
      x.col(f) = (x.col(f).array() - mean) * inv;
    }
    for (int64_t v = 0; v < g.num_nodes; ++v) {
      b.op_types[n0 + v] = g.op_types[v];
      if (D > 0) b.h0.row(n0 + v).tail(D) = embedding.row(g.op_types[v]);
    }
    for (int64_t f = 0; f < G; ++f) {
      const float raw_g = g.graph_features[f];
      S s;
      if (g.slog_applied)
        s = static_cast<S>(raw_g);
      else if constexpr (std::is_same_v<S, float>)
        s = slog_float(raw_g);
      else
        s = static_cast<S>(slog(static_cast<double>(raw_g)));
      b.graph_features(i, f) =
          static_cast<S>((static_cast<S>(s) - static_cast<S>(norm.graph_mean[f])) /
                         static_cast<S>(norm.graph_std[f]));
    }
    const int64_t* src = g.edges;
    const int64_t* dst = g.edges + g.num_edges;
    for (int64_t e = 0; e < g.num_edges; ++e) {
      ++b.in.start[n0 + dst[e] + 1];
      ++b.out.start[n0 + src[e] + 1];
    }
  }
  for (int64_t v = 0; v < N; ++v) {
    b.in.start[v + 1] += b.in.start[v];
    b.out.start[v + 1] += b.out.start[v];
  }
  std::vector<int64_t> in_fill(b.in.start.begin(), b.in.start.end() - 1);
  std::vector<int64_t> out_fill(b.out.start.begin(), b.out.start.end() - 1);
  for (int64_t i = 0; i < count; ++i) {
    const GraphInput& g = graphs[i];
    const int64_t n0 = b.graph_start[i];
    const int64_t* src = g.edges;
    const int64_t* dst = g.edges + g.num_edges;
    for (int64_t e = 0; e < g.num_edges; ++e) {
      b.in.index[in_fill[n0 + dst[e]]++] = n0 + src[e];
      b.out.index[out_fill[n0 + src[e]]++] = n0 + dst[e];
    }
  }
}

// a[i] = AGG over the neighbours j of i of h[j] (zeros without neighbours); `arg` records, for
// max, which neighbour each value came from (lowest index among equal values).
template <typename S>
void aggregate(const Mat<S>& h, const Csr& csr, Aggregator agg, Mat<S>& a, std::vector<int32_t>& arg) {
  const int64_t N = h.rows(), d = h.cols();
  a.setZero(N, d);
  if (agg == Aggregator::kMax) arg.assign(static_cast<size_t>(N * d), -1);
  for (int64_t i = 0; i < N; ++i) {
    const int64_t lo = csr.start[i], hi = csr.start[i + 1];
    if (lo == hi) continue;
    if (agg == Aggregator::kMax) {
      int32_t* best = arg.data() + i * d;
      for (int64_t e = lo; e < hi; ++e) {
        const int64_t j = csr.index[e];
        for (int64_t c = 0; c < d; ++c) {
          const S v = h(j, c);
          if (best[c] < 0 || v > a(i, c) || (v == a(i, c) && j < best[c])) {
            a(i, c) = v;
            best[c] = static_cast<int32_t>(j);
          }
        }
      }
    } else {
      for (int64_t e = lo; e < hi; ++e) a.row(i) += h.row(csr.index[e]);
      if (agg == Aggregator::kMean) a.row(i) *= static_cast<S>(1.0) / static_cast<S>(hi - lo);
    }
  }
}

// The adjoint of aggregate: dh[:, col0 + c] += d(a)/d(h) applied to da[:, c] for c < da.cols().
template <typename S>
void aggregate_adjoint(const Mat<S>& da, const Csr& csr, Aggregator agg,
                       const std::vector<int32_t>& arg, int64_t arg_cols, int64_t col0, Mat<S>& dh) {
  const int64_t N = da.rows(), d = da.cols();
  for (int64_t i = 0; i < N; ++i) {
    const int64_t lo = csr.start[i], hi = csr.start[i + 1];
    if (lo == hi) continue;
    if (agg == Aggregator::kMax) {
      const int32_t* best = arg.data() + i * arg_cols + col0;
      for (int64_t c = 0; c < d; ++c) dh(best[c], c) += da(i, c);
    } else {
      const S scale = agg == Aggregator::kMean ? static_cast<S>(1.0) / static_cast<S>(hi - lo)
                                               : static_cast<S>(1.0);
      for (int64_t e = lo; e < hi; ++e) dh.row(csr.index[e]) += scale * da.row(i);
    }
  }
}

template <typename S>
void forward(const SageConfig& c, const Params<S>& P, const Index& ix, const Batch<S>& b,
             Cache<S>& cache) {
  const int64_t H = c.hidden, B = static_cast<int64_t>(b.graph_start.size()) - 1;
  cache.h.resize(static_cast<size_t>(c.layers + 1));
  cache.layers.resize(static_cast<size_t>(c.layers));
  cache.h[0] = b.h0;
  for (int32_t k = 0; k < c.layers; ++k) {
    const LayerIndex& L = ix.layers[k];
    LayerCache<S>& lc = cache.layers[k];
    const Mat<S>& h = cache.h[k];
    Mat<S> z(h.rows(), H);
    product<S>(z, h, P.mat(L.w_self), false);
    if (c.uses_in()) {
      aggregate(h, b.in, c.aggregator, lc.a_in, lc.arg_in);
      product<S>(z, lc.a_in, P.mat(L.w_in), true);
    }
    if (c.uses_out()) {
      aggregate(h, b.out, c.aggregator, lc.a_out, lc.arg_out);
      product<S>(z, lc.a_out, P.mat(L.w_out), true);
    }
    z.rowwise() += P.vec(L.bias);
    if (c.layer_norm) {
      lc.xhat.resize(z.rows(), H);
      lc.rstd.resize(static_cast<size_t>(z.rows()));
      const auto gain = P.vec(L.ln_gain);
      const auto shift = P.vec(L.ln_bias);
      for (int64_t r = 0; r < z.rows(); ++r) {
        const S mean = z.row(r).mean();
        const S var = (z.row(r).array() - mean).square().mean();
        const S rstd = static_cast<S>(1.0) / std::sqrt(var + static_cast<S>(kLayerNormEps));
        lc.rstd[r] = rstd;
        lc.xhat.row(r) = (z.row(r).array() - mean) * rstd;
        z.row(r) = lc.xhat.row(r).cwiseProduct(gain) + shift;
      }
    }
    lc.u = z.cwiseMax(static_cast<S>(0));
    if (c.residual && k > 0)
      cache.h[k + 1] = h + lc.u;
    else
      cache.h[k + 1] = lc.u;
  }

  const Mat<S>& h = cache.h[c.layers];
  const int64_t width = h.cols();
  const int64_t R = c.readout_channels;
  Mat<S> z0(B, 3 * width + R + c.num_graph_features);
  cache.sums.resize(B, width);
  cache.readout_arg.assign(static_cast<size_t>(B * width), 0);
  for (int64_t g = 0; g < B; ++g) {
    const int64_t lo = b.graph_start[g], n = b.graph_start[g + 1] - lo;
    const auto rows = h.middleRows(lo, n);
    cache.sums.row(g) = rows.colwise().sum();
    for (int64_t col = 0; col < width; ++col) {
      int64_t best = 0;
      for (int64_t r = 1; r < n; ++r)
        if (rows(r, col) > rows(best, col)) best = r;
      cache.readout_arg[g * width + col] = static_cast<int32_t>(lo + best);
      z0(g, 2 * width + col) = rows(best, col);
      z0(g, col) = slog(cache.sums(g, col));
      z0(g, width + col) = cache.sums(g, col) / static_cast<S>(n);
    }
  }
  if (R > 0) {
    Mat<S> scores(h.rows(), R);
    product<S>(scores, h, P.mat(ix.readout_weight), false);
    scores.rowwise() += P.vec(ix.readout_bias);
    cache.lse_share.resize(h.rows(), R);
    for (int64_t g = 0; g < B; ++g) {
      const int64_t lo = b.graph_start[g], n = b.graph_start[g + 1] - lo;
      for (int64_t k = 0; k < R; ++k) {
        const S top = scores.col(k).segment(lo, n).maxCoeff();
        auto share = cache.lse_share.col(k).segment(lo, n);
        share = (scores.col(k).segment(lo, n).array() - top).exp().matrix();
        const S total = share.sum();
        share /= total;
        z0(g, 3 * width + k) = top + std::log(total);
      }
    }
  }
  z0.rightCols(c.num_graph_features) = b.graph_features;

  cache.head.resize(static_cast<size_t>(c.head_layers + 1));
  cache.head[0] = std::move(z0);
  for (int32_t j = 0; j < c.head_layers; ++j) {
    const auto weight = P.mat(ix.head[j].weight);
    Mat<S> next(cache.head[j].rows(), weight.cols());
    product<S>(next, cache.head[j], weight, false);
    next.rowwise() += P.vec(ix.head[j].bias);
    if (j + 1 < c.head_layers) next = next.cwiseMax(static_cast<S>(0));
    cache.head[j + 1] = std::move(next);
  }
}

template <typename S>
void backward(const SageConfig& c, const Params<S>& P, const Index& ix, const Batch<S>& b,
              const Cache<S>& cache, const Mat<S>& d_out, const Grads<S>& G) {
  const int64_t B = static_cast<int64_t>(b.graph_start.size()) - 1;
  // Head.
  Mat<S> dz = d_out;
  for (int32_t j = c.head_layers - 1; j >= 0; --j) {
    if (j + 1 < c.head_layers)
      dz = dz.cwiseProduct((cache.head[j + 1].array() > static_cast<S>(0)).template cast<S>().matrix());
    product_tn<S>(G.mat(ix.head[j].weight), cache.head[j], dz);
    G.vec(ix.head[j].bias) += dz.colwise().sum();
    dz = product_nt<S>(dz, P.mat(ix.head[j].weight));
  }
  // Readout.
  const Mat<S>& hK = cache.h[c.layers];
  const int64_t width = hK.cols();
  Mat<S> dh = Mat<S>::Zero(hK.rows(), width);
  const int64_t R = c.readout_channels;
  if (R > 0) {
    // d lse / d score = the node's share; scores = h W_r + b_r.
    Mat<S> dscores(hK.rows(), R);
    for (int64_t g = 0; g < B; ++g) {
      const int64_t lo = b.graph_start[g], n = b.graph_start[g + 1] - lo;
      for (int64_t k = 0; k < R; ++k)
        dscores.col(k).segment(lo, n) = cache.lse_share.col(k).segment(lo, n) * dz(g, 3 * width + k);
    }
    product_tn<S>(G.mat(ix.readout_weight), hK, dscores);
    G.vec(ix.readout_bias) += dscores.colwise().sum();
    dh = product_nt<S>(dscores, P.mat(ix.readout_weight));
  }
  for (int64_t g = 0; g < B; ++g) {
    const int64_t lo = b.graph_start[g], n = b.graph_start[g + 1] - lo;
    RowVec<S> dsum(width);
    for (int64_t col = 0; col < width; ++col) {
      const S s = cache.sums(g, col);
      dsum(col) = dz(g, col) / (static_cast<S>(1) + std::abs(s)) + dz(g, width + col) / static_cast<S>(n);
      dh(cache.readout_arg[g * width + col], col) += dz(g, 2 * width + col);
    }
    dh.middleRows(lo, n).rowwise() += dsum;
  }
  // Layers, last to first.
  const int64_t F = c.num_node_features, D = c.embedding_dim;
  for (int32_t k = c.layers - 1; k >= 0; --k) {
    const LayerIndex& L = ix.layers[k];
    const LayerCache<S>& lc = cache.layers[k];
    const Mat<S>& h = cache.h[k];
    Mat<S> dzl = dh.cwiseProduct((lc.u.array() > static_cast<S>(0)).template cast<S>().matrix());
    if (c.layer_norm) {
      const auto gain = P.vec(L.ln_gain);
      G.vec(L.ln_gain) += dzl.cwiseProduct(lc.xhat).colwise().sum();
      G.vec(L.ln_bias) += dzl.colwise().sum();
      for (int64_t r = 0; r < dzl.rows(); ++r) {
        const RowVec<S> dxhat = dzl.row(r).cwiseProduct(gain);
        const S mean_d = dxhat.mean();
        const S mean_dx = dxhat.cwiseProduct(lc.xhat.row(r)).mean();
        dzl.row(r) = lc.rstd[r] * (dxhat.array() - mean_d - lc.xhat.row(r).array() * mean_dx).matrix();
      }
    }
    G.vec(L.bias) += dzl.colwise().sum();
    product_tn<S>(G.mat(L.w_self), h, dzl);
    if (c.uses_in()) product_tn<S>(G.mat(L.w_in), lc.a_in, dzl);
    if (c.uses_out()) product_tn<S>(G.mat(L.w_out), lc.a_out, dzl);

    if (k > 0) {
      Mat<S> dprev = product_nt<S>(dzl, P.mat(L.w_self));
      if (c.uses_in())
        aggregate_adjoint<S>(product_nt<S>(dzl, P.mat(L.w_in)), b.in, c.aggregator, lc.arg_in,
                             h.cols(), 0, dprev);
      if (c.uses_out())
        aggregate_adjoint<S>(product_nt<S>(dzl, P.mat(L.w_out)), b.out, c.aggregator, lc.arg_out,
                             h.cols(), 0, dprev);
      if (c.residual) dprev += dh;
      dh = std::move(dprev);
    } else if (D > 0) {
      // Only the embedding columns of the input have parameters behind them.
      Mat<S> demb = product_nt<S>(dzl, P.mat(L.w_self).bottomRows(D));
      if (c.uses_in())
        aggregate_adjoint<S>(product_nt<S>(dzl, P.mat(L.w_in).bottomRows(D)), b.in, c.aggregator,
                             lc.arg_in, h.cols(), F, demb);
      if (c.uses_out())
        aggregate_adjoint<S>(product_nt<S>(dzl, P.mat(L.w_out).bottomRows(D)), b.out, c.aggregator,
                             lc.arg_out, h.cols(), F, demb);
      auto gemb = G.mat(ix.embedding);
      for (int64_t v = 0; v < demb.rows(); ++v) gemb.row(b.op_types[v]) += demb.row(v);
    }
  }
  if (c.layers == 0 && D > 0) {
    // No layers: the readout sees h0 directly; its embedding columns carry gradient.
    auto gemb = G.mat(ix.embedding);
    for (int64_t v = 0; v < dh.rows(); ++v) gemb.row(b.op_types[v]) += dh.row(v).tail(D);
  }
}

// Sum of the per-label losses of `o` against `labels` (rows of the batch), and d(sum / count)/d(o).
template <typename S>
double loss_terms(const SageConfig& c, const Normalization& norm, const Mat<S>& o, const float* labels,
                  double count, Mat<S>* d_out) {
  const int64_t T = c.num_targets;
  double total = 0.0;
  if (d_out) d_out->setZero(o.rows(), T);
  for (int64_t g = 0; g < o.rows(); ++g)
    for (int64_t t = 0; t < T; ++t) {
      const double y = labels[g * T + t];
      if (!std::isfinite(y)) continue;
      const S mean = static_cast<S>(norm.target_mean[t]), sd = static_cast<S>(norm.target_std[t]);
      if (c.loss == LossKind::kMape) {
        const S yhat = std::exp(o(g, t) * sd + mean);
        const S diff = yhat - static_cast<S>(y);
        total += std::abs(static_cast<double>(diff)) / y;
        if (d_out) {
          const S sign = diff > 0 ? S(1) : (diff < 0 ? S(-1) : S(0));
          (*d_out)(g, t) = static_cast<S>(sign * yhat * sd / static_cast<S>(y) / static_cast<S>(count));
        }
      } else {
        const S err = o(g, t) - (static_cast<S>(std::log(y)) - mean) / sd;
        total += static_cast<double>(err) * static_cast<double>(err);
        if (d_out) (*d_out)(g, t) = static_cast<S>(2) * err / static_cast<S>(count);
      }
    }
  return total;
}

template <typename S>
const S* params_as(const std::vector<float>& params, std::vector<S>& buffer) {
  if constexpr (std::is_same_v<S, float>) {
    (void)buffer;
    return params.data();
  } else {
    buffer.assign(params.begin(), params.end());
    return buffer.data();
  }
}

// Graphs per packed batch when predicting: big enough for efficient matrix products, small enough
// to stay in cache.
constexpr int64_t kPredictChunk = 64;

}  // namespace

// ---------------------------------------------------------------------------------------------
// SageNetwork

SageNetwork::SageNetwork(SageConfig config)
    : config_((config.resolve(), config)), layout_(config_), params_(static_cast<size_t>(layout_.size()), 0.0f) {}

void SageNetwork::init_parameters(uint64_t seed) {
  Rng rng(seed);
  const std::string last_head = "head" + std::to_string(config_.head_layers - 1) + ".weight";
  for (const ParamInfo& p : layout_.params()) {
    float* w = params_.data() + p.offset;
    const bool gain = p.name.size() > 8 && p.name.compare(p.name.size() - 8, 8, ".ln_gain") == 0;
    if (p.is_vector) {
      std::fill(w, w + p.size(), gain ? 1.0f : 0.0f);
    } else if (p.name == last_head) {
      // Zero: every graph starts at the training set's geometric-mean label. Random weights here
      // start some predictions orders of magnitude off, where MAPE's gradient (proportional to the
      // prediction) vanishes for underestimates and training can collapse to zero.
      std::fill(w, w + p.size(), 0.0f);
    } else if (p.name == "embedding") {
      for (int64_t i = 0; i < p.size(); ++i) w[i] = rng.uniform(1.0f);
    } else {
      const float limit = static_cast<float>(std::sqrt(6.0 / static_cast<double>(p.rows + p.cols)));
      for (int64_t i = 0; i < p.size(); ++i) w[i] = rng.uniform(limit);
    }
  }
}

void SageNetwork::fit_normalization(const std::vector<GraphInput>& graphs, const float* labels) {
  const SageConfig& c = config_;
  if (graphs.empty()) throw Error("cannot fit the normalisation on zero graphs");
  const int64_t F = c.num_node_features, G = c.num_graph_features, T = c.num_targets;
  std::vector<double> node_sum(F, 0.0), node_sq(F, 0.0), graph_sum(G, 0.0), graph_sq(G, 0.0);
  int64_t nodes = 0;
  // Shifted sums (by the first graph's values) keep the variance accurate for large features.
  std::vector<double> node_shift(F), graph_shift(G);
  auto value = [](const GraphInput& g, const float* p) { return g.slog_applied ? double(*p) : slog(double(*p)); };
  for (int64_t f = 0; f < F; ++f) node_shift[f] = value(graphs[0], graphs[0].node_features + f);
  for (int64_t f = 0; f < G; ++f) graph_shift[f] = value(graphs[0], graphs[0].graph_features + f);
  for (const GraphInput& g : graphs) {
    for (int64_t v = 0; v < g.num_nodes; ++v)
      for (int64_t f = 0; f < F; ++f) {
        const double x = value(g, g.node_features + v * F + f) - node_shift[f];
        node_sum[f] += x;
        node_sq[f] += x * x;
      }
    nodes += g.num_nodes;
    for (int64_t f = 0; f < G; ++f) {
      const double x = value(g, g.graph_features + f) - graph_shift[f];
      graph_sum[f] += x;
      graph_sq[f] += x * x;
    }
  }
  auto finish = [](const std::vector<double>& sum, const std::vector<double>& sq,
                   const std::vector<double>& shift, double n, std::vector<float>& mean,
                   std::vector<float>& sd) {
    mean.resize(sum.size());
    sd.resize(sum.size());
    for (size_t f = 0; f < sum.size(); ++f) {
      const double m = sum[f] / n;
      const double var = std::max(0.0, sq[f] / n - m * m);
      mean[f] = static_cast<float>(m + shift[f]);
      const double s = std::sqrt(var);
      sd[f] = s < 1e-6 ? 1.0f : static_cast<float>(s);
    }
  };
  finish(node_sum, node_sq, node_shift, static_cast<double>(nodes), norm_.node_mean, norm_.node_std);
  finish(graph_sum, graph_sq, graph_shift, static_cast<double>(graphs.size()), norm_.graph_mean,
         norm_.graph_std);

  norm_.target_mean.assign(T, 0.0f);
  norm_.target_std.assign(T, 1.0f);
  for (int64_t t = 0; t < T; ++t) {
    double sum = 0.0, sq = 0.0;
    int64_t n = 0;
    for (size_t g = 0; g < graphs.size(); ++g) {
      const double y = labels[g * T + t];
      if (std::isnan(y)) continue;
      if (!(y > 0.0) || !std::isfinite(y))
        throw Error("label of graph " + std::to_string(g) + ", target " + std::to_string(t) +
                    " is " + std::to_string(y) + "; labels must be positive and finite (NaN = missing)");
      const double l = std::log(y);
      sum += l;
      sq += l * l;
      ++n;
    }
    if (n == 0) throw Error("target " + std::to_string(t) + " has no labels in the training data");
    const double m = sum / n, s = std::sqrt(std::max(0.0, sq / n - m * m));
    norm_.target_mean[t] = static_cast<float>(m);
    norm_.target_std[t] = s < 1e-6 ? 1.0f : static_cast<float>(s);
  }
}

void SageNetwork::check_normalization() const {
  const SageConfig& c = config_;
  auto check = [](const std::vector<float>& v, size_t n, const char* name, bool positive) {
    if (v.size() != n)
      throw Error(std::string("normalisation '") + name + "' has " + std::to_string(v.size()) +
                  " values, expected " + std::to_string(n) + " (not fitted?)");
    for (size_t i = 0; i < n; ++i)
      if (!std::isfinite(v[i]) || (positive && !(v[i] > 0)))
        throw Error(std::string("normalisation '") + name + "' value " + std::to_string(i) +
                    " is " + std::to_string(v[i]));
  };
  check(norm_.node_mean, c.num_node_features, "node_mean", false);
  check(norm_.node_std, c.num_node_features, "node_std", true);
  check(norm_.graph_mean, c.num_graph_features, "graph_mean", false);
  check(norm_.graph_std, c.num_graph_features, "graph_std", true);
  check(norm_.target_mean, c.num_targets, "target_mean", false);
  check(norm_.target_std, c.num_targets, "target_std", true);
}

void SageNetwork::predict(const std::vector<GraphInput>& graphs, int threads, float* out) const {
  check_normalization();
  for (size_t i = 0; i < graphs.size(); ++i) check_graph_input(graphs[i], config_, "graph " + std::to_string(i));
  const Index ix = index_of(layout_, config_);
  const Params<float> P{params_.data()};
  const int64_t n = static_cast<int64_t>(graphs.size());
  const int64_t chunks = (n + kPredictChunk - 1) / kPredictChunk;
  const int64_t T = config_.num_targets;
  parallel_for(chunks, threads, [&](int64_t chunk) {
    const int64_t lo = chunk * kPredictChunk, count = std::min(kPredictChunk, n - lo);
    Batch<float> b;
    Cache<float> cache;
    pack(config_, norm_, P, ix, graphs.data() + lo, count, b);
    forward(config_, P, ix, b, cache);
    const Mat<float>& o = cache.head.back();
    for (int64_t g = 0; g < count; ++g)
      for (int64_t t = 0; t < T; ++t)
        out[(lo + g) * T + t] = std::exp(o(g, t) * norm_.target_std[t] + norm_.target_mean[t]);
  });
}

void SageNetwork::explain(const GraphInput& graph, float* prediction, float* shares) const {
  const SageConfig& c = config_;
  if (c.readout_channels == 0)
    throw Error("explain: this network has no log-sum-exp readout channels (readout_channels = 0), "
                "so it has no per-operator shares");
  check_normalization();
  check_graph_input(graph, c, "graph");
  if (graph.num_nodes == 0) throw Error("explain: the graph has no nodes");
  const Index ix = index_of(layout_, c);
  const Params<float> P{params_.data()};
  Batch<float> b;
  Cache<float> cache;
  pack(c, norm_, P, ix, &graph, 1, b);
  forward(c, P, ix, b, cache);
  const int64_t T = c.num_targets, R = c.readout_channels, N = graph.num_nodes;
  const int64_t lse_col = 3 * cache.h[c.layers].cols();
  const Mat<float>& o = cache.head.back();
  for (int64_t t = 0; t < T; ++t) {
    prediction[t] = std::exp(o(0, t) * norm_.target_std[t] + norm_.target_mean[t]);
    // d o_t / d (head input), by the head's backward pass with a unit upstream gradient.
    Mat<float> dz = Mat<float>::Zero(1, T);
    dz(0, t) = 1.0f;
    for (int32_t j = c.head_layers - 1; j >= 0; --j) {
      if (j + 1 < c.head_layers)
        dz = dz.cwiseProduct((cache.head[j + 1].array() > 0.0f).cast<float>().matrix());
      dz = product_nt<float>(dz, P.mat(ix.head[j].weight));
    }
    std::vector<double> w(static_cast<size_t>(R));
    double total = 0.0;
    for (int64_t k = 0; k < R; ++k) total += w[k] = std::max(0.0f, dz(0, lse_col + k));
    if (!(total > 0.0)) {
      total = 0.0;
      for (int64_t k = 0; k < R; ++k) total += w[k] = std::abs(dz(0, lse_col + k));
    }
    for (int64_t i = 0; i < N; ++i) {
      double s = 0.0;
      for (int64_t k = 0; k < R; ++k) s += w[k] * cache.lse_share(i, k);
      // With every channel weight zero (an untrained head), each channel counts the same.
      if (!(total > 0.0)) {
        for (int64_t k = 0; k < R; ++k) s += cache.lse_share(i, k);
        s /= static_cast<double>(R);
      } else {
        s /= total;
      }
      shares[i * T + t] = static_cast<float>(s);
    }
  }
}

namespace {

template <typename S>
double loss_and_gradients_impl(const SageConfig& config, const ParamLayout& layout,
                               const Normalization& norm, const S* params,
                               const std::vector<GraphInput>& graphs, const float* labels,
                               std::vector<S>* gradients, std::vector<S>* raw_outputs,
                               int64_t loss_scale_count) {
  if (graphs.empty()) throw Error("loss_and_gradients: no graphs");
  for (size_t i = 0; i < graphs.size(); ++i) check_graph_input(graphs[i], config, "graph " + std::to_string(i));
  const int64_t T = config.num_targets;
  int64_t count = loss_scale_count;
  if (count == 0)
    for (size_t i = 0; i < graphs.size() * T; ++i) count += std::isnan(labels[i]) ? 0 : 1;
  if (count == 0) throw Error("loss_and_gradients: every label is missing (NaN)");
  const Index ix = index_of(layout, config);
  const Params<S> P{params};
  Batch<S> b;
  Cache<S> cache;
  pack(config, norm, P, ix, graphs.data(), static_cast<int64_t>(graphs.size()), b);
  forward(config, P, ix, b, cache);
  const Mat<S>& o = cache.head.back();
  if (raw_outputs) raw_outputs->assign(o.data(), o.data() + o.size());
  Mat<S> d_out;
  const double total = loss_terms(config, norm, o, labels, static_cast<double>(count),
                                  gradients ? &d_out : nullptr);
  if (gradients) {
    gradients->assign(static_cast<size_t>(layout.size()), S(0));
    backward(config, P, ix, b, cache, d_out, Grads<S>{gradients->data()});
  }
  return total / static_cast<double>(count);
}

}  // namespace

double SageNetwork::loss_and_gradients_at(const std::vector<double>& params,
                                          const std::vector<GraphInput>& graphs, const float* labels,
                                          std::vector<double>* gradients) const {
  check_normalization();
  if (params.size() != static_cast<size_t>(layout_.size()))
    throw Error("loss_and_gradients_at: " + std::to_string(params.size()) + " parameters, the layout has " +
                std::to_string(layout_.size()));
  return loss_and_gradients_impl<double>(config_, layout_, norm_, params.data(), graphs, labels, gradients,
                                         nullptr, 0);
}

template <typename S>
double SageNetwork::loss_and_gradients(const std::vector<GraphInput>& graphs, const float* labels,
                                       std::vector<S>* gradients, std::vector<S>* raw_outputs,
                                       int64_t loss_scale_count) const {
  check_normalization();
  std::vector<S> converted;
  return loss_and_gradients_impl<S>(config_, layout_, norm_, params_as<S>(params_, converted), graphs,
                                    labels, gradients, raw_outputs, loss_scale_count);
}

template double SageNetwork::loss_and_gradients<float>(const std::vector<GraphInput>&, const float*,
                                                       std::vector<float>*, std::vector<float>*,
                                                       int64_t) const;
template double SageNetwork::loss_and_gradients<double>(const std::vector<GraphInput>&, const float*,
                                                        std::vector<double>*, std::vector<double>*,
                                                        int64_t) const;

}  // namespace perfsage
