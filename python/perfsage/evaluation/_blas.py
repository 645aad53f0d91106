"""Setting OpenBLAS's thread count at run time (numpy links OpenBLAS; no threadpoolctl needed).

The GCN baseline multiplies many small matrices (a batch of a few thousand nodes by the hidden
width). On few cores OpenBLAS's second thread costs more in synchronisation than it gains on
matrices this small (measured in commit 37c9f17). ``blas_threads(1)`` pins it for the duration of
a ``with`` block.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Callable, Iterator, List, Optional, Tuple

# Entry points of OpenBLAS builds: plain, 64-bit-integer suffixed, and numpy's scipy-openblas.
_SYMBOLS = (("openblas_set_num_threads", "openblas_get_num_threads"),
            ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
            ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
            ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"))

_controls: Optional[List[Tuple[Callable[[int], None], Callable[[], int]]]] = None


def _loaded_openblas() -> List[Tuple[Callable[[int], None], Callable[[], int]]]:
    """(set, get) functions of every OpenBLAS mapped into this process (Linux: /proc/self/maps)."""
    global _controls
    if _controls is not None:
        return _controls
    _controls = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in os.path.basename(line.split()[-1]).lower()}
    except OSError:
        return _controls
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for set_name, get_name in _SYMBOLS:
            setter, getter = getattr(library, set_name, None), getattr(library, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                _controls.append((setter, getter))
                break
    return _controls


@contextlib.contextmanager
def blas_threads(count: int) -> Iterator[bool]:
    """Runs the block with OpenBLAS on ``count`` threads (0: leave as is); yields whether it could."""
    controls = _loaded_openblas() if count > 0 else []
    previous = [get() for _, get in controls]
    for set_threads, _ in controls:
        set_threads(count)
    try:
        yield bool(controls)
    finally:
        for (set_threads, _), old in zip(controls, previous):
            set_threads(old)
