"""What every labeller is: the Labeler interface, its errors, and the helper-process base class."""

from __future__ import annotations

import abc
from typing import Any, Dict, Optional

from ._helper import WorkerProcess


class LabelError(RuntimeError):
    """A model that could not be labelled. The message says which tool failed and why."""


class TaskError(RuntimeError):
    """An expected failure inside a helper-process task (the tool rejected the model): its message
    alone is reported, without a traceback."""


class Labeler(abc.ABC):
    """One target: ``label(model)`` returns ``{metric: value}`` in the units of ``metrics``.

    Subclasses hold only plain, picklable configuration; anything process-bound (a helper
    process, a lock) is created lazily and dropped when pickled.
    """

    target: str
    metrics: Dict[str, str]

    @abc.abstractmethod
    def settings(self) -> Dict[str, Any]:
        """JSON-able provenance: tool, tool version and every setting that changes the numbers."""

    @abc.abstractmethod
    def label(self, model: bytes) -> Dict[str, float]:
        """Labels one TFLite model (bytes with real weights); raises LabelError on failure."""

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
