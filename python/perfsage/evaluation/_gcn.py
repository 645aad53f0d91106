"""The BRP-NAS-style baseline: a graph convolutional network (Dudziak et al., NeurIPS 2020) in NumPy.

As BRP-NAS's latency predictor: 4 GCN layers (Kipf and Welling, ICLR 2017), each
``H' = ReLU(Â H W + b)`` with the symmetrically normalised adjacency with self loops
``Â = D^-½ (A + I) D^-½`` of the undirected operator graph; node features are a one-hot op type
plus perfsage's numeric node features (signed log, standardised); a global pooling and a fully
connected head give one output per metric. Trained on standardised log labels with MSE and Adam.
BRP-NAS pools through a global node; here the readout is the mean of the node embeddings next to
their sum scaled by the training graphs' mean node count, so that the head sees both what the
operators are like and how many there are.

The backward pass is written by hand (checked against finite differences in the tests). Graphs
are batched block-diagonally; ``Â H`` is a self-loop scaling plus edge "rounds", each a gather and
a scatter into distinct rows (no ``np.add.at``, which is slow).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm.auto import tqdm

from .._core import Graph
from .._graphs import node_feature_names
from ._blas import blas_threads
from ._method import Labelled, Method, check_labels, load_arrays, save_arrays

# Chosen so that one training on the Ethos-U graphs of a random split takes minutes on 2 cores;
# a wider layer costs about proportionally more time per epoch for a modest gain in accuracy
# (timings and scores in commit 37c9f17). BRP-NAS itself used hidden 600 on NAS-Bench-201's small
# cells. ``perfsage evaluate --gcn-hidden`` changes it.
GCN_DEFAULTS: Dict[str, Any] = {
    "hidden": 64,
    "layers": 4,
    "epochs": 60,
    "lr": 1e-3,
    "batch_size": 64,
    "patience": 15,
}
# OpenBLAS threads while the GCN trains and predicts: its matrices are small, and a second thread
# made training 3.5-4x slower on the shared 2-core machine (see _blas).
BLAS_THREADS = 1
# Node features that are bookkeeping rather than properties of the operator.
_SKIPPED_FEATURES = ("op_type", "subgraph")


def slog(x: np.ndarray) -> np.ndarray:
    """sign(x)·log(1 + |x|): compresses MACs and byte counts spanning many decades."""
    return np.sign(x) * np.log1p(np.abs(x))


# ----------------------------------------------------------------------------------------------
# Graph encoding and batching


@dataclass
class NodeEncoder:
    """Maps a graph's nodes to GCN input rows: one-hot op type (types seen in training, plus one
    column for any other) followed by standardised signed-log numeric features."""

    op_types: np.ndarray  # int64 [types], sorted
    feature_columns: np.ndarray  # int64 indices into node_feature_names()
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, graphs: Sequence[Graph]) -> "NodeEncoder":
        names = node_feature_names()
        columns = np.array([i for i, n in enumerate(names) if n not in _SKIPPED_FEATURES], dtype=np.int64)
        features = np.concatenate([g.node_features for g in graphs]).astype(np.float64)
        values = slog(features[:, columns])
        std = values.std(axis=0)
        keep = std > 1e-9  # constant columns carry nothing
        return cls(op_types=np.unique(features[:, names.index("op_type")].astype(np.int64)),
                   feature_columns=columns[keep], mean=values.mean(axis=0)[keep], std=std[keep])

    @property
    def width(self) -> int:
        return len(self.op_types) + 1 + len(self.feature_columns)

    def encode(self, graph: Graph, dtype: Any) -> np.ndarray:
        features = graph.node_features
        types = features[:, 0].astype(np.int64)
        slot = np.searchsorted(self.op_types, types)
        known = (slot < len(self.op_types)) & (self.op_types[np.minimum(slot, len(self.op_types) - 1)] == types)
        onehot = np.zeros((len(types), len(self.op_types) + 1), dtype=dtype)
        onehot[np.arange(len(types)), np.where(known, slot, len(self.op_types))] = 1
        numeric = (slog(features[:, self.feature_columns].astype(np.float64)) - self.mean) / self.std
        return np.concatenate([onehot, numeric.astype(dtype)], axis=1)


@dataclass
class PreparedGraph:
    """One graph's encoded nodes and its normalised undirected adjacency."""

    x: np.ndarray  # [nodes, width]
    self_weight: np.ndarray  # [nodes] 1 / d_i
    src: np.ndarray  # int64 [edges] (both directions of every undirected edge)
    dst: np.ndarray
    weight: np.ndarray  # [edges] 1 / sqrt(d_src d_dst)


def prepare_graph(x: np.ndarray, edge_index: np.ndarray) -> PreparedGraph:
    """Â of the undirected graph with self loops, from a directed ``edge_index`` [2, E]."""
    n = x.shape[0]
    edges = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise ValueError(f"edge_index refers to node {int(edges.max())} of a graph with {n} nodes")
    a, b = edges
    off_diagonal = a != b
    pairs = np.unique(np.sort(np.stack([a[off_diagonal], b[off_diagonal]]), axis=0), axis=1)
    src = np.concatenate([pairs[0], pairs[1]])
    dst = np.concatenate([pairs[1], pairs[0]])
    degree = 1.0 + np.bincount(dst, minlength=n)
    dtype = x.dtype
    return PreparedGraph(x=x, self_weight=(1.0 / degree).astype(dtype), src=src, dst=dst,
                         weight=(1.0 / np.sqrt(degree[src] * degree[dst])).astype(dtype))


class Batch:
    """Graphs stacked block-diagonally: node rows, ``Â`` as edge rounds, and the pooling matrices."""

    def __init__(self, graphs: Sequence[PreparedGraph], size_scale: float) -> None:
        sizes = np.array([g.x.shape[0] for g in graphs], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.x = np.concatenate([g.x for g in graphs])
        dtype = self.x.dtype
        self.self_weight = np.concatenate([g.self_weight for g in graphs])[:, None]
        src = np.concatenate([g.src + o for g, o in zip(graphs, offsets)])
        dst = np.concatenate([g.dst + o for g, o in zip(graphs, offsets)])
        weight = np.concatenate([g.weight for g in graphs])
        # Round r holds the r-th edge into every node that has one, so its destinations are distinct
        # and ``out[dst] += ...`` adds each message once.
        order = np.argsort(dst, kind="stable")
        src, dst, weight = src[order], dst[order], weight[order]
        first = np.searchsorted(dst, dst, side="left")
        position = np.arange(len(dst)) - first
        by_round = np.argsort(position, kind="stable")
        counts = np.bincount(position) if len(position) else np.zeros(0, dtype=np.int64)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        self.rounds = [(dst[by_round[s:e]], src[by_round[s:e]], weight[by_round[s:e]][:, None])
                       for s, e in zip(bounds[:-1], bounds[1:])]
        total = int(sizes.sum())
        owner = np.repeat(np.arange(len(graphs)), sizes)
        indicator = np.zeros((len(graphs), total), dtype=dtype)
        indicator[owner, np.arange(total)] = 1
        # Readout = [mean over nodes, sum over nodes / size_scale]: both linear in H.
        self.pool_mean = indicator / np.maximum(sizes, 1)[:, None].astype(dtype)
        self.pool_sum = indicator / dtype.type(size_scale)

    def propagate(self, h: np.ndarray) -> np.ndarray:
        """Â h (Â is symmetric, so this is also the backward of itself)."""
        out = self.self_weight * h
        for dst, src, weight in self.rounds:
            message = np.take(h, src, axis=0)  # np.take gathers rows faster than h[src] indexing
            message *= weight
            out[dst] += message
        return out


# ----------------------------------------------------------------------------------------------
# The network


def init_parameters(width: int, hidden: int, layers: int, outputs: int, seed: int, dtype: Any) -> Dict[str, np.ndarray]:
    """Glorot-uniform weights, zero biases."""
    rng = np.random.default_rng(seed)
    params: Dict[str, np.ndarray] = {}
    fan_in = width
    for layer in range(layers):
        bound = math.sqrt(6.0 / (fan_in + hidden))
        params[f"W{layer}"] = rng.uniform(-bound, bound, (fan_in, hidden)).astype(dtype)
        params[f"b{layer}"] = np.zeros(hidden, dtype=dtype)
        fan_in = hidden
    bound = math.sqrt(6.0 / (2 * hidden + outputs))
    params["W_out"] = rng.uniform(-bound, bound, (2 * hidden, outputs)).astype(dtype)
    params["b_out"] = np.zeros(outputs, dtype=dtype)
    return params


def _layers(params: Dict[str, np.ndarray]) -> int:
    return sum(1 for k in params if k.startswith("W") and k != "W_out")


def forward(params: Dict[str, np.ndarray], batch: Batch) -> Tuple[np.ndarray, List[Tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Outputs ``[graphs, metrics]``, each layer's (input, pre-activation), and the readout."""
    h = batch.propagate(batch.x)  # Â X: layer 0 multiplies the propagated input by W0
    cache = []
    for layer in range(_layers(params)):
        w, b = params[f"W{layer}"], params[f"b{layer}"]
        z = (h @ w if layer == 0 else batch.propagate(h @ w)) + b
        cache.append((h, z))
        h = np.maximum(z, 0)
    readout = np.concatenate([batch.pool_mean @ h, batch.pool_sum @ h], axis=1)
    return readout @ params["W_out"] + params["b_out"], cache, readout


def loss_and_gradients(params: Dict[str, np.ndarray], batch: Batch, targets: np.ndarray
                       ) -> Tuple[float, np.ndarray, Dict[str, np.ndarray]]:
    """Mean squared error over the finite targets, the outputs, and the gradient of every parameter."""
    out, cache, readout = forward(params, batch)
    mask = np.isfinite(targets)
    count = max(int(mask.sum()), 1)
    residual = np.where(mask, out - np.where(mask, targets, 0), 0).astype(out.dtype)
    loss = float(np.sum(residual.astype(np.float64) ** 2) / count)
    d_out = residual * out.dtype.type(2.0 / count)
    grads: Dict[str, np.ndarray] = {"W_out": readout.T @ d_out, "b_out": d_out.sum(axis=0)}
    d_readout = d_out @ params["W_out"].T
    hidden = d_readout.shape[1] // 2
    d_h = batch.pool_mean.T @ d_readout[:, :hidden] + batch.pool_sum.T @ d_readout[:, hidden:]
    for layer in reversed(range(len(cache))):
        h_in, z = cache[layer]
        d_z = d_h * (z > 0)
        grads[f"b{layer}"] = d_z.sum(axis=0)
        if layer == 0:
            grads["W0"] = h_in.T @ d_z
        else:
            d_u = batch.propagate(d_z)
            grads[f"W{layer}"] = h_in.T @ d_u
            d_h = d_u @ params[f"W{layer}"].T
    return loss, out, grads


class Adam:
    """Adam (Kingma and Ba, 2015) over a dict of parameters."""

    def __init__(self, params: Dict[str, np.ndarray], beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.step_count = 0

    def step(self, params: Dict[str, np.ndarray], grads: Dict[str, np.ndarray], lr: float) -> None:
        self.step_count += 1
        correction1 = 1 - self.beta1 ** self.step_count
        correction2 = 1 - self.beta2 ** self.step_count
        for k, g in grads.items():
            self.m[k] *= self.beta1
            self.m[k] += (1 - self.beta1) * g
            self.v[k] *= self.beta2
            self.v[k] += (1 - self.beta2) * g * g
            params[k] -= (lr / correction1) * self.m[k] / (np.sqrt(self.v[k] / correction2) + self.eps)


# ----------------------------------------------------------------------------------------------
# The baseline


class GCNMethod(Method):
    """BRP-NAS-style GCN on log labels (see the module docstring)."""

    name = "gcn"
    summary = ("BRP-NAS-style GCN in NumPy: 4 GCN layers with Â = D^-½(A+I)D^-½ of the undirected graph, "
               "node features one-hot op type + standardised signed-log perfsage node features, readout "
               "[mean, sum / mean training node count], linear head, one network for all metrics; MSE on "
               "standardised log labels, Adam with cosine-decayed learning rate, mini-batches of graphs, early "
               "stopping on validation MAPE (best epoch kept).")

    def __init__(self, columns: Sequence[str], units: Sequence[str], seed: int = 0, threads: int = 0,
                 **settings: Any) -> None:
        super().__init__(columns, units, seed, threads)
        unknown = set(settings) - set(GCN_DEFAULTS)
        if unknown:
            raise ValueError(f"gcn: unknown setting(s) {sorted(unknown)}; known: {sorted(GCN_DEFAULTS)}")
        self.settings = {**GCN_DEFAULTS, **settings}
        self.dtype = np.float32
        self.encoder: Optional[NodeEncoder] = None
        self.params: Dict[str, np.ndarray] = {}
        self.label_mean = np.zeros(len(self.columns))
        self.label_std = np.ones(len(self.columns))
        self.size_scale = 1.0

    def config(self) -> Dict[str, Any]:
        return dict(self.settings)

    def _prepare(self, graphs: Sequence[Graph]) -> List[PreparedGraph]:
        if self.encoder is None:
            raise RuntimeError("gcn: used before fit")
        return [prepare_graph(self.encoder.encode(g, self.dtype), g.edge_index) for g in graphs]

    def _batches(self, prepared: Sequence[PreparedGraph], order: np.ndarray):
        size = int(self.settings["batch_size"])
        for start in range(0, len(order), size):
            index = order[start:start + size]
            yield index, Batch([prepared[i] for i in index], self.size_scale)

    def _predict_prepared(self, prepared: Sequence[PreparedGraph]) -> np.ndarray:
        out = np.empty((len(prepared), len(self.columns)))
        for index, batch in self._batches(prepared, np.arange(len(prepared))):
            out[index] = forward(self.params, batch)[0]
        log_y = out * self.label_std + self.label_mean
        return np.exp(np.clip(log_y, -700, 700))

    def fit(self, train: Labelled, val: Labelled, progress: bool = False) -> Dict[str, Any]:
        with blas_threads(BLAS_THREADS):
            return self._fit(train, val, progress)

    def _fit(self, train: Labelled, val: Labelled, progress: bool) -> Dict[str, Any]:
        graphs, labels = train
        y = check_labels(labels, graphs, self.columns, "gcn train")
        y_val = check_labels(val[1], val[0], self.columns, "gcn val")
        self.encoder = NodeEncoder.fit(graphs)
        self.size_scale = float(np.mean([g.num_nodes for g in graphs]))
        log_y = np.log(y)
        self.label_mean = log_y.mean(axis=0)
        self.label_std = np.maximum(log_y.std(axis=0), 1e-6)
        targets = ((log_y - self.label_mean) / self.label_std).astype(self.dtype)
        prepared, prepared_val = self._prepare(graphs), self._prepare(val[0])
        s = self.settings
        self.params = init_parameters(self.encoder.width, int(s["hidden"]), int(s["layers"]), len(self.columns),
                                      self.seed, self.dtype)
        # The "other op type" input is never on in training, so its weights would stay random: zero them,
        # and an operator type first seen at prediction time counts by its numeric features alone.
        self.params["W0"][len(self.encoder.op_types)] = 0
        optimiser = Adam(self.params)
        rng = np.random.default_rng(self.seed)
        epochs = int(s["epochs"])
        best: Tuple[float, int, Dict[str, np.ndarray]] = (math.inf, 0, {})
        history = []
        bar = _bar(epochs, progress)
        for epoch in range(1, epochs + 1):
            epoch_started = time.perf_counter()
            lr = float(s["lr"]) * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs)))
            losses = []
            for index, batch in self._batches(prepared, rng.permutation(len(prepared))):
                loss, _, grads = loss_and_gradients(self.params, batch, targets[index])
                optimiser.step(self.params, grads, lr)
                losses.append(loss)
            val_mape = float(np.mean(np.abs(self._predict_prepared(prepared_val) / y_val - 1))) * 100
            history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_mape": val_mape,
                            "seconds": time.perf_counter() - epoch_started})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses):.4g}", val_mape=f"{val_mape:.3g}%")
            if val_mape < best[0]:
                best = (val_mape, epoch, {k: v.copy() for k, v in self.params.items()})
            elif epoch - best[1] >= int(s["patience"]):
                break
        if bar is not None:
            bar.close()
        self.params = best[2] or self.params
        return {"epochs_run": len(history), "best_epoch": best[1], "best_val_mape": best[0],
                "median_epoch_seconds": float(np.median([h["seconds"] for h in history])),
                "settings": dict(s), "width": self.encoder.width}

    def predict(self, graphs: Sequence[Graph]) -> np.ndarray:
        if self.encoder is None:
            raise RuntimeError("gcn: predict before fit")
        with blas_threads(BLAS_THREADS):
            return self._predict_prepared(self._prepare(graphs))

    def save(self, path: Path) -> None:
        if self.encoder is None:
            raise RuntimeError("gcn: save before fit")
        arrays = {f"param_{k}": v for k, v in self.params.items()}
        arrays.update(op_types=self.encoder.op_types, feature_columns=self.encoder.feature_columns,
                      feature_mean=self.encoder.mean, feature_std=self.encoder.std,
                      label_mean=self.label_mean, label_std=self.label_std)
        save_arrays(path, arrays, {"kind": self.name, "columns": self.columns, "units": self.units,
                                   "settings": self.settings, "size_scale": self.size_scale,
                                   "feature_names": node_feature_names()})

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> "GCNMethod":
        arrays, meta = load_arrays(path, cls.name)
        if meta.get("feature_names") != node_feature_names():
            raise ValueError(f"{path}: a GCN trained on other node features than this perfsage's")
        self = cls(meta["columns"], meta["units"], threads=threads, **meta["settings"])
        self.encoder = NodeEncoder(arrays["op_types"], arrays["feature_columns"], arrays["feature_mean"],
                                   arrays["feature_std"])
        self.params = {k[len("param_"):]: v for k, v in arrays.items() if k.startswith("param_")}
        self.label_mean, self.label_std = arrays["label_mean"], arrays["label_std"]
        self.size_scale = float(meta["size_scale"])
        return self


def _bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    return tqdm(total=total, unit="epoch", desc="gcn", leave=False)
