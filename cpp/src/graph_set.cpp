// GraphInput views of Graphs, and the GraphSet that holds many graphs compactly for training.
#include "perfsage/graph_set.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/graph.h"
#include "slog.h"

namespace perfsage {

GraphInput graph_input(const Graph& graph) {
  GraphInput g;
  g.node_features = graph.node_features().data();
  g.node_feature_stride = static_cast<int64_t>(node_feature_names().size());
  g.op_types = graph.op_types().data();
  g.edges = graph.edge_index().data();
  g.graph_features = graph.graph_features().data();
  g.num_nodes = graph.num_nodes();
  g.num_edges = graph.num_edges();
  return g;
}

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
  const int64_t stride = g.node_feature_stride ? g.node_feature_stride : num_node_features;
  for (int64_t v = 0; v < g.num_nodes; ++v)
    for (int64_t f = 0; f < num_node_features; ++f) {
      const float x = g.node_features[v * stride + f];
      node_features_.push_back(g.slog_applied ? x : slog_float(x));  // as predict computes it
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
  g.node_feature_stride = num_node_features_;
  g.op_types = op_types_.data() + n0;
  g.edges = edges_.data() + 2 * e0;
  g.graph_features = graph_features_.data() + static_cast<size_t>(i) * num_graph_features_;
  g.slog_applied = true;
  if (static_cast<size_t>(i) < has_node_labels_.size() && has_node_labels_[static_cast<size_t>(i)])
    g.node_labels = node_labels_.data() + n0 * static_cast<size_t>(node_label_targets_);
  return g;
}

void GraphSet::set_node_labels(int64_t i, const float* labels, int32_t num_targets) {
  if (i < 0 || i >= size())
    throw Error("GraphSet: node labels for graph " + std::to_string(i) + ", the set has " +
                std::to_string(size()) + " graphs");
  if (num_targets < 1 || (node_label_targets_ != 0 && num_targets != node_label_targets_))
    throw Error("GraphSet: node labels of graph " + std::to_string(i) + " have " + std::to_string(num_targets) +
                " targets, " + (node_label_targets_ ? "earlier ones have " + std::to_string(node_label_targets_)
                                                    : std::string("expected at least 1")));
  node_label_targets_ = num_targets;
  // Sized for every graph held now; graphs added later grow it on their first labels.
  const size_t needed = static_cast<size_t>(node_offset_.back()) * static_cast<size_t>(num_targets);
  if (node_labels_.size() < needed) node_labels_.resize(needed, std::nanf(""));
  if (has_node_labels_.size() < static_cast<size_t>(size())) has_node_labels_.resize(static_cast<size_t>(size()), 0);
  const size_t n0 = static_cast<size_t>(node_offset_[i]) * static_cast<size_t>(num_targets);
  std::copy(labels, labels + num_nodes(i) * num_targets, node_labels_.begin() + static_cast<std::ptrdiff_t>(n0));
  has_node_labels_[static_cast<size_t>(i)] = 1;
}

int64_t GraphSet::memory_bytes() const {
  return static_cast<int64_t>(node_features_.capacity() * sizeof(float) +
                              op_types_.capacity() * sizeof(int32_t) +
                              edges_.capacity() * sizeof(int64_t) +
                              graph_features_.capacity() * sizeof(float) +
                              (node_offset_.capacity() + edge_offset_.capacity()) * sizeof(int64_t) +
                              node_labels_.capacity() * sizeof(float) + has_node_labels_.capacity());
}

void check_graph_input(const GraphInput& g, const SageConfig& c, const std::string& what) {
  if (g.num_nodes < 1) throw Error(what + ": the graph has no nodes");
  if (g.num_edges < 0) throw Error(what + ": negative edge count");
  if (g.node_feature_stride != 0 && g.node_feature_stride < c.num_node_features)
    throw Error(what + ": the graph has " + std::to_string(g.node_feature_stride) + " node features, the network reads " +
                std::to_string(c.num_node_features));
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

}  // namespace perfsage
