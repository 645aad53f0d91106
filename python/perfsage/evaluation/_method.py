"""What every method ``perfsage evaluate`` compares is: the ``Method`` interface, label checks, size
features, and the ``.npz`` files the baselines save to.

Every method predicts all metrics of one target at once, is trained on exactly the rows of a split
that every other method gets (labels float64 ``[n, metrics]``, finite and positive), keeps its
own early-stopping use of the validation rows, and can be saved and loaded, so that the models
trained on the random split can later score the real-model dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .._core import Graph
from .._io import atomic_write

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


def save_arrays(path: Path, arrays: Dict[str, np.ndarray], meta: Dict[str, Any]) -> None:
    """Writes arrays and a JSON header to one ``.npz`` file, atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta, sort_keys=True)), **arrays)

    path.parent.mkdir(parents=True, exist_ok=True)
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
    """One way of predicting a target's metrics from graphs. Subclasses set ``name`` and ``file_suffix``.

    A method whose ``uses_operator_labels`` is true also gets, in ``fit``, the rows' per-operator
    labels (``operator_labels=(train, val)``, per row None or ``[num_nodes, metrics]``), and has
    ``graph_operator_costs(graph)`` (``[num_nodes, metrics]``), which the evaluation scores against them.
    One whose ``uses_groups`` is true gets the validation rows' search spaces (``val_groups``).
    """

    name = ""
    file_suffix = ".npz"
    summary = ""  # one paragraph for the report: what the method is and how it is fitted
    uses_operator_labels = False
    uses_groups = False

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

    def interval(self, graphs: Sequence[Graph], level: float, scope: str = "pooled"
                 ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """(lower, upper) ``[n, len(columns)]`` at ``level`` from a method that gives intervals
        calibrated in ``scope`` (``perfsage._intervals.SCOPES``); None here."""
        return None

    def save(self, path: Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path, threads: int = 0) -> "Method":
        raise NotImplementedError
