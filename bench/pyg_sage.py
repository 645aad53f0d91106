"""perfsage's GraphSAGE model written the way a PyTorch Geometric user would write it.

This is the baseline that bench/bench_gnn.py times against perfsage. It implements the model
defined for perfsage (slog-standardised node features concatenated with an op-type embedding,
K GraphSAGE layers aggregating predecessors and/or successors, layer norm, residual, a
sum/mean/max readout with slog on the sum, optionally R learned log-sum-exp readout channels,
standardised graph features, an MLP head, and
``exp(o * target_std + target_mean)`` as the prediction; or, with ``readout="additive"``, the
head run on every node's ``[h_K | h_0]`` and the graph the sum of the nodes' costs plus a learnt
constant, or their maximum for a peak target, as cpp/include/perfsage/sage.h defines it) with
stock PyG pieces:

* ``torch_geometric.nn.SAGEConv`` does the aggregation and the two linear maps of one direction:
  ``out_i = lin_l(AGG_{j in N(i)} h_j) + lin_r(h_i)``, with ``lin_l`` carrying the bias, exactly
  PyG's GraphSAGE layer. Predecessors ("in") use the default ``flow="source_to_target"``;
  successors ("out") use ``flow="target_to_source"``, which aggregates along ``edge_index[1]``
  into ``edge_index[0]`` without building a flipped edge list. With both directions the second
  conv has neither root weight nor bias, so ``h @ w_self`` and ``bias`` are added once.
* ``torch.nn.LayerNorm`` normalises each node over its H values (biased variance, eps 1e-5), as
  the definition says; PyG's own ``LayerNorm`` defaults to normalising over the whole graph.
* ``global_add_pool`` / ``global_mean_pool`` / ``global_max_pool`` give the readout (and the
  per-graph log-sum-exp of the learned readout scores).

The normalisation statistics are buffers and the parameters can be loaded from the dictionaries
``perfsage.Predictor.parameters()`` / ``normalization()`` return (row-vector weights ``[in, out]``;
``torch.nn.Linear`` stores ``[out, in]``, hence the transposes), so the benchmark first checks
that both libraries predict the same numbers from the same weights, then times them.
"""

from __future__ import annotations

import math
import time
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.nn import SAGEConv, global_add_pool, global_max_pool, global_mean_pool

NUM_OP_TYPES = 210
LN_EPS = 1e-5
AGGREGATORS = ("mean", "sum", "max")
DIRECTIONS = ("in", "out", "both")
READOUTS = ("lse", "additive")


def slog(v: Tensor) -> Tensor:
    """sign(v) * log1p(|v|): compresses features spanning many decades (MACs, bytes) into a range a
    network can use, keeping sign and zero."""
    return torch.sign(v) * torch.log1p(torch.abs(v))


def graph_logsumexp(scores: Tensor, batch: Optional[Tensor], num_graphs: Optional[int]) -> Tensor:
    """log(sum_i exp(scores[i])) over each graph's nodes [B, R], shifted by the per-graph maximum so
    that exp cannot overflow (the shift is detached: its gradient cancels exactly)."""
    if batch is None:
        return torch.logsumexp(scores, dim=0, keepdim=True)
    top = global_max_pool(scores, batch, num_graphs).detach()
    return top + torch.log(global_add_pool(torch.exp(scores - top[batch]), batch, num_graphs))


class PygSage(torch.nn.Module):
    """The perfsage GraphSAGE model in PyTorch Geometric; hyperparameters named as perfsage.Predictor."""

    def __init__(
        self,
        num_node_features: int,
        num_graph_features: int,
        num_targets: int,
        embedding_dim: int = 16,
        hidden: int = 64,
        layers: int = 3,
        aggregator: str = "mean",
        direction: str = "both",
        layer_norm: bool = True,
        residual: bool = True,
        readout_channels: int = 0,
        head_layers: int = 2,
        head_hidden: int = 64,
        readout: str = "lse",
        family_dim: int = 0,
        families: Optional[Sequence[int]] = None,
        max_targets: int = 0,
        node_graph_context: bool = True,
    ) -> None:
        super().__init__()
        if aggregator not in AGGREGATORS:
            raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {aggregator!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        for name, value in (("layers", layers), ("head_layers", head_layers), ("hidden", hidden),
                            ("head_hidden", head_hidden), ("embedding_dim", embedding_dim)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if readout_channels < 0:
            raise ValueError(f"readout_channels must be >= 0, got {readout_channels}")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if family_dim > 0 and families is None:
            raise ValueError("family_dim > 0 needs families: each op type's family (perfsage._core.op_families())")
        self.layers = layers
        self.hidden = hidden
        self.direction = direction
        self.residual = residual
        self.head_layers = head_layers
        self.additive = readout == "additive"
        self.node_graph_context = node_graph_context
        self.embedding = torch.nn.Embedding(NUM_OP_TYPES, embedding_dim)
        self.family_embedding = None
        if family_dim > 0:
            table = torch.tensor(list(families), dtype=torch.long)  # type: ignore[arg-type]
            self.register_buffer("family_of_op", table)
            self.family_embedding = torch.nn.Embedding(int(table.max()) + 1, family_dim)
        input_width = num_node_features + embedding_dim + family_dim
        # Peak targets (bit t of max_targets) take the maximum over the nodes; the others the sum.
        self.register_buffer("is_max", torch.tensor([bool(max_targets >> t & 1) for t in range(num_targets)]))
        self.conv_in = torch.nn.ModuleList()
        self.conv_out = torch.nn.ModuleList()
        self.norms = torch.nn.ModuleList()
        for k in range(layers):
            width = input_width if k == 0 else hidden
            if direction in ("in", "both"):
                self.conv_in.append(SAGEConv(width, hidden, aggr=aggregator))
            if direction in ("out", "both"):
                # With "both", w_self and the bias already live in the predecessor conv.
                alone = direction == "out"
                self.conv_out.append(SAGEConv(width, hidden, aggr=aggregator, root_weight=alone,
                                              bias=alone, flow="target_to_source"))
            self.norms.append(torch.nn.LayerNorm(hidden, eps=LN_EPS) if layer_norm else torch.nn.Identity())
        # Optional learned readout: R linear node scores, each pooled per graph by log-sum-exp (a soft
        # max over the nodes), beside the fixed sum/mean/max.
        self.readout = torch.nn.Linear(hidden, readout_channels) if readout_channels > 0 and not self.additive else None
        if self.additive:
            # The per-node head reads [h_K | h_0 | graph features]; the graph adds a learnt constant.
            self.constant = torch.nn.Parameter(torch.zeros(num_targets))
            first = hidden + input_width + (num_graph_features if node_graph_context else 0)
        else:
            first = 3 * hidden + readout_channels + num_graph_features
        widths = [first] + [head_hidden] * (head_layers - 1) + [num_targets]
        self.head = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        # Statistics fitted on the training set, not trained: buffers (saved, never optimised).
        self.register_buffer("node_mean", torch.zeros(num_node_features))
        self.register_buffer("node_std", torch.ones(num_node_features))
        self.register_buffer("graph_mean", torch.zeros(num_graph_features))
        self.register_buffer("graph_std", torch.ones(num_graph_features))
        self.register_buffer("target_mean", torch.zeros(num_targets))
        self.register_buffer("target_std", torch.ones(num_targets))

    def forward(self, x: Tensor, op_type: Tensor, edge_index: Tensor, graph_features: Tensor,
                batch: Optional[Tensor] = None, num_graphs: Optional[int] = None) -> Tensor:
        """Raw outputs o [B, T] from raw features x [N, F], op_type [N], edge_index [2, E] and
        graph_features [B, G]; batch None means one graph (PyG's pools accept that)."""
        parts = [(slog(x) - self.node_mean) / self.node_std, self.embedding(op_type)]
        if self.family_embedding is not None:
            parts.append(self.family_embedding(self.family_of_op[op_type]))
        h = h0 = torch.cat(parts, dim=1)
        context = (slog(graph_features) - self.graph_mean) / self.graph_std
        for k in range(self.layers):
            if self.direction == "in":
                z = self.conv_in[k](h, edge_index)
            elif self.direction == "out":
                z = self.conv_out[k](h, edge_index)
            else:
                z = self.conv_in[k](h, edge_index) + self.conv_out[k](h, edge_index)
            u = torch.relu(self.norms[k](z))
            h = h + u if self.residual and k >= 1 else u
        if self.additive:
            return self.additive_readout(h, h0, context, batch, num_graphs)
        pooled = [slog(global_add_pool(h, batch, num_graphs)), global_mean_pool(h, batch, num_graphs),
                  global_max_pool(h, batch, num_graphs)]
        if self.readout is not None:
            pooled.append(graph_logsumexp(self.readout(h), batch, num_graphs))
        readout = torch.cat(pooled, dim=1)
        return self.run_head(torch.cat([readout, context], dim=1))

    def run_head(self, z: Tensor) -> Tensor:
        for j, linear in enumerate(self.head):
            z = linear(z)
            if j < self.head_layers - 1:
                z = torch.relu(z)
        return z

    def additive_readout(self, h: Tensor, h0: Tensor, context: Tensor, batch: Optional[Tensor],
                         num_graphs: Optional[int]) -> Tensor:
        """Every node's head output o_node [N, T]; per graph, a sum target's
        o = log(sum_i exp(std o_node_i) + exp(std k)) / std, a peak target's max(max_i o_node_i, k)."""
        if batch is None:
            batch = torch.zeros(h.shape[0], dtype=torch.long)
            num_graphs = 1
        parts = [h, h0] + ([context[batch]] if self.node_graph_context else [])
        scaled = self.run_head(torch.cat(parts, dim=1)) * self.target_std
        constant = self.constant * self.target_std
        peak = torch.maximum(global_max_pool(scaled, batch, num_graphs), constant)
        top = peak.detach()  # the log-sum-exp's shift: its gradient cancels exactly
        total = global_add_pool(torch.exp(scaled - top[batch]), batch, num_graphs) + torch.exp(constant - top)
        summed = top + torch.log(total)
        return torch.where(self.is_max, peak, summed) / self.target_std

    def forward_data(self, data: Data) -> Tensor:
        """Raw outputs for one Data from :func:`to_data`, or a Batch of them."""
        if isinstance(data, Batch):
            return self(data.x, data.op_type, data.edge_index, data.graph_features, data.batch, data.num_graphs)
        return self(data.x, data.op_type, data.edge_index, data.graph_features)

    def log_prediction(self, raw: Tensor) -> Tensor:
        return raw * self.target_std + self.target_mean

    def predict_data(self, data: Data) -> Tensor:
        """y_hat = exp(o * target_std + target_mean) [B, T]."""
        return torch.exp(self.log_prediction(self.forward_data(data)))

    def perfsage_layout(self) -> Dict[str, Tuple[torch.nn.Parameter, bool]]:
        """perfsage's parameter names mapped to this model's parameters, with whether the perfsage
        array is the transpose (perfsage stores weights [in, out], torch.nn.Linear [out, in])."""
        layout: Dict[str, Tuple[torch.nn.Parameter, bool]] = {"embedding": (self.embedding.weight, False)}
        if self.family_embedding is not None:
            layout["family_embedding"] = (self.family_embedding.weight, False)
        for k in range(self.layers):
            # The conv that owns the root weight and bias: the predecessor one unless direction == "out".
            root = self.conv_in[k] if self.direction in ("in", "both") else self.conv_out[k]
            layout[f"sage{k}.w_self"] = (root.lin_r.weight, True)
            if self.direction in ("in", "both"):
                layout[f"sage{k}.w_in"] = (self.conv_in[k].lin_l.weight, True)
            if self.direction in ("out", "both"):
                layout[f"sage{k}.w_out"] = (self.conv_out[k].lin_l.weight, True)
            layout[f"sage{k}.bias"] = (root.lin_l.bias, False)
            if isinstance(self.norms[k], torch.nn.LayerNorm):
                layout[f"sage{k}.ln_gain"] = (self.norms[k].weight, False)
                layout[f"sage{k}.ln_bias"] = (self.norms[k].bias, False)
        if self.additive:
            layout["readout.constant"] = (self.constant, False)
        if self.readout is not None:
            layout["readout.weight"] = (self.readout.weight, True)
            layout["readout.bias"] = (self.readout.bias, False)
        for j, linear in enumerate(self.head):
            layout[f"head{j}.weight"] = (linear.weight, True)
            layout[f"head{j}.bias"] = (linear.bias, False)
        return layout

    def perfsage_gradients(self) -> Dict[str, np.ndarray]:
        """The gradients left by backward(), under perfsage's names and layout."""
        grads: Dict[str, np.ndarray] = {}
        for name, (param, transposed) in self.perfsage_layout().items():
            if param.grad is None:
                raise ValueError(f"no gradient for {name}: call backward() first")
            grads[name] = (param.grad.T if transposed else param.grad).numpy().copy()
        return grads

    def load_perfsage(self, parameters: Mapping[str, np.ndarray], normalization: Mapping[str, np.ndarray]) -> None:
        """Copies perfsage.Predictor.parameters() and normalization() into this model, checking
        every name and shape so that a mismatch in the definition fails loudly here."""
        layout = self.perfsage_layout()
        missing = sorted(set(layout) - set(parameters))
        extra = sorted(set(parameters) - set(layout))
        if missing or extra:
            raise ValueError(f"perfsage parameters do not match the PyG model: missing {missing}, unexpected {extra}")
        with torch.no_grad():
            for name, (param, transposed) in layout.items():
                value = np.asarray(parameters[name], dtype=np.float32)
                target = param.T if transposed else param
                if value.shape != tuple(target.shape):
                    raise ValueError(f"perfsage parameter {name} has shape {value.shape}, "
                                     f"the PyG model needs {tuple(target.shape)}")
                target.copy_(torch.from_numpy(value.copy()))
        self.load_normalization(normalization)

    def load_normalization(self, normalization: Mapping[str, np.ndarray]) -> None:
        """Copies the six normalisation arrays (perfsage's normalization() names) into the buffers."""
        with torch.no_grad():
            for name in ("node_mean", "node_std", "graph_mean", "graph_std", "target_mean", "target_std"):
                if name not in normalization:
                    raise ValueError(f"normalization lacks {name!r}")
                buffer = getattr(self, name)
                value = np.asarray(normalization[name], dtype=np.float32)
                if value.shape != tuple(buffer.shape):
                    raise ValueError(f"normalization {name} has shape {value.shape}, "
                                     f"the PyG model needs {tuple(buffer.shape)}")
                buffer.copy_(torch.from_numpy(value.copy()))


def to_data(graph: "object", labels: Optional[np.ndarray] = None) -> Data:
    """A PyG Data from a perfsage.Graph's public arrays (copied: perfsage hands out read-only views
    that torch.from_numpy refuses to share). graph_features and y get a leading axis of 1 so that
    Batch.from_data_list stacks them into [B, G] and [B, T]."""
    data = Data(
        x=torch.tensor(graph.node_features),
        op_type=torch.tensor(graph.op_types, dtype=torch.long),
        edge_index=torch.tensor(graph.edge_index),
        graph_features=torch.tensor(graph.graph_features).unsqueeze(0),
    )
    if labels is not None:
        data.y = torch.tensor(np.asarray(labels, dtype=np.float32)).reshape(1, -1)
    return data


def mape_loss(y_hat: Tensor, y: Tensor) -> Tensor:
    """Mean |y_hat - y| / y over the finite labels (NaN = missing), as perfsage's "mape" loss."""
    observed = torch.isfinite(y)
    if not bool(observed.any()):
        raise ValueError("labels hold no finite value: the loss is undefined")
    safe_y = torch.where(observed, y, torch.ones_like(y))
    return (torch.abs(y_hat - safe_y) / safe_y)[observed].mean()


def fit_normalization(graphs: Sequence["object"], labels: np.ndarray) -> Dict[str, np.ndarray]:
    """Population mean/std of slog(node features) over all nodes, of slog(graph features) over the
    graphs and of log(labels) per target over its finite labels; a std below 1e-6 becomes 1.

    The PyG trainer's set-up, as p.fit() fits its statistics. Node statistics are accumulated graph
    by graph (float64 sums of values shifted by the first graph's mean, so the variance does not
    cancel) instead of concatenating every node: the memory benchmark should see training, not a
    copy of the dataset made here."""
    def finish(count: int, total: np.ndarray, squares: np.ndarray, shift: np.ndarray) -> List[np.ndarray]:
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
        return [(mean + shift).astype(np.float32), np.where(std < 1e-6, 1.0, std).astype(np.float32)]

    def np_slog(v: np.ndarray) -> np.ndarray:
        return np.sign(v) * np.log1p(np.abs(v))

    if not graphs:
        raise ValueError("fit_normalization needs at least one graph")
    shift = np_slog(graphs[0].node_features.astype(np.float64)).mean(axis=0)
    count, total, squares = 0, np.zeros_like(shift), np.zeros_like(shift)
    for g in graphs:
        v = np_slog(g.node_features.astype(np.float64)) - shift
        count += v.shape[0]
        total += v.sum(axis=0)
        squares += (v * v).sum(axis=0)
    node_mean, node_std = finish(count, total, squares, shift)
    per_graph = np_slog(np.stack([g.graph_features for g in graphs]).astype(np.float64))
    shifted = per_graph - per_graph[0]
    graph_mean, graph_std = finish(len(graphs), shifted.sum(axis=0), (shifted ** 2).sum(axis=0), per_graph[0])
    y = np.asarray(labels, dtype=np.float64)
    target_mean, target_std = [], []
    for t in range(y.shape[1]):
        observed = np.log(y[np.isfinite(y[:, t]), t])
        if observed.size == 0:
            raise ValueError(f"labels column {t} has no finite value to fit its statistics on")
        std = observed.std()
        target_mean.append(observed.mean())
        target_std.append(std if std >= 1e-6 else 1.0)
    return {"node_mean": node_mean, "node_std": node_std, "graph_mean": graph_mean, "graph_std": graph_std,
            "target_mean": np.array(target_mean, np.float32), "target_std": np.array(target_std, np.float32)}


def learning_rate_factor(step: int, steps_per_epoch: int, epochs: int, schedule: str, warmup_epochs: int,
                         min_lr_ratio: float) -> float:
    """The learning rate of optimiser step `step` (0-based) over the base rate, as perfsage's
    trainer defines it: linear warm-up over `warmup_epochs`, then constant or a cosine from 1 down
    to `min_lr_ratio` at the last planned step."""
    warmup = warmup_epochs * steps_per_epoch
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    total = max(1, epochs * steps_per_epoch - warmup)
    progress = min(1.0, (step - warmup) / total)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class PygTrainer:
    """A PyG training loop matching perfsage's fit(): MAPE, AdamW with decoupled weight decay on the
    weight matrices only (not the embedding, biases or layer-norm gains), global gradient-norm
    clipping, perfsage's per-step learning-rate schedule, batches reshuffled every epoch by
    torch_geometric.loader.DataLoader (collation counted, as a PyG user pays it).

    Set-up fits the normalisation statistics, as p.fit() does."""

    def __init__(self, model: PygSage, graphs: Sequence["object"], labels: np.ndarray, dataset: List[Data],
                 epochs: int, lr: float, weight_decay: float, batch_size: int, clip_norm: float,
                 schedule: str = "cosine", warmup_epochs: int = 0, min_lr_ratio: float = 0.01) -> None:
        from torch_geometric.loader import DataLoader

        self.model = model
        self.model.load_normalization(fit_normalization(graphs, labels))
        self.loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
        # The weight matrices are exactly the Linear weights, the entries perfsage stores transposed.
        layout = model.perfsage_layout().values()
        decayed = [param for param, transposed in layout if transposed]
        others = [param for param, transposed in layout if not transposed]
        if len(decayed) + len(others) != len(list(model.parameters())):
            raise ValueError("the perfsage layout does not cover every parameter of the PyG model")
        self.optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": weight_decay},
                                            {"params": others, "weight_decay": 0.0}], lr=lr)
        steps_per_epoch = len(self.loader)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: learning_rate_factor(
            step, steps_per_epoch, epochs, schedule, warmup_epochs, min_lr_ratio))
        self.clip_norm = clip_norm
        self.loader_seconds = 0.0  # time spent inside the DataLoader (shuffling, Batch collation)

    def epoch(self) -> float:
        """One pass over the data; returns the mean training loss over its batches' graphs."""
        self.model.train()
        total, count = 0.0, 0
        batches = iter(self.loader)
        while True:
            start = time.perf_counter()
            batch = next(batches, None)
            self.loader_seconds += time.perf_counter() - start
            if batch is None:
                break
            self.optimizer.zero_grad(set_to_none=True)
            loss = mape_loss(torch.exp(self.model.log_prediction(self.model.forward_data(batch))), batch.y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
            self.optimizer.step()
            self.schedule.step()
            total += float(loss.detach()) * batch.num_graphs
            count += batch.num_graphs
        return total / max(count, 1)
