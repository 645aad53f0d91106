#include "sage_predict.h"

#include <algorithm>
#include <cmath>
#include <new>

#include "perfsage/ops.h"
#include "slog.h"

namespace perfsage::math {

MatMap<float> Workspace::mat(Slot slot, int64_t rows, int64_t cols) {
  auto& buffer = buffers_[slot];
  const size_t size = static_cast<size_t>(rows * cols);
  if (buffer.size() < size) {
    buffer.clear();  // nothing to keep: no copy of the old contents
    buffer.resize(size);
  }
  return MatMap<float>(buffer.data(), rows, cols);
}

int64_t Workspace::bytes() const {
  size_t floats = 0;
  for (const auto& b : buffers_) floats += b.capacity();
  return static_cast<int64_t>(floats * sizeof(float) +
                              (graph_start.capacity() + fill.capacity() + in.start.capacity() +
                               in.index.capacity() + out.start.capacity() + out.index.capacity()) *
                                  sizeof(int64_t) +
                              (arg.capacity() + types.capacity() + node_type.capacity() + type_row.capacity()) *
                                  sizeof(int32_t));
}

void Workspace::release() { *this = Workspace(); }

namespace {

// The head's layers from `first` on, over the rows of `x` (in `slot`, one of the two head slots);
// returns the output, in one of them.
MatMap<float> head(const SageConfig& c, const Params<float>& P, const Index& ix, int32_t first, MatMap<float> x,
                   Workspace::Slot slot, Workspace& ws) {
  for (int32_t j = first; j < c.head_layers; ++j) {
    const auto weight = P.mat(ix.head[j].weight);
    slot = slot == Workspace::kHeadA ? Workspace::kHeadB : Workspace::kHeadA;
    MatMap<float> next = ws.mat(slot, x.rows(), weight.cols());
    product<float>(next, x, weight, false);
    head_activation<float>(c, P, ix, j, next);
    new (&x) MatMap<float>(next.data(), next.rows(), next.cols());  // Eigen's way to re-point a Map
  }
  return x;
}

// Whether h0's op-type columns are folded into per-type rows (sage_predict.h): the aggregator must
// be linear, so that aggregating products equals the product of aggregates.
bool folds_types(const SageConfig& c) { return c.aggregator != Aggregator::kMax && c.embedding_dim + c.family_dim > 0; }

// The chunk's op types into ws.types and ws.node_type, and their embedding rows, each
// [op embedding | family embedding], into the returned [types, D + Fam] matrix.
MatMap<float> chunk_types(const SageConfig& c, const Params<float>& P, const Index& ix, const GraphInput* graphs,
                          int64_t count, int64_t N, Workspace& ws) {
  ws.types.clear();
  ws.node_type.resize(static_cast<size_t>(N));
  int64_t v = 0;
  for (int64_t i = 0; i < count; ++i)
    for (int64_t n = 0; n < graphs[i].num_nodes; ++n, ++v) {
      const int32_t type = graphs[i].op_types[n];
      if (static_cast<size_t>(type) >= ws.type_row.size()) ws.type_row.resize(static_cast<size_t>(type) + 1, -1);
      int32_t& row = ws.type_row[static_cast<size_t>(type)];
      if (row < 0) {
        ws.types.push_back(type);  // first, so that a row is only ever set for a listed type
        row = static_cast<int32_t>(ws.types.size()) - 1;
      }
      ws.node_type[static_cast<size_t>(v)] = row;
    }
  for (const int32_t type : ws.types) ws.type_row[static_cast<size_t>(type)] = -1;  // ready for the next chunk
  const int64_t D = c.embedding_dim, Fam = c.family_dim;
  MatMap<float> e = ws.mat(Workspace::kTypes, static_cast<int64_t>(ws.types.size()), D + Fam);
  for (size_t r = 0; r < ws.types.size(); ++r) {
    const int32_t type = ws.types[r];
    if (D > 0) e.row(static_cast<int64_t>(r)).head(D) = P.mat(ix.embedding).row(type);
    if (Fam > 0) e.row(static_cast<int64_t>(r)).tail(Fam) = P.mat(ix.family_embedding).row(op_family(type));
  }
  return e;
}

// The product of the types' embedding rows `e` with the bottom rows of `weight` (those h0's
// embedding columns meet), into `slot`.
template <typename W>
MatMap<float> type_product(const MatMap<float>& e, const W& weight, Workspace::Slot slot, Workspace& ws) {
  MatMap<float> t = ws.mat(slot, e.rows(), weight.cols());
  product<float>(t, e, weight.bottomRows(e.cols()), false);
  return t;
}

// Adds to each node's row of `z` its type's row of `t`.
void add_type_rows(MatMap<float>& z, const MatMap<float>& t, const Workspace& ws) {
  for (int64_t v = 0; v < z.rows(); ++v) z.row(v) += t.row(ws.node_type[static_cast<size_t>(v)]);
}

}  // namespace

void predict_chunk(const SageConfig& c, const Normalization& norm, const Params<float>& P, const Index& ix,
                   const GraphInput* graphs, int64_t count, Workspace& ws, float* out) {
  const int64_t I = c.input_width(), H = c.hidden, T = c.num_targets, G = c.num_graph_features;
  ws.graph_start.assign(1, 0);
  for (int64_t i = 0; i < count; ++i) ws.graph_start.push_back(ws.graph_start.back() + graphs[i].num_nodes);
  const int64_t N = ws.graph_start.back(), B = count;
  const std::vector<int64_t>& start = ws.graph_start;
  neighbours(graphs, count, start, ws.in, ws.out, ws.fill);
  // h0 holds the standardised features only when its op-type columns are folded.
  const bool fold = folds_types(c);
  const int64_t F = c.num_node_features, X = fold ? F : I;
  MatMap<float> h0 = ws.mat(Workspace::kH0, N, X);
  MatMap<float> gf = ws.mat(Workspace::kGraph, B, G);
  for (int64_t i = 0; i < count; ++i) {
    if (fold)
      feature_rows<float>(c, norm, graphs[i], h0.data() + start[i] * X, X);
    else
      input_rows<float>(c, norm, P, ix, graphs[i], h0.data() + start[i] * X, X);
    graph_row<float>(c, norm, graphs[i], gf.data() + i * G);
  }
  const MatMap<float> types = fold ? chunk_types(c, P, ix, graphs, count, N, ws) : MatMap<float>(nullptr, 0, 0);

  // The layers (sage.h, step 2), h ping-ponging between two slots.
  MatMap<float> h = h0;
  for (int32_t k = 0; k < c.layers; ++k) {
    const LayerIndex& L = ix.layers[k];
    const bool folded = fold && k == 0;  // h is h0's features: the types' rows come apart
    MatMap<float> z = ws.mat(Workspace::kZ, N, H);
    product<float>(z, h, P.mat(L.w_self).topRows(h.cols()), false);
    if (folded) add_type_rows(z, type_product(types, P.mat(L.w_self), Workspace::kTypeSelf, ws), ws);
    // One direction's term: the neighbours' aggregate through `weight`; folded, the aggregate of
    // the neighbours' products (their features' and their types').
    const auto neighbour_term = [&](const Csr& csr, const ParamInfo* weight, Workspace::Slot a_slot,
                                    Workspace::Slot type_slot) {
      const auto w = P.mat(weight);
      if (!folded) {
        MatMap<float> a = ws.mat(a_slot, N, h.cols());
        aggregate<float>(h, csr, c.aggregator, a, ws.arg);
        product<float>(z, a, w, true);
        return;
      }
      MatMap<float> p = ws.mat(Workspace::kProj, N, H);
      product<float>(p, h, w.topRows(F), false);
      add_type_rows(p, type_product(types, w, type_slot, ws), ws);
      MatMap<float> a = ws.mat(a_slot, N, H);
      aggregate<float>(p, csr, c.aggregator, a, ws.arg);
      z += a;
    };
    if (c.uses_in()) neighbour_term(ws.in, L.w_in, Workspace::kAIn, Workspace::kTypeIn);
    if (c.uses_out()) neighbour_term(ws.out, L.w_out, Workspace::kAOut, Workspace::kTypeOut);
    z.rowwise() += P.vec(L.bias);
    if (c.layer_norm) layer_norm<float>(z, P.vec(L.ln_gain), P.vec(L.ln_bias));
    MatMap<float> next = ws.mat(k % 2 == 0 ? Workspace::kHA : Workspace::kHB, N, H);
    if (c.residual && k > 0)
      next = h + z.cwiseMax(0.0f);
    else
      next = z.cwiseMax(0.0f);
    new (&h) MatMap<float>(next.data(), N, H);  // Eigen's way to re-point a Map
  }
  const int64_t W = h.cols();

  if (c.additive()) {
    // Step 3': the head on every node's [h_K | h_0 | graph features], then per graph and target the
    // sum of the nodes' costs and the constant's (through a log-sum-exp) or their maximum.
    const auto w0 = P.mat(ix.head[0].weight);
    const int64_t Gw = c.node_context_width();
    MatMap<float> first = ws.mat(Workspace::kHeadA, N, w0.cols());
    product<float>(first, h, w0.topRows(W), false);
    product<float>(first, h0, w0.middleRows(W, X), true);
    if (fold) add_type_rows(first, type_product(types, w0.middleRows(W, I), Workspace::kTypeHead, ws), ws);
    if (Gw > 0) {
      MatMap<float> per_graph = ws.mat(Workspace::kPerGraph, B, w0.cols());
      product<float>(per_graph, gf, w0.bottomRows(Gw), false);
      for (int64_t g = 0; g < B; ++g)
        first.middleRows(start[g], start[g + 1] - start[g]).rowwise() += per_graph.row(g);
    }
    head_activation<float>(c, P, ix, 0, first);
    const MatMap<float> o = head(c, P, ix, 1, first, Workspace::kHeadA, ws);
    const auto constant = P.vec(ix.readout_constant);
    for (int64_t g = 0; g < B; ++g)
      for (int64_t t = 0; t < T; ++t) {
        const float value = additive_output<float>(o, start[g], start[g + 1], t, c.is_max_target(t),
                                                   norm.target_std[t], constant(t));
        out[g * T + t] = std::exp(value * norm.target_std[t] + norm.target_mean[t]);
      }
    return;
  }

  // Step 3: per graph slog(sum) | mean | max | log-sum-exp channels | graph features, then the head.
  const int64_t R = c.readout_channels;
  MatMap<float> z0 = ws.mat(Workspace::kHeadA, B, 3 * W + R + G);
  MatMap<float> sums = ws.mat(Workspace::kSums, B, W);
  for (int64_t g = 0; g < B; ++g) {
    const int64_t lo = start[g], n = start[g + 1] - lo;
    const auto rows = h.middleRows(lo, n);
    sums.row(g) = rows.colwise().sum();
    for (int64_t col = 0; col < W; ++col) {
      int64_t best = 0;
      for (int64_t r = 1; r < n; ++r)
        if (rows(r, col) > rows(best, col)) best = r;
      z0(g, 2 * W + col) = rows(best, col);
      z0(g, col) = slog(sums(g, col));
      z0(g, W + col) = sums(g, col) / static_cast<float>(n);
    }
  }
  if (R > 0) {
    MatMap<float> scores = ws.mat(Workspace::kScores, N, R);
    product<float>(scores, h, P.mat(ix.readout_weight), false);
    scores.rowwise() += P.vec(ix.readout_bias);
    for (int64_t g = 0; g < B; ++g) {
      const int64_t lo = start[g], n = start[g + 1] - lo;
      for (int64_t k = 0; k < R; ++k) {
        const float top = scores.col(k).segment(lo, n).maxCoeff();
        const float total = (scores.col(k).segment(lo, n).array() - top).exp().sum();
        z0(g, 3 * W + k) = top + std::log(total);
      }
    }
  }
  z0.rightCols(G) = gf;
  const MatMap<float> o = head(c, P, ix, 0, z0, Workspace::kHeadA, ws);
  for (int64_t g = 0; g < B; ++g)
    for (int64_t t = 0; t < T; ++t) out[g * T + t] = std::exp(o(g, t) * norm.target_std[t] + norm.target_mean[t]);
}

}  // namespace perfsage::math
