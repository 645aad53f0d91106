// perfsage's GraphSAGE network: its definition, forward and hand-written backward passes.
//
// The model, exactly (tests/python/sage_reference.py implements the same text independently):
//   slog(v) = sign(v) * log1p(|v|), elementwise.
//   1. x = (slog(node_features) - node_mean) / node_std;
//      h = [x | embedding[op_type] | family_embedding[op_family(op_type)]]   [N, F + D + Fam]
//      (the family part only when family_dim > 0; see ops.h)
//   2. K layers: a_in[i]  = AGG over edges j -> i of h[j]   (predecessors: messages along edges)
//                a_out[i] = AGG over edges i -> j of h[j]   (successors: against edges, the
//                           direction the original PerfSAGE used)
//                AGG is mean, sum or elementwise max; a node without such neighbours gets zeros.
//                z = h W_self + a_in W_in + a_out W_out + b       (the terms its direction uses)
//                z = layer_norm(z) * gain + bias                  (optional; eps 1e-5, biased var)
//                u = relu(z); h = h + u if residual and h already has H columns, else h = u
//   3. readout: r = [slog(sum_i h_i) | mean_i h_i | max_i h_i | lse]; the log on the sum keeps
//      graphs of ten and of a thousand operators on one scale, as the targets are (learnt in log).
//      lse[k] = log sum_i exp(h_i W_r[:, k] + b_r[k]) over R channels: each node contributes a
//      positive amount exp(.) of any magnitude and the graph takes the log of their total, the
//      shape of "latency = sum of the operators' latencies" in log space (and the per-node shares
//      exp(.) / total say which operators dominate a prediction).
//      z = [r | (slog(graph_features) - graph_mean) / graph_std]
//   4. head: L linear layers with relu between them: z -> o, one output per target.
//   5. prediction y = exp(o * target_std + target_mean): positive, and errors are relative.
// With readout = 'additive', steps 3 and 4 are instead (the shape of Vela's estimate: latency,
// energy and traffic are sums over operators, peak memory a maximum over the schedule):
//   3'. every node i runs the head on q_i = [h_i | h0_i | (slog(graph_features) - graph_mean) /
//      graph_std] (the last part only with node_graph_context) to o_node_i (one value per
//      target); its cost is c_it = exp(o_node_it * std_t +
//      mean_t). With the learnt constant k_t (parameter "readout.constant"):
//      sum target:  o_t = log(sum_i exp(std_t o_node_it) + exp(std_t k_t)) / std_t, i.e.
//                   y_t = sum_i c_it + exp(std_t k_t + mean_t);
//      max target (bit t of max_targets):  o_t = max(max_i o_node_it, k_t).
//      fit_normalization sets a sum target's mean_t to the mean of log(label / number of nodes).
//   Per-operator labels l_it (GraphInput::node_labels), where a graph has them for every node of
//   a sum target, add node_loss_weight * sum_i |c_it - l_it| / sum_i l_it and node_log_weight *
//   mean over the P nodes with l_it > 0 of |log c_it - log l_it| to its loss terms (both divided
//   by the same count as the graph terms).
// Losses over the finite labels of a batch (NaN labels are missing and masked out), n of them:
//   MAPE = mean |y_hat - y| / y;  log-MSE = mean ((log y_hat - log y) / target_std)^2.
// Subgradients: relu'(0) = 0, |x|'(0) = 0, max sends its gradient to the lowest node index (the
// additive readout's max: to the constant unless a node exceeds it, then to the first such
// largest node).
//
// Parameters are row-vector matrices (out = in W + b) stored in one flat float vector, named as
// in ParamLayout ("embedding", "sage0.w_self", "head1.bias", ...). All math is templated on the
// scalar: float for training and prediction, double for gradient checks.
//
// Where each part lives: sage_config.h (the configuration and its field table), sage_layout.h (the
// parameter layout), graph_set.h (graphs as the network reads them), cpp/src/sage_math.* (forward
// and backward passes), this file and sage_network.cpp (the network itself), shared_network.h (a
// network that threads share while it trains).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "perfsage/graph_set.h"
#include "perfsage/sage_config.h"
#include "perfsage/sage_layout.h"

namespace perfsage {

namespace math {
struct Index;  // where each parameter lives (cpp/src/sage_math.h)
}

// Statistics fitted on the training set; part of the model.
struct Normalization {
  std::vector<float> node_mean, node_std;      // of slog(node features), per column
  std::vector<float> graph_mean, graph_std;    // of slog(graph features), per column
  std::vector<float> target_mean, target_std;  // of log(label), per target
};

// The network: configuration, parameters and normalisation. Cheap to copy.
class SageNetwork {
 public:
  explicit SageNetwork(SageConfig config);

  const SageConfig& config() const { return config_; }
  const ParamLayout& layout() const { return *layout_; }
  std::vector<float>& parameters() { return params_; }
  const std::vector<float>& parameters() const { return params_; }
  Normalization& normalization() { return norm_; }
  const Normalization& normalization() const { return norm_; }

  // Glorot-uniform weight matrices (the last head layer zero), uniform(-1, 1) embeddings, zero
  // biases, unit gains; same seed, same weights.
  void init_parameters(uint64_t seed);
  // Fits the normalisation on `graphs` and `labels` ([n, T] row-major, NaN = missing); throws if a
  // target has no finite label or a label is not positive. A feature column's std is at least
  // kFeatureStdFloor (a constant column's is 1): a flag that training shows almost always at one
  // value (is_quantized in an int8 world: std 0.013) would otherwise standardise its rare other
  // value to |x| ~ 50, which the exp of a cost turns into predictions thousands of times too
  // high; floored, a flipped flag (slog 0.69) is about 3 std away, like an ordinary new value.
  void fit_normalization(const std::vector<GraphInput>& graphs, const float* labels);
  static constexpr double kFeatureStdFloor = 0.25;
  void check_normalization() const;  // sizes and finiteness; throws naming the field

  // Predictions y_hat ([n, T] row-major) for `graphs`, on up to `threads` threads (0: all cores).
  void predict(const std::vector<GraphInput>& graphs, int threads, float* out) const;

  // Per-operator contributions to one graph's prediction, read from the log-sum-exp readout. For
  // target t, node i's share is sum_k w_tk s_ik / sum_k w_tk, where s_ik = exp(score_ik) / sum_j
  // exp(score_jk) is the node's share of readout channel k and w_tk = max(0, d o_t / d lse_k) is how
  // much channel k raises the target's output (|d o_t / d lse_k| when no channel raises it). A
  // target's shares sum to 1 over the nodes. Fills prediction [T] and shares [num_nodes, T]
  // (row-major). Throws perfsage::Error if the network has no readout channels.
  // With the additive readout, the shares are each operator's predicted cost over the operators'
  // total (for a maximum target: 1 for the operator that sets it).
  void explain(const GraphInput& graph, float* prediction, float* shares) const;
  // Additive readout only: prediction [T], each operator's predicted cost [num_nodes, T]
  // (row-major) and the graph's learnt constant [T]. For a sum target the prediction is the
  // costs' sum plus the constant; for a maximum target their maximum (and the constant's).
  void operator_costs(const GraphInput& graph, float* prediction, float* costs, float* constant) const;

  // Mean loss over the finite labels, raw outputs o ([n, T]), and the gradient of the loss with
  // respect to every parameter (flat, layout order), all computed in Scalar precision.
  // `loss_scale_count` overrides the number of finite labels the mean divides by (training
  // divides a shard's sum by its whole batch's count); 0 means "count them here".
  template <typename Scalar>
  double loss_and_gradients(const std::vector<GraphInput>& graphs, const float* labels,
                            std::vector<Scalar>* gradients, std::vector<Scalar>* raw_outputs,
                            int64_t loss_scale_count = 0) const;
  // The same in double precision at `params` (layout order) instead of the stored float
  // parameters: finite-difference checks need perturbations finer than float resolution.
  double loss_and_gradients_at(const std::vector<double>& params, const std::vector<GraphInput>& graphs,
                               const float* labels, std::vector<double>* gradients) const;

 private:
  SageConfig config_;
  // Shared by copies, which never change it, so that index_'s pointers into it stay valid.
  std::shared_ptr<const ParamLayout> layout_;
  std::shared_ptr<const math::Index> index_;  // each parameter's place, looked up once
  std::vector<float> params_;
  Normalization norm_;
};

}  // namespace perfsage
