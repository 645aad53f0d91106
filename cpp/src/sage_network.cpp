// SageNetwork: initial weights, the fitted normalisation, prediction, explanation and the loss
// with its gradients (the math itself is in sage_math.cpp).
#include "perfsage/sage.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "parallel.h"
#include "perfsage/error.h"
#include "rng.h"
#include "sage_math.h"
#include "sage_predict.h"
#include "slog.h"

namespace perfsage {

using math::backward;
using math::Batch;
using math::Cache;
using math::forward;
using math::Grads;
using math::Index;
using math::index_of;
using math::loss_terms;
using math::node_loss_terms;
using math::Mat;
using math::RowVec;
using math::pack;
using math::Params;
using math::product_nt;

namespace {

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

// Nodes per chunk of graphs when predicting: enough rows for efficient matrix products, few
// enough that a chunk's activations stay in the core's own caches (the shipped network's are
// about 4 KB per node, half a megabyte at 128 nodes, beside its 250 KB of weights; 512-node chunks
// scaled 1.1x on two threads here, 64-256 node ones 1.6-1.8x).
constexpr int64_t kPredictChunkNodes = 128;
// A prediction workspace larger than this (one huge graph) is freed after the chunk.
constexpr int64_t kKeepWorkspaceBytes = int64_t{64} << 20;

// One graph's forward pass (explain, operator_costs), after checking the graph.
void forward_one(const SageConfig& c, const Normalization& norm, const Params<float>& P, const Index& ix,
                 const GraphInput& graph, Batch<float>& b, Cache<float>& cache) {
  check_graph_input(graph, c, "graph");
  pack(c, norm, P, ix, &graph, 1, b);
  forward(c, P, ix, b, cache);
}

}  // namespace

SageNetwork::SageNetwork(SageConfig config)
    : config_((config.resolve(), config)),
      layout_(std::make_shared<const ParamLayout>(config_)),
      index_(std::make_shared<const Index>(index_of(*layout_, config_))),
      params_(static_cast<size_t>(layout_->size()), 0.0f) {}

void SageNetwork::init_parameters(uint64_t seed) {
  Rng rng(seed);
  const std::string last_head = "head" + std::to_string(config_.head_layers - 1) + ".weight";
  for (const ParamInfo& p : layout_->params()) {
    float* w = params_.data() + p.offset;
    const bool gain = p.name.size() > 8 && p.name.compare(p.name.size() - 8, 8, ".ln_gain") == 0;
    if (p.is_vector) {
      std::fill(w, w + p.size(), gain ? 1.0f : 0.0f);
    } else if (p.name == last_head) {
      // Zero: every graph starts at the training set's geometric-mean label. Random weights here
      // start some predictions orders of magnitude off, where MAPE's gradient (proportional to the
      // prediction) vanishes for underestimates and training can collapse to zero.
      std::fill(w, w + p.size(), 0.0f);
    } else if (p.name == "embedding" && config_.family_dim > 0) {
      // Zero: an op type that training never shows keeps it, and is priced by its family.
      std::fill(w, w + p.size(), 0.0f);
    } else if (p.name == "embedding" || p.name == "family_embedding") {
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
        const double x = value(g, g.node_features + v * (g.node_feature_stride ? g.node_feature_stride : F) + f) -
                         node_shift[f];
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
      sd[f] = s < 1e-6 ? 1.0f : static_cast<float>(std::max(s, kFeatureStdFloor));
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
      // The additive readout's outputs are per-node costs: a sum target's offset is the mean
      // log cost per node, so that an untrained network predicts about the mean label.
      const bool per_node = c.additive() && !c.is_max_target(t);
      const double l = std::log(y) - (per_node ? std::log(std::max<int64_t>(1, graphs[g].num_nodes)) : 0.0);
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
  const Index& ix = *index_;
  const Params<float> P{params_.data()};
  const int64_t n = static_cast<int64_t>(graphs.size()), T = config_.num_targets;
  // Chunks of whole graphs of about kPredictChunkNodes nodes, in order.
  std::vector<int64_t> bounds{0};
  int64_t nodes = 0;
  for (int64_t i = 0; i < n; ++i) {
    nodes += graphs[i].num_nodes;
    if (nodes >= kPredictChunkNodes || i + 1 == n) {
      bounds.push_back(i + 1);
      nodes = 0;
    }
  }
  parallel_for(static_cast<int64_t>(bounds.size()) - 1, threads, [&](int64_t chunk) {
    // One workspace per thread: the calling thread keeps its buffers from call to call (up to
    // kKeepWorkspaceBytes), worker threads for the length of this call.
    thread_local math::Workspace ws;
    const int64_t lo = bounds[chunk];
    math::predict_chunk(config_, norm_, P, ix, graphs.data() + lo, bounds[chunk + 1] - lo, ws, out + lo * T);
    if (ws.bytes() > kKeepWorkspaceBytes) ws.release();
  });
}

void SageNetwork::operator_costs(const GraphInput& graph, float* prediction, float* costs,
                                 float* constant) const {
  const SageConfig& c = config_;
  if (!c.additive())
    throw Error("operator_costs: this network's readout is '" + std::string(to_string(c.readout)) +
                "'; only the additive readout prices each operator");
  check_normalization();
  const Index& ix = *index_;
  const Params<float> P{params_.data()};
  Batch<float> b;
  Cache<float> cache;
  forward_one(c, norm_, P, ix, graph, b, cache);
  const int64_t T = c.num_targets;
  const Mat<float>& o = cache.head.back();
  const auto bias = P.vec(ix.readout_constant);
  for (int64_t t = 0; t < T; ++t) {
    const float mean = norm_.target_mean[t], sd = norm_.target_std[t];
    prediction[t] = std::exp(cache.out(0, t) * sd + mean);
    constant[t] = std::exp(bias(t) * sd + mean);
    for (int64_t i = 0; i < graph.num_nodes; ++i) costs[i * T + t] = std::exp(o(i, t) * sd + mean);
  }
}

void SageNetwork::explain(const GraphInput& graph, float* prediction, float* shares) const {
  const SageConfig& c = config_;
  if (c.additive()) {
    // Each operator's share of the operators' total cost; for a maximum target, the operator
    // that sets it.
    if (graph.num_nodes == 0) throw Error("explain: the graph has no nodes");
    const int64_t T = c.num_targets, N = graph.num_nodes;
    std::vector<float> costs(static_cast<size_t>(N * T)), constant(static_cast<size_t>(T));
    operator_costs(graph, prediction, costs.data(), constant.data());
    for (int64_t t = 0; t < T; ++t) {
      double total = 0.0;
      int64_t best = 0;
      for (int64_t i = 0; i < N; ++i) {
        total += costs[i * T + t];
        if (costs[i * T + t] > costs[best * T + t]) best = i;
      }
      for (int64_t i = 0; i < N; ++i)
        shares[i * T + t] = c.is_max_target(t) ? (i == best ? 1.0f : 0.0f)
                                               : static_cast<float>(costs[i * T + t] / total);
    }
    return;
  }
  if (c.readout_channels == 0)
    throw Error("explain: this network has no log-sum-exp readout channels (readout_channels = 0), "
                "so it has no per-operator shares");
  check_normalization();
  const Index& ix = *index_;
  const Params<float> P{params_.data()};
  Batch<float> b;
  Cache<float> cache;
  forward_one(c, norm_, P, ix, graph, b, cache);
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
  const Mat<S>& o = cache.out;
  if (raw_outputs) raw_outputs->assign(o.data(), o.data() + o.size());
  Mat<S> d_out, d_node;
  double total = loss_terms(config, norm, o, labels, static_cast<double>(count),
                            gradients ? &d_out : nullptr);
  if (config.additive())
    total += node_loss_terms(config, norm, b, cache.head.back(), static_cast<double>(count),
                             gradients ? &d_node : nullptr);
  if (gradients) {
    // Backward writes into an Eigen-allocated buffer, aligned to Eigen's vector width, not into the
    // std::vector: Eigen computes a loop's first elements, up to its destination's first aligned
    // address, in scalar code (another summation order and, with FMA, other rounding). malloc
    // aligns to 16 bytes only, so with 32-byte AVX vectors (the x86-64-v3 build) the gradients
    // would depend on where the vector's buffer landed, and training on the thread count.
    RowVec<S> aligned = RowVec<S>::Zero(layout.size());
    backward(config, P, ix, b, cache, d_out, d_node, Grads<S>{aligned.data()});
    gradients->assign(aligned.data(), aligned.data() + aligned.size());
  }
  return total / static_cast<double>(count);
}

}  // namespace

double SageNetwork::loss_and_gradients_at(const std::vector<double>& params,
                                          const std::vector<GraphInput>& graphs, const float* labels,
                                          std::vector<double>* gradients) const {
  check_normalization();
  if (params.size() != static_cast<size_t>(layout_->size()))
    throw Error("loss_and_gradients_at: " + std::to_string(params.size()) + " parameters, the layout has " +
                std::to_string(layout_->size()));
  return loss_and_gradients_impl<double>(config_, *layout_, norm_, params.data(), graphs, labels, gradients,
                                         nullptr, 0);
}

template <typename S>
double SageNetwork::loss_and_gradients(const std::vector<GraphInput>& graphs, const float* labels,
                                       std::vector<S>* gradients, std::vector<S>* raw_outputs,
                                       int64_t loss_scale_count) const {
  check_normalization();
  std::vector<S> converted;
  return loss_and_gradients_impl<S>(config_, *layout_, norm_, params_as<S>(params_, converted), graphs,
                                    labels, gradients, raw_outputs, loss_scale_count);
}

template double SageNetwork::loss_and_gradients<float>(const std::vector<GraphInput>&, const float*,
                                                       std::vector<float>*, std::vector<float>*,
                                                       int64_t) const;
template double SageNetwork::loss_and_gradients<double>(const std::vector<GraphInput>&, const float*,
                                                        std::vector<double>*, std::vector<double>*,
                                                        int64_t) const;

}  // namespace perfsage