#include "perfsage/graph.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <utility>

#include "perfsage/error.h"
#include "perfsage/ops.h"

namespace perfsage {
namespace {

constexpr size_t kMaxNodes = 10'000'000;

std::string op_label(const Subgraph& sg, size_t s, size_t i) {
  const Operator& op = sg.operators[i];
  return "subgraph " + std::to_string(s) + ", operator " + std::to_string(i) + " (" +
         (op.custom_code.empty() ? op_name(op.builtin_code) : op.custom_code) + ")";
}

std::string tensor_label(const Subgraph& sg, int32_t t) {
  return "tensor " + std::to_string(t) + " '" + sg.tensors[static_cast<size_t>(t)].name + "'";
}

// Execution order must be a valid schedule: every tensor written once, before it is read.
void check_schedule(const Model& model, size_t s) {
  const Subgraph& sg = model.subgraphs[s];
  std::vector<int32_t> writer(sg.tensors.size(), -1);
  for (size_t i = 0; i < sg.operators.size(); ++i) {
    const Operator& op = sg.operators[i];
    for (int32_t t : op.outputs) {
      if (std::find(op.inputs.begin(), op.inputs.end(), t) != op.inputs.end())
        fail(model.source, op_label(sg, s, i) + ": reads its own output " + tensor_label(sg, t));
      if (writer[static_cast<size_t>(t)] >= 0)
        fail(model.source, op_label(sg, s, i) + ": writes " + tensor_label(sg, t) +
                               ", already written by operator " +
                               std::to_string(writer[static_cast<size_t>(t)]));
      writer[static_cast<size_t>(t)] = static_cast<int32_t>(i);
    }
  }
  for (size_t i = 0; i < sg.operators.size(); ++i)
    for (int32_t t : sg.operators[i].inputs)
      if (t >= 0 && writer[static_cast<size_t>(t)] > static_cast<int32_t>(i))
        fail(model.source, op_label(sg, s, i) + ": reads " + tensor_label(sg, t) +
                               " before operator " + std::to_string(writer[static_cast<size_t>(t)]) +
                               " writes it");
}

// Control flow must not recurse: the call graph from the entry subgraph is acyclic.
void check_no_recursion(const Model& model) {
  enum class Mark { kNew, kOpen, kDone };
  std::vector<Mark> mark(model.subgraphs.size(), Mark::kNew);
  std::function<void(size_t)> visit = [&](size_t s) {
    mark[s] = Mark::kOpen;
    const Subgraph& sg = model.subgraphs[s];
    for (size_t i = 0; i < sg.operators.size(); ++i)
      for (int32_t callee : sg.operators[i].options.called_subgraphs) {
        const auto c = static_cast<size_t>(callee);
        if (mark[c] == Mark::kOpen)
          fail(model.source, op_label(sg, s, i) + ": calls subgraph " + std::to_string(c) +
                                 ", which is already running (recursive control flow)");
        if (mark[c] == Mark::kNew) visit(c);
      }
    mark[s] = Mark::kDone;
  };
  visit(0);
}

}  // namespace

Graph::Graph(std::shared_ptr<const Model> model) : model_(std::move(model)) {
  if (!model_) throw std::invalid_argument("Graph: null model");
  build_nodes_and_edges();
  compute_features();
}

const Operator& Graph::op(int64_t node) const {
  const Node& n = nodes_.at(static_cast<size_t>(node));
  return model_->subgraphs[static_cast<size_t>(n.subgraph)].operators[static_cast<size_t>(n.op_index)];
}

const std::vector<Tensor>& Graph::tensors_of(int64_t node) const {
  return model_->subgraphs[static_cast<size_t>(nodes_.at(static_cast<size_t>(node)).subgraph)].tensors;
}

void Graph::build_nodes_and_edges() {
  const Model& model = *model_;
  if (model.subgraphs[0].operators.empty())
    fail(model.source, "subgraph 0 has no operators (empty graph)");
  check_no_recursion(model);
  for (size_t s = 0; s < model.subgraphs.size(); ++s) check_schedule(model, s);

  static const int32_t while_code = op_code("WHILE");
  // Every edge as (destination, source), with repeats: sorted and deduplicated at the end.
  std::vector<std::pair<int64_t, int64_t>> edges;
  edges.reserve(2 * model.subgraphs[0].operators.size());
  nodes_.reserve(model.subgraphs[0].operators.size());

  // Emits one copy of subgraph `s` run by node `caller`; returns the nodes producing its outputs.
  std::function<std::vector<int64_t>(size_t, int64_t, int32_t)> expand =
      [&](size_t s, int64_t caller, int32_t depth) -> std::vector<int64_t> {
    const Subgraph& sg = model.subgraphs[s];
    std::vector<int64_t> producer(sg.tensors.size(), -1);
    // Extra producers of a control-flow node's outputs: the callees' output producers.
    std::vector<std::vector<int64_t>> returned(sg.tensors.size());
    std::vector<char> is_input(sg.tensors.size(), 0);
    for (int32_t t : sg.inputs) is_input[static_cast<size_t>(t)] = 1;

    for (size_t i = 0; i < sg.operators.size(); ++i) {
      if (nodes_.size() >= kMaxNodes)
        fail(model.source, "control flow expands to more than " + std::to_string(kMaxNodes) +
                               " nodes");
      const Operator& op = sg.operators[i];
      const auto node = static_cast<int64_t>(nodes_.size());
      nodes_.push_back(Node{static_cast<int32_t>(s), static_cast<int32_t>(i), depth,
                            static_cast<int32_t>(caller)});
      for (int32_t t : op.inputs) {
        if (t < 0) continue;
        const auto ti = static_cast<size_t>(t);
        if (producer[ti] >= 0) {
          edges.emplace_back(node, producer[ti]);
          for (int64_t r : returned[ti]) edges.emplace_back(node, r);
        } else if (is_input[ti] && caller >= 0) {
          edges.emplace_back(node, caller);
        }
      }
      for (int32_t t : op.outputs) producer[static_cast<size_t>(t)] = node;

      std::vector<int64_t> returns;
      const auto& callees = op.options.called_subgraphs;
      for (size_t k = 0; k < callees.size(); ++k) {
        std::vector<int64_t> outs = expand(static_cast<size_t>(callees[k]), node, depth + 1);
        const bool is_condition = op.builtin_code == while_code && k == 0;  // WHILE runs cond first
        if (!is_condition) returns.insert(returns.end(), outs.begin(), outs.end());
      }
      for (int32_t t : op.outputs) returned[static_cast<size_t>(t)] = returns;
    }
    std::vector<int64_t> out_producers;
    for (int32_t t : sg.outputs) {
      const auto ti = static_cast<size_t>(t);
      if (producer[ti] >= 0) out_producers.push_back(producer[ti]);
      out_producers.insert(out_producers.end(), returned[ti].begin(), returned[ti].end());
    }
    return out_producers;
  };
  expand(0, -1, 0);

  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  const size_t E = edges.size();
  edge_index_.resize(2 * E);
  for (size_t e = 0; e < E; ++e) {
    const auto [v, u] = edges[e];
    if (u >= v)  // construction guarantees this; a bug would break features
      throw std::logic_error("perfsage: edge does not follow node order");
    edge_index_[e] = u;
    edge_index_[E + e] = v;
  }
}

}  // namespace perfsage
