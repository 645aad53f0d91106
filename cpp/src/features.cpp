#include "perfsage/features.h"

#include <algorithm>
#include <array>
#include <unordered_map>
#include <utility>

#include "perfsage/graph.h"
#include "perfsage/ops.h"

namespace perfsage {
namespace {

// How an operator's MACs follow from its shapes (see features.h).
enum class CostKind {
  kNone, kConv, kDepthwise, kTransposeConv, kConv3d, kConv3dTranspose, kFullyConnected,
  kBatchMatmul, kRecurrent, kPool, kReduce, kElementwise, kBilinear,
};

const std::vector<std::pair<CostKind, std::vector<const char*>>>& cost_table() {
  static const std::vector<std::pair<CostKind, std::vector<const char*>>> table = {
      {CostKind::kConv, {"CONV_2D"}},
      {CostKind::kDepthwise, {"DEPTHWISE_CONV_2D"}},
      {CostKind::kTransposeConv, {"TRANSPOSE_CONV"}},
      {CostKind::kConv3d, {"CONV_3D"}},
      {CostKind::kConv3dTranspose, {"CONV_3D_TRANSPOSE"}},
      {CostKind::kFullyConnected, {"FULLY_CONNECTED"}},
      {CostKind::kBatchMatmul, {"BATCH_MATMUL"}},
      {CostKind::kRecurrent,
       {"LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "RNN",
        "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN", "SVDF"}},
      {CostKind::kPool, {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"}},
      {CostKind::kReduce,
       {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL",
        "ARG_MAX", "ARG_MIN"}},
      {CostKind::kBilinear, {"RESIZE_BILINEAR"}},
      {CostKind::kElementwise,
       {"ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "POW", "FLOOR_DIV",
        "FLOOR_MOD", "ADD_N", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH",
        "HARD_SWISH", "LEAKY_RELU", "PRELU", "ELU", "GELU", "EXP", "LOG", "SQRT", "RSQRT", "ABS",
        "NEG", "SQUARE", "SIN", "COS", "FLOOR", "CEIL", "ROUND", "SIGN", "QUANTIZE", "DEQUANTIZE",
        "CAST", "SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION",
        "LESS", "GREATER", "EQUAL", "NOT_EQUAL", "LESS_EQUAL", "GREATER_EQUAL", "LOGICAL_AND",
        "LOGICAL_OR", "LOGICAL_NOT", "SELECT", "SELECT_V2", "CUMSUM", "ATAN2"}},
  };
  return table;
}

CostKind cost_kind(int32_t code) {
  static const std::vector<CostKind> kinds = [] {
    std::vector<CostKind> out(static_cast<size_t>(op_vocabulary_size()), CostKind::kNone);
    for (const auto& [kind, names] : cost_table())
      for (const char* name : names) {
        const int32_t c = op_code(name);
        if (c >= 0) out[static_cast<size_t>(c)] = kind;
      }
    return out;
  }();
  return kinds[static_cast<size_t>(code)];
}

// Node feature columns, in order; the enum indexes the row.
#define PERFSAGE_NODE_COLUMNS(X)                                                               \
  X(op_type) X(is_custom)                                                                      \
  X(in_n) X(in_h) X(in_w) X(in_c) X(in_rank)                                                   \
  X(out_n) X(out_h) X(out_w) X(out_c) X(out_rank)                                              \
  X(num_activation_inputs) X(num_constant_inputs) X(num_outputs)                               \
  X(in_bits) X(out_bits) X(weight_bits) X(is_quantized) X(per_channel_weights)                 \
  X(kernel_h) X(kernel_w) X(stride_h) X(stride_w) X(dilation_h) X(dilation_w)                  \
  X(padding_same) X(padding_valid) X(fused_activation) X(depth_multiplier) X(axis)             \
  X(keep_dims) X(block_size) X(adj_x) X(adj_y) X(align_corners) X(half_pixel_centers)          \
  X(num_splits) X(macs) X(param_count) X(param_bytes) X(input_activation_bytes)                \
  X(output_activation_bytes) X(subgraph) X(call_depth)                                        \
  X(weight_zero_fraction) X(weight_log2_magnitude)                                              \
  X(in_c_pad8) X(in_c_pad16) X(out_c_pad8) X(out_c_pad16) X(out_w_pad8)                       \
  X(padded_macs) X(padded_in_elements) X(padded_out_elements)

#define PERFSAGE_GRAPH_COLUMNS(X)                                                              \
  X(num_nodes) X(num_edges) X(num_subgraphs) X(num_tensors) X(num_constant_tensors)            \
  X(num_custom_ops) X(total_macs) X(total_params) X(total_param_bytes)                         \
  X(total_activation_bytes) X(peak_activation_bytes) X(input_bytes) X(output_bytes)            \
  X(longest_path) X(max_in_degree) X(max_out_degree) X(max_call_depth)

#define PERFSAGE_ENUM(name) name,
#define PERFSAGE_NAME(name) #name,
enum NodeColumn { PERFSAGE_NODE_COLUMNS(PERFSAGE_ENUM) kNumNodeColumns };
enum GraphColumn { PERFSAGE_GRAPH_COLUMNS(PERFSAGE_ENUM) kNumFixedGraphColumns };

// Shape padded to rank 4 with leading 1s; higher ranks fold leading dimensions into the first.
template <typename Shape>
std::array<int64_t, 4> rank4(const Shape& shape) {
  std::array<int64_t, 4> out{1, 1, 1, 1};
  const size_t rank = shape.size();
  if (rank <= 4) {
    for (size_t i = 0; i < rank; ++i) out[4 - rank + i] = shape[i];
    return out;
  }
  for (size_t i = 0; i + 3 < rank; ++i) out[0] *= shape[i];
  for (size_t i = 1; i < 4; ++i) out[i] = shape[rank - 4 + i];
  return out;
}

// x rounded up to a multiple of m.
int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// How much a dimension grows when rounded up to a multiple of m (1 when it is one already; 0 for 0).
double pad_ratio(int64_t x, int64_t m) {
  return x > 0 ? static_cast<double>(round_up(x, m)) / static_cast<double>(x) : 0.0;
}

// Whether the op's MACs reduce over its input's last dimension (so its padding multiplies them).
bool reduces_over_input_channels(CostKind kind) {
  switch (kind) {
    case CostKind::kConv: case CostKind::kTransposeConv: case CostKind::kConv3d: case CostKind::kConv3dTranspose:
    case CostKind::kFullyConnected: case CostKind::kBatchMatmul: case CostKind::kRecurrent:
      return true;
    default:
      return false;
  }
}

template <typename List>
const Tensor* tensor_at(const std::vector<Tensor>& tensors, const List& list, size_t i) {
  return i < list.size() && list[i] >= 0 ? &tensors[static_cast<size_t>(list[i])] : nullptr;
}

// The options' axis (concatenation, gather, pack, unpack) counted from the front: a negative axis
// counts from the end of the tensor it indexes, the output for PACK (one dimension more than its
// inputs) and CONCATENATION, the first input for GATHER and UNPACK. Converters write -1 where
// perfsage's writer writes rank - 1, and both spellings of one model must give one feature value.
double axis_value(const Operator& op, const std::vector<Tensor>& tensors, const Tensor* out) {
  const int32_t axis = op.options.axis;
  if (axis >= 0) return axis;
  static const int32_t concatenation = op_code("CONCATENATION"), pack = op_code("PACK");
  const bool of_output = op.builtin_code == concatenation || op.builtin_code == pack;
  const Tensor* indexed = of_output ? out : tensor_at(tensors, op.inputs, 0);
  if (!indexed || indexed->shape.empty()) return axis;
  return axis + static_cast<double>(indexed->shape.size());
}

int64_t dim_from_end(const Tensor& t, size_t k) {
  return t.shape.size() >= k ? t.shape[t.shape.size() - k] : 1;
}

int64_t macs_of(const Operator& op, const std::vector<Tensor>& tensors, const Tensor* in,
                const Tensor* out) {
  const int64_t out_elems = out ? out->num_elements() : 0;
  const int64_t in_elems = in ? in->num_elements() : 0;
  const Tensor* weights = tensor_at(tensors, op.inputs, 1);
  auto filter_per_output = [&](size_t out_axis) -> int64_t {  // filter elements per output channel
    if (!weights || weights->shape.size() <= out_axis || weights->shape[out_axis] == 0) return 0;
    return weights->num_elements() / weights->shape[out_axis];
  };
  switch (cost_kind(op.builtin_code)) {
    case CostKind::kConv: return out_elems * filter_per_output(0);           // [O, KH, KW, I]
    case CostKind::kDepthwise: return out_elems * filter_per_output(3);      // [1, KH, KW, O]
    case CostKind::kConv3d: return out_elems * filter_per_output(4);         // [KD, KH, KW, I, O]
    case CostKind::kTransposeConv: {                                         // [O, KH, KW, I]
      const Tensor* x = tensor_at(tensors, op.inputs, 2);
      return x ? x->num_elements() * filter_per_output(3) : 0;
    }
    case CostKind::kConv3dTranspose: {                                       // [KD, KH, KW, O, I]
      const Tensor* x = tensor_at(tensors, op.inputs, 2);
      return x ? x->num_elements() * filter_per_output(4) : 0;
    }
    case CostKind::kFullyConnected:                                          // [O, I]
      return weights && weights->shape.size() == 2 ? in_elems * weights->shape[0] : 0;
    case CostKind::kBatchMatmul: {
      const Tensor* a = tensor_at(tensors, op.inputs, 0);
      return a ? out_elems * dim_from_end(*a, op.options.adj_x ? 2 : 1) : 0;
    }
    case CostKind::kRecurrent: {
      const Tensor* x = tensor_at(tensors, op.inputs, 0);
      if (!x || x->shape.empty() || x->shape.back() == 0) return 0;
      const int64_t rows = x->num_elements() / x->shape.back();  // time steps x batch
      int64_t per_row = 0;
      for (size_t i = 1; i < op.inputs.size(); ++i) {
        const Tensor* w = tensor_at(tensors, op.inputs, i);
        if (w && w->is_constant && w->shape.size() == 2) per_row += w->num_elements();
      }
      return rows * per_row;
    }
    case CostKind::kPool:
      return out_elems * std::max(op.options.filter_h, 1) * std::max(op.options.filter_w, 1);
    case CostKind::kReduce: return in_elems;
    case CostKind::kElementwise: return out_elems;
    case CostKind::kBilinear: return 4 * out_elems;
    case CostKind::kNone: return 0;
  }
  return 0;
}

// The ops whose constant integer operands are weights the weight columns describe.
bool has_weights(CostKind kind) {
  switch (kind) {
    case CostKind::kConv: case CostKind::kDepthwise: case CostKind::kTransposeConv: case CostKind::kConv3d:
    case CostKind::kConv3dTranspose: case CostKind::kFullyConnected: case CostKind::kBatchMatmul:
    case CostKind::kRecurrent:
      return true;
    default:
      return false;
  }
}

// The summary of all of an op's constant integer operands together (biases are int32 or int64,
// so only weights take part).
ValueSummary weight_values(const Operator& op, const std::vector<Tensor>& tensors) {
  ValueSummary total;
  if (!has_weights(cost_kind(op.builtin_code))) return total;
  for (int32_t t : op.inputs) {
    if (t < 0) continue;
    const ValueSummary& s = tensors[static_cast<size_t>(t)].values;
    total.count += s.count;
    total.zeros += s.zeros;
    total.log2_magnitude_sum += s.log2_magnitude_sum;
  }
  return total;
}

// Peak bytes of non-constant tensors alive at once while a subgraph runs in order; a control-flow
// operator adds the peak of the largest subgraph it calls.
int64_t subgraph_peak(const Model& model, size_t s, std::vector<int64_t>& memo) {
  if (memo[s] >= 0) return memo[s];
  const Subgraph& sg = model.subgraphs[s];
  const size_t steps = std::max<size_t>(sg.operators.size(), 1);
  const size_t n = sg.tensors.size();
  std::vector<int64_t> first(n, static_cast<int64_t>(steps)), last(n, -1);
  auto touch = [&](int32_t t, int64_t step) {
    if (t < 0) return;
    first[static_cast<size_t>(t)] = std::min(first[static_cast<size_t>(t)], step);
    last[static_cast<size_t>(t)] = std::max(last[static_cast<size_t>(t)], step);
  };
  const auto end = static_cast<int64_t>(steps) - 1;
  for (int32_t t : sg.inputs) { touch(t, 0); }
  for (int32_t t : sg.outputs) { touch(t, end); }
  for (size_t t = 0; t < n; ++t)
    if (sg.tensors[t].is_variable) { touch(static_cast<int32_t>(t), 0); touch(static_cast<int32_t>(t), end); }
  for (size_t i = 0; i < sg.operators.size(); ++i) {
    for (int32_t t : sg.operators[i].inputs) touch(t, static_cast<int64_t>(i));
    for (int32_t t : sg.operators[i].outputs) touch(t, static_cast<int64_t>(i));
  }
  std::vector<int64_t> delta(steps + 1, 0);
  for (size_t t = 0; t < n; ++t) {
    if (last[t] < 0 || sg.tensors[t].is_constant) continue;
    delta[static_cast<size_t>(first[t])] += sg.tensors[t].num_bytes();
    delta[static_cast<size_t>(last[t]) + 1] -= sg.tensors[t].num_bytes();
  }
  int64_t live = 0, peak = 0;
  for (size_t i = 0; i < steps; ++i) {
    live += delta[i];
    int64_t callee_peak = 0;
    if (i < sg.operators.size())
      for (int32_t c : sg.operators[i].options.called_subgraphs)
        callee_peak = std::max(callee_peak, subgraph_peak(model, static_cast<size_t>(c), memo));
    peak = std::max(peak, live + callee_peak);
  }
  return memo[s] = peak;
}

}  // namespace

const std::vector<std::string>& node_feature_names() {
  static const std::vector<std::string> names = {PERFSAGE_NODE_COLUMNS(PERFSAGE_NAME)};
  return names;
}

int32_t node_feature_count(int32_t schema) {
  switch (schema) {
    case 1: return weight_zero_fraction;  // everything before the weight columns
    case 2: return in_c_pad8;  // everything before the alignment columns
    case 3: return kNumNodeColumns;
    default: return -1;
  }
}

const std::vector<std::string>& graph_feature_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out = {PERFSAGE_GRAPH_COLUMNS(PERFSAGE_NAME)};
    for (const std::string& op : op_names()) out.push_back("count_" + op);
    return out;
  }();
  return names;
}

void Graph::compute_features() {
  const Model& model = *model_;
  const size_t num_nodes = nodes_.size();
  const size_t F = kNumNodeColumns;
  node_features_.assign(num_nodes * F, 0.0f);
  costs_.assign(num_nodes, NodeCost{});
  op_types_.assign(num_nodes, 0);
  graph_features_.assign(graph_feature_names().size(), 0.0f);
  float* counts = graph_features_.data() + kNumFixedGraphColumns;

  // (subgraph, tensor) pairs already counted in the totals, so shared tensors count once.
  std::vector<std::vector<char>> counted(model.subgraphs.size());
  for (size_t s = 0; s < model.subgraphs.size(); ++s)
    counted[s].assign(model.subgraphs[s].tensors.size(), 0);
  int64_t num_constant_tensors = 0, num_tensors = 0, num_custom = 0, max_depth = 0;

  for (size_t v = 0; v < num_nodes; ++v) {
    const Node& node = nodes_[v];
    const Operator& op = this->op(static_cast<int64_t>(v));
    const std::vector<Tensor>& tensors = tensors_of(static_cast<int64_t>(v));
    float* row = node_features_.data() + v * F;
    NodeCost& cost = costs_[v];

    const Tensor* in = nullptr;
    const Tensor* weights = nullptr;
    int n_act = 0, n_const = 0;
    for (int32_t t : op.inputs) {
      if (t < 0) continue;
      const Tensor& x = tensors[static_cast<size_t>(t)];
      if (x.is_constant) {
        ++n_const;
        cost.param_count += x.num_elements();
        cost.param_bytes += x.num_bytes();
        if (!weights || x.num_elements() > weights->num_elements()) weights = &x;
      } else {
        ++n_act;
        cost.input_activation_bytes += x.num_bytes();
        if (!in) in = &x;
      }
    }
    const Tensor* out = tensor_at(tensors, op.outputs, 0);
    for (int32_t t : op.outputs) cost.output_activation_bytes += tensors[static_cast<size_t>(t)].num_bytes();
    cost.macs = macs_of(op, tensors, in, out);

    auto& seen = counted[static_cast<size_t>(node.subgraph)];
    auto count_tensor = [&](int32_t t) {
      if (t < 0 || seen[static_cast<size_t>(t)]) return;
      seen[static_cast<size_t>(t)] = 1;
      const Tensor& x = tensors[static_cast<size_t>(t)];
      ++num_tensors;
      if (x.is_constant) {
        ++num_constant_tensors;
        totals_.param_count += x.num_elements();
        totals_.param_bytes += x.num_bytes();
      } else {
        totals_.activation_bytes += x.num_bytes();
      }
    };
    for (int32_t t : op.inputs) count_tensor(t);
    for (int32_t t : op.outputs) count_tensor(t);
    totals_.macs += cost.macs;

    const bool custom = op.builtin_code == kCustomOpCode;
    num_custom += custom;
    max_depth = std::max<int64_t>(max_depth, node.call_depth);
    op_types_[v] = op.builtin_code;
    counts[op.builtin_code] += 1.0f;

    // For kernels, use the filter's spatial dims where the op has a filter; pooling has options.
    int64_t kernel_h = op.options.filter_h, kernel_w = op.options.filter_w;
    const CostKind kind = cost_kind(op.builtin_code);
    const Tensor* filter = tensor_at(tensors, op.inputs, 1);
    if ((kind == CostKind::kConv || kind == CostKind::kDepthwise || kind == CostKind::kTransposeConv ||
         kind == CostKind::kConv3d || kind == CostKind::kConv3dTranspose) &&
        filter && filter->shape.size() >= 4) {
      kernel_h = filter->shape[1];
      kernel_w = filter->shape[2];
    }
    const auto in4 = in ? rank4(in->shape) : std::array<int64_t, 4>{0, 0, 0, 0};
    const auto out4 = out ? rank4(out->shape) : std::array<int64_t, 4>{0, 0, 0, 0};
    const OperatorOptions& o = op.options;
    auto set = [&](NodeColumn c, double value) { row[c] = static_cast<float>(value); };
    set(op_type, op.builtin_code);
    set(is_custom, custom);
    set(in_n, in4[0]); set(in_h, in4[1]); set(in_w, in4[2]); set(in_c, in4[3]);
    set(in_rank, in ? static_cast<double>(in->shape.size()) : 0);
    set(out_n, out4[0]); set(out_h, out4[1]); set(out_w, out4[2]); set(out_c, out4[3]);
    set(out_rank, out ? static_cast<double>(out->shape.size()) : 0);
    set(num_activation_inputs, n_act);
    set(num_constant_inputs, n_const);
    set(num_outputs, static_cast<double>(op.outputs.size()));
    set(in_bits, in ? dtype_bits(in->dtype) : 0);
    set(out_bits, out ? dtype_bits(out->dtype) : 0);
    set(weight_bits, weights ? dtype_bits(weights->dtype) : 0);
    set(is_quantized, out && !out->quantization.scale.empty());
    set(per_channel_weights, weights && weights->quantization.per_channel());
    set(NodeColumn::kernel_h, kernel_h); set(NodeColumn::kernel_w, kernel_w);
    set(stride_h, o.stride_h); set(stride_w, o.stride_w);
    set(dilation_h, o.dilation_h); set(dilation_w, o.dilation_w);
    set(padding_same, o.padding == 0);
    set(padding_valid, o.padding == 1);
    set(fused_activation, o.fused_activation);
    set(depth_multiplier, o.depth_multiplier);
    set(axis, axis_value(op, tensors, out));
    set(keep_dims, o.keep_dims);
    set(block_size, o.block_size);
    set(adj_x, o.adj_x); set(adj_y, o.adj_y);
    set(align_corners, o.align_corners); set(half_pixel_centers, o.half_pixel_centers);
    set(num_splits, o.num_splits);
    set(macs, static_cast<double>(cost.macs));
    set(param_count, static_cast<double>(cost.param_count));
    set(param_bytes, static_cast<double>(cost.param_bytes));
    set(input_activation_bytes, static_cast<double>(cost.input_activation_bytes));
    set(output_activation_bytes, static_cast<double>(cost.output_activation_bytes));
    set(NodeColumn::subgraph, node.subgraph);
    set(call_depth, node.call_depth);
    const ValueSummary w = weight_values(op, tensors);
    if (w.count > 0) {
      set(weight_zero_fraction, static_cast<double>(w.zeros) / static_cast<double>(w.count));
      set(weight_log2_magnitude, w.log2_magnitude_sum / static_cast<double>(w.count));
    }
    // Schema 3: what rounding the channels (and the output width) up to the vector widths of
    // NPUs and SIMD units costs; these are step functions that smooth functions of the log
    // shapes above cannot form.
    set(in_c_pad8, pad_ratio(in4[3], 8)); set(in_c_pad16, pad_ratio(in4[3], 16));
    set(out_c_pad8, pad_ratio(out4[3], 8)); set(out_c_pad16, pad_ratio(out4[3], 16));
    set(out_w_pad8, pad_ratio(out4[2], 8));
    const double in_c16 = reduces_over_input_channels(kind) ? pad_ratio(in4[3], 16) : 1.0;
    set(padded_macs, static_cast<double>(cost.macs) * in_c16 * pad_ratio(out4[3], 16));
    set(padded_in_elements, static_cast<double>(in4[0] * in4[1] * in4[2] * round_up(in4[3], 16)));
    set(padded_out_elements, static_cast<double>(out4[0] * out4[1] * out4[2] * round_up(out4[3], 16)));
  }

  const Subgraph& entry = model.subgraphs[0];
  for (int32_t t : entry.inputs) totals_.input_bytes += entry.tensors[static_cast<size_t>(t)].num_bytes();
  for (int32_t t : entry.outputs) totals_.output_bytes += entry.tensors[static_cast<size_t>(t)].num_bytes();
  std::vector<int64_t> memo(model.subgraphs.size(), -1);
  totals_.peak_activation_bytes = subgraph_peak(model, 0, memo);

  // Edges are sorted by destination and always point forward, so one pass gives path lengths.
  std::vector<int64_t> path(num_nodes, 1), in_degree(num_nodes, 0), out_degree(num_nodes, 0);
  const size_t num_edges = edge_index_.size() / 2;
  for (size_t e = 0; e < num_edges; ++e) {
    const auto u = static_cast<size_t>(edge_index_[e]);
    const auto v = static_cast<size_t>(edge_index_[num_edges + e]);
    path[v] = std::max(path[v], path[u] + 1);
    ++in_degree[v];
    ++out_degree[u];
  }
  totals_.longest_path = *std::max_element(path.begin(), path.end());

  auto g = [&](GraphColumn c, double value) { graph_features_[c] = static_cast<float>(value); };
  g(GraphColumn::num_nodes, static_cast<double>(num_nodes));
  g(GraphColumn::num_edges, static_cast<double>(num_edges));
  g(num_subgraphs, static_cast<double>(model.subgraphs.size()));
  g(GraphColumn::num_tensors, static_cast<double>(num_tensors));
  g(GraphColumn::num_constant_tensors, static_cast<double>(num_constant_tensors));
  g(num_custom_ops, static_cast<double>(num_custom));
  g(total_macs, static_cast<double>(totals_.macs));
  g(total_params, static_cast<double>(totals_.param_count));
  g(total_param_bytes, static_cast<double>(totals_.param_bytes));
  g(total_activation_bytes, static_cast<double>(totals_.activation_bytes));
  g(peak_activation_bytes, static_cast<double>(totals_.peak_activation_bytes));
  g(input_bytes, static_cast<double>(totals_.input_bytes));
  g(output_bytes, static_cast<double>(totals_.output_bytes));
  g(longest_path, static_cast<double>(totals_.longest_path));
  g(max_in_degree, static_cast<double>(*std::max_element(in_degree.begin(), in_degree.end())));
  g(max_out_degree, static_cast<double>(*std::max_element(out_degree.begin(), out_degree.end())));
  g(max_call_depth, static_cast<double>(max_depth));
}

}  // namespace perfsage
