"""The nn-Meter-style baseline: a model's metric is the sum of per-operator ("kernel") costs.

nn-Meter (Zhang et al., MobiSys 2021) measures each kernel on the device and predicts a model as the
sum of its kernels. We have labels for whole models only, so the table is fitted from them: each
kernel key (op type and its main configuration: kernel size, stride, dilation, fused activation,
input and weight bit widths) costs ``c0 + c1·MACs + c2·activation bytes + c3·parameter bytes``
with non-negative coefficients, and the coefficients of all keys are fitted jointly by non-negative
least squares on the relative error of the summed model cost, ``Σ_models ((Σ_ops cost - y) / y)²``.
Keys never seen in training fall back to a table fitted the same way with the op type alone as key,
and op types never seen to one global cost. Above JOINT_MAX_ROWS training rows the joint fit uses a
seeded sample of them.

``lookup_ops`` (OperatorLookupMethod) is the same table fitted as nn-Meter fits it, from kernel
measurements: where the training rows have per-operator labels for a metric (Vela's per-layer
estimates), each key's coefficients by NNLS on its own operators' labels, each operator's error
relative to its model's label (the error it adds to its model's relative error); metrics without
them (peak memory) are fitted jointly as above but with the op type as the key: Lawson-Hanson on the
2,000-4,000 columns of the kernel keys of the world data solves a new system at every step and took
5 minutes and more per fit here. Measured once on 2,400 world models
(ethos-u55-256, 600 held out): latency MAPE 25% against the joint fit's 31%, energy 29% against
38%, but off-chip flash 261% against 146% (a model's flash traffic is not only its operators'
weights). Relative to each operator's own label instead, latency was 31%.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._core import Graph
from .._graphs import node_feature_names, op_vocabulary
from ._method import Labelled, Method, check_labels, load_arrays, save_arrays
from ._nnls import nnls

KEY_FIELDS = ("op_type", "kernel_h", "kernel_w", "stride_h", "stride_w", "dilation_h", "dilation_w",
              "fused_activation", "in_bits", "weight_bits")
COST_TERMS = ("1", "macs", "activation_bytes", "param_bytes")
LEVELS = ("kernel", "op_type", "global")
# Ridge on the unit-norm columns: keeps the normal equations solvable when two terms are collinear
# (every instance of a kernel with the same shape) without moving a well-posed solution measurably.
RIDGE = 1e-9
# The joint fit holds a dense [models, keys x terms] design and solves NNLS on all of its columns;
# above this many training rows it uses a seeded sample of them (recorded in the fit's facts), which
# keeps it to minutes and a few hundred MB on 100,000-model data.
JOINT_MAX_ROWS = 20_000


def stack_nodes(graphs: Sequence[Graph]) -> Tuple[np.ndarray, np.ndarray]:
    """All graphs' node features stacked, float64 ``[nodes, features]``, and each node's graph index."""
    if not graphs:
        return np.empty((0, len(node_feature_names()))), np.empty(0, dtype=np.int64)
    features = np.concatenate([g.node_features for g in graphs]).astype(np.float64)
    owner = np.repeat(np.arange(len(graphs)), [g.num_nodes for g in graphs])
    return features, owner


def _node_keys_and_costs(graphs: Sequence[Graph]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node: its kernel key fields, its cost terms ``[nodes, 4]``, and its graph index."""
    names = node_feature_names()
    column = {n: i for i, n in enumerate(names)}
    features, owner = stack_nodes(graphs)
    keys = features[:, [column[f] for f in KEY_FIELDS]]
    costs = np.column_stack([
        np.ones(len(features)),
        features[:, column["macs"]],
        features[:, column["input_activation_bytes"]] + features[:, column["output_activation_bytes"]],
        features[:, column["param_bytes"]],
    ])
    return keys, costs, owner


def _level_keys(keys: np.ndarray, level: str) -> np.ndarray:
    """The key columns that a level distinguishes."""
    if level == "kernel":
        return keys
    if level == "op_type":
        return keys[:, :1]
    return np.zeros((len(keys), 1))


def _design(key_ids: np.ndarray, costs: np.ndarray, owner: np.ndarray, n_graphs: int, n_keys: int) -> np.ndarray:
    """``[graphs, keys·terms]``: each graph's summed cost terms per key."""
    terms = costs.shape[1]
    out = np.empty((n_graphs, n_keys * terms))
    flat = owner * n_keys + key_ids
    for t in range(terms):
        out[:, t::terms] = np.bincount(flat, weights=costs[:, t], minlength=n_graphs * n_keys).reshape(n_graphs, n_keys)
    return out


def _ids_of(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Row index of each key in ``table`` (a key table from training), -1 where absent."""
    index = {tuple(row): i for i, row in enumerate(table.tolist())}
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    ids = np.array([index.get(tuple(row), -1) for row in unique.tolist()], dtype=np.int64)
    return ids[inverse.ravel()] if len(unique) else np.empty(0, dtype=np.int64)


def _operator_fit(ids: np.ndarray, n_keys: int, costs: np.ndarray, labels: np.ndarray,
                  model_labels: np.ndarray) -> np.ndarray:
    """``[keys, terms]``: each key's non-negative coefficients fitted on its own operators' labels,
    each operator's error relative to its model's label; zero for a key whose operators cost nothing."""
    out = np.zeros((n_keys, costs.shape[1]))
    order = np.argsort(ids, kind="stable")
    bounds = np.searchsorted(ids[order], np.arange(n_keys + 1))
    weight = 1.0 / model_labels
    for key in range(n_keys):
        rows = order[bounds[key]:bounds[key + 1]]
        if len(rows) and np.any(labels[rows] > 0):
            out[key], _ = nnls(costs[rows] * weight[rows, None], labels[rows] * weight[rows], ridge=RIDGE)
    return out


def _stack_operator_labels(operator_labels: Optional[Sequence[Optional[np.ndarray]]], graphs: Sequence[Graph],
                           metrics: int) -> np.ndarray:
    """``[nodes, metrics]`` per-operator labels of the stacked nodes, NaN where a row has none."""
    out = np.full((sum(g.num_nodes for g in graphs), metrics), np.nan)
    if operator_labels is None:
        return out
    if len(operator_labels) != len(graphs):
        raise ValueError(f"lookup_ops: {len(operator_labels)} per-operator label arrays for {len(graphs)} graphs")
    start = 0
    for g, labels in zip(graphs, operator_labels):
        if labels is not None:
            labels = np.asarray(labels, dtype=np.float64)
            if labels.shape != (g.num_nodes, metrics):
                raise ValueError(f"lookup_ops: per-operator labels of shape {labels.shape} for a graph of "
                                 f"{g.num_nodes} operators and {metrics} metrics")
            out[start:start + g.num_nodes] = labels
        start += g.num_nodes
    return out


class LookupMethod(Method):
    """Per-kernel cost table fitted by NNLS on whole-model labels (see the module docstring)."""

    name = "lookup"
    # Given per-operator labels only to score its operator costs against them (the fit reads model labels).
    uses_operator_labels = True
    # Whether metrics fitted jointly on model labels get a kernel-level table (else their kernels
    # take their op type's coefficients).
    joint_kernel_level = True
    summary = (
        "nn-Meter-style kernel lookup table: model cost = Σ over its operators of a per-kernel cost "
        "c0 + c1·MACs + c2·activation bytes + c3·parameter bytes, kernel key = op type + kernel size, stride, "
        "dilation, fused activation, input and weight bits. Without per-operator labels the non-negative "
        "coefficients of all kernels are fitted jointly by NNLS (Lawson–Hanson) on the relative error of the "
        "summed model cost (on a seeded sample of 20,000 rows above that), one table per metric; kernels unseen "
        "in training use a table keyed by op type alone, unseen op types one global cost.")

    def __init__(self, columns: Sequence[str], units: Sequence[str], seed: int = 0, threads: int = 0) -> None:
        super().__init__(columns, units, seed, threads)
        self.tables: Dict[str, np.ndarray] = {}  # level -> key table [keys, fields]
        self.coefficients: Dict[str, np.ndarray] = {}  # level -> [metrics, keys, terms]
        self.last_prediction: Dict[str, Any] = {}

    def config(self) -> Dict[str, Any]:
        return {"key_fields": list(KEY_FIELDS), "cost_terms": list(COST_TERMS), "ridge": RIDGE,
                "loss": "relative squared error", "max_rows": JOINT_MAX_ROWS}

    def fit(self, train: Labelled, val: Labelled, progress: bool = False,
            operator_labels: Optional[Tuple[Any, Any]] = None) -> Dict[str, Any]:
        graphs, labels = train
        return self._fit_tables(graphs, check_labels(labels, graphs, self.columns, f"{self.name} train"), None)

    def _fit_tables(self, graphs: Sequence[Graph], y: np.ndarray, node_y: Optional[np.ndarray]) -> Dict[str, Any]:
        """The tables of every level: a metric that some row has per-operator labels ``node_y``
        for ([nodes, metrics], NaN where missing) from the rows with every operator labelled, the
        others jointly on the model labels of at most JOINT_MAX_ROWS rows."""
        keys, costs, owner = _node_keys_and_costs(graphs)
        complete = np.ones((len(graphs), len(self.columns)), dtype=bool)
        if node_y is not None:
            np.logical_and.at(complete, owner, np.isfinite(node_y))
        by_operator = [j for j in range(len(self.columns)) if node_y is not None and complete[:, j].any()]
        joint = [j for j in range(len(self.columns)) if j not in by_operator]
        info: Dict[str, Any] = {}
        rows = np.arange(len(graphs))
        if joint and len(graphs) > JOINT_MAX_ROWS:
            rows = np.sort(np.random.default_rng(self.seed).choice(len(graphs), JOINT_MAX_ROWS, replace=False))
            info["fit_rows"] = JOINT_MAX_ROWS
        in_sample = np.zeros(len(graphs), dtype=bool)
        in_sample[rows] = True
        sample_nodes = in_sample[owner]
        sample_owner = np.cumsum(in_sample)[owner[sample_nodes]] - 1  # node -> row of the joint design
        for level in LEVELS:
            table, ids = np.unique(_level_keys(keys, level), axis=0, return_inverse=True)
            ids = ids.ravel()
            coefficients = np.zeros((len(self.columns), len(table), len(COST_TERMS)))
            for j in by_operator:
                nodes = complete[owner, j]
                coefficients[j] = _operator_fit(ids[nodes], len(table), costs[nodes],
                                                node_y[nodes, j], y[owner[nodes], j])  # type: ignore[index]
            if joint and (level != "kernel" or self.joint_kernel_level):
                design = _design(ids[sample_nodes], costs[sample_nodes], sample_owner, len(rows), len(table))
                for j in joint:
                    x, _ = nnls(design / y[rows, j:j + 1], np.ones(len(rows)), ridge=RIDGE)
                    coefficients[j] = x.reshape(len(table), len(COST_TERMS))
            self.tables[level] = table
            self.coefficients[level] = coefficients
            info[f"{level}_keys"] = int(len(table))
        if joint and not self.joint_kernel_level:
            op_type = _ids_of(self.tables["op_type"], _level_keys(self.tables["kernel"], "op_type"))
            for j in joint:
                self.coefficients["kernel"][j] = self.coefficients["op_type"][j, op_type]
        info["nonzero_coefficients"] = int(np.count_nonzero(self.coefficients["kernel"]))
        if node_y is not None:
            info["fitted_on_operator_labels"] = [self.columns[j] for j in by_operator]
        return info

    def graph_operator_costs(self, graph: Graph) -> np.ndarray:
        """One graph's operator costs ``[num_nodes, metrics]`` (scored against per-operator labels)."""
        return self.operator_costs([graph])[0]

    def operator_costs(self, graphs: Sequence[Graph]) -> Tuple[np.ndarray, np.ndarray]:
        """Each node's cost ``[nodes, metrics]`` from the finest table that knows its key, and its graph."""
        if not self.tables:
            raise RuntimeError("lookup: used before fit")
        keys, costs, owner = _node_keys_and_costs(graphs)
        node_cost = np.zeros((len(keys), len(self.columns)))
        pending = np.ones(len(keys), dtype=bool)
        used: Dict[str, int] = {}
        for level in LEVELS:
            ids = _ids_of(self.tables[level], _level_keys(keys[pending], level))
            found = ids >= 0
            rows = np.flatnonzero(pending)[found]
            coefficients = self.coefficients[level][:, ids[found], :]  # [metrics, rows, terms]
            node_cost[rows] = np.einsum("mrt,rt->rm", coefficients, costs[rows])
            pending[rows] = False
            used[level] = int(found.sum())
        self.last_prediction = {"nodes_by_table": used}
        return node_cost, owner

    def predict(self, graphs: Sequence[Graph]) -> np.ndarray:
        """Each model's sum of its operators' costs."""
        node_cost, owner = self.operator_costs(graphs)
        out = np.zeros((len(graphs), len(self.columns)))
        for j in range(len(self.columns)):
            out[:, j] = np.bincount(owner, weights=node_cost[:, j], minlength=len(graphs))
        return out

    def save(self, path: Path) -> None:
        arrays = {}
        for level in LEVELS:
            arrays[f"table_{level}"] = self.tables[level]
            arrays[f"coefficients_{level}"] = self.coefficients[level]
        save_arrays(path, arrays, {"kind": self.name, "columns": self.columns, "units": self.units,
                                   "key_fields": list(KEY_FIELDS), "cost_terms": list(COST_TERMS)})

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> "LookupMethod":
        arrays, meta = load_arrays(path, cls.name)
        if meta.get("key_fields") != list(KEY_FIELDS) or meta.get("cost_terms") != list(COST_TERMS):
            raise ValueError(f"{path}: a lookup table with other key fields or cost terms than this perfsage's")
        self = cls(meta["columns"], meta["units"], threads=threads)
        for level in LEVELS:
            self.tables[level] = arrays[f"table_{level}"]
            self.coefficients[level] = arrays[f"coefficients_{level}"]
        return self

    def table_rows(self, metric: int = 0) -> List[Dict[str, Any]]:
        """The kernel table of one metric as readable rows (for inspection and tests)."""
        vocabulary = op_vocabulary()
        rows = []
        for key, coefficients in zip(self.tables["kernel"].tolist(), self.coefficients["kernel"][metric]):
            fields = dict(zip(KEY_FIELDS, key))
            fields["op"] = vocabulary[int(fields["op_type"])] if 0 <= int(fields["op_type"]) < len(vocabulary) else "?"
            rows.append({**fields, **dict(zip(COST_TERMS, coefficients.tolist()))})
        return rows


class OperatorLookupMethod(LookupMethod):
    """The kernel table fitted from per-operator labels where they exist (see the module docstring)."""

    name = "lookup_ops"
    joint_kernel_level = False
    summary = (
        "the same kernel table fitted as nn-Meter fits it, from kernel measurements: for a metric with "
        "per-operator labels (Vela's per-layer estimates) each kernel's coefficients by NNLS on its own "
        "operators' labels, each operator's error relative to its model's label; metrics without them (peak "
        "memory) fitted jointly on model labels with the op type as the key (a joint fit over thousands of "
        "kernel columns takes minutes per split here).")

    def config(self) -> Dict[str, Any]:
        return {**super().config(), "operator_labels": "per-kernel NNLS, error relative to the model label",
                "joint_fit_key": "op_type"}

    def fit(self, train: Labelled, val: Labelled, progress: bool = False,
            operator_labels: Optional[Tuple[Any, Any]] = None) -> Dict[str, Any]:
        graphs, labels = train
        y = check_labels(labels, graphs, self.columns, f"{self.name} train")
        node_y = _stack_operator_labels(operator_labels[0] if operator_labels is not None else None, graphs,
                                        len(self.columns))
        return self._fit_tables(graphs, y, node_y)
