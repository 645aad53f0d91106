#include "sage_math.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "perfsage/inline_vec.h"
#include "perfsage/ops.h"
#include "slog.h"

namespace perfsage::math {

template <typename S>
void aggregate(const ConstRef<S>& h, const Csr& csr, Aggregator agg, Ref<S> a, std::vector<int32_t>& arg) {
  const int64_t N = h.rows(), d = h.cols();
  a.setZero();
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

// Finishes head layer j's output `next` (its product already in it): bias, then relu unless last.
template <typename S>
void head_activation(const SageConfig& c, const Params<S>& P, const Index& ix, int32_t j, Ref<S> next) {
  next.rowwise() += P.vec(ix.head[j].bias);
  if (j + 1 < c.head_layers) next = next.cwiseMax(static_cast<S>(0));
}

namespace {

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

// The head's layers from layer `first` on, relu between them; cache.head[first] holds that
// layer's input, cache.head[L] ends as the output.
template <typename S>
void head_forward(const SageConfig& c, const Params<S>& P, const Index& ix, int32_t first, Cache<S>& cache) {
  for (int32_t j = first; j < c.head_layers; ++j) {
    const auto weight = P.mat(ix.head[j].weight);
    Mat<S> next(cache.head[j].rows(), weight.cols());
    product<S>(next, cache.head[j], weight, false);
    head_activation<S>(c, P, ix, j, next);
    cache.head[j + 1] = std::move(next);
  }
}

// The head's backward pass down to layer `last` (inclusive): adds those layers' parameter
// gradients to G and returns d(loss)/d(input of layer `last`). With last = 0, the head's input.
template <typename S>
Mat<S> head_backward(const SageConfig& c, const Params<S>& P, const Index& ix, const Cache<S>& cache,
                     Mat<S> dz, const Grads<S>& G, int32_t last = 0) {
  for (int32_t j = c.head_layers - 1; j >= last; --j) {
    if (j + 1 < c.head_layers)
      dz = dz.cwiseProduct((cache.head[j + 1].array() > static_cast<S>(0)).template cast<S>().matrix());
    product_tn<S>(G.mat(ix.head[j].weight), cache.head[j], dz);
    G.vec(ix.head[j].bias) += dz.colwise().sum();
    dz = product_nt<S>(dz, P.mat(ix.head[j].weight));
  }
  return dz;
}

// Additive readout (sage.h, step 3'): each node's head output o_node from [h_K | h_0 | graph
// features], and per graph and target o = LSE(std * o_node_i, std * constant) / std for a sum
// target (so that exp(o * std + mean) = sum of the nodes' costs plus the constant's), or the
// maximum of the o_node_i and the constant for a max target.
template <typename S>
void additive_readout(const SageConfig& c, const Params<S>& P, const Index& ix, const Batch<S>& b,
                      Cache<S>& cache) {
  const Mat<S>& hK = cache.h[c.layers];
  const int64_t N = hK.rows(), W = hK.cols(), I = c.input_width(), G = c.node_context_width();
  const int64_t B = static_cast<int64_t>(b.graph_start.size()) - 1, T = c.num_targets;
  // The head's first layer on q = [h_K | h_0 | graph features], as three products of its row
  // blocks: q is never assembled, and the graph features' product, the same for every node of a
  // graph, is computed once per graph and added to each node's (cache.head[0] stays empty; the
  // backward pass reads h_K and h_0 where they are).
  const auto w0 = P.mat(ix.head[0].weight);
  Mat<S> first(N, w0.cols());
  product<S>(first, hK, w0.topRows(W), false);
  product<S>(first, b.h0, w0.middleRows(W, I), true);
  if (G > 0) {
    Mat<S> per_graph(B, w0.cols());
    product<S>(per_graph, b.graph_features, w0.bottomRows(G), false);
    for (int64_t g = 0; g < B; ++g)
      first.middleRows(b.graph_start[g], b.graph_start[g + 1] - b.graph_start[g]).rowwise() += per_graph.row(g);
  }
  head_activation<S>(c, P, ix, 0, first);
  cache.head.resize(static_cast<size_t>(c.head_layers + 1));
  cache.head[0].resize(0, 0);
  cache.head[1] = std::move(first);
  head_forward(c, P, ix, 1, cache);
  const Mat<S>& o = cache.head.back();
  const auto constant = P.vec(ix.readout_constant);
  cache.out.resize(B, T);
  cache.share.setZero(N, T);
  cache.const_share.setZero(B, T);
  for (int64_t g = 0; g < B; ++g)
    for (int64_t t = 0; t < T; ++t)
      cache.out(g, t) = additive_output<S>(o, b.graph_start[g], b.graph_start[g + 1], t, c.is_max_target(t),
                                           b.target_std[t], constant(t), &cache.share, &cache.const_share(g, t));
}

// Adds d(loss)/d(embedding columns of h_0) ([N, D + Fam]: op, then family) to the embeddings'
// gradients.
template <typename S, typename M>
void embedding_gradients(const SageConfig& c, const Index& ix, const Batch<S>& b, const M& demb,
                         const Grads<S>& G) {
  const int64_t D = c.embedding_dim, Fam = c.family_dim;
  if (D > 0) {
    auto gemb = G.mat(ix.embedding);
    for (int64_t v = 0; v < demb.rows(); ++v) gemb.row(b.op_types[v]) += demb.row(v).head(D);
  }
  if (Fam > 0) {
    auto gfam = G.mat(ix.family_embedding);
    for (int64_t v = 0; v < demb.rows(); ++v) gfam.row(b.families[v]) += demb.row(v).segment(D, Fam);
  }
}


}  // namespace

// The two halves of the backward pass before the layers' (defined below).
template <typename S>
Mat<S> lse_readout_backward(const SageConfig& c, const Params<S>& P, const Index& ix, const Batch<S>& b,
                            const Cache<S>& cache, const Mat<S>& dz, const Grads<S>& G);
template <typename S>
void layers_backward(const SageConfig& c, const Params<S>& P, const Index& ix, const Batch<S>& b,
                     const Cache<S>& cache, Mat<S> dh, const Grads<S>& G);

Index index_of(const ParamLayout& layout, const SageConfig& c) {
  Index ix;
  ix.embedding = &layout.at("embedding");
  ix.family_embedding = layout.find("family_embedding");
  ix.readout_constant = layout.find("readout.constant");
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

template <typename S>
void feature_rows(const SageConfig& c, const Normalization& norm, const GraphInput& g, S* rows, int64_t ld) {
  const int64_t F = c.num_node_features;
  const Eigen::OuterStride<> stride(g.node_feature_stride ? g.node_feature_stride : F);
  Eigen::Map<const Mat<float>, 0, Eigen::OuterStride<>> raw(g.node_features, g.num_nodes, F, stride);
  Eigen::Map<Mat<S>, 0, Eigen::OuterStride<>> x(rows, g.num_nodes, F, Eigen::OuterStride<>(ld));
  if constexpr (std::is_same_v<S, float>) {
    // Row by row, in one pass: the operations of the double pass below, without striding.
    InlineVec<float, 64> mean(static_cast<size_t>(F), 0.0f), inv(static_cast<size_t>(F), 0.0f);
    for (int64_t f = 0; f < F; ++f) {
      mean[f] = norm.node_mean[f];
      inv[f] = 1.0f / norm.node_std[f];
    }
    for (int64_t v = 0; v < g.num_nodes; ++v)
      for (int64_t f = 0; f < F; ++f) {
        const float s = g.slog_applied ? raw(v, f) : slog_float(raw(v, f));
        x(v, f) = (s - mean[f]) * inv[f];
      }
  } else {
    if (g.slog_applied) {
      x = raw.template cast<S>();
    } else {
      const auto r = raw.template cast<S>().array();
      x = (r.abs().log1p() * r.sign()).matrix();
    }
    for (int64_t f = 0; f < F; ++f) {
      const S mean = static_cast<S>(norm.node_mean[f]);
      const S inv = static_cast<S>(1.0) / static_cast<S>(norm.node_std[f]);
      x.col(f) = (x.col(f).array() - mean) * inv;
    }
  }
}

template <typename S>
void input_rows(const SageConfig& c, const Normalization& norm, const Params<S>& P, const Index& ix,
                const GraphInput& g, S* rows, int64_t ld) {
  const int64_t F = c.num_node_features, D = c.embedding_dim, Fam = c.family_dim;
  feature_rows<S>(c, norm, g, rows, ld);
  Eigen::Map<Mat<S>, 0, Eigen::OuterStride<>> h(rows, g.num_nodes, c.input_width(), Eigen::OuterStride<>(ld));
  const auto embedding = P.mat(ix.embedding);
  for (int64_t v = 0; v < g.num_nodes; ++v) {
    if (D > 0) h.row(v).segment(F, D) = embedding.row(g.op_types[v]);
    if (Fam > 0) h.row(v).segment(F + D, Fam) = P.mat(ix.family_embedding).row(op_family(g.op_types[v]));
  }
}

template <typename S>
void graph_row(const SageConfig& c, const Normalization& norm, const GraphInput& g, S* row) {
  for (int64_t f = 0; f < c.num_graph_features; ++f) {
    const float raw_g = g.graph_features[f];
    S s;
    if (g.slog_applied)
      s = static_cast<S>(raw_g);
    else if constexpr (std::is_same_v<S, float>)
      s = slog_float(raw_g);
    else
      s = static_cast<S>(slog(static_cast<double>(raw_g)));
    row[f] = static_cast<S>((static_cast<S>(s) - static_cast<S>(norm.graph_mean[f])) /
                            static_cast<S>(norm.graph_std[f]));
  }
}

void neighbours(const GraphInput* graphs, int64_t count, const std::vector<int64_t>& graph_start, Csr& in,
                Csr& out, std::vector<int64_t>& fill) {
  const int64_t N = graph_start.back();
  int64_t edges = 0;
  for (int64_t i = 0; i < count; ++i) edges += graphs[i].num_edges;
  in.start.assign(static_cast<size_t>(N + 1), 0);
  out.start.assign(static_cast<size_t>(N + 1), 0);
  in.index.resize(static_cast<size_t>(edges));
  out.index.resize(static_cast<size_t>(edges));
  // Calls edge(source, destination) for every edge, numbered across the batch, in order.
  auto for_each_edge = [&](auto&& edge) {
    for (int64_t i = 0; i < count; ++i) {
      const GraphInput& g = graphs[i];
      const int64_t n0 = graph_start[i];
      for (int64_t e = 0; e < g.num_edges; ++e) edge(n0 + g.edges[e], n0 + g.edges[g.num_edges + e]);
    }
  };
  for_each_edge([&](int64_t src, int64_t dst) {
    ++in.start[dst + 1];
    ++out.start[src + 1];
  });
  for (int64_t v = 0; v < N; ++v) {
    in.start[v + 1] += in.start[v];
    out.start[v + 1] += out.start[v];
  }
  // fill: the next free slot of each node's incoming list, then of its outgoing list.
  fill.resize(static_cast<size_t>(2 * N));
  std::copy(in.start.begin(), in.start.end() - 1, fill.begin());
  std::copy(out.start.begin(), out.start.end() - 1, fill.begin() + N);
  for_each_edge([&](int64_t src, int64_t dst) {
    in.index[fill[dst]++] = src;
    out.index[fill[N + src]++] = dst;
  });
}

template <typename S>
void pack(const SageConfig& c, const Normalization& norm, const Params<S>& P, const Index& ix,
          const GraphInput* graphs, int64_t count, Batch<S>& b) {
  const int64_t Fam = c.family_dim, T = c.num_targets;
  b.graph_start.assign(1, 0);
  bool node_labels = false;
  for (int64_t i = 0; i < count; ++i) {
    b.graph_start.push_back(b.graph_start.back() + graphs[i].num_nodes);
    node_labels = node_labels || graphs[i].node_labels != nullptr;
  }
  const int64_t N = b.graph_start.back();
  b.h0.resize(N, c.input_width());
  b.op_types.resize(static_cast<size_t>(N));
  b.families.resize(Fam > 0 ? static_cast<size_t>(N) : 0);
  b.target_std.resize(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) b.target_std[t] = static_cast<S>(norm.target_std[t]);
  b.node_labels.assign(node_labels && c.additive() ? static_cast<size_t>(N * T) : 0, std::nanf(""));
  b.graph_features.resize(count, c.num_graph_features);
  for (int64_t i = 0; i < count; ++i) {
    const GraphInput& g = graphs[i];
    const int64_t n0 = b.graph_start[i];
    input_rows(c, norm, P, ix, g, b.h0.data() + n0 * b.h0.cols(), b.h0.cols());
    for (int64_t v = 0; v < g.num_nodes; ++v) {
      b.op_types[n0 + v] = g.op_types[v];
      if (Fam > 0) b.families[n0 + v] = op_family(g.op_types[v]);
    }
    if (!b.node_labels.empty() && g.node_labels)
      std::copy(g.node_labels, g.node_labels + g.num_nodes * T, b.node_labels.begin() + n0 * T);
    graph_row(c, norm, g, b.graph_features.data() + i * b.graph_features.cols());
  }
  std::vector<int64_t> fill;
  neighbours(graphs, count, b.graph_start, b.in, b.out, fill);
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
      lc.a_in.resize(h.rows(), h.cols());
      aggregate<S>(h, b.in, c.aggregator, lc.a_in, lc.arg_in);
      product<S>(z, lc.a_in, P.mat(L.w_in), true);
    }
    if (c.uses_out()) {
      lc.a_out.resize(h.rows(), h.cols());
      aggregate<S>(h, b.out, c.aggregator, lc.a_out, lc.arg_out);
      product<S>(z, lc.a_out, P.mat(L.w_out), true);
    }
    z.rowwise() += P.vec(L.bias);
    if (c.layer_norm) {
      lc.xhat.resize(z.rows(), H);
      lc.rstd.resize(static_cast<size_t>(z.rows()));
      layer_norm<S>(z, P.vec(L.ln_gain), P.vec(L.ln_bias), &lc.xhat, &lc.rstd);
    }
    lc.u = z.cwiseMax(static_cast<S>(0));
    if (c.residual && k > 0)
      cache.h[k + 1] = h + lc.u;
    else
      cache.h[k + 1] = lc.u;
  }

  if (c.additive()) {
    additive_readout(c, P, ix, b, cache);
    return;
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
  head_forward(c, P, ix, 0, cache);
  cache.out = cache.head.back();
}

template <typename S>
void backward(const SageConfig& c, const Params<S>& P, const Index& ix, const Batch<S>& b,
              const Cache<S>& cache, const Mat<S>& d_out, const Mat<S>& d_node, const Grads<S>& G) {
  const int64_t B = static_cast<int64_t>(b.graph_start.size()) - 1;
  const Mat<S>& hK = cache.h[c.layers];
  const int64_t width = hK.cols();
  Mat<S> dh;
  if (c.additive()) {
    const int64_t N = hK.rows(), T = c.num_targets;
    Mat<S> do_node = d_node;
    if (do_node.size() == 0) do_node.setZero(N, T);
    auto gconst = G.vec(ix.readout_constant);
    for (int64_t g = 0; g < B; ++g) {
      const int64_t lo = b.graph_start[g], n = b.graph_start[g + 1] - lo;
      for (int64_t t = 0; t < T; ++t) {
        gconst(t) += d_out(g, t) * cache.const_share(g, t);
        for (int64_t r = lo; r < lo + n; ++r) do_node(r, t) += d_out(g, t) * cache.share(r, t);
      }
    }
    // Layers 1.. as usual; layer 0 as additive_readout computes it (graph features per graph).
    Mat<S> dz = c.head_layers > 1 ? head_backward(c, P, ix, cache, std::move(do_node), G, 1) : std::move(do_node);
    if (c.head_layers > 1)
      dz = dz.cwiseProduct((cache.head[1].array() > static_cast<S>(0)).template cast<S>().matrix());
    const int64_t I = c.input_width(), Gw = c.node_context_width();
    auto gw0 = G.mat(ix.head[0].weight);
    product_tn<S>(gw0.topRows(width), hK, dz);
    product_tn<S>(gw0.middleRows(width, I), b.h0, dz);
    G.vec(ix.head[0].bias) += dz.colwise().sum();
    if (Gw > 0) {
      Mat<S> per_graph = Mat<S>::Zero(B, dz.cols());
      for (int64_t g = 0; g < B; ++g)
        per_graph.row(g) = dz.middleRows(b.graph_start[g], b.graph_start[g + 1] - b.graph_start[g]).colwise().sum();
      product_tn<S>(gw0.bottomRows(Gw), b.graph_features, per_graph);
    }
    // d(loss)/d(h_K), and d(loss)/d(h_0) in its embedding columns only (the rest has no parameters).
    const auto w0 = P.mat(ix.head[0].weight);
    dh = product_nt<S>(dz, w0.topRows(width));
    const int64_t E = c.embedding_dim + c.family_dim;
    if (E > 0) embedding_gradients(c, ix, b, product_nt<S>(dz, w0.middleRows(width + c.num_node_features, E)), G);
  } else {
    dh = lse_readout_backward(c, P, ix, b, cache, head_backward(c, P, ix, cache, d_out, G), G);
  }
  layers_backward(c, P, ix, b, cache, std::move(dh), G);
}

template <typename S>
Mat<S> lse_readout_backward(const SageConfig& c, const Params<S>& P, const Index& ix, const Batch<S>& b,
                            const Cache<S>& cache, const Mat<S>& dz, const Grads<S>& G) {
  const int64_t B = static_cast<int64_t>(b.graph_start.size()) - 1;
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
  return dh;
}

template <typename S>
void layers_backward(const SageConfig& c, const Params<S>& P, const Index& ix, const Batch<S>& b,
                     const Cache<S>& cache, Mat<S> dh, const Grads<S>& G) {
  // Layers, last to first.
  const int64_t E = c.embedding_dim + c.family_dim;
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
    } else if (E > 0) {
      // Only the embedding columns of the input (op, then family) have parameters behind them.
      const int64_t F = c.num_node_features;
      Mat<S> demb = product_nt<S>(dzl, P.mat(L.w_self).bottomRows(E));
      if (c.uses_in())
        aggregate_adjoint<S>(product_nt<S>(dzl, P.mat(L.w_in).bottomRows(E)), b.in, c.aggregator,
                             lc.arg_in, h.cols(), F, demb);
      if (c.uses_out())
        aggregate_adjoint<S>(product_nt<S>(dzl, P.mat(L.w_out).bottomRows(E)), b.out, c.aggregator,
                             lc.arg_out, h.cols(), F, demb);
      embedding_gradients(c, ix, b, demb, G);
    }
  }
  // No layers: the readout sees h0 directly; its embedding columns carry gradient.
  if (c.layers == 0 && E > 0) embedding_gradients(c, ix, b, dh.rightCols(E), G);
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
double node_loss_terms(const SageConfig& c, const Normalization& norm, const Batch<S>& b,
                       const Mat<S>& o_node, double count, Mat<S>* d_node) {
  if (d_node) d_node->resize(0, 0);
  if (!c.additive() || b.node_labels.empty() || (c.node_loss_weight == 0 && c.node_log_weight == 0)) return 0.0;
  const int64_t B = static_cast<int64_t>(b.graph_start.size()) - 1, T = c.num_targets;
  if (d_node) d_node->setZero(o_node.rows(), T);
  double total = 0.0;
  for (int64_t g = 0; g < B; ++g) {
    const int64_t lo = b.graph_start[g], hi = b.graph_start[g + 1];
    for (int64_t t = 0; t < T; ++t) {
      if (c.is_max_target(t)) continue;
      double label_total = 0.0;
      int64_t positive = 0;
      bool complete = hi > lo;
      for (int64_t r = lo; r < hi && complete; ++r) {
        const double l = b.node_labels[r * T + t];
        complete = std::isfinite(l) && l >= 0.0;
        label_total += l;
        positive += l > 0.0;
      }
      if (!complete || !(label_total > 0.0)) continue;
      const S mean = static_cast<S>(norm.target_mean[t]), sd = b.target_std[t];
      const double scale = c.node_loss_weight / label_total, log_scale = c.node_log_weight / positive;
      auto sign_of = [](S x) { return x > 0 ? S(1) : (x < 0 ? S(-1) : S(0)); };
      for (int64_t r = lo; r < hi; ++r) {
        const S log_cost = o_node(r, t) * sd + mean, cost = std::exp(log_cost);
        const S label = static_cast<S>(b.node_labels[r * T + t]);
        const S diff = cost - label;
        total += scale * std::abs(static_cast<double>(diff));
        S d = static_cast<S>(scale) * sign_of(diff) * cost;
        if (label > 0 && log_scale > 0) {
          const S log_diff = log_cost - std::log(label);
          total += log_scale * std::abs(static_cast<double>(log_diff));
          d += static_cast<S>(log_scale) * sign_of(log_diff);
        }
        if (d_node) (*d_node)(r, t) = d * sd / static_cast<S>(count);
      }
    }
  }
  return total;
}

template void aggregate<float>(const ConstRef<float>&, const Csr&, Aggregator, Ref<float>, std::vector<int32_t>&);
template void head_activation<float>(const SageConfig&, const Params<float>&, const Index&, int32_t, Ref<float>);
template void feature_rows<float>(const SageConfig&, const Normalization&, const GraphInput&, float*, int64_t);
template void input_rows<float>(const SageConfig&, const Normalization&, const Params<float>&, const Index&,
                                const GraphInput&, float*, int64_t);
template void graph_row<float>(const SageConfig&, const Normalization&, const GraphInput&, float*);
template void pack<float>(const SageConfig&, const Normalization&, const Params<float>&, const Index&,
                          const GraphInput*, int64_t, Batch<float>&);
template void pack<double>(const SageConfig&, const Normalization&, const Params<double>&, const Index&,
                           const GraphInput*, int64_t, Batch<double>&);
template void forward<float>(const SageConfig&, const Params<float>&, const Index&, const Batch<float>&,
                             Cache<float>&);
template void forward<double>(const SageConfig&, const Params<double>&, const Index&, const Batch<double>&,
                              Cache<double>&);
template void backward<float>(const SageConfig&, const Params<float>&, const Index&, const Batch<float>&,
                              const Cache<float>&, const Mat<float>&, const Mat<float>&, const Grads<float>&);
template void backward<double>(const SageConfig&, const Params<double>&, const Index&, const Batch<double>&,
                               const Cache<double>&, const Mat<double>&, const Mat<double>&,
                               const Grads<double>&);
template double node_loss_terms<float>(const SageConfig&, const Normalization&, const Batch<float>&,
                                       const Mat<float>&, double, Mat<float>*);
template double node_loss_terms<double>(const SageConfig&, const Normalization&, const Batch<double>&,
                                        const Mat<double>&, double, Mat<double>*);
template double loss_terms<float>(const SageConfig&, const Normalization&, const Mat<float>&, const float*,
                                  double, Mat<float>*);
template double loss_terms<double>(const SageConfig&, const Normalization&, const Mat<double>&, const float*,
                                   double, Mat<double>*);

}  // namespace perfsage::math
