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

from typing import Any, Callable, Dict, List

from ._base import HelperProcessLabeler, LabelError, Labeler  # noqa: F401 (HelperProcessLabeler: for subclasses)
from .hostcpu import HostCpuLabeler
from .vela import VelaLabeler


def _vela(name: str) -> Callable[..., Labeler]:
    def make(**options: Any) -> Labeler:
        return VelaLabeler(name, **options)

    return make


# The labeller modules import their tools (Vela, LiteRT) only when they label: asking for a Vela
# labeller must not need LiteRT, and the reverse.
_FACTORIES: Dict[str, Callable[..., Labeler]] = {
    "ethos-u55-128": _vela("ethos-u55-128"),
    "ethos-u55-256": _vela("ethos-u55-256"),
    "ethos-u65-256": _vela("ethos-u65-256"),
    "ethos-u65-512": _vela("ethos-u65-512"),
    "host-cpu": HostCpuLabeler,
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
