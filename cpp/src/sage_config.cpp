// SageConfig: the names of its choices and the checks of its sizes.
#include "perfsage/sage_config.h"

#include <cmath>
#include <string>

#include "perfsage/error.h"
#include "perfsage/features.h"
#include "perfsage/ops.h"

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
const char* to_string(Readout r) {
  switch (r) {
    case Readout::kLse: return "lse";
    case Readout::kAdditive: return "additive";
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
Readout parse_readout(const std::string& name, const std::string& field) {
  static const Readout values[] = {Readout::kLse, Readout::kAdditive};
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
  check("family_dim", family_dim, 0, 4096);
  if (max_targets < 0 || (num_targets < 31 && (max_targets >> num_targets) != 0))
    throw Error("max_targets " + std::to_string(max_targets) + " names targets beyond the " +
                std::to_string(num_targets) + " outputs");
  if (max_targets != 0 && !additive())
    throw Error("max_targets is for the additive readout only (readout is '" + std::string(to_string(readout)) + "')");
  if (!(node_loss_weight >= 0) || !std::isfinite(node_loss_weight))
    throw Error("node_loss_weight must be >= 0, got " + std::to_string(node_loss_weight));
  if (!(node_log_weight >= 0) || !std::isfinite(node_log_weight))
    throw Error("node_log_weight must be >= 0, got " + std::to_string(node_log_weight));
}

}  // namespace perfsage
