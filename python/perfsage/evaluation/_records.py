"""What ``perfsage evaluate`` keeps on disk for each unit: file names, strict JSON records, and the
test predictions beside each record. Read by the runner (to resume), the report and the plots."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict

import numpy as np

from .._io import atomic_write, json_safe


def file_sha256(path: Path) -> str:
    """The first 16 hex digits of a file's SHA-256: what records keep to notice a changed model file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def rows_digest(*arrays: np.ndarray) -> str:
    """A short digest of row-index arrays: what records keep to notice other rows."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


def write_json(path: Path, data: Any) -> None:
    """Writes ``data`` as strict JSON (see ``json_safe``), atomically."""
    text = json.dumps(json_safe(data), indent=2, sort_keys=False, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def save_predictions(record_path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """Writes a unit's test rows, true and predicted values, MACs and parameters beside its record."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    path = record_path.with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write)


def load_predictions(record_path: Path) -> Dict[str, np.ndarray]:
    """The test rows, true and predicted values, MACs and parameters stored beside a unit record."""
    with np.load(record_path.with_suffix(".npz"), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
