// The GraphSAGE network's configuration: its choices (enums) and sizes, described once as a field
// table (see fields.h) that the checkpoint, the binding and Python's defaults all read.
#pragma once

#include <cstdint>
#include <string>

#include "perfsage/fields.h"

namespace perfsage {

enum class Aggregator { kMean, kSum, kMax };
enum class Direction { kIn, kOut, kBoth };
enum class LossKind { kMape, kLogMse };
enum class Readout { kLse, kAdditive };

const char* to_string(Aggregator a);
const char* to_string(Direction d);
const char* to_string(LossKind l);
const char* to_string(Readout r);
// Parse the names above ("mean", "both", "mape", "log_mse"); throw perfsage::Error naming `field`.
Aggregator parse_aggregator(const std::string& name, const std::string& field = "aggregator");
Direction parse_direction(const std::string& name, const std::string& field = "direction");
LossKind parse_loss(const std::string& name, const std::string& field = "loss");
Readout parse_readout(const std::string& name, const std::string& field = "readout");
// The parser of each enum chosen by its type, for code driven by a field table.
inline Aggregator parse_enum(const std::string& name, const std::string& field, Aggregator) {
  return parse_aggregator(name, field);
}
inline Direction parse_enum(const std::string& name, const std::string& field, Direction) {
  return parse_direction(name, field);
}
inline LossKind parse_enum(const std::string& name, const std::string& field, LossKind) {
  return parse_loss(name, field);
}
inline Readout parse_enum(const std::string& name, const std::string& field, Readout) {
  return parse_readout(name, field);
}

// X(type, name, default, role, doc); the order is the checkpoint header's. Fields after `loss` are
// new in checkpoint format 2; their defaults are format 1's behaviour (see checkpoint.cpp).
#define PERFSAGE_SAGE_CONFIG_FIELDS(X)                                                              \
  X(int32_t, num_node_features, 0, kDerived,                                                       \
    "Node feature columns (0: the current feature schema's).")                                     \
  X(int32_t, num_graph_features, 0, kDerived,                                                      \
    "Graph feature columns (0: the current feature schema's).")                                    \
  X(int32_t, vocabulary, 0, kDerived, "Operator types (0: the current vocabulary).")               \
  X(int32_t, embedding_dim, 16, kHyperparameter, "Width of the learnt op-type embedding.")         \
  X(int32_t, hidden, 64, kHyperparameter, "Width of every GraphSAGE layer.")                       \
  X(int32_t, layers, 3, kHyperparameter, "Number of GraphSAGE layers.")                            \
  X(Aggregator, aggregator, Aggregator::kMean, kHyperparameter,                                    \
    "Neighbour aggregation: 'mean', 'sum' or 'max'.")                                              \
  X(Direction, direction, Direction::kBoth, kHyperparameter,                                       \
    "Messages from predecessors ('in'), successors ('out') or 'both'.")                            \
  X(bool, layer_norm, false, kHyperparameter,                                                      \
    "Layer norm after each layer (off: it normalises away operator cost magnitudes).")             \
  X(bool, residual, true, kHyperparameter, "Residual connections where widths match.")             \
  X(int32_t, readout_channels, 8, kHyperparameter, "Log-sum-exp readout channels (0: none).")      \
  X(int32_t, head_layers, 2, kHyperparameter, "Linear layers in the head.")                        \
  X(int32_t, head_hidden, 64, kHyperparameter, "Width of the head's hidden layers.")               \
  X(int32_t, num_targets, 1, kDerived, "Outputs, one per target.")                                 \
  X(LossKind, loss, LossKind::kMape, kHyperparameter, "Training loss: 'mape' or 'log_mse'.")      \
  X(Readout, readout, Readout::kLse, kHyperparameter,                                              \
    "'lse': pooled readout into a graph-level head; 'additive': every operator gets a cost from "  \
    "a per-node head and the graph is their sum (or maximum, see max_targets).")                   \
  X(int32_t, max_targets, 0, kDerived,                                                             \
    "Additive readout: bit t set makes target t the maximum of the nodes' values (peak memory) "   \
    "instead of their sum.")                                                                       \
  X(int32_t, family_dim, 0, kHyperparameter,                                                       \
    "Width of the learnt op-family embedding (0: none); with it, op embeddings start at zero, so " \
    "an op type absent from training is priced as a member of its family.")                        \
  X(double, node_loss_weight, 1.0, kHyperparameter,                                                \
    "Additive readout: weight of the per-operator loss where per-operator labels exist.")          \
  X(double, node_log_weight, 0.0, kHyperparameter,                                                 \
    "Additive readout: weight of a second per-operator loss, the mean |log cost - log label| over "  \
    "the operators with a positive label (every operator's relative error counts, not only the "   \
    "large ones).")                                                                               \
  X(bool, node_graph_context, true, kHyperparameter,                                               \
    "Additive readout: each operator's head also reads the graph features (totals, op counts).")

struct SageConfig {
  PERFSAGE_DECLARE_FIELDS(SageConfig, PERFSAGE_SAGE_CONFIG_FIELDS)

  // Fills zero sizes from the current feature schema, then checks every field; throws
  // perfsage::Error naming the field and its value.
  void resolve();
  bool uses_in() const { return direction != Direction::kOut; }
  bool uses_out() const { return direction != Direction::kIn; }
  bool additive() const { return readout == Readout::kAdditive; }
  bool is_max_target(int64_t t) const { return t < 31 && ((max_targets >> t) & 1) != 0; }
  // Columns of a node's input h0: features, op embedding, family embedding.
  int64_t input_width() const { return int64_t{num_node_features} + embedding_dim + family_dim; }
  // Graph-feature columns the additive readout's per-node head reads.
  int64_t node_context_width() const { return node_graph_context ? num_graph_features : 0; }
};

}  // namespace perfsage
