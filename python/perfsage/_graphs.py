"""Loading TFLite models into graphs."""

from __future__ import annotations

import os
from typing import Iterable, List, Optional, Tuple, Union

from . import _core
from ._core import Graph, PerfSageError

ModelSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]

# The core takes a thread count as a C int; it never starts more threads than it has items.
MAX_THREADS = 2**31 - 1


def node_feature_names() -> List[str]:
    """Names of the columns of ``Graph.node_features``, in order."""
    return list(_core.node_feature_names())


def graph_feature_names() -> List[str]:
    """Names of the entries of ``Graph.graph_features``, in order."""
    return list(_core.graph_feature_names())


def op_vocabulary() -> List[str]:
    """Operator names indexed by op type (the TFLite builtin code; CUSTOM is the custom-op slot)."""
    return list(_core.op_vocabulary())


def model_source(item: object, where: str, expected: str = "a path or bytes"
                 ) -> Union[str, bytes, bytearray, memoryview]:
    """One model as the core takes it (a path str or a buffer); TypeError naming ``where`` otherwise."""
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
        raise TypeError(f"{where}: expected {expected}, got {type(item).__name__}") from None


def check_threads(threads: object, what: str = "threads") -> int:
    """``threads`` as an int, or a ValueError saying what is accepted (0: every core)."""
    if not isinstance(threads, int) or isinstance(threads, bool) or not 0 <= threads <= MAX_THREADS:
        raise ValueError(f"{what} must be an int from 0 (every core) to {MAX_THREADS}, got {threads!r}")
    return threads


def model_sources(items: object, what: str = "items") -> List[Union[str, bytes, bytearray, memoryview]]:
    """``items`` (a list or other iterable of paths and TFLite bytes) checked one by one; a single
    path or bytes object is refused, since iterating it would read its characters as models."""
    if isinstance(items, (str, os.PathLike, bytes, bytearray, memoryview, Graph)) or not hasattr(items, "__iter__"):
        raise TypeError(f"{what}: expected a list of .tflite paths or TFLite bytes, got one "
                        f"{type(items).__name__}; wrap a single model in a list, or use load_tflite")
    return [model_source(item, f"{what}[{i}]") for i, item in enumerate(items)]  # type: ignore[attr-defined]


def load_tflite(model: ModelSource) -> Graph:
    """Reads a ``.tflite`` file (path) or TFLite bytes into a :class:`Graph`.

    Raises :class:`PerfSageError` (a ``ValueError``) naming the file and what is wrong when the
    model is truncated, corrupted, not TFLite, or not a valid graph.
    """
    item = model_source(model, "model")
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
    check_on_error(on_error)
    check_threads(threads)
    work = model_sources(items)
    return batch_graphs(_core.load_many(work, threads), on_error)


def check_on_error(on_error: object) -> None:
    """A ValueError unless ``on_error`` is one a batch load takes."""
    if on_error not in ("raise", "none"):
        raise ValueError(f"on_error must be 'raise' or 'none', got {on_error!r}")


def batch_graphs(results: List[Tuple[Optional[Graph], str]], on_error: str) -> List[Optional[Graph]]:
    """A batch's graphs from the core's (graph or None, error) pairs: ``on_error="raise"`` raises
    :class:`PerfSageError` for the first failed item, saying how many failed; ``"none"`` keeps None."""
    if on_error == "raise":
        raise_first_failure([error for graph, error in results if graph is None])
    return [graph for graph, _ in results]


def raise_first_failure(failures: List[str]) -> None:
    """Raises :class:`PerfSageError` with the first of a batch's failure messages, saying how many
    more failed; nothing when there are none."""
    if failures:
        more = f" (and {len(failures) - 1} more failed)" if len(failures) > 1 else ""
        raise PerfSageError(failures[0] + more)
