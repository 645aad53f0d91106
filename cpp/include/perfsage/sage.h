// perfsage's GraphSAGE network: its definition, forward and hand-written backward passes.
//
// The model, exactly (tests/python/sage_reference.py implements the same text independently):
//   slog(v) = sign(v) * log1p(|v|), elementwise.
//   1. x = (slog(node_features) - node_mean) / node_std; h = [x | embedding[op_type]]   [N, F + D]
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
// Losses over the finite labels of a batch (NaN labels are missing and masked out), n of them:
//   MAPE = mean |y_hat - y| / y;  log-MSE = mean ((log y_hat - log y) / target_std)^2.
// Subgradients: relu'(0) = 0, |x|'(0) = 0, max sends its gradient to the lowest node index.
//
// Parameters are row-vector matrices (out = in W + b) stored in one flat float vector, named as
// in ParamLayout ("embedding", "sage0.w_self", "head1.bias", ...). All math is templated on the
// scalar: float for training and prediction, double for gradient checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace perfsage {

class Graph;

enum class Aggregator { kMean, kSum, kMax };
enum class Direction { kIn, kOut, kBoth };
enum class LossKind { kMape, kLogMse };

const char* to_string(Aggregator a);
const char* to_string(Direction d);
const char* to_string(LossKind l);
// Parse the names above ("mean", "both", "mape", "log_mse"); throw perfsage::Error naming `field`.
Aggregator parse_aggregator(const std::string& name, const std::string& field = "aggregator");
Direction parse_direction(const std::string& name, const std::string& field = "direction");
LossKind parse_loss(const std::string& name, const std::string& field = "loss");

struct SageConfig {
  int32_t num_node_features = 0;   // the feature schema's column counts (0: take the current ones)
  int32_t num_graph_features = 0;
  int32_t vocabulary = 0;          // op types (0: the current vocabulary)
  int32_t embedding_dim = 16;
  int32_t hidden = 64;
  int32_t layers = 3;
  Aggregator aggregator = Aggregator::kMean;
  Direction direction = Direction::kBoth;
  bool layer_norm = false;  // off by default: it normalises away operator cost magnitudes
  bool residual = true;
  int32_t readout_channels = 8;    // R log-sum-exp readout channels; 0: none
  int32_t head_layers = 2;
  int32_t head_hidden = 64;
  int32_t num_targets = 1;
  LossKind loss = LossKind::kMape;

  // Fills zero sizes from the current feature schema, then checks every field; throws
  // perfsage::Error naming the field and its value.
  void resolve();
  bool uses_in() const { return direction != Direction::kOut; }
  bool uses_out() const { return direction != Direction::kIn; }
};

struct ParamInfo {
  std::string name;
  int64_t rows = 0;    // 1 for vectors
  int64_t cols = 0;
  int64_t offset = 0;  // into the flat vector
  bool is_vector = false;
  bool decays = false;  // weight decay applies (weight matrices; not embeddings, biases, gains)
  int64_t size() const { return rows * cols; }
};

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

// Statistics fitted on the training set; part of the model.
struct Normalization {
  std::vector<float> node_mean, node_std;      // of slog(node features), per column
  std::vector<float> graph_mean, graph_std;    // of slog(graph features), per column
  std::vector<float> target_mean, target_std;  // of log(label), per target
};

// One graph as the network reads it: views of arrays owned elsewhere.
struct GraphInput {
  const float* node_features = nullptr;  // [num_nodes, F], row-major
  const int32_t* op_types = nullptr;     // [num_nodes]
  const int64_t* edges = nullptr;        // [2, num_edges]: sources, then destinations
  const float* graph_features = nullptr; // [G]
  int64_t num_nodes = 0;
  int64_t num_edges = 0;
  bool slog_applied = false;             // features already hold slog(value) (GraphSet does this)
};

GraphInput graph_input(const Graph& graph);

// Many graphs held compactly for training: features (already through slog), op types and edges,
// concatenated. About (4F + 4) bytes per node and 16 per edge; no Model or Graph kept alive.
class GraphSet {
 public:
  GraphSet() = default;
  // Room for this many graphs, nodes and edges in total (so that growing never holds two copies).
  void reserve(int64_t graphs, int64_t nodes, int64_t edges);
  void add(const Graph& graph);
  // Adds many graphs, reserving the room for all of them first.
  void extend(const std::vector<const Graph*>& graphs);
  void add(const GraphInput& graph, int32_t num_node_features, int32_t num_graph_features);
  int64_t size() const { return static_cast<int64_t>(node_offset_.size()) - 1; }
  int64_t num_nodes(int64_t i) const { return node_offset_[i + 1] - node_offset_[i]; }
  GraphInput at(int64_t i) const;
  int64_t memory_bytes() const;
  int32_t num_node_features() const { return num_node_features_; }
  int32_t num_graph_features() const { return num_graph_features_; }

 private:
  int32_t num_node_features_ = 0, num_graph_features_ = 0;
  std::vector<float> node_features_;
  std::vector<int32_t> op_types_;
  std::vector<int64_t> edges_;  // per graph: its sources then its destinations
  std::vector<float> graph_features_;
  std::vector<int64_t> node_offset_{0}, edge_offset_{0};
};

// Checks one graph against the configuration (feature counts, op types in the vocabulary, edge
// endpoints in range); throws perfsage::Error naming `what` (e.g. "graph 3").
void check_graph_input(const GraphInput& g, const SageConfig& config, const std::string& what);

// The network: configuration, parameters and normalisation. Cheap to copy.
class SageNetwork {
 public:
  explicit SageNetwork(SageConfig config);

  const SageConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  std::vector<float>& parameters() { return params_; }
  const std::vector<float>& parameters() const { return params_; }
  Normalization& normalization() { return norm_; }
  const Normalization& normalization() const { return norm_; }

  // Glorot-uniform weight matrices (the last head layer zero), uniform(-1, 1) embeddings, zero
  // biases, unit gains; same seed, same weights.
  void init_parameters(uint64_t seed);
  // Fits the normalisation on `graphs` and `labels` ([n, T] row-major, NaN = missing); throws if a
  // target has no finite label or a label is not positive.
  void fit_normalization(const std::vector<GraphInput>& graphs, const float* labels);
  void check_normalization() const;  // sizes and finiteness; throws naming the field

  // Predictions y_hat ([n, T] row-major) for `graphs`, on up to `threads` threads (0: all cores).
  void predict(const std::vector<GraphInput>& graphs, int threads, float* out) const;

  // Per-operator contributions to one graph's prediction, read from the log-sum-exp readout. For
  // target t, node i's share is sum_k w_tk s_ik / sum_k w_tk, where s_ik = exp(score_ik) / sum_j
  // exp(score_jk) is the node's share of readout channel k and w_tk = max(0, d o_t / d lse_k) is how
  // much channel k raises the target's output (|d o_t / d lse_k| when no channel raises it). A
  // target's shares sum to 1 over the nodes. Fills prediction [T] and shares [num_nodes, T]
  // (row-major). Throws perfsage::Error if the network has no readout channels.
  void explain(const GraphInput& graph, float* prediction, float* shares) const;

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
  ParamLayout layout_;
  std::vector<float> params_;
  Normalization norm_;
};

}  // namespace perfsage
