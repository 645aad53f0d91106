"""One Parquet file of a dataset on disk: listing shards, opening, reading, writing atomically."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

from .._io import atomic_write
from ._schema import SHARD_NAME, DatasetError, arrow

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq


def shard_files(directory: Path) -> List[Path]:
    """The shards (``part-NNNNNN.parquet``) of a dataset directory, in shard order."""
    shards = []
    for entry in directory.iterdir():
        match = SHARD_NAME.match(entry.name)
        if match:
            shards.append((int(match.group(1)), entry))
    return [path for _, path in sorted(shards)]


def recovery_hint(path: Path) -> str:
    """How to recover from a damaged shard of a dataset directory ("" for other files)."""
    if not SHARD_NAME.match(path.name):
        return ""
    return (f"; to recover, `perfsage dataset repair {path.parent}` sets damaged shards aside, then the same "
            "build or label command labels their rows again")


def open_parquet(path: Path) -> "pq.ParquetFile":
    pa, pq = arrow()
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(
            f"{path}: not a readable Parquet file ({e}); it is truncated, corrupt or not Parquet{recovery_hint(path)}"
        ) from None


def read_columns(path: Path, columns: Optional[List[str]]) -> "pa.Table":
    pa, pq = arrow()
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{path}: cannot read its data ({e}); the file is damaged{recovery_hint(path)}") from None


def write_parquet_atomic(table: "pa.Table", path: Path, level: int) -> None:
    """Writes ``table`` (zstd at ``level``) to a temporary name next to ``path``, syncs it, and
    renames it over ``path``."""
    _, pq = arrow()
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", compression_level=level),
                 durable=True)
