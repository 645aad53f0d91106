"""The methods ``perfsage evaluate`` compares: perfsage itself and the log-linear baseline here,
the lookup and GCN baselines in their own files, and the registry of all of them by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._core import Graph
from .._intervals import SCOPES, has_scope
from .._predictor import NETWORK_DEFAULTS, TRAINING_DEFAULTS, Predictor, load_predictor
from ._gcn import GCNMethod
from ._lookup import LookupMethod, OperatorLookupMethod
from ._method import Labelled, Method, check_labels, graph_size_features, load_arrays, save_arrays


# Epochs of perfsage trained from scratch on a new device's few measured rows (a batch an epoch
# up to 64 rows), as in issue 15's first measurement.
SCRATCH_EPOCHS = 200


class PerfSageMethod(Method):
    """perfsage's own GraphSAGE predictor, trained from the target's recipe (``perfsage._recipes``)."""

    name = "perfsage"
    file_suffix = ".psage"
    summary = ("perfsage's GraphSAGE predictor (C++ core), one network for all metrics of the target, "
               "hyperparameters and epochs from the target's recipe (perfsage._recipes); early stopping "
               "on the split's validation rows.")

    def __init__(self, columns: Sequence[str], units: Sequence[str], seed: int = 0, threads: int = 0,
                 hyperparameters: Optional[Dict[str, Any]] = None, epochs: int = 150, intervals: bool = False,
                 limits: Optional[Dict[str, float]] = None) -> None:
        super().__init__(columns, units, seed, threads)
        self.hyperparameters = {**(hyperparameters or {}), "seed": self.seed}
        self.epochs = int(epochs)
        self.intervals = bool(intervals)
        self.limits = dict(limits or {})
        self.predictor: Any = None

    def config(self) -> Dict[str, Any]:
        # The effective values, library defaults included, so that a changed default is a changed unit.
        return {"hyperparameters": {**NETWORK_DEFAULTS, **TRAINING_DEFAULTS, **self.hyperparameters},
                "epochs": self.epochs,
                **({"intervals": True, "interval_scopes": list(SCOPES)} if self.intervals else {}),
                **({"output_limits": self.limits} if self.limits else {})}

    @property
    def uses_operator_labels(self) -> bool:  # type: ignore[override]
        return self.hyperparameters.get("readout", NETWORK_DEFAULTS["readout"]) == "additive"

    @property
    def uses_groups(self) -> bool:  # type: ignore[override]
        return self.intervals

    def fit(self, train: Labelled, val: Labelled, progress: bool = False,
            operator_labels: Optional[Tuple[Any, Any]] = None, val_groups: Optional[np.ndarray] = None
            ) -> Dict[str, Any]:
        self.predictor = Predictor(self.columns, units=self.units, **self.hyperparameters)
        train_ops, val_ops = operator_labels if operator_labels is not None else (None, None)
        self.predictor.fit((list(train[0]), train[1], train_ops), val=(list(val[0]), val[1], val_ops),
                           epochs=self.epochs, threads=self.threads, progress=progress, intervals=self.intervals)
        if self.intervals and val_groups is not None:  # the per-space scope too, from the same rows
            self.predictor.calibrate((list(val[0]), val[1]), groups=list(val_groups), threads=self.threads)
        if self.limits:
            self.predictor.provenance["output_limits"] = dict(self.limits)
        info = self.predictor.provenance
        return {"epochs_run": info.get("epochs_run"), "best_epoch": info.get("best_epoch"),
                "stopped_early": info.get("stopped_early"),
                "hyperparameters": self.predictor.hyperparameters,
                **({"operator_prior_choice": info["operator_prior_choice"]} if "operator_prior_choice" in info else {})}

    def predict(self, graphs: Sequence[Graph]) -> np.ndarray:
        return self.predictor.predict(list(graphs), threads=self.threads).astype(np.float64)

    def interval(self, graphs: Sequence[Graph], level: float, scope: str = "pooled"
                 ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        if not (self.predictor.has_intervals and has_scope(self.predictor.provenance["intervals"], scope)):
            return None
        _, lower, upper = self.predictor.predict(list(graphs), threads=self.threads, interval=level,
                                                 interval_scope=scope)
        return lower.astype(np.float64), upper.astype(np.float64)

    def graph_operator_costs(self, graph: Graph) -> np.ndarray:
        return self.predictor.operator_costs(graph)[1].astype(np.float64)

    def save(self, path: Path) -> None:
        self.predictor.save(path)

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> "PerfSageMethod":
        predictor = load_predictor(path)
        self = cls(predictor.output_names, predictor.units, int(predictor.hyperparameters.get("seed", 0)), threads,
                   hyperparameters=predictor.hyperparameters)
        self.predictor = predictor
        return self


class AdaptMethod(PerfSageMethod):
    """perfsage adapted to a device it never saw (``Predictor.adapt``) from a base predictor that
    learnt other devices: the leave-one-device-out split's perfsage."""

    summary = ("leave one device out: a perfsage predictor pretrained without the device (on the other "
               "evaluated targets' labels of the random split's training and validation rows, or --lodo-base), "
               "adapted to it with Predictor.adapt from the split's k measured rows alone (ridge start in log "
               "space, then fine-tuning).")

    def __init__(self, columns: Sequence[str], units: Sequence[str], seed: int = 0, threads: int = 0,
                 base: Optional[Path] = None, base_sha256: str = "", epochs: Optional[int] = None) -> None:
        super().__init__(columns, units, seed, threads)
        self.base = base
        self.base_sha256 = base_sha256
        self.adapt_epochs = epochs

    def config(self) -> Dict[str, Any]:
        return {"base_sha256": self.base_sha256, "adapt_epochs": self.adapt_epochs, "seed": self.seed,
                "intervals_calibration": "cross-fitting"}

    @property
    def uses_operator_labels(self) -> bool:  # type: ignore[override]
        return False

    def fit(self, train: Labelled, val: Labelled, progress: bool = False,
            operator_labels: Optional[Tuple[Any, Any]] = None) -> Dict[str, Any]:
        if self.base is None:
            raise RuntimeError("adapt: no base predictor")
        extra = {"epochs": self.adapt_epochs} if self.adapt_epochs is not None else {}
        self.predictor = load_predictor(self.base).adapt((list(train[0]), train[1]), targets=self.columns,
                                                         threads=self.threads, progress=progress, seed=self.seed,
                                                         **extra)
        return {"base": str(self.base), "adapt": self.predictor.provenance["adapt"]}


class ScratchMethod(PerfSageMethod):
    """perfsage trained from scratch on a new device's k measured rows, the same rows
    ``AdaptMethod`` adapts from: what pretraining buys."""

    name = "scratch"
    summary = (f"leave one device out only: perfsage (the target's recipe hyperparameters) trained from "
               f"scratch on the split's k measured rows alone, {SCRATCH_EPOCHS} epochs (or the recipe's min_steps "
               "optimiser steps, if more), no validation rows (the last epoch's weights).")

    def __init__(self, columns: Sequence[str], units: Sequence[str], seed: int = 0, threads: int = 0,
                 hyperparameters: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(columns, units, seed, threads, {**(hyperparameters or {}), "validation_split": 0.0},
                         SCRATCH_EPOCHS)

    @property
    def uses_operator_labels(self) -> bool:  # type: ignore[override]
        return False

    def fit(self, train: Labelled, val: Labelled, progress: bool = False,
            operator_labels: Optional[Tuple[Any, Any]] = None) -> Dict[str, Any]:
        self.predictor = Predictor(self.columns, units=self.units, **self.hyperparameters)
        self.predictor.fit((list(train[0]), train[1]), epochs=self.epochs, threads=self.threads, progress=progress)
        return {"epochs_run": self.predictor.provenance.get("epochs_run"),
                "hyperparameters": self.predictor.hyperparameters}


def _log_size_design(graphs: Sequence[Graph]) -> np.ndarray:
    """Columns 1, log(1 + MACs), log(1 + params): log1p keeps models without MACs or weights finite."""
    size = graph_size_features(graphs)
    return np.column_stack([np.ones(len(graphs)), np.log1p(size[:, 0]), np.log1p(size[:, 1])])


class LogLinearMethod(Method):
    """log(y) = a + b·log(1 + MACs) + c·log(1 + params), least squares, one fit per metric."""

    name = "loglinear"
    summary = ("Linear regression in log space, per metric: log(y) = a + b·log(1 + MACs) + c·log(1 + params), "
               "ordinary least squares on the training rows (graph totals from perfsage's features).")

    def __init__(self, columns: Sequence[str], units: Sequence[str], seed: int = 0, threads: int = 0) -> None:
        super().__init__(columns, units, seed, threads)
        self.coefficients: Optional[np.ndarray] = None  # [3, metrics]

    def config(self) -> Dict[str, Any]:
        return {"features": ["1", "log1p(macs)", "log1p(param_count)"]}

    def fit(self, train: Labelled, val: Labelled, progress: bool = False) -> Dict[str, Any]:
        graphs, labels = train
        y = check_labels(labels, graphs, self.columns, "loglinear train")
        self.coefficients = np.linalg.lstsq(_log_size_design(graphs), np.log(y), rcond=None)[0]
        return {"coefficients": {c: self.coefficients[:, j].tolist() for j, c in enumerate(self.columns)}}

    def predict(self, graphs: Sequence[Graph]) -> np.ndarray:
        if self.coefficients is None:
            raise RuntimeError("loglinear: predict before fit")
        return np.exp(np.clip(_log_size_design(graphs) @ self.coefficients, -700, 700))

    def save(self, path: Path) -> None:
        save_arrays(path, {"coefficients": self.coefficients},
                    {"kind": self.name, "columns": self.columns, "units": self.units})

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> "LogLinearMethod":
        arrays, meta = load_arrays(path, cls.name)
        self = cls(meta["columns"], meta["units"], threads=threads)
        self.coefficients = arrays["coefficients"]
        return self


def method_names() -> List[str]:
    return ["perfsage", "loglinear", "lookup", "lookup_ops", "gcn", "scratch"]


# The methods the leave-one-device-out split scores on k rows without validation rows (the GCN
# stops early on validation rows; lookup_ops needs per-operator labels of the new device).
LODO_METHODS = ("perfsage", "scratch", "loglinear", "lookup")
# Split families scratch runs on (elsewhere it would be perfsage again).
SCRATCH_SPLITS = ("lodo",)


def method_class(name: str) -> type:
    """The Method subclass called ``name``."""
    classes = {c.name: c for c in (PerfSageMethod, LogLinearMethod, LookupMethod, OperatorLookupMethod, GCNMethod,
                                    ScratchMethod)}
    if name not in classes:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(method_names())}")
    return classes[name]
