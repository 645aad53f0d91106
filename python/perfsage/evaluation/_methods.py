"""The methods ``perfsage evaluate`` compares: one interface, and perfsage and the log-linear baseline.

Every method predicts all metrics of one target at once, is trained on exactly the rows of a split
that every other method gets (labels float64 ``[n, metrics]``, finite and positive), keeps its
own early-stopping use of the validation rows, and can be saved and loaded, so that the models
trained on the random split can later score the real-model dataset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._core import Graph

Labelled = Tuple[Sequence[Graph], np.ndarray]


def check_labels(labels: np.ndarray, graphs: Sequence[Graph], columns: Sequence[str], what: str) -> np.ndarray:
    """``labels`` as float64 ``[len(graphs), len(columns)]``, every value finite and positive."""
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim == 1 and len(columns) == 1:
        y = y[:, None]
    if y.shape != (len(graphs), len(columns)):
        raise ValueError(f"{what}: labels of shape {y.shape} for {len(graphs)} graphs and columns {list(columns)}")
    bad = ~(np.isfinite(y) & (y > 0))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{what}: label {y[row, col]!r} of row {row}, column {columns[col]!r} is not a finite "
                         f"positive number ({int(bad.sum())} such values)")
    return y


def graph_size_features(graphs: Sequence[Graph]) -> np.ndarray:
    """float64 ``[n, 2]``: each graph's total MACs and parameter count (graph.totals)."""
    out = np.empty((len(graphs), 2), dtype=np.float64)
    for i, graph in enumerate(graphs):
        totals = graph.totals
        out[i] = (totals["macs"], totals["param_count"])
    return out


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Calls ``write(tmp)`` on a temporary name next to ``path`` and renames it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_arrays(path: Path, arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> None:
    """Writes arrays and a JSON header to one ``.npz`` file, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta, sort_keys=True)), **arrays)

    atomic_write(path, write)


def load_arrays(path: Path, kind: str) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """Reads what ``save_arrays`` wrote; checks the header's ``kind``."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "__meta__"}
            meta = json.loads(str(data["__meta__"]))
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a saved {kind} model ({e})") from None
    if meta.get("kind") != kind:
        raise ValueError(f"{path}: holds a {meta.get('kind')!r} model, expected {kind!r}")
    return arrays, meta


class Method:
    """One way of predicting a target's metrics from graphs. Subclasses set ``name`` and ``file_suffix``."""

    name = ""
    file_suffix = ".npz"
    summary = ""  # one paragraph for the report: what the method is and how it is fitted

    def __init__(self, columns: Sequence[str], units: Sequence[str], seed: int = 0, threads: int = 0) -> None:
        self.columns = list(columns)
        self.units = list(units)
        self.seed = int(seed)
        self.threads = int(threads)

    def config(self) -> Dict[str, Any]:
        """Everything that changes what this method learns (compared when a run resumes)."""
        return {}

    def fit(self, train: Labelled, val: Labelled, progress: bool = False) -> Dict[str, Any]:
        """Trains on ``train`` (early stopping, if any, on ``val``); returns facts for the report."""
        raise NotImplementedError

    def predict(self, graphs: Sequence[Graph]) -> np.ndarray:
        """float64 ``[n, len(columns)]``."""
        raise NotImplementedError

    def save(self, path: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> "Method":
        raise NotImplementedError


class PerfSageMethod(Method):
    """perfsage's own GraphSAGE predictor, trained from the target's recipe (``perfsage._recipes``)."""

    name = "perfsage"
    file_suffix = ".psage"
    summary = ("perfsage's GraphSAGE predictor (C++ core), one network for all metrics of the target, "
               "hyperparameters and epochs from the target's recipe (perfsage._recipes); early stopping "
               "on the split's validation rows.")

    def __init__(self, columns: Sequence[str], units: Sequence[str], seed: int = 0, threads: int = 0,
                 hyperparameters: Optional[Dict[str, Any]] = None, epochs: int = 150) -> None:
        super().__init__(columns, units, seed, threads)
        self.hyperparameters = {**(hyperparameters or {}), "seed": self.seed}
        self.epochs = int(epochs)
        self.predictor: Any = None

    def config(self) -> Dict[str, Any]:
        # The effective values, library defaults included, so that a changed default is a changed unit.
        from .._predictor import NETWORK_DEFAULTS, TRAINING_DEFAULTS

        return {"hyperparameters": {**NETWORK_DEFAULTS, **TRAINING_DEFAULTS, **self.hyperparameters},
                "epochs": self.epochs}

    def fit(self, train: Labelled, val: Labelled, progress: bool = False) -> Dict[str, Any]:
        from .._predictor import Predictor

        self.predictor = Predictor(self.columns, units=self.units, **self.hyperparameters)
        self.predictor.fit((list(train[0]), train[1]), val=(list(val[0]), val[1]), epochs=self.epochs,
                           threads=self.threads, progress=progress)
        info = self.predictor.provenance
        return {"epochs_run": info.get("epochs_run"), "best_epoch": info.get("best_epoch"),
                "stopped_early": info.get("stopped_early"),
                "hyperparameters": self.predictor.hyperparameters}

    def predict(self, graphs: Sequence[Graph]) -> np.ndarray:
        return self.predictor.predict(list(graphs), threads=self.threads).astype(np.float64)

    def save(self, path: Path) -> None:
        self.predictor.save(path)

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> "PerfSageMethod":
        from .._predictor import load_predictor

        predictor = load_predictor(path)
        self = cls(predictor.output_names, predictor.units, int(predictor.hyperparameters.get("seed", 0)), threads)
        self.predictor = predictor
        return self


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
    return ["perfsage", "loglinear", "lookup", "gcn"]


def method_class(name: str) -> type:
    """The Method subclass called ``name``."""
    from ._gcn import GCNMethod
    from ._lookup import LookupMethod

    classes = {c.name: c for c in (PerfSageMethod, LogLinearMethod, LookupMethod, GCNMethod)}
    if name not in classes:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(method_names())}")
    return classes[name]

