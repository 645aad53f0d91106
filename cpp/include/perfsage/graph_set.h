// Graphs as the network reads them: one graph as views of arrays owned elsewhere (GraphInput), and
// many graphs held compactly for training (GraphSet).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "perfsage/sage_config.h"

namespace perfsage {

class Graph;

// One graph as the network reads it: views of arrays owned elsewhere.
struct GraphInput {
  const float* node_features = nullptr;  // [num_nodes, F], row-major: F columns of each stride-long row
  // Floats from one node's row to the next (0: the network's F). A network reads the first F
  // columns, so a network of an older feature schema reads a newer schema's rows (features.h).
  int64_t node_feature_stride = 0;
  const int32_t* op_types = nullptr;     // [num_nodes]
  const int64_t* edges = nullptr;        // [2, num_edges]: sources, then destinations
  const float* graph_features = nullptr; // [G]
  int64_t num_nodes = 0;
  int64_t num_edges = 0;
  bool slog_applied = false;             // features already hold slog(value) (GraphSet does this)
  // [num_nodes, T] per-operator labels (NaN: missing), or null; the additive readout learns from
  // them (SageConfig::node_loss_weight), prediction ignores them.
  const float* node_labels = nullptr;
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
  // Per-operator labels of graph i ([num_nodes(i), num_targets] row-major, NaN = missing), which
  // at(i) then hands to the network; every call names the same number of targets. Throws naming
  // the graph if i is out of range or the target count differs.
  void set_node_labels(int64_t i, const float* labels, int32_t num_targets);
  int32_t node_label_targets() const { return node_label_targets_; }  // 0: no graph has any
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
  int32_t node_label_targets_ = 0;
  std::vector<float> node_labels_;        // [total nodes, node_label_targets_], once any is set
  std::vector<char> has_node_labels_;     // per graph
};

// Checks one graph against the configuration (feature counts, op types in the vocabulary, edge
// endpoints in range); throws perfsage::Error naming `what` (e.g. "graph 3").
void check_graph_input(const GraphInput& g, const SageConfig& config, const std::string& what);

}  // namespace perfsage
