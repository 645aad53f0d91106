"""Labellers: the tools that turn a TFLite model into the numbers perfsage learns to predict.

A labeller is one *target* (a device, or a simulated one) with its metrics::

    from perfsage.labelers import get_labeler
    vela = get_labeler("ethos-u55-256")          # Arm Vela's performance estimate for an Ethos-U55
    vela.label(model_bytes)                      # {"latency_ms": 0.39, "npu_ops": 35.0, ...}
    vela.settings()                              # where the numbers come from: tool, version, config
    cpu = get_labeler("host-cpu")                # LiteRT + XNNPACK on this machine, one thread

Label columns in datasets are named ``"{target}/{metric}"``; the unit of each metric is in
``labeler.metrics``. Labellers are picklable so that worker processes and Dask workers can receive
them; the helper processes they start are not part of the pickle and are restarted on demand.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, Dict, List


class LabelError(RuntimeError):
    """A model that could not be labelled. The message says which tool failed and why."""


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

    _worker: Any = None

    def _helper(self, description: str) -> Any:
        """The helper process (a ``_worker.WorkerProcess``), started if it is not running."""
        if self._worker is None:
            from ._worker import WorkerProcess

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


def _vela(name: str) -> Callable[..., Labeler]:
    def make(**options: Any) -> Labeler:
        from .vela import VelaLabeler

        return VelaLabeler(name, **options)

    return make


def _host_cpu(**options: Any) -> Labeler:
    from .hostcpu import HostCpuLabeler

    return HostCpuLabeler(**options)


# Constructors import their tool lazily: asking for a Vela labeller must not need LiteRT, and
# the reverse.
_FACTORIES: Dict[str, Callable[..., Labeler]] = {
    "ethos-u55-128": _vela("ethos-u55-128"),
    "ethos-u55-256": _vela("ethos-u55-256"),
    "ethos-u65-256": _vela("ethos-u65-256"),
    "ethos-u65-512": _vela("ethos-u65-512"),
    "host-cpu": _host_cpu,
}


def labeler_names() -> List[str]:
    """The targets ``get_labeler`` knows."""
    return list(_FACTORIES)


def get_labeler(name: str, **options: Any) -> Labeler:
    """The labeller for target ``name``; ``options`` go to its constructor (see VelaLabeler and
    HostCpuLabeler for what each accepts)."""
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown labeller {name!r}; known: {', '.join(_FACTORIES)}") from None
    return factory(**options)


__all__ = ["LabelError", "Labeler", "get_labeler", "labeler_names"]
