"""What a predictor saw in training, and warnings for models outside it.

A GNN returns a number for any graph; for a graph unlike its training data that number can be far
off without any sign of it. ``fit`` records a summary of the training graphs (op types, how much of
each graph was quantized, the range of its size features, and the range of every operator feature
column, each op type's configurations: input rank, constant input or not, and the op types whose
integer weights had one scale per tensor) in the predictor's provenance, and ``Predictor.check``
compares a new graph against it.
An operator feature beyond anything training showed is where the network extrapolates: a depthwise
convolution with a channel multiplier of 41 when training went up to 4 was priced up to 230 times
too high (leave-one-space-out, ``motifs``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ._core import Graph
from ._graphs import graph_feature_names, node_feature_names, op_vocabulary

# Graph-level sizes whose training range is recorded; a model beyond it gets a warning.
SIZE_FEATURES = ("num_nodes", "total_macs", "total_params", "peak_activation_bytes")
# How far outside the training range a size may be before the warning: a factor either way.
SIZE_TOLERANCE = 2.0
# Operator feature columns not checked against their training range: the op type (checked as a
# type), and columns the graph-level checks cover.
NODE_COLUMNS_NOT_CHECKED = ("op_type", "is_quantized")
# How many operator-feature warnings one check lists (the worst columns first).
MAX_NODE_WARNINGS = 5
# A graph counts as quantized when at least this share of its operators have quantized outputs.
QUANTIZED_SHARE = 0.5
# Vela replaces what it compiles with one custom operator of this code that runs the NPU command
# stream; no predictor has seen one, and what the stream costs is not in the graph.
VELA_CUSTOM_CODE = "ethos-u"


def _quantized_share(graph: Graph, column: int) -> float:
    values = graph.node_features[:, column]
    return float(np.mean(values > 0)) if values.size else 0.0


def summarize(graphs: Sequence[Graph]) -> Dict[str, Any]:
    """The training domain of ``graphs``: op types, quantized share, size ranges (JSON-able)."""
    if not graphs:
        return {}
    names = graph_feature_names()
    size_cols = [names.index(f) for f in SIZE_FEATURES]
    q_col = node_feature_names().index("is_quantized")
    vocabulary = op_vocabulary()
    columns = node_feature_names()
    seen = np.zeros(len(vocabulary), dtype=bool)
    sizes = np.empty((len(graphs), len(size_cols)), dtype=np.float64)
    quantized = np.empty(len(graphs), dtype=np.float64)
    low = np.full(len(columns), np.inf)
    high = np.full(len(columns), -np.inf)
    unquantized = np.zeros(len(vocabulary), dtype=bool)
    per_tensor = np.zeros(len(vocabulary), dtype=bool)
    configurations = set()
    for i, g in enumerate(graphs):
        seen[np.asarray(g.op_types)] = True
        sizes[i] = np.asarray(g.graph_features, dtype=np.float64)[size_cols]
        quantized[i] = _quantized_share(g, q_col)
        x = np.asarray(g.node_features, dtype=np.float64)
        if x.size:
            low = np.minimum(low, x.min(axis=0))
            high = np.maximum(high, x.max(axis=0))
            unquantized[np.asarray(g.op_types)[x[:, q_col] == 0]] = True
            per_tensor[np.asarray(g.op_types)[_per_tensor_weights(x)]] = True
            configurations.update(_configurations(g, x))
    return {
        "graphs": len(graphs),
        "op_types": [vocabulary[i] for i in np.flatnonzero(seen)],
        "quantized_graphs": float(np.mean(quantized >= QUANTIZED_SHARE)),
        "sizes": {f: [float(sizes[:, j].min()), float(sizes[:, j].max())] for j, f in enumerate(SIZE_FEATURES)},
        "operator_features": {c: [float(low[j]), float(high[j])] for j, c in enumerate(columns)
                              if c not in NODE_COLUMNS_NOT_CHECKED and np.isfinite(low[j])},
        "unquantized_op_types": [vocabulary[i] for i in np.flatnonzero(unquantized)],
        "per_tensor_weight_op_types": [vocabulary[i] for i in np.flatnonzero(per_tensor)],
        "operator_configurations": sorted([vocabulary[t], r, c] for t, r, c in configurations),
    }


def _per_tensor_weights(x: np.ndarray) -> np.ndarray:
    """Which operators (rows of node features ``x``) have integer weights with one scale for the
    whole tensor: trained weights quantised that way sit at much smaller integers than per-channel
    ones, which Vela's weight compression turns into time (TFLite Micro and MLPerf Tiny models carry
    every FULLY_CONNECTED kernel so)."""
    columns = node_feature_names()
    return (x[:, columns.index("weight_log2_magnitude")] > 0) & (x[:, columns.index("per_channel_weights")] == 0)


def _configurations(graph: Graph, x: np.ndarray) -> List[tuple]:
    """(op type index, input rank, whether it has a constant input) of each operator of ``graph``,
    whose node features are ``x``: the same type can cost another way in another configuration
    (Vela prices a MUL by a per-channel constant on an image up to 60x a MUL by an activation of
    the same shape)."""
    columns = node_feature_names()
    ranks = x[:, columns.index("in_rank")].astype(int).tolist()
    constants = (x[:, columns.index("num_constant_inputs")] > 0).tolist()
    return list(zip(np.asarray(graph.op_types).tolist(), ranks, constants))


def npu_command_stream(graph: Graph) -> Optional[str]:
    """Why ``graph`` is a model Vela already compiled (one that holds an ``ethos-u`` operator), or
    None: a prediction for such a model is meaningless."""
    for index, name in enumerate(graph.op_names):
        if name == VELA_CUSTOM_CODE:
            return (f"already compiled by Vela (operator {index} is its '{VELA_CUSTOM_CODE}' custom operator, "
                    "which runs the NPU command stream): a prediction for it is meaningless")
    return None


def merge(first: Dict[str, Any], second: Dict[str, Any]) -> Dict[str, Any]:
    """The domain of two training sets together (an adapted predictor's: its base's training
    models and the device's measured ones); either may be empty, or lack fields of an older one."""
    if not first or not second:
        return dict(first or second or {})
    out: Dict[str, Any] = {"graphs": first["graphs"] + second["graphs"]}
    for key in ("op_types", "unquantized_op_types", "per_tensor_weight_op_types"):
        if key in first and key in second:
            out[key] = sorted(set(first[key]) | set(second[key]))
    out["quantized_graphs"] = (first.get("quantized_graphs", 1.0) * first["graphs"] +
                               second.get("quantized_graphs", 1.0) * second["graphs"]) / out["graphs"]
    for key in ("sizes", "operator_features"):
        if key in first and key in second:
            out[key] = {name: [min(lo, second[key][name][0]), max(hi, second[key][name][1])]
                        for name, (lo, hi) in first[key].items() if name in second[key]}
    if "operator_configurations" in first and "operator_configurations" in second:
        both = {tuple(c) for c in first["operator_configurations"]} | {tuple(c) for c in second["operator_configurations"]}
        out["operator_configurations"] = sorted(list(c) for c in both)
    return out


def check(domain: Dict[str, Any], graph: Graph) -> List[str]:
    """Warnings (plain sentences) for the ways ``graph`` lies outside ``domain``; [] if inside."""
    if not domain:
        return []
    out: List[str] = []
    known = set(domain.get("op_types", []))
    names = list(graph.op_names)
    unseen = sorted({n for n in names if n not in known})
    if unseen:
        where = [i for i, n in enumerate(names) if n in unseen][:5]
        out.append(f"operator type(s) {', '.join(unseen)} (e.g. operator {where[0]}) never appeared in the "
                   f"predictor's {domain['graphs']} training models; their cost is a guess")
    quantized = graph.node_features[:, node_feature_names().index("is_quantized")] > 0
    q_share = float(np.mean(quantized)) if quantized.size else 0.0
    trained_quantized = domain.get("quantized_graphs", 1.0)
    if trained_quantized >= 0.99 and q_share < QUANTIZED_SHARE:
        out.append(f"this looks like a float model ({q_share:.0%} of its operators have quantized outputs) but the "
                   "predictor was trained on int8 models; NPUs such as the Ethos-U run int8 only")
    elif trained_quantized <= 0.01 and q_share >= QUANTIZED_SHARE:
        out.append("this looks like a quantized model but the predictor was trained on float models")
    if q_share >= QUANTIZED_SHARE and "unquantized_op_types" in domain:
        out += _float_section_warning(set(domain["unquantized_op_types"]), graph, quantized)
    if "operator_configurations" in domain:
        out += _configuration_warning(domain["operator_configurations"], known, graph)
    if "per_tensor_weight_op_types" in domain:
        out += _per_tensor_warning(set(domain["per_tensor_weight_op_types"]), known, graph)
    features = dict(zip(graph_feature_names(), np.asarray(graph.graph_features, dtype=np.float64)))
    for name, (lo, hi) in domain.get("sizes", {}).items():
        value = features.get(name)
        if value is None:
            continue
        if value > hi * SIZE_TOLERANCE:
            out.append(f"{name} = {value:.4g} is {value / hi:.1f}x the largest in training ({hi:.4g})")
        elif lo > 0 and value * SIZE_TOLERANCE < lo:
            out.append(f"{name} = {value:.4g} is below a half of the smallest in training ({lo:.4g})")
    return out + _operator_feature_warnings(domain.get("operator_features", {}), graph)


def _float_section_warning(trained: set, graph: Graph, quantized: np.ndarray) -> List[str]:
    """A quantized model's operators with unquantized outputs (``quantized``: per operator, a float
    section between DEQUANTIZE and QUANTIZE, as converters leave what they cannot quantize) of types
    training never saw unquantized: an NPU such as the Ethos-U leaves them to the CPU, which the
    features cannot say."""
    names = list(graph.op_names)
    found = [i for i, name in enumerate(names) if not quantized[i] and name not in trained]
    return _operators_warning(names, found, "of this quantized model", "have unquantized outputs, which training "
                              "never showed for those types; an NPU such as the Ethos-U leaves such operators to the "
                              "CPU, so their cost is a guess")


def _operators_warning(names: List[str], found: List[int], which: str, what: str) -> List[str]:
    """One warning for the operators ``found`` (indices into ``names``), naming their types and the
    first of them: "3 operator(s) {which} (MUL, ADD; e.g. operator 4) {what}"; [] for none."""
    if not found:
        return []
    types = sorted({names[i] for i in found})
    return [f"{len(found)} operator(s) {which + ' ' if which else ''}({', '.join(types)}; e.g. operator {found[0]}) "
            f"{what}"]


def _per_tensor_warning(trained: set, known: set, graph: Graph) -> List[str]:
    """Operators of known types whose integer weights have one scale per tensor when no training
    operator of their type had: one warning naming the types."""
    names = list(graph.op_names)
    rows = np.flatnonzero(_per_tensor_weights(np.asarray(graph.node_features, dtype=np.float64)))
    found = [int(i) for i in rows if names[i] in known and names[i] not in trained]
    return _operators_warning(names, found, "", "have weights quantised with one scale per tensor, which no "
                              "training operator of their type had; trained weights so quantised sit at small "
                              "integers that Vela compresses, so their cost is a guess")


def _configuration_warning(trained: List[List[Any]], known: set, graph: Graph) -> List[str]:
    """Operators of known types in a configuration (input rank, constant input or not) that no
    training operator of their type had, e.g. a MUL by a constant on an image when training only
    multiplied images by activations: one warning naming up to three configurations."""
    seen = {(name, int(rank), bool(constant)) for name, rank, constant in trained}
    vocabulary = op_vocabulary()
    found: Dict[tuple, List[int]] = {}
    for i, (t, rank, constant) in enumerate(_configurations(graph, np.asarray(graph.node_features, dtype=np.float64))):
        key = (vocabulary[t], rank, constant)
        if key[0] in known and key not in seen:
            found.setdefault(key, []).append(i)
    if not found:
        return []
    described = [f"{name} on rank-{rank} inputs {'with' if constant else 'without'} a constant input "
                 f"(e.g. operator {found[(name, rank, constant)][0]})" for name, rank, constant in sorted(found)[:3]]
    count = sum(len(v) for v in found.values())
    return [f"{count} operator(s) in a configuration no training operator of their type had: {'; '.join(described)}"
            f"{'; ...' if len(found) > 3 else ''}; their cost is a guess"]


def _operator_feature_warnings(ranges: Dict[str, List[float]], graph: Graph) -> List[str]:
    """One warning per operator feature column with a value more than SIZE_TOLERANCE times beyond its
    training range [lo, hi] (above hi * 2 or below lo / 2 for positive bounds; any value above 0 or
    below it when the bound is 0), naming the operator furthest out and how many there are; the
    columns furthest out first."""
    x = np.asarray(graph.node_features, dtype=np.float64)
    names, op_names = node_feature_names(), list(graph.op_names)
    found = []
    for name, (lo, hi) in ranges.items():
        if name not in names:
            continue  # a column of a newer schema than this perfsage computes
        values = x[:, names.index(name)]
        top = hi * SIZE_TOLERANCE if hi >= 0 else hi / SIZE_TOLERANCE
        bottom = lo / SIZE_TOLERANCE if lo > 0 else lo * SIZE_TOLERANCE
        outside = np.flatnonzero((values < bottom) | (values > top))
        if outside.size == 0:
            continue
        span = max(hi - lo, abs(hi), abs(lo), 1e-12)
        distance = np.maximum(lo - values[outside], values[outside] - hi) / span
        first = int(outside[np.argmax(distance)])
        value = values[first]
        more = f" ({outside.size} operators in all)" if outside.size > 1 else ""
        message = (f"operator {first} ({op_names[first]}): {name} = {value:.4g}, far outside its range in training "
                   f"({lo:.4g} to {hi:.4g}){more}; the network extrapolates there")
        found.append((-float(distance.max()), name, message))
    found.sort()
    return [message for _, _, message in found[:MAX_NODE_WARNINGS]]
