"""A kernel cost table: a model's metric as the sum of per-operator ("kernel") costs, nn-Meter style.

Each kernel key (op type and its main configuration: kernel size, stride, dilation, fused activation,
input and weight bit widths) costs ``c0 + c1·MACs + c2·activation bytes + c3·parameter bytes`` with
non-negative coefficients. From whole-model labels the coefficients of all keys are fitted jointly by
non-negative least squares on the relative error of the summed model cost,
``Σ_models ((Σ_ops cost - y) / y)²``; from per-operator labels each key's own by NNLS on its operators.
Keys never seen in training fall back to a table fitted the same way with the op type alone as key,
and op types never seen to one global cost. Above JOINT_MAX_ROWS training rows the joint fit uses a
seeded sample of them.

``perfsage evaluate``'s ``lookup`` and ``lookup_ops`` baselines are this table
(``perfsage.evaluation._lookup``); ``Predictor.fit(..., operator_prior="auto")`` uses its attribution
of each model's label to its operators (:func:`attribution`) as per-operator labels for a device
measured by whole models.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._core import Graph
from ._graphs import node_feature_names, op_vocabulary
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


def _graph_totals(node_cost: np.ndarray, owner: np.ndarray, n_graphs: int) -> np.ndarray:
    """Each graph's sum of its operators' costs ``[graphs, metrics]`` (``owner``: each operator's graph)."""
    out = np.zeros((n_graphs, node_cost.shape[1]))
    for j in range(node_cost.shape[1]):
        out[:, j] = np.bincount(owner, weights=node_cost[:, j], minlength=n_graphs)
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


class KernelTable:
    """The per-kernel cost table of ``columns`` (one coefficient set per metric and key), fitted by
    ``fit_tables``; ``joint_kernel_level`` False gives metrics fitted jointly on model labels the op
    type's coefficients for every kernel (see perfsage.evaluation._lookup's ``lookup_ops``)."""

    joint_kernel_level = True

    def __init__(self, columns: Sequence[str], seed: int = 0) -> None:
        self.columns = list(columns)
        self.seed = int(seed)
        self.tables: Dict[str, np.ndarray] = {}  # level -> key table [keys, fields]
        self.coefficients: Dict[str, np.ndarray] = {}  # level -> [metrics, keys, terms]
        self.last_prediction: Dict[str, Any] = {}

    def fit_tables(self, graphs: Sequence[Graph], y: np.ndarray, node_y: Optional[np.ndarray]) -> Dict[str, Any]:
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
        """Each model's sum of its operators' costs ``[graphs, metrics]``."""
        return _graph_totals(*self.operator_costs(graphs), len(graphs))

    def table_rows(self, metric: int = 0) -> List[Dict[str, Any]]:
        """The kernel table of one metric as readable rows (for inspection and tests)."""
        vocabulary = op_vocabulary()
        rows = []
        for key, coefficients in zip(self.tables["kernel"].tolist(), self.coefficients["kernel"][metric]):
            fields = dict(zip(KEY_FIELDS, key))
            fields["op"] = vocabulary[int(fields["op_type"])] if 0 <= int(fields["op_type"]) < len(vocabulary) else "?"
            rows.append({**fields, **dict(zip(COST_TERMS, coefficients.tolist()))})
        return rows


def attribution(graphs: Sequence[Graph], labels: np.ndarray, columns: Sequence[int],
                seed: int = 0) -> List[np.ndarray]:
    """Per-operator labels float32 ``[num_nodes, metrics]`` for graphs labelled as whole models
    (``labels`` ``[graphs, metrics]``, finite and positive): a kernel table fitted jointly on the
    model labels of the metrics ``columns`` prices each operator, and each model's operator costs
    are scaled to sum to its label. NaN in the other metrics, and in every metric of a model whose
    operators the table prices at nothing."""
    y = np.asarray(labels, dtype=np.float64)
    out = [np.full((g.num_nodes, y.shape[1]), np.nan, np.float32) for g in graphs]
    if not columns or not len(graphs):
        return out
    table = KernelTable([str(j) for j in columns], seed)
    table.fit_tables(graphs, y[:, list(columns)], None)
    costs, owner = table.operator_costs(graphs)
    totals = _graph_totals(costs, owner, len(graphs))
    start = 0
    for row, g in enumerate(graphs):
        node = costs[start:start + g.num_nodes]
        for k, j in enumerate(columns):
            if totals[row, k] > 0:
                out[row][:, j] = node[:, k] * (y[row, j] / totals[row, k])
        start += g.num_nodes
    return out
