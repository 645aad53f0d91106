"""What every labeller is: the Labeler interface, its errors, and the helper-process base class."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from ._helper import WorkerProcess

if TYPE_CHECKING:
    import numpy as np


class LabelError(RuntimeError):
    """A model that could not be labelled. The message says which tool failed and why."""


class TaskError(RuntimeError):
    """An expected failure inside a helper-process task (the tool rejected the model): its message
    alone is reported, without a traceback."""


class Labeler(abc.ABC):
    """One target: ``label(model)`` returns ``{metric: value}`` in the units of ``metrics``.

    A labeller that can also price each operator lists its per-operator metrics in
    ``node_metrics`` (metric -> unit; empty when it cannot, or was not asked to) and implements
    :meth:`label_nodes`. Subclasses hold only plain, picklable configuration; anything
    process-bound (a helper process, a lock) is created lazily and dropped when pickled.
    """

    target: str
    metrics: Dict[str, str]
    node_metrics: Dict[str, str] = {}

    @abc.abstractmethod
    def settings(self) -> Dict[str, Any]:
        """JSON-able provenance: tool, tool version and every setting that changes the numbers."""

    @abc.abstractmethod
    def label(self, model: bytes) -> Dict[str, float]:
        """Labels one TFLite model (bytes with real weights); raises LabelError on failure."""

    def label_nodes(self, model: bytes) -> Tuple[Dict[str, float], Optional[Dict[str, "np.ndarray"]]]:
        """The model's labels (as :meth:`label`) and, per metric of ``node_metrics``, one value per
        operator of the model's graph, in perfsage's node order; None instead of the latter for a
        model whose operators the labeller cannot price one by one."""
        raise LabelError(f"{self.target}: this labeller gives no per-operator labels")

    def close(self) -> None:
        """Stops any helper process. Labelling again restarts it."""

    def __enter__(self) -> "Labeler":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} target={self.target!r}>"


class HelperProcessLabeler(Labeler):
    """A labeller whose tool runs in a long-lived helper process, started on first use and dropped
    when the labeller is pickled (each process that unpickles it starts its own)."""

    _worker: Optional[WorkerProcess] = None

    def _helper(self, description: str) -> WorkerProcess:
        """The helper process, started if it is not running."""
        if self._worker is None:
            self._worker = WorkerProcess(description)
        return self._worker

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state["_worker"] = None
        return state
