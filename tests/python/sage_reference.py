"""An independent NumPy (float64) reference of perfsage's GraphSAGE model: forward pass, loss, and a
backward pass derived and written by hand, so that the C++ core's forward outputs and gradients can be
checked against code that shares nothing with it but the model definition.

It is written for clarity, not speed: graphs are processed one at a time and neighbourhoods are
explicit per-node lists, so every step can be read against the definition:

    slog(v) = sign(v) * log1p(|v|)
    h0 = concat((slog(X) - node_mean) / node_std, embedding[op_types])
    layer k:  a_in[i]  = AGG_{j -> i} h[j],   a_out[i] = AGG_{i -> j} h[j]   (zero without neighbours)
              z = h @ w_self + a_in @ w_in + a_out @ w_out + bias     (terms present per direction)
              z = layer_norm(z) * ln_gain + ln_bias                   (optional; eps 1e-5, biased var)
              h = h + relu(z) if residual and k >= 1 else relu(z)
    readout:  r = concat(slog(sum_i h), mean_i h, max_i h, lse);  g = (slog(G) - graph_mean) / graph_std
              lse[k] = log sum_i exp(h[i] @ readout.weight[:, k] + readout.bias[k])  (k < readout_channels)
    head:     o = MLP(concat(r, g)), relu between layers, none after the last
    lp = o * target_std + target_mean;  y_hat = exp(lp)
    loss over finite labels (n of them): mape = mean |y_hat - y| / y,
                                         log_mse = mean ((lp - log y) / target_std) ** 2

With family_dim > 0, h0 also holds family_embedding[family of op type]. The additive readout
(readout="additive") replaces readout and head:
    q[i] = concat(h[i], h0[i], g) (g only with node_graph_context);  o_node[i] = MLP(q[i]);
    cost[i] = exp(o_node[i] * std + mean)
    sum target:  o = log(sum_i exp(std * o_node[i]) + exp(std * k)) / std    (k = readout.constant)
    max target:  o = max(max_i o_node[i], k)
    target_mean of a sum target: mean of log(label / number of nodes)
    per-operator labels l (a graph's, complete for a sum target, with positive total) add
    node_loss_weight * sum_i |cost[i] - l[i]| / sum_i l[i] + node_log_weight * mean over the labels
    l[i] > 0 of |log cost[i] - log l[i]| to the loss's sum (divided by n too).

Subgradient conventions: relu'(0) = 0, d|x|/dx at 0 = 0, and a max (aggregation or readout) sends
its gradient to the lowest node index attaining it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

LN_EPS = 1e-5
# A standard deviation below this is replaced by 1 (constant features and targets stay finite).
STD_FLOOR = 1e-6
FEATURE_STD_FLOOR = 0.25  # a feature column's std is at least this (a constant column's is 1)
NUM_OP_TYPES = 210
AGGREGATORS = ("mean", "sum", "max")
DIRECTIONS = ("in", "out", "both")
LOSSES = ("mape", "log_mse")
READOUTS = ("lse", "additive")

Params = Dict[str, np.ndarray]


@dataclass(frozen=True)
class SageConfig:
    """The model's hyperparameters, named as perfsage.Predictor's keyword arguments."""

    embedding_dim: int = 16
    hidden: int = 64
    layers: int = 3
    aggregator: str = "mean"
    direction: str = "both"
    layer_norm: bool = True
    residual: bool = True
    readout_channels: int = 8
    head_layers: int = 2
    head_hidden: int = 64
    loss: str = "mape"
    readout: str = "lse"
    family_dim: int = 0
    node_loss_weight: float = 1.0
    node_log_weight: float = 0.0
    node_graph_context: bool = True
    # Derived from the target names by perfsage.Predictor (peak_* targets), so not a keyword argument.
    max_targets: int = 0

    def __post_init__(self) -> None:
        for name in ("embedding_dim", "hidden", "layers", "head_layers", "head_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SageConfig.{name} must be a positive int, got {value!r}")
        if not isinstance(self.readout_channels, int) or self.readout_channels < 0:
            raise ValueError(f"SageConfig.readout_channels must be a non-negative int, got {self.readout_channels!r}")
        for name, allowed in (("aggregator", AGGREGATORS), ("direction", DIRECTIONS), ("loss", LOSSES),
                              ("readout", READOUTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"SageConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def kwargs(self) -> Dict[str, Any]:
        """The hyperparameters as keyword arguments for perfsage.Predictor."""
        out = dataclasses.asdict(self)
        del out["max_targets"]
        return out

    @property
    def additive(self) -> bool:
        return self.readout == "additive"

    def is_max_target(self, t: int) -> bool:
        return bool((self.max_targets >> t) & 1)

    @property
    def uses_in(self) -> bool:
        return self.direction in ("in", "both")

    @property
    def uses_out(self) -> bool:
        return self.direction in ("out", "both")


@dataclass(frozen=True)
class GraphArrays:
    """One graph's model inputs in float64 / int64, with its neighbour lists.

    predecessors[i] are the sources of edges j -> i and successors[i] the destinations of edges
    i -> j, each sorted ascending so that the first maximum found is the lowest node index."""

    node_features: np.ndarray  # [N, F]
    op_types: np.ndarray  # [N]
    edge_index: np.ndarray  # [2, E], row 0 source, row 1 destination
    graph_features: np.ndarray  # [G]
    predecessors: Tuple[np.ndarray, ...]
    successors: Tuple[np.ndarray, ...]
    families: np.ndarray  # [N], each op type's family (for the family embedding)

    @property
    def num_nodes(self) -> int:
        return int(self.node_features.shape[0])


def make_graph(
    node_features: np.ndarray, op_types: np.ndarray, edge_index: np.ndarray, graph_features: np.ndarray,
    families: Optional[np.ndarray] = None,
) -> GraphArrays:
    """Checks shapes and edges and builds the neighbour lists; the definition assumes unique edges
    (mean aggregation would count a duplicate twice), so a duplicate is an error here."""
    x = np.array(node_features, dtype=np.float64)
    types = np.array(op_types, dtype=np.int64)
    edges = np.array(edge_index, dtype=np.int64).reshape(2, -1)
    g = np.array(graph_features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"node_features must be [N >= 1, F], got shape {x.shape}")
    n = x.shape[0]
    if types.shape != (n,):
        raise ValueError(f"op_types must have shape ({n},), got {types.shape}")
    if g.ndim != 1:
        raise ValueError(f"graph_features must be one-dimensional, got shape {g.shape}")
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise ValueError(f"edge_index holds node ids outside [0, {n}): {edges.min()}..{edges.max()}")
    pairs = set(zip(edges[0].tolist(), edges[1].tolist()))
    if len(pairs) != edges.shape[1]:
        raise ValueError("edge_index holds duplicate edges, which the model definition excludes")
    predecessors = tuple(np.sort(edges[0, edges[1] == i]) for i in range(n))
    successors = tuple(np.sort(edges[1, edges[0] == i]) for i in range(n))
    fam = np.zeros(n, dtype=np.int64) if families is None else np.array(families, dtype=np.int64)
    return GraphArrays(x, types, edges, g, predecessors, successors, fam)


def graph_arrays(graph: Any, family_of_op: Optional[Sequence[int]] = None) -> GraphArrays:
    """The reference's view of a perfsage.Graph (only its public numpy properties are read); the
    op-family table (perfsage._core.op_families(), data of the definition) gives node families."""
    families = None if family_of_op is None else np.asarray(family_of_op)[np.asarray(graph.op_types)]
    return make_graph(graph.node_features, graph.op_types, graph.edge_index, graph.graph_features, families)


def slog(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.log1p(np.abs(v))


def slog_derivative(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.abs(v))


def parameter_shapes(
    config: SageConfig, num_node_features: int, num_graph_features: int, num_targets: int,
    num_families: int = 0,
) -> Dict[str, Tuple[int, ...]]:
    """Every parameter's name and shape, as the model definition lists them."""
    shapes: Dict[str, Tuple[int, ...]] = {"embedding": (NUM_OP_TYPES, config.embedding_dim)}
    if config.family_dim:
        shapes["family_embedding"] = (num_families, config.family_dim)
    input_width = num_node_features + config.embedding_dim + config.family_dim
    for k in range(config.layers):
        d_k = input_width if k == 0 else config.hidden
        shapes[f"sage{k}.w_self"] = (d_k, config.hidden)
        if config.uses_in:
            shapes[f"sage{k}.w_in"] = (d_k, config.hidden)
        if config.uses_out:
            shapes[f"sage{k}.w_out"] = (d_k, config.hidden)
        shapes[f"sage{k}.bias"] = (config.hidden,)
        if config.layer_norm:
            shapes[f"sage{k}.ln_gain"] = (config.hidden,)
            shapes[f"sage{k}.ln_bias"] = (config.hidden,)
    if config.additive:
        shapes["readout.constant"] = (num_targets,)
        width = config.hidden + input_width + (num_graph_features if config.node_graph_context else 0)
    else:
        if config.readout_channels:
            shapes["readout.weight"] = (config.hidden, config.readout_channels)
            shapes["readout.bias"] = (config.readout_channels,)
        width = 3 * config.hidden + config.readout_channels + num_graph_features
    for j in range(config.head_layers):
        out = num_targets if j == config.head_layers - 1 else config.head_hidden
        shapes[f"head{j}.weight"] = (width, out)
        shapes[f"head{j}.bias"] = (out,)
        width = out
    return shapes


def random_parameters(
    shapes: Mapping[str, Tuple[int, ...]], rng: np.random.Generator, scale: float = 0.3
) -> Params:
    """Random parameters with non-zero biases and gains away from zero, so that no relu input or
    layer-norm output sits exactly on a kink (finite differences need a smooth neighbourhood)."""
    params: Params = {}
    for name, shape in shapes.items():
        if name.endswith("ln_gain"):
            params[name] = 1.0 + scale * rng.standard_normal(shape)
        elif len(shape) == 2 and name != "embedding":
            params[name] = rng.standard_normal(shape) * (scale / np.sqrt(shape[0]) * 3.0)
        else:
            params[name] = scale * rng.standard_normal(shape)
    return params


def _check_labels(labels: np.ndarray, num_graphs: int) -> np.ndarray:
    y = np.array(labels, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != num_graphs:
        raise ValueError(f"labels must be [{num_graphs}, T], got shape {y.shape}")
    finite = np.isfinite(y)
    bad = np.argwhere(finite & (y <= 0))
    if bad.size:
        row, col = bad[0]
        raise ValueError(f"labels[{row}, {col}] = {y[row, col]}: labels must be > 0 (log and MAPE)")
    return y


def fit_normalization(graphs: Sequence[GraphArrays], labels: np.ndarray,
                      config: Optional[SageConfig] = None) -> Dict[str, np.ndarray]:
    """Population mean/std of slog(node features) over all nodes, of slog(graph features) over the
    graphs, and of log(label) over each target's finite labels; a std below STD_FLOOR becomes 1, and
    a feature column's std is at least FEATURE_STD_FLOOR."""
    y = _check_labels(labels, len(graphs))

    def mean_std(values: np.ndarray, floor: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
        std = values.std(axis=0)
        return values.mean(axis=0), np.where(std < STD_FLOOR, 1.0, np.maximum(std, floor))

    node_mean, node_std = mean_std(np.concatenate([slog(g.node_features) for g in graphs]), FEATURE_STD_FLOOR)
    graph_mean, graph_std = mean_std(np.stack([slog(g.graph_features) for g in graphs]), FEATURE_STD_FLOOR)
    target_mean = np.empty(y.shape[1])
    target_std = np.empty(y.shape[1])
    nodes = np.array([g.num_nodes for g in graphs], dtype=np.float64)
    for t in range(y.shape[1]):
        finite = np.isfinite(y[:, t])
        if not finite.any():
            raise ValueError(f"target {t} has no finite label to fit its statistics on")
        log_y = np.log(y[finite, t])
        target_std[t] = mean_std(log_y)[1]
        per_node = config is not None and config.additive and not config.is_max_target(t)
        target_mean[t] = (log_y - np.log(nodes[finite])).mean() if per_node else log_y.mean()
    return {
        "node_mean": node_mean, "node_std": node_std,
        "graph_mean": graph_mean, "graph_std": graph_std,
        "target_mean": target_mean, "target_std": target_std,
    }


# ----------------------------------------------------------------------------------- aggregation


def aggregate(
    h: np.ndarray, neighbours: Sequence[np.ndarray], aggregator: str
) -> Tuple[np.ndarray, np.ndarray]:
    """a[i] = AGG over h[neighbours[i]] (zero when there are none). For "max" also returns, per node
    and column, the node that won (lowest index on ties; -1 without neighbours) for the backward."""
    a = np.zeros_like(h)
    winners = np.full(h.shape, -1, dtype=np.int64)
    for i, nbrs in enumerate(neighbours):
        if nbrs.size == 0:
            continue
        rows = h[nbrs]
        if aggregator == "sum":
            a[i] = rows.sum(axis=0)
        elif aggregator == "mean":
            a[i] = rows.sum(axis=0) / nbrs.size
        elif aggregator == "max":
            first_max = np.argmax(rows, axis=0)  # first occurrence; nbrs ascending -> lowest node id
            winners[i] = nbrs[first_max]
            a[i] = rows[first_max, np.arange(h.shape[1])]
        else:
            raise ValueError(f"unknown aggregator {aggregator!r}")
    return a, winners


def aggregate_backward(
    da: np.ndarray, neighbours: Sequence[np.ndarray], aggregator: str, winners: np.ndarray
) -> np.ndarray:
    """dL/dh given dL/da for aggregate(): each neighbour receives its share of its target's gradient."""
    dh = np.zeros_like(da)
    columns = np.arange(da.shape[1])
    for i, nbrs in enumerate(neighbours):
        if nbrs.size == 0:
            continue
        if aggregator == "sum":
            dh[nbrs] += da[i]  # neighbours are unique, so fancy-index += adds once per neighbour
        elif aggregator == "mean":
            dh[nbrs] += da[i] / nbrs.size
        else:
            dh[winners[i], columns] += da[i]  # one winner per column: no repeated index
    return dh


# ----------------------------------------------------------------------------------- one graph


@dataclass
class _LayerCache:
    h: np.ndarray
    a_in: Optional[np.ndarray]
    a_out: Optional[np.ndarray]
    winners_in: Optional[np.ndarray]
    winners_out: Optional[np.ndarray]
    zhat: Optional[np.ndarray]  # layer-norm output before gain and bias
    inv_std: Optional[np.ndarray]  # [N, 1]
    active: np.ndarray  # relu input > 0
    has_skip: bool


@dataclass
class _GraphCache:
    graph: GraphArrays
    layers: List[_LayerCache]
    h_last: np.ndarray
    pooled_sum: np.ndarray
    max_winners: np.ndarray
    lse_share: Optional[np.ndarray]  # [N, R] softmax over nodes of each log-sum-exp channel
    head_inputs: List[np.ndarray]  # input of each head layer (after the previous relu)
    head_pre: List[np.ndarray]  # output of each head layer before its relu
    h0: Optional[np.ndarray] = None  # additive readout: the input h0 (its q holds it)
    node_out: Optional[np.ndarray] = None  # additive: o_node [N, T]
    share: Optional[np.ndarray] = None  # additive: d o / d o_node [N, T]
    const_share: Optional[np.ndarray] = None  # additive: d o / d constant [T]


def _forward_graph(
    params: Params, norm: Mapping[str, np.ndarray], config: SageConfig, graph: GraphArrays
) -> Tuple[np.ndarray, _GraphCache]:
    x = (slog(graph.node_features) - norm["node_mean"]) / norm["node_std"]
    parts0 = [x, params["embedding"][graph.op_types]]
    if config.family_dim:
        parts0.append(params["family_embedding"][graph.families])
    h = np.concatenate(parts0, axis=1)
    h0 = h
    layers: List[_LayerCache] = []
    for k in range(config.layers):
        p = f"sage{k}."
        z = h @ params[p + "w_self"] + params[p + "bias"]
        a_in = a_out = w_in = w_out = None
        if config.uses_in:
            a_in, w_in = aggregate(h, graph.predecessors, config.aggregator)
            z = z + a_in @ params[p + "w_in"]
        if config.uses_out:
            a_out, w_out = aggregate(h, graph.successors, config.aggregator)
            z = z + a_out @ params[p + "w_out"]
        zhat = inv_std = None
        if config.layer_norm:
            centred = z - z.mean(axis=1, keepdims=True)
            inv_std = 1.0 / np.sqrt((centred**2).mean(axis=1, keepdims=True) + LN_EPS)
            zhat = centred * inv_std
            z = zhat * params[p + "ln_gain"] + params[p + "ln_bias"]
        active = z > 0
        u = np.where(active, z, 0.0)
        has_skip = config.residual and k >= 1
        layers.append(_LayerCache(h, a_in, a_out, w_in, w_out, zhat, inv_std, active, has_skip))
        h = h + u if has_skip else u

    if config.additive:
        return _additive_readout(params, norm, config, graph, layers, h0, h)
    pooled_sum = h.sum(axis=0)
    max_winners = np.argmax(h, axis=0)  # first occurrence = lowest node index
    parts = [slog(pooled_sum), h.mean(axis=0), h[max_winners, np.arange(h.shape[1])]]
    lse_share = None
    if config.readout_channels:
        scores = h @ params["readout.weight"] + params["readout.bias"]
        top = scores.max(axis=0)
        weights = np.exp(scores - top)
        parts.append(top + np.log(weights.sum(axis=0)))
        lse_share = weights / weights.sum(axis=0)
    readout = np.concatenate(parts)
    g = (slog(graph.graph_features) - norm["graph_mean"]) / norm["graph_std"]
    z, head_inputs, head_pre = _mlp(params, config, np.concatenate([readout, g]))
    return z, _GraphCache(graph, layers, h, pooled_sum, max_winners, lse_share, head_inputs, head_pre)


def _mlp(params: Params, config: SageConfig, z: np.ndarray) -> Tuple[np.ndarray, List[np.ndarray], List[np.ndarray]]:
    """The head on z (a vector, or one row per node): (output, each layer's input, each layer's
    pre-activation)."""
    inputs: List[np.ndarray] = []
    pre_acts: List[np.ndarray] = []
    for j in range(config.head_layers):
        inputs.append(z)
        pre = z @ params[f"head{j}.weight"] + params[f"head{j}.bias"]
        pre_acts.append(pre)
        z = np.maximum(pre, 0.0) if j < config.head_layers - 1 else pre
    return z, inputs, pre_acts


def _mlp_backward(params: Params, config: SageConfig, cache: _GraphCache, dz: np.ndarray, grads: Params) -> np.ndarray:
    """Accumulates the head's gradients given dL/d(output); returns dL/d(input). Works on a vector
    or on one row per node."""
    for j in reversed(range(config.head_layers)):
        if j < config.head_layers - 1:
            dz = dz * (cache.head_pre[j] > 0)
        inputs = cache.head_inputs[j]
        grads[f"head{j}.weight"] += np.outer(inputs, dz) if dz.ndim == 1 else inputs.T @ dz
        grads[f"head{j}.bias"] += dz if dz.ndim == 1 else dz.sum(axis=0)
        dz = dz @ params[f"head{j}.weight"].T
    return dz


def _additive_readout(
    params: Params, norm: Mapping[str, np.ndarray], config: SageConfig, graph: GraphArrays,
    layers: List["_LayerCache"], h0: np.ndarray, h: np.ndarray,
) -> Tuple[np.ndarray, _GraphCache]:
    g = (slog(graph.graph_features) - norm["graph_mean"]) / norm["graph_std"]
    context = [np.tile(g, (h.shape[0], 1))] if config.node_graph_context else []
    q = np.concatenate([h, h0, *context], axis=1)
    node_out, inputs, pre_acts = _mlp(params, config, q)
    k = params["readout.constant"]
    std = norm["target_std"]
    out = np.empty(node_out.shape[1])
    share = np.zeros_like(node_out)
    const_share = np.zeros(node_out.shape[1])
    for t in range(node_out.shape[1]):
        if config.is_max_target(t):
            best = int(np.argmax(node_out[:, t]))  # first occurrence
            if node_out[best, t] > k[t]:
                out[t] = node_out[best, t]
                share[best, t] = 1.0
            else:
                out[t] = k[t]
                const_share[t] = 1.0
            continue
        scores = np.append(std[t] * node_out[:, t], std[t] * k[t])
        top = scores.max()
        weights = np.exp(scores - top)
        out[t] = (top + np.log(weights.sum())) / std[t]
        share[:, t] = weights[:-1] / weights.sum()
        const_share[t] = weights[-1] / weights.sum()
    cache = _GraphCache(graph, layers, h, np.zeros(0), np.zeros(0, dtype=np.int64), None, inputs, pre_acts,
                        h0=h0, node_out=node_out, share=share, const_share=const_share)
    return out, cache


def _backward_graph(
    params: Params, config: SageConfig, cache: _GraphCache, d_out: np.ndarray, grads: Params,
    d_node: Optional[np.ndarray] = None,
) -> None:
    """Accumulates into grads the gradient of the loss given d_out = dL/do for this graph (and, for
    the additive readout, d_node = dL/do_node from per-operator labels)."""
    if config.additive:
        assert cache.share is not None and cache.const_share is not None and cache.h0 is not None
        grads["readout.constant"] += d_out * cache.const_share
        d_node_out = cache.share * d_out + (0.0 if d_node is None else d_node)
        dq = _mlp_backward(params, config, cache, d_node_out, grads)
        width = cache.h_last.shape[1]
        _layers_backward(params, config, cache, dq[:, :width], grads, dq[:, width : width + cache.h0.shape[1]])
        return
    dz = _mlp_backward(params, config, cache, d_out, grads)
    hidden = config.hidden
    d_slog_sum, d_mean, d_max = dz[:hidden], dz[hidden : 2 * hidden], dz[2 * hidden : 3 * hidden]
    h = cache.h_last
    n = h.shape[0]
    dh = np.empty_like(h)
    dh[:] = d_slog_sum * slog_derivative(cache.pooled_sum) + d_mean / n
    dh[cache.max_winners, np.arange(hidden)] += d_max
    if config.readout_channels:
        assert cache.lse_share is not None
        d_scores = cache.lse_share * dz[3 * hidden : 3 * hidden + config.readout_channels]
        grads["readout.weight"] += h.T @ d_scores
        grads["readout.bias"] += d_scores.sum(axis=0)
        dh += d_scores @ params["readout.weight"].T
    _layers_backward(params, config, cache, dh, grads, None)


def _layers_backward(
    params: Params, config: SageConfig, cache: _GraphCache, dh: np.ndarray, grads: Params,
    dh0_direct: Optional[np.ndarray],
) -> None:
    """The GraphSAGE layers' backward pass from dL/dh (last layer's output), then the embeddings';
    dh0_direct is a gradient reaching h0 other than through the layers (the additive head's q)."""
    for k in reversed(range(config.layers)):
        p = f"sage{k}."
        layer = cache.layers[k]
        dzn = dh * layer.active
        if config.layer_norm:
            assert layer.zhat is not None and layer.inv_std is not None
            grads[p + "ln_gain"] += (dzn * layer.zhat).sum(axis=0)
            grads[p + "ln_bias"] += dzn.sum(axis=0)
            dzhat = dzn * params[p + "ln_gain"]
            # d zhat / d z for zhat = (z - mean) / sqrt(var + eps), per row of H values.
            dz_pre = layer.inv_std * (
                dzhat
                - dzhat.mean(axis=1, keepdims=True)
                - layer.zhat * (dzhat * layer.zhat).mean(axis=1, keepdims=True)
            )
        else:
            dz_pre = dzn
        grads[p + "bias"] += dz_pre.sum(axis=0)
        grads[p + "w_self"] += layer.h.T @ dz_pre
        dh_prev = dz_pre @ params[p + "w_self"].T
        if config.uses_in:
            assert layer.a_in is not None and layer.winners_in is not None
            grads[p + "w_in"] += layer.a_in.T @ dz_pre
            da = dz_pre @ params[p + "w_in"].T
            dh_prev += aggregate_backward(da, cache.graph.predecessors, config.aggregator, layer.winners_in)
        if config.uses_out:
            assert layer.a_out is not None and layer.winners_out is not None
            grads[p + "w_out"] += layer.a_out.T @ dz_pre
            da = dz_pre @ params[p + "w_out"].T
            dh_prev += aggregate_backward(da, cache.graph.successors, config.aggregator, layer.winners_out)
        if layer.has_skip:
            dh_prev += dh
        dh = dh_prev

    if dh0_direct is not None:
        dh = dh + dh0_direct
    f, d = cache.graph.node_features.shape[1], config.embedding_dim
    np.add.at(grads["embedding"], cache.graph.op_types, dh[:, f : f + d])
    if config.family_dim:
        np.add.at(grads["family_embedding"], cache.graph.families, dh[:, f + d :])


# ----------------------------------------------------------------------------------- batch API


def _as_float64(mapping: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    return {name: np.asarray(value, dtype=np.float64) for name, value in mapping.items()}


def forward(
    params: Mapping[str, np.ndarray],
    norm: Mapping[str, np.ndarray],
    config: SageConfig,
    graphs: Sequence[GraphArrays],
) -> np.ndarray:
    """Raw outputs o [B, T] (float64)."""
    p64, n64 = _as_float64(params), _as_float64(norm)
    return np.stack([_forward_graph(p64, n64, config, g)[0] for g in graphs])


def predict(
    params: Mapping[str, np.ndarray],
    norm: Mapping[str, np.ndarray],
    config: SageConfig,
    graphs: Sequence[GraphArrays],
) -> np.ndarray:
    """y_hat = exp(o * target_std + target_mean) [B, T]."""
    n64 = _as_float64(norm)
    return np.exp(forward(params, norm, config, graphs) * n64["target_std"] + n64["target_mean"])


def loss_and_gradients(
    params: Mapping[str, np.ndarray],
    norm: Mapping[str, np.ndarray],
    config: SageConfig,
    graphs: Sequence[GraphArrays],
    labels: np.ndarray,
    node_labels: Optional[Sequence[Optional[np.ndarray]]] = None,
) -> Tuple[float, np.ndarray, Params]:
    """(loss, raw outputs o [B, T], dL/dparam for every parameter), all in float64; inputs are cast
    from whatever precision they come in. node_labels: per graph None or [N, T] per-operator labels
    (the additive readout's node loss)."""
    p64, n64 = _as_float64(params), _as_float64(norm)
    y = _check_labels(labels, len(graphs))
    results = [_forward_graph(p64, n64, config, g) for g in graphs]
    o = np.stack([out for out, _ in results])
    if y.shape[1] != o.shape[1]:
        raise ValueError(f"labels have {y.shape[1]} targets, the model {o.shape[1]}")
    observed = np.isfinite(y)
    count = int(observed.sum())
    if count == 0:
        raise ValueError("labels hold no finite value: the loss is undefined")
    safe_y = np.where(observed, y, 1.0)
    std = n64["target_std"]
    log_pred = o * std + n64["target_mean"]
    if config.loss == "mape":
        y_hat = np.exp(log_pred)
        loss = float(np.where(observed, np.abs(y_hat - safe_y) / safe_y, 0.0).sum() / count)
        # d/do |y_hat - y| / y = sign(y_hat - y) / y * y_hat * target_std, with sign(0) = 0.
        d_out = np.where(observed, np.sign(y_hat - safe_y) / safe_y * y_hat * std, 0.0) / count
    else:
        scaled = np.where(observed, (log_pred - np.log(safe_y)) / std, 0.0)
        loss = float((scaled**2).sum() / count)
        # d/do ((o * std + mean - log y) / std)^2 = 2 * scaled.
        d_out = 2.0 * scaled / count

    d_nodes: List[Optional[np.ndarray]] = [None] * len(graphs)
    if config.additive and node_labels is not None:
        for b, ((_, cache), labels_b) in enumerate(zip(results, node_labels)):
            if labels_b is None:
                continue
            lab = np.asarray(labels_b, dtype=np.float64)
            assert cache.node_out is not None
            cost = np.exp(cache.node_out * std + n64["target_mean"])
            d_node = np.zeros_like(cost)
            for t in range(cost.shape[1]):
                total = lab[:, t].sum()
                usable = np.all(np.isfinite(lab[:, t])) and np.all(lab[:, t] >= 0) and total > 0
                if config.is_max_target(t) or not usable:
                    continue
                diff = cost[:, t] - lab[:, t]
                loss += config.node_loss_weight * np.abs(diff).sum() / total / count
                d_node[:, t] = config.node_loss_weight * np.sign(diff) * cost[:, t] * std[t] / total / count
                pos = lab[:, t] > 0
                log_diff = np.log(cost[pos, t]) - np.log(lab[pos, t])
                loss += config.node_log_weight * np.abs(log_diff).sum() / pos.sum() / count
                d_node[pos, t] += config.node_log_weight * np.sign(log_diff) * std[t] / pos.sum() / count
            d_nodes[b] = d_node
    grads: Params = {name: np.zeros_like(value) for name, value in p64.items()}
    for (_, cache), d, d_node in zip(results, d_out, d_nodes):
        _backward_graph(p64, config, cache, d, grads, d_node)
    return loss, o, grads
