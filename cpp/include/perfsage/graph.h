// The graph perfsage learns from: operators as nodes, tensors as edges, features on both levels.
//
// Representation
// - Nodes are operators. The entry subgraph's operators come first-to-last in execution order.
//   A control-flow operator (IF, WHILE, CALL_ONCE) is followed directly by a fresh copy of every
//   subgraph it runs (WHILE: cond then body; IF: then then else), recursively, so each node belongs
//   to exactly one call site and node order stays a topological order. `Node::subgraph` and
//   `Node::op_index` say which operator of the Model a node is; `call_depth` counts nesting.
//   A WHILE body is represented once: the trip count is not static.
// - Edges follow tensors: one edge from the node producing a tensor to each node that reads it;
//   several tensors between the same pair of nodes give one edge. A control-flow node also has an
//   edge to each node of a called subgraph that reads that subgraph's inputs, and the nodes producing
//   a called subgraph's outputs (not a WHILE condition's) have edges to the readers of the
//   control-flow node's outputs. Every edge goes from a lower to a higher node index.
// - Constant tensors (weights, biases, constant shapes) are not nodes: they are attributes of the
//   operators reading them (parameter counts and bytes, weight dtype, kernel size).
// - Graph inputs and outputs are the entry subgraph's input and output tensors.
// - Features are computed once, at construction, and are deterministic (see features.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "perfsage/model.h"

namespace perfsage {

struct Node {
  int32_t subgraph = 0;
  int32_t op_index = 0;
  int32_t call_depth = 0;
  int32_t caller = -1;  // node index of the control-flow operator that runs this copy; -1 at depth 0
};

// Exact per-node costs (the float feature matrix rounds large counts).
struct NodeCost {
  int64_t macs = 0;
  int64_t param_count = 0;
  int64_t param_bytes = 0;
  int64_t input_activation_bytes = 0;
  int64_t output_activation_bytes = 0;
};

// Exact graph totals.
struct GraphTotals {
  int64_t macs = 0;
  int64_t param_count = 0;        // each constant tensor counted once, however many readers
  int64_t param_bytes = 0;
  int64_t activation_bytes = 0;   // sum over non-constant tensors of the entry subgraph and bodies
  int64_t peak_activation_bytes = 0;
  int64_t input_bytes = 0;
  int64_t output_bytes = 0;
  int64_t longest_path = 0;       // nodes on the longest directed path
};

class Graph {
 public:
  // Builds the IR and its features; throws perfsage::Error if the model is not a valid graph
  // (no operators, an operator reading its own or a later operator's output, a tensor written
  // twice, control flow calling a missing subgraph or itself, ...).
  explicit Graph(std::shared_ptr<const Model> model);

  const Model& model() const { return *model_; }
  std::shared_ptr<const Model> model_ptr() const { return model_; }
  const std::string& source() const { return model_->source; }

  int64_t num_nodes() const { return static_cast<int64_t>(nodes_.size()); }
  int64_t num_edges() const { return static_cast<int64_t>(edge_index_.size() / 2); }
  const std::vector<Node>& nodes() const { return nodes_; }
  const Operator& op(int64_t node) const;
  const std::vector<Tensor>& tensors_of(int64_t node) const;

  // Row-major [2, num_edges] (PyG's edge_index): row 0 sources, row 1 destinations; messages flow
  // from source to destination. Sorted by destination, then source.
  const std::vector<int64_t>& edge_index() const { return edge_index_; }

  const std::vector<NodeCost>& node_costs() const { return costs_; }
  const GraphTotals& totals() const { return totals_; }

  // Row-major [num_nodes, node_feature_names().size()].
  const std::vector<float>& node_features() const { return node_features_; }
  // [graph_feature_names().size()].
  const std::vector<float>& graph_features() const { return graph_features_; }
  // Op-type index (= builtin code) per node.
  const std::vector<int32_t>& op_types() const { return op_types_; }

 private:
  void build_nodes_and_edges();
  void compute_features();

  std::shared_ptr<const Model> model_;
  std::vector<Node> nodes_;
  std::vector<int64_t> edge_index_;
  std::vector<NodeCost> costs_;
  GraphTotals totals_;
  std::vector<float> node_features_;
  std::vector<float> graph_features_;
  std::vector<int32_t> op_types_;

};

// Reads bytes or a file into a Graph. `source` names the bytes in error messages.
std::shared_ptr<const Graph> load_graph(const uint8_t* data, size_t size, const std::string& source);
std::shared_ptr<const Graph> load_graph_file(const std::string& path);

// One item of a batch load: either a path, or bytes the caller keeps alive during the call.
struct LoadItem {
  std::string path;               // read from disk when `data` is null
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::string label;              // source name for bytes items
};

struct LoadResult {
  std::shared_ptr<const Graph> graph;  // null on error
  std::string error;                    // the perfsage::Error message
};

// Loads every item on `threads` worker threads (0: all hardware threads). Input errors are reported
// per item; anything else (out of memory) is rethrown on the calling thread after all workers join.
std::vector<LoadResult> load_many(const std::vector<LoadItem>& items, int threads);

}  // namespace perfsage
