"""Loading TFLite models into graphs."""

from __future__ import annotations

import os
from typing import Iterable, List, Optional, Union

from . import _core
from ._core import Graph, PerfSageError

ModelSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


def node_feature_names() -> List[str]:
    """Names of the columns of ``Graph.node_features``, in order."""
    return list(_core.node_feature_names())


def graph_feature_names() -> List[str]:
    """Names of the entries of ``Graph.graph_features``, in order."""
    return list(_core.graph_feature_names())


def op_vocabulary() -> List[str]:
    """Operator names indexed by op type (the TFLite builtin code; CUSTOM is the custom-op slot)."""
    return list(_core.op_vocabulary())


def _as_item(item: object, where: str) -> Union[str, bytes, bytearray, memoryview]:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return item
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return path
    try:
        return memoryview(item)  # type: ignore[arg-type]  # numpy uint8 arrays and other buffers
    except TypeError:
        raise TypeError(f"{where}: expected a path or bytes, got {type(item).__name__}") from None


def load_tflite(model: ModelSource) -> Graph:
    """Reads a ``.tflite`` file (path) or TFLite bytes into a :class:`Graph`.

    Raises :class:`PerfSageError` (a ``ValueError``) naming the file and what is wrong when the
    model is truncated, corrupted, not TFLite, or not a valid graph.
    """
    item = _as_item(model, "model")
    if isinstance(item, str):
        return _core.load_file(item)
    return _core.load_bytes(item)


def load_many(
    items: Iterable[ModelSource], threads: int = 0, on_error: str = "raise"
) -> List[Optional[Graph]]:
    """Loads many models in parallel (``threads=0``: every core) with the GIL released.

    ``on_error="raise"`` raises :class:`PerfSageError` for the first item (in order) that fails,
    saying how many failed; ``on_error="none"`` puts ``None`` in the place of each failed item.
    """
    if on_error not in ("raise", "none"):
        raise ValueError(f"on_error must be 'raise' or 'none', got {on_error!r}")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise ValueError(f"threads must be a non-negative int (0: all cores), got {threads!r}")
    work = [_as_item(item, f"items[{i}]") for i, item in enumerate(items)]
    results = _core.load_many(work, threads)
    if on_error == "raise":
        failures = [error for graph, error in results if graph is None]
        if failures:
            more = f" (and {len(failures) - 1} more failed)" if len(failures) > 1 else ""
            raise PerfSageError(failures[0] + more)
    return [graph for graph, _ in results]
