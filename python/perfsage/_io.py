"""Files and versions: the one atomic write every module uses, and the version strings records keep.

A bottom module: it imports nothing of perfsage's (only the standard library), so any module can
import it at the top. ``scripts/real_models.py`` also loads it by path in a virtual environment
without perfsage, which is one more reason it must stay standard-library only.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Union

# The package version; ``perfsage.__version__`` re-exports it.
__version__ = "0.1.0"

PathLike = Union[str, "os.PathLike[str]"]


def temporary_path(path: Path) -> Path:
    """Where ``atomic_write`` writes before renaming: a hidden sibling, ``.NAME.tmp``; readers of a
    directory (dataset shards) skip such names and clean up ones a killed writer left."""
    return path.with_name(f".{path.name}.tmp")


def atomic_write(path: PathLike, write: Callable[[Path], None], durable: bool = False) -> None:
    """Calls ``write(tmp)`` on a temporary name next to ``path``, then renames it over ``path``:
    a reader sees the old file or the new one, never half of one. The temporary file is removed
    if ``write`` fails. ``durable`` also syncs the file and its directory, so the rename survives
    a power loss (a killed process needs no sync)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        write(tmp)
        if durable:
            _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)


def atomic_write_bytes(path: PathLike, data: bytes, durable: bool = False) -> None:
    """Writes ``data`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data), durable)


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None and NumPy arrays and scalars as Python values
    (anything with ``tolist``), so that it is strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def atomic_write_json(path: PathLike, value: Any, **dump_options: Any) -> None:
    """Writes ``value`` as JSON (``json.dumps(value, **dump_options)``) to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(value, **dump_options)))


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    """Makes renames and deletions in directory ``path`` durable across a power loss."""
    # Some file systems refuse to open or sync a directory, which only
    # costs durability, never correctness.
    try:
        _fsync(path, os.O_RDONLY)
    except OSError:
        pass


def package_version(distribution: str) -> str:
    """The installed version of a distribution (``"ethos-u-vela"``), for provenance records;
    raises ``importlib.metadata.PackageNotFoundError`` when it is not installed."""
    return importlib.metadata.version(distribution)


def utc_timestamp(timespec: str = "seconds", zulu: bool = False) -> str:
    """Now in UTC, ISO 8601: ``2024-05-01T12:00:00+00:00``, or ``...Z`` with ``zulu``."""
    text = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec=timespec)
    return text.replace("+00:00", "Z") if zulu else text
