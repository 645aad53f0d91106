"""The Predictor: perfsage's GraphSAGE network from Python (the math runs in the C++ core)."""

from __future__ import annotations

import json
import os
import platform
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm.auto import tqdm

from . import _adapt, _core, _domain, _intervals, _kernel_table, _resume
from ._core import Graph, PerfSageError
from ._graphs import batch_graphs, check_threads, load_many, model_source, raise_first_failure
from ._io import __version__, atomic_write_bytes, json_safe, utc_timestamp
from ._split import validation_split
from ._writer import build_spec_graphs, spec_item
from .labelers.vela import recorded_limits
from .labelers.vela_layers import PLACEMENTS
from .datasets import open_dataset

_SHIPPED_DIR = Path(__file__).resolve().parent / "predictors"

# A spec (a dict, spec.h's format) or a sample() item stands for the model build_model writes from it.
GraphLike = Union[Graph, str, os.PathLike, bytes, bytearray, memoryview, Mapping[str, Any]]

# The hyperparameters a user may set and their defaults come from the core's one description of
# each config struct (cpp/include/perfsage/sage_config.h and train.h), so they are never repeated.
# Network shape.
NETWORK_DEFAULTS: Dict[str, Any] = _core.network_defaults()
# Optimisation, the share of the training data ``fit`` holds out when given no validation set,
# whether fit also tries the kernel table's attribution as per-operator labels (OPERATOR_PRIORS),
# and the fewest optimiser steps fit takes (min_steps: more epochs than asked when the training rows
# fill few batches; 0: the epochs asked).
TRAINING_DEFAULTS: Dict[str, Any] = {**_core.training_defaults(), "validation_split": 0.1, "operator_prior": "off",
                                     "min_steps": 0}
_OPTION_FIELDS = tuple(_core.training_defaults())
# "auto": an additive network given model labels alone (no row has per-operator labels) is trained
# twice, once on them alone and once also on the kernel table's attribution of each model's label to
# its operators (perfsage._kernel_table.attribution: NNLS on the training rows' model labels, each
# model's operator costs scaled to its label); fit keeps the one with the lower validation MAPE.
OPERATOR_PRIORS = ("off", "auto")
# The prior's network: operator heads that do not read the graph's totals, so that the table's
# per-operator prices, not a per-graph-size split of them, carry to graphs unlike the training
# rows (bench/operator_prior.py measured the prior with these heads).
_PRIOR_NETWORK: Dict[str, Any] = {"node_graph_context": False}
# Predictor.adapt fine-tunes at this share of its base's learning rate unless told otherwise.
ADAPT_LR_SHARE = 0.1
# Folds of the cross-fitting that calibrates an adapted predictor's intervals.
ADAPT_CALIBRATION_FOLDS = 5
# Below this many training graphs, fit holds out no validation split (one graph of nine is no test).
_MIN_GRAPHS_TO_SPLIT = 10

Data = Union[str, os.PathLike, Tuple[Sequence[GraphLike], Any]]


def checkpoint_files(checkpoint: Union[str, os.PathLike]) -> List[Path]:
    """The files ``fit(..., checkpoint=path)`` may write: the path itself, and the prior's network's
    beside it (``operator_prior="auto"``); delete them all when a finished run's state is no longer needed."""
    path = Path(checkpoint)
    return [path, path.with_name(path.name + ".prior")]


class _Run(NamedTuple):
    """What one ``fit`` call asked for, handed to each network it trains."""

    source: str
    val_source: Optional[str]
    label_settings: Dict[str, Dict[str, Any]]
    epochs: int
    callback: Optional[Callable[[Dict[str, Any]], Optional[bool]]]
    threads: int
    progress: bool
    intervals: bool
    started: float
    what: str = "training"


_ONE_MODEL = (Graph, str, os.PathLike, bytes, bytearray, memoryview, Mapping)


def _as_graphs(items: Union[GraphLike, Sequence[GraphLike]], threads: int, what: str = "graphs",
               spec_dtype: str = "int8") -> List[Graph]:
    """Graphs from Graphs, paths, TFLite bytes or specs (one item or a sequence), made in parallel.

    Specs (dicts) and ``sample()`` items take the spec path (``spec_graphs``), as ``spec_dtype``
    models. A bad item raises TypeError naming it by its index in ``items`` (``graphs[2]``)."""
    check_threads(threads)
    # The NAS loop's case first: Graphs only, nothing to convert (type checks: isinstance against
    # Mapping, an ABC, costs more than a small graph's prediction).
    if type(items) is Graph:
        return [items]
    if type(items) is list and all(type(g) is Graph for g in items):
        return list(items)
    if isinstance(items, _ONE_MODEL):
        items = [items]
    elif not hasattr(items, "__iter__"):
        raise TypeError(f"{what}: expected a Graph, a .tflite path, TFLite bytes, a spec or a list of them, "
                        f"got {type(items).__name__}")
    items = list(items)
    specs = [i for i, g in enumerate(items) if isinstance(g, Mapping)]
    pending = [i for i, g in enumerate(items) if not isinstance(g, (Graph, Mapping))]
    sources = {i: model_source(items[i], f"{what}[{i}]", "a Graph, a path, bytes or a spec") for i in pending}
    if specs:
        built = build_spec_graphs([spec_item(items[i], f"{what}[{i}]") for i in specs], spec_dtype, threads)
        for i, g in zip(specs, batch_graphs(built, "raise")):
            items[i] = g
    if pending:
        loaded = load_many([sources[i] for i in pending], threads=threads)
        for i, g in zip(pending, loaded):
            items[i] = g
    return items  # type: ignore[return-value]


def _spec_items(items: Any, what: str = "graphs") -> Optional[List[Tuple[Any, int, str]]]:
    """The spec path's items (spec, seed, source) when ``items`` is one spec or a list or tuple of
    specs and ``sample()`` items only; None for anything else (Graphs, paths, bytes, a mix)."""
    if isinstance(items, Mapping):
        items = [items]
    if (not isinstance(items, (list, tuple)) or not items or
            not all(type(item) is dict or isinstance(item, Mapping) for item in items)):
        return None
    return [spec_item(item, f"{what}[{i}]") for i, item in enumerate(items)]


def _one_graph(item: GraphLike, what: str) -> Graph:
    """The Graph of one model (a Graph, a path, TFLite bytes or a spec); a list or None is a TypeError."""
    if not isinstance(item, _ONE_MODEL):
        raise TypeError(f"{what}: expected one model (a Graph, a .tflite path, TFLite bytes or a spec), got "
                        f"{type(item).__name__}; call it once per model")
    return _as_graphs(item, 1, what)[0]


def _labelled_rows(dataset: Any, targets: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """A dataset's labels of ``targets`` (float64 ``[rows, targets]``) and which rows have any:
    not error rows, not missing every one of them."""
    labels = np.asarray(dataset.labels(targets), dtype=np.float64)
    return labels, ~np.all(np.isnan(labels), axis=1)


def _as_labels(labels: Any, n: int, targets: Sequence[str], what: str) -> np.ndarray:
    """Labels as float32 [n, targets]: an array [n, T] (or [n] for one target), or a dict by target."""
    if isinstance(labels, dict):
        missing = [t for t in targets if t not in labels]
        if missing:
            raise ValueError(f"{what}: no labels for target(s) {missing}; got {sorted(labels)}")
        labels = np.stack([np.asarray(labels[t], dtype=np.float64) for t in targets], axis=1)
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim == 1 and len(targets) == 1:
        y = y[:, None]
    if y.shape != (n, len(targets)):
        raise ValueError(f"{what}: expected labels of shape ({n}, {len(targets)}) for {n} graphs and "
                         f"targets {list(targets)}, got {y.shape}")
    return np.ascontiguousarray(y, dtype=np.float32)


NodeLabels = List[Optional[np.ndarray]]


def _graph_set(graphs: Sequence[Graph], node_labels: Optional[NodeLabels] = None) -> "_core.GraphSet":
    s = _core.GraphSet()
    s.extend(list(graphs))
    for i, labels in enumerate(node_labels or []):
        if labels is not None:
            s.set_node_labels(i, labels)
    return s


# Peak metrics that are nevertheless sums over the operators: on the Ethos-U65 with dedicated SRAM,
# DRAM holds every weight of the model (and what spills from SRAM), so its peak is 1.07-1.26x the
# model's parameter bytes (quartiles over the 146 real models), which a maximum over operators
# cannot express.
SUMMED_PEAKS = frozenset({"peak_dram_bytes"})


def output_limits(targets: Sequence[str], label_settings: Mapping[str, Any]) -> Dict[str, float]:
    """Upper bounds that the labels of ``targets`` ("target/metric") cannot exceed, from the
    labellers' recorded settings (``{target: settings}``): a U65 with dedicated SRAM never uses more
    than its SRAM (384 KB), however large the model, while a network's maximum over operators
    grows with them. Kept in the provenance (``output_limits``), where ``predict`` reads them. A
    labeller whose limits cannot be read here (Vela missing or another config file) gives none,
    with a warning."""
    limits: Dict[str, float] = {}
    for column in targets:
        target, _, metric = column.rpartition("/")
        settings = label_settings.get(target)
        if not settings:
            continue
        try:
            value = recorded_limits(settings).get(metric)
        except (ImportError, ValueError, OSError) as exc:
            warnings.warn(f"{column}: no upper bound from the labeller's settings ({exc})", stacklevel=3)
            continue
        if value is not None:
            limits[column] = value
    return limits


def max_targets_mask(targets: Sequence[str]) -> int:
    """The additive readout's ``max_targets``: bit t for each target that is a peak (its metric
    name starts with ``peak_``: the maximum over the schedule, not a sum over operators), except
    the peaks of SUMMED_PEAKS."""
    mask = 0
    for t, name in enumerate(targets):
        metric = name.rpartition("/")[2]
        if metric.startswith("peak_") and metric not in SUMMED_PEAKS:
            if t >= 31:
                raise ValueError(f"target {name!r}: a peak target must be among the first 31 targets")
            mask |= 1 << t
    return mask


def _as_node_labels(node_labels: Any, graphs: Sequence[Graph], targets: Sequence[str], what: str) -> NodeLabels:
    """Per-operator labels as float32 [num_nodes, targets] per graph (None: none), from a list with one
    entry per graph: None, an array [num_nodes] (one target) or [num_nodes, targets]."""
    if not isinstance(node_labels, (list, tuple)) or len(node_labels) != len(graphs):
        raise ValueError(f"{what}: expected a list of {len(graphs)} per-operator label arrays (or None), got "
                         f"{type(node_labels).__name__}"
                         + (f" of {len(node_labels)}" if isinstance(node_labels, (list, tuple)) else ""))
    out: NodeLabels = []
    for i, (labels, graph) in enumerate(zip(node_labels, graphs)):
        if labels is None:
            out.append(None)
            continue
        a = np.asarray(labels, dtype=np.float32)
        if a.ndim == 1 and len(targets) == 1:
            a = a[:, None]
        if a.shape != (graph.num_nodes, len(targets)):
            raise ValueError(f"{what}[{i}]: expected shape ({graph.num_nodes}, {len(targets)}) for graph {i}'s "
                             f"{graph.num_nodes} operators and targets {list(targets)}, got {a.shape}")
        out.append(np.ascontiguousarray(a))
    return out


def _adapt_targets(data: Any, targets: Union[str, Sequence[str], None]) -> List[str]:
    """The target names ``Predictor.adapt`` fits: ``targets`` as given, a dataset's columns of a bare
    target name, or the keys of a dict of labels."""
    if isinstance(targets, str):
        targets = [targets]
    if targets is None:
        labels = data[1] if isinstance(data, tuple) and len(data) >= 2 else None
        if isinstance(labels, dict):
            return [str(k) for k in labels]
        raise ValueError("adapt: name the new predictor's targets (targets='my-board/latency_ms'), or pass the "
                         "labels as a dict by target")
    targets = list(targets)
    if isinstance(data, (str, os.PathLike)):
        columns = open_dataset(data).label_columns
        expanded: List[str] = []
        for t in targets:
            of = [t] if t in columns else [c for c in columns if c.rpartition("/")[0] == t]
            if not of:
                raise ValueError(f"adapt: dataset {data} has no column {t!r} and no columns of target {t!r}; its "
                                 f"label columns are {columns}")
            expanded += of
        targets = list(dict.fromkeys(expanded))
    return targets


def _start_network(network: "_core.Network", base: "_core.Network", base_targets: Sequence[str],
                   targets: Sequence[str], graphs: List[Graph], target_log: np.ndarray, threads: int
                   ) -> Dict[str, Any]:
    """Sets ``network`` (``base``'s configuration for ``targets``) to ``base`` with the last head
    layer ``Predictor.adapt`` starts from (``perfsage._adapt``), fitted on ``graphs``' log labels
    ``target_log`` [n, targets]. Returns each target's start (for provenance)."""
    config = base.config
    additive = config["readout"] == "additive"
    base_log = np.log(np.maximum(base.predict(graphs, threads).astype(np.float64), 1e-30))
    norm = base.get_normalization()
    params = base.get_parameters()
    last = f"head{config['head_layers'] - 1}"
    base_peaks = [bool(config["max_targets"] >> t & 1) if additive else False for t in range(len(base_targets))]
    new_peaks = [bool(max_targets_mask(targets) >> j & 1) if additive else False for j in range(len(targets))]
    operator_log: List[np.ndarray] = []
    constant_log = np.zeros(0)
    if additive and not all(new_peaks):
        for graph in graphs:
            _, costs, constant = base.operator_costs(graph)  # the constant is the same for every graph
            operator_log.append(np.log(np.maximum(np.asarray(costs, np.float64), 1e-30)))
        constant_log = np.log(np.maximum(np.asarray(constant, np.float64), 1e-30))
    means, stds, columns = [], [], {f"{last}.weight": [], f"{last}.bias": [], "readout.constant": []}
    start: Dict[str, Any] = {}
    for j, name in enumerate(targets):
        mean, std = _adapt.target_statistics(target_log[:, j])
        candidates = _adapt.candidate_columns(base_targets, base_peaks, name, new_peaks[j], additive)
        if not additive:
            combination = _adapt.fit_combination(base_log, target_log[:, j], candidates)
        elif new_peaks[j]:
            combination = _adapt.fit_one_column(base_log, target_log[:, j], candidates)
        else:
            combination = _adapt.fit_operator_sum(operator_log, constant_log, target_log[:, j], candidates)
        column = _adapt.transfer_head(params[f"{last}.weight"], params[f"{last}.bias"], params.get("readout.constant"),
                                      norm["target_mean"], norm["target_std"], combination, mean, std)
        means.append(mean)
        stds.append(std)
        columns[f"{last}.weight"].append(column["weight"])
        columns[f"{last}.bias"].append(column["bias"])
        columns["readout.constant"].append(column.get("constant"))
        start[name] = {"base_columns": [base_targets[c] for c in combination.columns],
                       "intercept": combination.intercept, "coefficients": combination.coefficients.tolist(),
                       "ridge": combination.ridge, "loo_rmse_log": combination.loo_rmse}
    params[f"{last}.weight"] = np.stack(columns[f"{last}.weight"], axis=1)
    params[f"{last}.bias"] = np.stack(columns[f"{last}.bias"])
    if "readout.constant" in params:
        params["readout.constant"] = np.stack(columns["readout.constant"])
    network.set_normalization(_float32({**norm, "target_mean": np.array(means), "target_std": np.array(stds)}))
    network.set_parameters(_float32(params))
    return start


# The widths the interval companion halves (and its depth: one layer fewer).
_COMPANION_HALVED = ("hidden", "head_hidden", "embedding_dim", "readout_channels", "family_dim", "layers")


def _companion_config(config: Dict[str, Any], targets: Sequence[str]) -> "_core.SageConfig":
    out = _config_like(config, targets)
    out.hidden = max(4, config["hidden"] // 2)
    out.head_hidden = max(4, config["head_hidden"] // 2)
    out.embedding_dim = max(2, config["embedding_dim"] // 2)
    out.readout_channels = max(2, config["readout_channels"] // 2)
    out.family_dim = max(2, config["family_dim"] // 2) if config["family_dim"] else 0
    out.layers = max(1, config["layers"] - 1)
    return out


def _companion_options(options: "_core.TrainOptions") -> "_core.TrainOptions":
    """The companion's training options: its network's, from the next seed."""
    out = _core.TrainOptions()
    for name in _OPTION_FIELDS:
        setattr(out, name, getattr(options, name))
    out.seed = int(options.seed) + 1
    return out


def _float32(values: Dict[str, Any]) -> Dict[str, np.ndarray]:
    """Arrays by name as the core takes them: float32, C-contiguous."""
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in values.items()}


def _config_like(config: Dict[str, Any], targets: Sequence[str]) -> "_core.SageConfig":
    """A network configuration equal to ``config`` (a network's, as a dict, including the feature
    counts of the schema it reads) but for ``targets``."""
    out = _core.SageConfig()
    for name, value in config.items():
        setattr(out, name, value)
    out.num_targets = len(targets)
    out.max_targets = max_targets_mask(targets) if config["readout"] == "additive" else 0
    return out


# Operator types whose NPU lowering Vela schedules as operations with no source operator, so the
# model's label holds their cost and no operator's label does (Vela 5.2: an NPU ARG_MAX, whose own
# placement is "none"). In 6,000 op_zoo rows on ethos-u55-256, the labels of every row without
# ARG_MAX, or with a CPU-placed one, summed to the model's; every row with an NPU ARG_MAX fell short.
_SOURCELESS_LOWERING = frozenset({"ARG_MAX"})


def dataset_operator_labels(dataset: Any, targets: Sequence[str],
                            op_names: Optional[Sequence[Optional[Sequence[str]]]] = None) -> Optional[NodeLabels]:
    """Per-operator labels [num_nodes, targets] of each row of ``dataset`` for the targets it has
    them for (NaN columns for the others); None when it has none for any target.

    With ``op_names`` (each row's operator types, e.g. ``graph.op_names``), what the model's label
    holds beyond its operators' labels goes to its operators of ``_SOURCELESS_LOWERING`` types that
    Vela placed nowhere (shared equally): those are what Vela lowered into source-less operations.
    A row whose operators' labels still do not add up to its model label (within 1%) gets a NaN
    column for that target, so it trains on the model label alone rather than teach some
    operators to cost nothing."""
    columns = []
    for name in targets:
        target, _, metric = name.rpartition("/")
        node_metrics = dataset.targets.get(target, {}).get("node_metrics", {})
        if metric not in node_metrics:
            columns.append(None)
            continue
        placement = dataset.node_labels(target, "placement") if "placement" in node_metrics else None
        columns.append(_attributed(dataset.node_labels(target, metric), dataset.labels([name])[:, 0], placement,
                                   op_names))
    if all(c is None for c in columns):
        return None
    out: NodeLabels = []
    for row in range(len(dataset)):
        values = [c[row] if c is not None else None for c in columns]
        present = [v for v in values if v is not None]
        if not present:
            out.append(None)
            continue
        n = len(present[0])
        out.append(np.stack([v if v is not None and len(v) == n else np.full(n, np.nan, np.float32)
                             for v in values], axis=1).astype(np.float32))
    return out


def _attributed(node_labels: List[Optional[np.ndarray]], totals: np.ndarray,
                placement: Optional[List[Optional[np.ndarray]]] = None,
                op_names: Optional[Sequence[Optional[Sequence[str]]]] = None) -> List[Optional[np.ndarray]]:
    """``node_labels`` with the source-less remainder given to its operators (see
    :func:`dataset_operator_labels`) and rows that still miss the finite positive ``totals`` by
    more than 1% replaced by NaN."""
    nowhere = float(PLACEMENTS.index("none"))
    out = list(node_labels)
    for row, (labels, total) in enumerate(zip(node_labels, totals)):
        if labels is None or not np.isfinite(total) or total <= 0 or not np.all(np.isfinite(labels)):
            continue
        gap = float(total) - float(np.sum(labels, dtype=np.float64))
        names = op_names[row] if op_names is not None else None
        places = placement[row] if placement is not None else None
        if gap > 1e-6 * float(total) and names is not None and places is not None and len(names) == len(labels) \
                and len(places) == len(labels):
            takers = [i for i, (op, where) in enumerate(zip(names, places))
                      if op in _SOURCELESS_LOWERING and where == nowhere]
            if takers:
                labels = labels.copy()
                labels[takers] += np.float32(gap / len(takers))
                out[row] = labels
                gap = float(total) - float(np.sum(labels, dtype=np.float64))
        if abs(gap) > 0.01 * float(total):
            out[row] = np.full(len(labels), np.nan, np.float32)
    return out


class Predictor:
    """Predicts target metrics (latency, energy, memory, ...) of TFLite graphs with GraphSAGE.

    ``Predictor(targets=["ethos-u55-256/latency_ms"], hidden=128)`` makes an untrained predictor;
    ``fit`` trains it on a dataset file or on ``(graphs, labels)``; ``predict`` returns a float32
    array ``[n, len(targets)]`` whose columns are ``output_names``. Target names are free-form, so a
    predictor can learn any column a user measured. Hyperparameters: see ``NETWORK_DEFAULTS`` and
    ``TRAINING_DEFAULTS``.
    """

    def __init__(self, targets: Sequence[str], units: Optional[Sequence[str]] = None, **hyperparameters: Any):
        if isinstance(targets, str):
            targets = [targets]
        targets = list(targets)
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise ValueError(f"targets must be a non-empty list of non-empty strings, got {targets!r}")
        if len(set(targets)) != len(targets):
            raise ValueError(f"targets must be distinct, got {targets!r}")
        units = list(units) if units is not None else [""] * len(targets)
        if len(units) != len(targets):
            raise ValueError(f"{len(units)} units for {len(targets)} targets")
        unknown = set(hyperparameters) - set(NETWORK_DEFAULTS) - set(TRAINING_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown hyperparameter(s) {sorted(unknown)}; known: "
                            f"{sorted(NETWORK_DEFAULTS) + sorted(TRAINING_DEFAULTS)}")
        self._targets = targets
        self._units = [str(u) for u in units]
        net = {**NETWORK_DEFAULTS, **{k: v for k, v in hyperparameters.items() if k in NETWORK_DEFAULTS}}
        train = {**TRAINING_DEFAULTS, **{k: v for k, v in hyperparameters.items() if k in TRAINING_DEFAULTS}}
        if not 0.0 <= float(train["validation_split"]) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {train['validation_split']}")
        if isinstance(train["min_steps"], bool) or not isinstance(train["min_steps"], int) or train["min_steps"] < 0:
            raise ValueError(f"min_steps must be a non-negative int, got {train['min_steps']!r}")
        if train["operator_prior"] not in OPERATOR_PRIORS:
            raise ValueError(f"operator_prior must be one of {', '.join(OPERATOR_PRIORS)}, got {train['operator_prior']!r}")
        config = _core.SageConfig()
        for name, value in net.items():
            setattr(config, name, value)
        config.num_targets = len(targets)
        if config.readout == "additive":
            config.max_targets = max_targets_mask(targets)
        self._network = _core.Network(config)
        self._options = _core.TrainOptions()
        for name in _OPTION_FIELDS:
            setattr(self._options, name, train[name])
        self._options.validate()
        self._validation_split = float(train["validation_split"])
        self._operator_prior = str(train["operator_prior"])
        self._min_steps = int(train["min_steps"])
        self._initialized = False
        # The interval companion (fit(..., intervals=True)): a smaller network of the same targets.
        self._companion: Optional["_core.Network"] = None
        self.history: List[Dict[str, Any]] = []
        self.provenance: Dict[str, Any] = {}

    # -- description ------------------------------------------------------------------------

    @property
    def output_names(self) -> List[str]:
        """Column names of ``predict``'s output, in order (the targets)."""
        return list(self._targets)

    targets = output_names

    @property
    def units(self) -> List[str]:
        return list(self._units)

    @property
    def hyperparameters(self) -> Dict[str, Any]:
        config = self._network.config
        out = {k: config[k] for k in NETWORK_DEFAULTS}
        out.update({k: getattr(self._options, k) for k in _OPTION_FIELDS})
        out["validation_split"] = self._validation_split
        out["operator_prior"] = self._operator_prior
        out["min_steps"] = self._min_steps
        return out

    @property
    def is_additive(self) -> bool:
        """Whether the network prices each operator (``readout="additive"``)."""
        return self._network.config["readout"] == "additive"

    def operator_costs(self, graph: GraphLike) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Additive readout only: ``(prediction [targets], costs [num_nodes, targets], constant
        [targets])``, each operator's predicted cost in the targets' units, in the graph's node
        order; a sum target's prediction is ``costs.sum(0) + constant``, a peak target's their
        maximum."""
        self._require_initialized("operator_costs")
        if not self.is_additive:
            raise ValueError("operator_costs: this predictor's readout is not additive; use explain() for shares")
        return self._network.operator_costs(_one_graph(graph, "operator_costs"))

    @property
    def has_intervals(self) -> bool:
        """Whether ``predict(..., interval=level)`` works: fitted with ``intervals=True``."""
        return self._companion is not None and "intervals" in self.provenance

    @property
    def default_interval_scope(self) -> Optional[str]:
        """The scope ``predict(..., interval=level)`` takes by default: ``"per-space"`` when the
        calibration has it (``calibrate(..., groups=...)``), else ``"pooled"``; None without intervals."""
        if not self.has_intervals:
            return None
        return "per-space" if _intervals.has_scope(self.provenance["intervals"], "per-space") else "pooled"

    @property
    def is_trained(self) -> bool:
        return self._initialized

    def __repr__(self) -> str:
        state = "trained" if self._initialized else "untrained"
        return f"<perfsage.Predictor {state}, targets={self._targets}>"

    # -- parameters (for tests, inspection and transfer) -----------------------------------------

    def parameters(self) -> Dict[str, np.ndarray]:
        """Copies of the network's parameters by name (float32)."""
        return self._network.get_parameters()

    def set_parameters(self, values: Dict[str, np.ndarray]) -> None:
        """Replaces every parameter; values are converted to float32 C-contiguous arrays. Intervals,
        calibrated for the weights replaced, are dropped."""
        self._network.set_parameters(_float32(values))
        self._drop_intervals()

    def _drop_intervals(self) -> None:
        self._companion = None
        self.provenance.pop("intervals", None)

    def normalization(self) -> Dict[str, np.ndarray]:
        """Feature and target statistics fitted on the training data (float32)."""
        return self._network.get_normalization()

    def set_normalization(self, values: Dict[str, np.ndarray]) -> None:
        self._network.set_normalization(_float32(values))
        self._initialized = True
        self._drop_intervals()

    def initialize(self, graphs: Sequence[GraphLike], labels: Any, threads: int = 0) -> "Predictor":
        """Fits the normalisation on ``graphs``/``labels`` and draws initial weights from ``seed``."""
        graphs = _as_graphs(graphs, threads)
        y = _as_labels(labels, len(graphs), self._targets, "labels")
        self._initialize(_graph_set(graphs), y)
        return self

    def _initialize(self, graph_set: "_core.GraphSet", labels: np.ndarray) -> None:
        self._network.fit_normalization(graph_set, labels)
        self._network.init_parameters(int(self._options.seed))
        self._initialized = True
        self._drop_intervals()

    def loss_and_gradients(self, graphs: Sequence[GraphLike], labels: Any, precision: str = "float32",
                           operator_labels: Optional[Sequence[Optional[np.ndarray]]] = None
                           ) -> Tuple[float, np.ndarray, Dict[str, np.ndarray]]:
        """Mean loss, raw network outputs ``[n, targets]`` and the gradient of every parameter.

        ``precision="float64"`` runs the whole computation in double precision (for checks against
        references); the float32 path is the one training uses. ``operator_labels`` (per graph None
        or ``[num_nodes, targets]``) adds the additive readout's per-operator loss, as in ``fit``.
        """
        self._require_initialized("loss_and_gradients")
        graphs = _as_graphs(graphs, 0)
        y = _as_labels(labels, len(graphs), self._targets, "labels")
        node_labels = (_as_node_labels(operator_labels, graphs, self._targets, "operator_labels")
                       if operator_labels is not None else None)
        return self._network.loss_and_gradients(graphs, y, precision, node_labels)

    # -- training ---------------------------------------------------------------------------------

    def fit(self, train: Data, val: Optional[Data] = None, epochs: int = 100,
            callback: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None,
            threads: int = 0, progress: bool = True,
            checkpoint: Optional[Union[str, os.PathLike]] = None, intervals: bool = False) -> "Predictor":
        """Trains on ``train``: a dataset path, or ``(graphs, labels)``, or ``(graphs, labels,
        operator_labels)`` with one ``[num_nodes, targets]`` array (or None) per graph.

        The additive readout (``readout="additive"``) also learns from per-operator labels: a
        dataset's ``<target>/ops/<metric>`` columns (``dataset build --per-operator``) or the
        tuple's third element; other networks ignore them.

        Without ``val``, ``validation_split`` of the training graphs (seeded) are held out for early
        stopping; the predictor keeps the weights of its best validation epoch, the one with the
        lowest ``val_loss`` (with the MAPE loss, the mean error with each model's capped at 100%, so
        that a few huge misses on one metric do not choose the epoch for all). ``callback`` gets
        each epoch's metrics as a dict and may return False to stop. A progress bar shows on stderr
        unless ``progress=False``. Calling ``fit`` again continues from the current weights and
        normalisation. The GIL is released while the C++ core trains; other threads, and ``callback``
        itself, may predict, read parameters or save meanwhile (they see the weights of the last
        finished batch), while changing the weights during ``fit`` raises ``PerfSageError``.

        ``min_steps`` (a hyperparameter, default 0): fit takes at least that many optimiser steps
        (batches), so more epochs than ``epochs`` when the training rows fill few batches (100 rows
        are 2 batches of 64 an epoch); ``provenance["epochs_run"]`` says how many it ran.

        ``checkpoint``: a file that fit rewrites after every epoch with the weights and the
        optimiser's state, so a run that is stopped (killed, Ctrl-C, the end of a session) goes on
        where it stopped when fit is called again with the same path, data and hyperparameters,
        and ends with the weights an uninterrupted run reaches. A path holding another run's
        state raises ValueError. A finished run's file is kept: fitting again returns at once.

        ``intervals=True`` also trains a companion, a network of half the width on the same rows
        from another seed, and calibrates prediction intervals on the validation rows
        (``perfsage._intervals``), so that ``predict(..., interval=0.9)`` works; it needs
        validation rows. Fitting again without it drops the companion.

        ``operator_prior="auto"`` (a hyperparameter; the recipe of every device measured by whole
        models sets it): an additive network trained from scratch on rows without per-operator
        labels, with validation rows, is trained twice: on the model labels alone, and with
        operator heads that do not read the graph's totals also on the kernel table's attribution
        of each summed target's labels to the operators (``perfsage._kernel_table.attribution``).
        The predictor keeps the network with the lower mean validation MAPE, and records both
        scores and its choice in ``provenance["operator_prior_choice"]``. It takes twice the time;
        ``callback`` and the progress bar see both runs; the second checkpoints to
        ``checkpoint`` + ".prior".
        """
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
        check_threads(threads)
        started = time.time()
        graphs, labels, node_labels, source, label_settings = self._resolve(train, "train", threads)
        val_node_labels: Optional[NodeLabels] = None
        if val is not None:
            val_graphs, val_labels, val_node_labels, val_source, _ = self._resolve(val, "val", threads)
        elif self._validation_split > 0 and len(graphs) >= _MIN_GRAPHS_TO_SPLIT:
            held_out = validation_split(np.arange(len(graphs)), self._validation_split, int(self._options.seed))
            val_idx, train_idx = held_out.val, held_out.train
            val_graphs = [graphs[i] for i in val_idx]
            val_labels = labels[val_idx]
            graphs = [graphs[i] for i in train_idx]
            labels = labels[train_idx]
            if node_labels is not None:
                val_node_labels = [node_labels[i] for i in val_idx]
                node_labels = [node_labels[i] for i in train_idx]
            val_source = f"{self._validation_split:.0%} of the training data"
        else:
            val_graphs, val_labels, val_source = [], None, None
            if self._validation_split > 0:
                warnings.warn(
                    f"fit: {len(graphs)} training graph(s) are too few to hold out {self._validation_split:.0%} "
                    f"for validation (it takes {_MIN_GRAPHS_TO_SPLIT}); training without validation data: "
                    "val_loss is nan, there is no early stopping and the last epoch's weights are kept. "
                    "Pass val=(graphs, labels), or validation_split=0 to silence this", stacklevel=2)
        if intervals and not val_graphs:
            raise ValueError(f"fit: intervals=True calibrates on validation rows and there are none: pass val=, or "
                             f"a validation_split with at least {_MIN_GRAPHS_TO_SPLIT} training graphs")
        batches = -(-len(graphs) // int(self._options.batch_size))
        epochs = max(epochs, -(-self._min_steps // batches))
        run = _Run(source, val_source, label_settings, epochs, callback, threads, progress, intervals, started)
        prior_columns = self._prior_columns(node_labels, bool(val_graphs))
        if prior_columns:
            self._fit_with_prior(prior_columns, graphs, labels, val_graphs, val_labels, run, checkpoint)
        else:
            self._train(graphs, labels, node_labels, val_graphs, val_labels, val_node_labels, run, checkpoint)
        return self

    def _prior_columns(self, node_labels: Optional[NodeLabels], has_val: bool) -> List[int]:
        """The targets that ``operator_prior="auto"`` gives the kernel table's attribution: the
        summed targets of an additive network that starts from scratch, has validation rows to
        choose on and no row with per-operator labels; none otherwise."""
        if self._operator_prior != "auto" or self._initialized or not self.is_additive or not has_val or (
                node_labels is not None and any(x is not None for x in node_labels)):
            return []
        peaks = int(self._network.config["max_targets"])
        return [t for t in range(len(self._targets)) if not peaks >> t & 1]

    def _fit_with_prior(self, columns: List[int], graphs: List[Graph], labels: np.ndarray, val_graphs: List[Graph],
                        val_labels: np.ndarray, run: "_Run", checkpoint: Optional[Union[str, os.PathLike]]) -> None:
        """``operator_prior="auto"``: this network trained on the model labels alone, and a rival
        (``_PRIOR_NETWORK``) also on the kernel table's attribution of them to the operators of
        ``columns``; this predictor becomes the one with the lower mean validation MAPE. The rival
        checkpoints to ``checkpoint`` + ".prior"."""
        self._train(graphs, labels, None, val_graphs, val_labels, None, run, checkpoint)
        record: Dict[str, Any] = {"columns": [self._targets[t] for t in columns], "rival": dict(_PRIOR_NETWORK)}
        if self.provenance["interrupted"]:
            self.provenance["operator_prior_choice"] = {**record, "chosen": "none", "why": "interrupted"}
            return
        rival = Predictor(self._targets, self._units, **{**self.hyperparameters, **_PRIOR_NETWORK,
                                                         "operator_prior": "off"})
        attributed = _kernel_table.attribution(graphs, labels, columns, int(self._options.seed))
        rival._train(graphs, labels, attributed, val_graphs, val_labels, None, run._replace(what="training (prior)"),
                     None if checkpoint is None else checkpoint_files(checkpoint)[1])
        scores = {"none": float(np.mean(list(self.provenance["best_val_mape"].values()))),
                  "lookup": float(np.mean(list(rival.provenance["best_val_mape"].values())))}
        record["val_mape"] = scores
        if rival.provenance["interrupted"] or not scores["lookup"] < scores["none"]:
            self.provenance["operator_prior_choice"] = {
                **record, "chosen": "none", **({"why": "interrupted"} if rival.provenance["interrupted"] else {})}
            return
        self._network, self._options, self._companion = rival._network, rival._options, rival._companion
        self.history = rival.history
        self.provenance = {**rival.provenance, "operator_prior": self._operator_prior,
                           "operator_prior_choice": {**record, "chosen": "lookup"},
                           "seconds": round(time.time() - run.started, 3)}

    def _train(self, graphs: List[Graph], labels: np.ndarray, node_labels: Optional[NodeLabels],
               val_graphs: List[Graph], val_labels: Optional[np.ndarray], val_node_labels: Optional[NodeLabels],
               run: "_Run", checkpoint: Optional[Union[str, os.PathLike]]) -> None:
        """``fit``'s training of this network on checked rows (``val_graphs`` empty: no validation)."""
        source, val_source, epochs, threads, intervals = run.source, run.val_source, run.epochs, run.threads, \
            run.intervals
        train_set = _graph_set(graphs, node_labels)
        val_set = _graph_set(val_graphs, val_node_labels) if val_graphs else None
        node_labelled = sum(1 for x in node_labels or [] if x is not None)
        domain = _domain.summarize(graphs)
        calibration_graphs = val_graphs if intervals else []
        del graphs, val_graphs  # the sets hold what training needs; let the Graphs go
        state, data_fingerprint = None, ""
        if checkpoint is not None:
            data_fingerprint = _resume.fingerprint(labels, node_labelled, val_labels)
            if os.path.exists(checkpoint):
                self._network, state = _resume.read(checkpoint, self, epochs, data_fingerprint)
                self._initialized = True
            else:
                state = _core.TrainState()
        resumed_after = state.epochs_done if state is not None else 0
        self._drop_intervals()  # training moves the weights its calibration was for
        if not self._initialized:
            self._initialize(train_set, labels)
        self._options.epochs = int(epochs)
        self._options.threads = int(threads)
        bar = _ProgressBar(int(epochs) - resumed_after, run.what) if run.progress else None

        def on_epoch(stats: Dict[str, Any]) -> bool:
            if checkpoint is not None:
                _resume.write(checkpoint, self, state, epochs, data_fingerprint)
            if bar:
                bar.epoch(stats)
            if run.callback is not None:
                return run.callback(stats) is not False
            return True

        try:
            result = self._network.train(train_set, labels, val_set, val_labels, self._options, on_epoch,
                                         bar.batch if bar else None, state)
        finally:
            if bar:
                bar.close()
        self.history.extend(result["history"])
        if intervals and not result["interrupted"]:
            self._companion = self._fit_companion(train_set, labels, val_set, val_labels, epochs, threads, run.progress)
        best = result["history"][result["best_epoch"] - 1] if result["best_epoch"] else (
            result["history"][-1] if result["history"] else None)
        self.provenance = {
            "perfsage_version": __version__,
            "trained_at": utc_timestamp("seconds"),
            "host": platform.node(),
            "train_data": source,
            "train_graphs": len(train_set),
            "train_graphs_with_operator_labels": node_labelled,
            "val_data": val_source,
            "val_graphs": len(val_set) if val_set is not None else 0,
            "epochs_run": len(result["history"]),
            "best_epoch": result["best_epoch"],
            "stopped_early": result["stopped_early"],
            "interrupted": result["interrupted"],
            **({"resumed_after_epoch": resumed_after} if resumed_after else {}),
            "best_val_mape": dict(zip(self._targets, best["val_mape"])) if best else {},
            "seconds": round(time.time() - run.started, 3),
            "validation_split": self._validation_split,
            "operator_prior": self._operator_prior,
            "min_steps": self._min_steps,
            "domain": domain,
        }
        if run.label_settings:
            self.provenance["labeler_settings"] = run.label_settings
            self.provenance["output_limits"] = output_limits(self._targets, run.label_settings)
        if self._companion is not None:
            self.provenance["intervals"] = self._calibration(calibration_graphs, val_labels, None, threads)

    def _calibration(self, graphs: List[Graph], labels: np.ndarray, groups: Optional[Sequence[str]],
                     threads: int) -> Dict[str, Any]:
        """The intervals' calibration on held-out rows (``perfsage._intervals.calibrate``), with the
        companion's shape."""
        calibration = _intervals.calibrate(self._network.predict(graphs, threads),
                                           self._companion.predict(graphs, threads), labels, self._targets, groups)
        calibration["companion"] = {k: self._companion.config[k] for k in _COMPANION_HALVED}
        return calibration

    def _fit_companion(self, train_set: "_core.GraphSet", labels: np.ndarray, val_set: "_core.GraphSet",
                       val_labels: np.ndarray, epochs: int, threads: int, progress: bool) -> "_core.Network":
        """The interval companion: this network at half the width and one layer fewer, trained on the
        same rows and epochs from the next seed."""
        companion = _core.Network(_companion_config(self._network.config, self._targets))
        options = _companion_options(self._options)
        companion.fit_normalization(train_set, labels)
        companion.init_parameters(int(options.seed))
        bar = _ProgressBar(int(epochs), "companion") if progress else None

        def on_epoch(stats: Dict[str, Any]) -> bool:
            if bar:
                bar.epoch(stats)
            return True

        try:
            companion.train(train_set, labels, val_set, val_labels, options, on_epoch, bar.batch if bar else None,
                            None)
        finally:
            if bar:
                bar.close()
        return companion

    def choose_to_measure(self, graphs: Sequence[Any], k: int, seed: int = 0, threads: int = 0) -> List[int]:
        """Which ``k`` of ``graphs`` (candidate models for a new device) to measure before
        :meth:`adapt`: one drawn at random (``seed``) from each of ``k`` equal-count strata of this
        predictor's predicted latency (its first ``latency_ms`` output, else its first output), in
        increasing order of that prediction, so that the measured rows span the candidates' range.
        Returns indices into ``graphs``."""
        self._require_initialized("choose_to_measure")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < _adapt.MIN_ROWS:
            raise ValueError(f"choose_to_measure: k must be an int of at least {_adapt.MIN_ROWS} (adapt's minimum), "
                             f"got {k!r}")
        graphs = list(graphs)
        if k > len(graphs):
            raise ValueError(f"choose_to_measure: k = {k} exceeds the {len(graphs)} candidate graphs")
        return [int(i) for i in _adapt.spread_rows(self.log_latency(graphs, threads), int(k), seed)]

    def log_latency(self, graphs: Sequence[Any], threads: int = 0) -> np.ndarray:
        """The log of this predictor's latency for each of ``graphs`` (its first ``latency_ms``
        output, else its first output): what :meth:`choose_to_measure` stratifies; ValueError when
        one is not a positive number."""
        column = next((i for i, t in enumerate(self._targets) if t.rpartition("/")[2] == "latency_ms"), 0)
        predicted = self.predict(list(graphs), threads=threads)[:, column].astype(np.float64)
        if not (np.isfinite(predicted).all() and (predicted > 0).all()):
            bad = int(np.argmax(~(np.isfinite(predicted) & (predicted > 0))))
            raise ValueError(f"choose_to_measure: the prediction for graph {bad} is {predicted[bad]}, not a positive "
                             "number")
        return np.log(predicted)

    def adapt(self, data: Data, targets: Union[str, Sequence[str], None] = None, epochs: int = 50,
              lr: Optional[float] = None, callback: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None,
              threads: int = 0, progress: bool = True, seed: Optional[int] = None) -> "Predictor":
        """A new predictor for a device this one never saw, from a handful of its measurements.

        ``data``: a dataset path (``perfsage dataset import-csv`` makes one from measurements) or
        ``(graphs, labels)`` with labels ``[n]``, ``[n, len(targets)]`` or a dict by target; every
        row needs a finite positive label for every target, and there must be at least three.
        ``targets``: the new predictor's outputs, e.g. ``"my-board/latency_ms"``; with a dataset a
        bare target name (``"my-board"``) takes all its columns; with a dict of labels its keys.

        The new predictor is this one with a new last head layer: its start is the combination of
        this predictor's outputs that best fits the rows (ridge regression in log space, see
        ``perfsage._adapt``), so ``epochs=0`` gives that recalibration alone; then every weight is
        fine-tuned ``epochs`` epochs on the rows at learning rate ``lr`` (default: a tenth of this
        predictor's, which on NAS-Bench-201's devices never did much worse than the start alone and
        did better from 20 rows; this predictor's own rate overfits a few rows), without a
        validation split. The graphs' normalisation stays this predictor's. Provenance records the
        base, the rows and the start.
        """
        self._require_initialized("adapt")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
            raise ValueError(f"adapt: epochs must be a non-negative int, got {epochs!r}")
        if lr is not None and not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
            raise ValueError(f"adapt: lr must be a positive number, got {lr!r}")
        names = _adapt_targets(data, targets)
        probe = Predictor(names)
        graphs, labels, node_labels, source, settings = probe._resolve(data, "adapt", threads)
        bad = np.argwhere(~(np.isfinite(labels) & (labels > 0)))
        if len(bad):
            row, column = (int(v) for v in bad[0])
            raise ValueError(f"adapt: label of row {row} for {names[column]!r} is {float(labels[row, column])}; every row "
                             f"needs a finite positive measurement of every target ({len(bad)} do not)")
        if len(graphs) < _adapt.MIN_ROWS:
            raise ValueError(f"adapt: {len(graphs)} measured row(s); adapting needs at least {_adapt.MIN_ROWS}")
        hyperparameters = {**self.hyperparameters, "validation_split": 0.0, "min_steps": 0,
                           **({"seed": int(seed)} if seed is not None else {})}
        new, start = self._adapted(names, probe.units, hyperparameters, lr, graphs, labels, node_labels, epochs,
                                   threads, progress, callback)
        new.provenance.update({
            "perfsage_version": __version__,
            "trained_at": utc_timestamp("seconds"),
            "train_data": source,
            "train_graphs": len(graphs),
            "domain": _domain.merge(self.provenance.get("domain", {}), _domain.summarize(graphs)),
            "adapted_from": {"targets": list(self._targets), "train_data": self.provenance.get("train_data"),
                             "trained_at": self.provenance.get("trained_at"),
                             "train_graphs": self.provenance.get("train_graphs")},
            "adapt": {"rows": len(graphs), "epochs": epochs, "lr": new._options.lr, "start": start},
        })
        if settings:
            new.provenance["labeler_settings"] = settings
            new.provenance["output_limits"] = output_limits(new._targets, settings)
        if new._companion is not None:
            calibration = self._cross_fitted_intervals(names, hyperparameters, lr, graphs, labels, epochs, threads)
            if calibration is None:
                new._companion = None
                warnings.warn(f"adapt: {len(graphs)} measured rows are too few to calibrate intervals (it takes "
                              f"{_adapt.MIN_ROWS + 1}); the adapted predictor has none", stacklevel=2)
            else:
                new.provenance["intervals"] = calibration
        return new

    def _adapted(self, names: List[str], units: List[str], hyperparameters: Dict[str, Any], lr: Optional[float],
                 graphs: List[Graph], labels: np.ndarray, node_labels: Optional[NodeLabels], epochs: int,
                 threads: int, progress: bool = False,
                 callback: Optional[Callable[[Dict[str, Any]], Optional[bool]]] = None
                 ) -> Tuple["Predictor", Dict[str, Any]]:
        """``adapt``'s predictor for ``graphs``/``labels`` (checked), with its companion adapted the
        same way when this predictor has one (uncalibrated), and each target's start."""
        new = Predictor(names, units=units, **hyperparameters)
        new._network = _core.Network(_config_like(self._network.config, names))
        new._options.lr = float(lr) if lr is not None else ADAPT_LR_SHARE * self._options.lr
        target_log = np.log(labels.astype(np.float64))
        start = _start_network(new._network, self._network, self._targets, names, graphs, target_log, threads)
        new._initialized = True
        companion = None
        if self._companion is not None:
            companion = _core.Network(_config_like(self._companion.config, names))
            _start_network(companion, self._companion, self._targets, names, graphs, target_log, threads)
        if epochs > 0:
            new.fit((graphs, labels, node_labels) if node_labels is not None else (graphs, labels), epochs=epochs,
                    callback=callback, threads=threads, progress=progress)
            if companion is not None:
                companion.train(_graph_set(graphs), labels, None, None, _companion_options(new._options), None, None,
                                None)
        new._companion = companion
        return new, start

    def _cross_fitted_intervals(self, names: List[str], hyperparameters: Dict[str, Any], lr: Optional[float],
                                graphs: List[Graph], labels: np.ndarray, epochs: int, threads: int
                                ) -> Optional[Dict[str, Any]]:
        """The calibration of an adapted predictor's intervals: each measured row's error and
        disagreement from a predictor adapted (the same way) without its fold of the rows, so
        that they are out-of-sample as a new model's are (cross-fitting; the rows it has are all
        it was given). None when no fold leaves enough rows to adapt from."""
        n = len(graphs)
        folds = min(ADAPT_CALIBRATION_FOLDS, n)
        while folds > 2 and n - -(-n // folds) < _adapt.MIN_ROWS:
            folds -= 1
        fold_of = np.empty(n, dtype=np.int64)
        fold_of[np.random.default_rng([int(hyperparameters["seed"]), 6]).permutation(n)] = np.arange(n) % folds
        errors = np.full(labels.shape, np.nan)
        disagreement = np.zeros(labels.shape)
        for fold in range(folds):
            held = np.flatnonzero(fold_of == fold)
            kept = np.flatnonzero(fold_of != fold)
            if len(kept) < _adapt.MIN_ROWS:
                continue
            sub, _ = self._adapted(names, [""] * len(names), hyperparameters, lr, [graphs[i] for i in kept],
                                   np.ascontiguousarray(labels[kept]), None, epochs, threads)
            held_graphs = [graphs[i] for i in held]
            main = np.log(sub._network.predict(held_graphs, threads).astype(np.float64))
            other = np.log(sub._companion.predict(held_graphs, threads).astype(np.float64))
            errors[held] = np.abs(main - np.log(labels[held].astype(np.float64)))
            disagreement[held] = np.abs(main - other)
        if np.all(np.isnan(errors)):
            return None
        return {**_intervals.calibration(errors, disagreement, names),
                "calibration": f"{folds}-fold cross-fitting on the {n} measured rows",
                "companion": self.provenance.get("intervals", {}).get("companion")}

    def _resolve(self, data: Data, what: str, threads: int
                 ) -> Tuple[List[Graph], np.ndarray, Optional[NodeLabels], str, Dict[str, Dict[str, Any]]]:
        """(graphs, labels, per-operator labels or None, where they came from, the labeller settings
        of the targets trained on: those a dataset records, {} in memory). Per-operator labels are
        read only for the additive readout, the one network that learns from them."""
        additive = self._network.config["readout"] == "additive"
        if isinstance(data, (str, os.PathLike)):
            dataset = open_dataset(data)
            missing = [t for t in self._targets if t not in dataset.label_columns]
            if missing:
                raise ValueError(f"{what}: dataset {data} has no column(s) {missing}; its label columns are "
                                 f"{dataset.label_columns}")
            if all(u == "" for u in self._units):
                self._units = [dataset.units.get(t, "") for t in self._targets]
            labels, keep = _labelled_rows(dataset, self._targets)
            used = dataset.select(keep)  # only the rows training uses
            graphs = used.graphs(threads=threads)
            node_labels = dataset_operator_labels(used, self._targets, [g.op_names for g in graphs]) if additive \
                else None
            if node_labels is not None:
                node_labels = [x if x is None or len(x) == g.num_nodes else None for x, g in zip(node_labels, graphs)]
            recorded = dataset.targets
            settings = {t: recorded[t]["settings"] for t in dict.fromkeys(c.rpartition("/")[0] for c in self._targets)
                        if recorded.get(t, {}).get("settings")}
            return graphs, np.ascontiguousarray(labels[keep], dtype=np.float32), node_labels, str(data), settings
        if not isinstance(data, tuple) or len(data) not in (2, 3):
            raise TypeError(f"{what}: expected a dataset path or a (graphs, labels) or (graphs, labels, "
                            f"operator_labels) tuple, got {type(data).__name__}")
        graphs = _as_graphs(data[0], threads, f"{what} graphs")
        if not graphs:
            raise ValueError(f"{what}: no graphs")
        labels = _as_labels(data[1], len(graphs), self._targets, f"{what} labels")
        node_labels = (_as_node_labels(data[2], graphs, self._targets, f"{what} operator_labels")
                       if len(data) == 3 and data[2] is not None else None)
        return graphs, labels, node_labels, "in memory", {}

    # -- prediction ---------------------------------------------------------------------------------

    def calibrate(self, data: Data, groups: Union[None, str, Sequence[str]] = None, threads: int = 0) -> "Predictor":
        """Calibrates the intervals again, on held-out rows: ``data`` as ``fit``'s ``val`` (a dataset
        path or ``(graphs, labels)``; NaN: no label), none of them rows the predictor or its
        companion trained on. ``groups`` names each row's group, e.g. its search space (a sequence,
        or ``"space"``: a dataset's own spaces). Groups of at least ``perfsage._intervals.MIN_GROUP_ROWS``
        rows keep their own quantiles, so that ``predict(..., interval_scope="per-space")`` covers
        every one of them at the level (``perfsage._intervals``). Returns this predictor."""
        if self._companion is None:
            raise ValueError("calibrate: this predictor has no interval companion; fit it with intervals=True")
        if isinstance(groups, str) and (groups != "space" or not isinstance(data, (str, os.PathLike))):
            raise ValueError("calibrate: groups must be a sequence of names, one per row, or 'space' with a "
                             f"dataset path, got {groups!r}")
        graphs, labels, _, source, _ = self._resolve(data, "calibrate", threads)
        if isinstance(groups, str):  # the spaces of the rows _resolve kept
            dataset = open_dataset(data)
            groups = np.asarray(dataset.spaces)[_labelled_rows(dataset, self._targets)[1]]
        if groups is not None and len(groups) != len(graphs):
            raise ValueError(f"calibrate: {len(groups)} groups for {len(graphs)} rows; expected one per row")
        calibration = self._calibration(graphs, labels, groups, threads)
        if not calibration["targets"]:
            raise ValueError("calibrate: no row has a label of this predictor's targets")
        calibration["calibration"] = f"{len(graphs)} held-out rows ({source})" + (", by group" if groups is not None
                                                                                  else "")
        self.provenance["intervals"] = calibration
        return self

    def predict(self, graphs: Union[GraphLike, Sequence[GraphLike]], threads: int = 0,
                dtype: str = "int8", interval: Optional[float] = None, interval_scope: Optional[str] = None
                ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Predictions, float32 ``[n, len(output_names)]``, for Graphs, ``.tflite`` paths or bytes,
        or architecture specs.

        A spec (a dict in the format of ``cpp/include/perfsage/spec.h``) or a ``sample()`` item
        stands for the ``dtype`` model ``build_model`` writes from it, and is predicted without
        writing it (:func:`perfsage.spec_graph`): the prediction is the built model's (to the weight
        columns' share, under 1.5% for the shipped predictors), at a fraction of the cost, which is
        what a NAS loop needs. A metric with a recorded upper bound (``provenance["output_limits"]``:
        the SRAM of a U65 with dedicated SRAM) is held under it. A list of specs alone never becomes
        Graphs in Python: the core's
        worker threads build, predict and free them. The GIL is released while the
        core predicts; several Python threads may call this at once, also while another thread
        trains the predictor.

        ``interval=0.9`` (a level from 0.5 to 0.99; a predictor fitted with ``intervals=True``)
        returns ``(predictions, lower, upper)``, three such arrays: a calibrated interval for each
        prediction, wider where the predictor's companion disagrees with it (``perfsage._intervals``).
        ``interval_scope`` says which calibration: ``"per-space"``, at least the level on every
        search space it was calibrated on, the hardest one's interval for a model of another family
        (the default when the predictor has it: the shipped ones do); ``"pooled"``, the level on
        average over its calibration rows, which are mostly of its easier spaces (the default
        otherwise).
        """
        self._require_initialized("predict")
        if interval is None and interval_scope is not None:
            raise ValueError("predict: interval_scope comes with interval=LEVEL")
        if interval is not None:
            if not self.has_intervals:
                raise ValueError("predict: this predictor has no intervals; fit it with intervals=True")
            calibration = self.provenance["intervals"]
            scope = interval_scope if interval_scope is not None else self.default_interval_scope
            built = _as_graphs(graphs, threads, spec_dtype=dtype)
            main = self._network.predict(built, threads)
            lower, upper = _intervals.bounds(main, self._companion.predict(built, threads), calibration,
                                             self._targets, interval, scope)
            return self._limited(main), self._limited(lower), self._limited(upper)
        specs = _spec_items(graphs)
        if specs is None:
            return self._limited(self._network.predict(_as_graphs(graphs, threads, spec_dtype=dtype), threads))
        # Specs only (a NAS loop's case): the core builds, predicts and frees each graph on its
        # worker threads, and no Graph reaches Python.
        check_threads(threads)
        predictions, errors = self._network.predict_specs([s for s, _, _ in specs], [seed for _, seed, _ in specs],
                                                          [source for _, _, source in specs], dtype, threads)
        raise_first_failure([e for e in errors if e])
        return self._limited(predictions)

    def _limited(self, values: np.ndarray) -> np.ndarray:
        """``values`` [n, targets] with each column held at or under its recorded upper bound
        (``provenance["output_limits"]``, see :func:`output_limits`), in place."""
        limits = self.provenance.get("output_limits", {})
        for j, target in enumerate(self._targets):
            limit = limits.get(target)
            if limit is not None:
                np.minimum(values[:, j], np.float32(limit), out=values[:, j])
        return values

    def check(self, graph: GraphLike) -> List[str]:
        """Warnings for ways ``graph`` lies outside this predictor's training data; [] when it does not.

        Checked: a model Vela already compiled (its ``ethos-u`` operator), operator types never
        seen in training (e.g. custom ops), a float model for a predictor trained on int8 models
        (or the reverse), and sizes (operators, MACs, parameters, peak activations) beyond twice
        the training range. A predictor saved without a record of
        its training data (trained before this check existed) has nothing to check against.
        """
        g = _one_graph(graph, "check")
        compiled = _domain.npu_command_stream(g)
        return ([compiled] if compiled else []) + _domain.check(self.provenance.get("domain", {}), g)

    def explain(self, graph: GraphLike, top: Optional[int] = None) -> "Explanation":
        """The prediction for one model and each operator's share of it, largest first.

        With the additive readout (``readout="additive"``), each operator's contribution is its
        predicted cost (ms, mJ, bytes: the graph's prediction is their sum plus a small learnt
        constant; for a peak target, the operator that sets the peak has share 1). Otherwise
        shares come from the log-sum-exp readout: every operator adds a positive amount to each
        readout channel and the graph takes the log of the total, so an operator's share of the
        channels that raise a target says how much of that target it accounts for; they show
        which layers to change, they are not a per-layer estimate. ``top`` keeps the operators
        with the largest share of the first target.
        """
        self._require_initialized("explain")
        g = _one_graph(graph, "explain")
        prediction, shares = self._network.explain(g)
        prediction = self._limited(np.array(prediction, dtype=np.float32).reshape(1, -1))[0]
        if self.is_additive:
            _, contributions, _ = self._network.operator_costs(g)
        else:
            contributions = shares * prediction[None, :]
        names = g.op_names
        costs = g.node_costs
        order = np.argsort(-shares[:, 0], kind="stable")
        if top is not None:
            order = order[: max(0, int(top))]
        operators = [
            {
                "index": int(i),
                "op": names[i],
                "macs": int(costs["macs"][i]),
                "share": {t: float(shares[i, j]) for j, t in enumerate(self._targets)},
                "contribution": {t: float(contributions[i, j]) for j, t in enumerate(self._targets)},
            }
            for i in order
        ]
        return Explanation(
            source=g.source,
            prediction={t: float(v) for t, v in zip(self._targets, prediction)},
            units=dict(zip(self._targets, self._units)),
            operators=operators,
            warnings=self.check(g),
        )

    def _require_initialized(self, what: str) -> None:
        if not self._initialized:
            raise RuntimeError(f"{what}: the predictor is not trained yet (call fit or initialize, or load one)")

    # -- files --------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        self._require_initialized("save")
        return self._network.to_bytes(self._targets, self._units, self._options,
                                      json.dumps(json_safe(self.provenance), sort_keys=True, default=str,
                                                 allow_nan=False), self._companion)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes a checkpoint (atomically: a temporary file renamed into place)."""
        atomic_write_bytes(path, self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> "Predictor":
        ck = _core.read_checkpoint(data, source)
        self = cls.__new__(cls)
        self._network = ck["network"]
        self._companion = ck["companion"]
        self._targets = list(ck["target_names"])
        self._units = list(ck["target_units"])
        self._options = ck["options"]
        self.provenance = json.loads(ck["provenance_json"])
        self._validation_split = float(self.provenance.get("validation_split", TRAINING_DEFAULTS["validation_split"]))
        self._operator_prior = str(self.provenance.get("operator_prior", "off"))
        self._min_steps = int(self.provenance.get("min_steps", 0))
        self._initialized = True
        self.history = []
        return self


@dataclass
class Explanation:
    """``Predictor.explain``'s answer: the prediction per target and the operators behind it.

    ``operators``: dicts with ``index`` (node), ``op`` (type), ``macs``, ``share`` (fraction of each
    target, summing to 1 over all operators) and ``contribution`` (share times the prediction, in
    the target's unit), largest share of the first target first.
    """

    source: str
    prediction: Dict[str, float]
    units: Dict[str, str]
    operators: List[Dict[str, Any]]
    warnings: List[str] = field(default_factory=list)


# Targets with a predictor file inside the package (python/perfsage/predictors/{target}.psage),
# trained by scripts/train_shipped.py from their recipes (_recipes.py).
SHIPPED_TARGETS: Tuple[str, ...] = ("ethos-u55-256", "ethos-u65-512", "ethos-u55-128", "ethos-u65-256")


# Bases inside the package: predictors to adapt from (``Predictor.adapt``, ``perfsage adapt --base``),
# not targets of their own. "multi-device" is one network with a latency column for each device
# perfsage has labels of (the four Ethos-U configurations, host-cpu, four NAS-Bench-201 devices),
# trained by scripts/train_base.py.
SHIPPED_BASES: Tuple[str, ...] = ("multi-device",)
DEFAULT_BASE = "multi-device"


def shipped_predictors() -> List[str]:
    """Names of the target predictors inside the package, for ``load_predictor(name)``."""
    return [t for t in SHIPPED_TARGETS if (_SHIPPED_DIR / f"{t}.psage").is_file()]


def shipped_bases() -> List[str]:
    """Names of the bases inside the package (``load_predictor(name)``, ``adapt``'s starting points)."""
    return [t for t in SHIPPED_BASES if (_SHIPPED_DIR / f"{t}.psage").is_file()]


def shipped_file(name: str) -> Optional[Path]:
    """The package's file of the shipped predictor or base ``name``; None when there is none."""
    path = _SHIPPED_DIR / f"{name}.psage"
    return path if os.sep not in name and path.is_file() else None


def load_predictor(name_or_path: Union[str, os.PathLike]) -> Predictor:
    """Loads a shipped predictor by target name (``"ethos-u55-256"``), a shipped base by name
    (``"multi-device"``) or a file saved with ``save``.

    Raises FileNotFoundError for a name that is neither, and PerfSageError naming what is wrong
    with a file that is not a valid predictor.
    """
    path = Path(name_or_path)
    if not path.is_file() and isinstance(name_or_path, str) and os.sep not in name_or_path:
        shipped = shipped_file(name_or_path)
        if shipped is not None:
            return Predictor.from_bytes(shipped.read_bytes(), f"shipped predictor {name_or_path}")
        names = shipped_predictors() + shipped_bases()
        raise FileNotFoundError(f"{name_or_path}: neither a predictor file nor a shipped predictor; shipped: "
                                f"{', '.join(names) or 'none (this install has no predictor files)'}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such predictor file")
    return Predictor.from_bytes(path.read_bytes(), str(path))


class _ProgressBar:
    """tqdm over all batches of all epochs, with the latest epoch's losses as its postfix."""

    def __init__(self, epochs: int, what: str = "training"):
        self._bar = None
        self._epochs = epochs
        self._what = what

    def batch(self, index: int, batches: int) -> bool:
        if self._bar is None:
            self._bar = tqdm(total=self._epochs * batches, unit="batch", desc=self._what, leave=False)
        self._bar.update(1)
        return True

    def epoch(self, stats: Dict[str, Any]) -> None:
        if self._bar is not None:
            post = {"epoch": stats["epoch"], "loss": f"{stats['train_loss']:.4g}"}
            if stats["val_loss"] == stats["val_loss"]:
                post["val"] = f"{stats['val_loss']:.4g}"
            self._bar.set_postfix(post)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


__all__ = ["Explanation", "Predictor", "load_predictor", "shipped_predictors", "NETWORK_DEFAULTS", "TRAINING_DEFAULTS", "PerfSageError"]
