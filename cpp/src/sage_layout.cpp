// ParamLayout: the network's parameters, their shapes and their places in the flat vector.
#include "perfsage/sage_layout.h"

#include <string>
#include <utility>

#include "perfsage/error.h"
#include "perfsage/ops.h"

namespace perfsage {

ParamLayout::ParamLayout(const SageConfig& c) {
  add("embedding", c.vocabulary, c.embedding_dim, false, false);
  if (c.family_dim > 0) add("family_embedding", op_family_count(), c.family_dim, false, false);
  const int64_t input = c.input_width();
  int64_t width = input;
  for (int32_t k = 0; k < c.layers; ++k) {
    const std::string p = "sage" + std::to_string(k) + ".";
    add(p + "w_self", width, c.hidden, false, true);
    if (c.uses_in()) add(p + "w_in", width, c.hidden, false, true);
    if (c.uses_out()) add(p + "w_out", width, c.hidden, false, true);
    add(p + "bias", 1, c.hidden, true, false);
    if (c.layer_norm) {
      add(p + "ln_gain", 1, c.hidden, true, false);
      add(p + "ln_bias", 1, c.hidden, true, false);
    }
    width = c.hidden;
  }
  if (c.additive()) {
    // The per-node head reads [h_K | h_0 | graph features]; the graph adds a learnt constant.
    add("readout.constant", 1, c.num_targets, true, false);
    width = width + input + c.node_context_width();
  } else {
    if (c.readout_channels > 0) {
      add("readout.weight", width, c.readout_channels, false, true);
      add("readout.bias", 1, c.readout_channels, true, false);
    }
    width = 3 * width + c.readout_channels + c.num_graph_features;
  }
  for (int32_t j = 0; j < c.head_layers; ++j) {
    const int64_t out = j + 1 < c.head_layers ? c.head_hidden : c.num_targets;
    const std::string p = "head" + std::to_string(j) + ".";
    add(p + "weight", width, out, false, true);
    add(p + "bias", 1, out, true, false);
    width = out;
  }
}

void ParamLayout::add(const std::string& name, int64_t rows, int64_t cols, bool is_vector,
                      bool decays) {
  ParamInfo info;
  info.name = name;
  info.rows = rows;
  info.cols = cols;
  info.offset = size_;
  info.is_vector = is_vector;
  info.decays = decays;
  size_ += rows * cols;
  params_.push_back(std::move(info));
}

const ParamInfo* ParamLayout::find(const std::string& name) const {
  for (const ParamInfo& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

const ParamInfo& ParamLayout::at(const std::string& name) const {
  const ParamInfo* p = find(name);
  if (!p) throw Error("no parameter named '" + name + "' in this network");
  return *p;
}

}  // namespace perfsage
