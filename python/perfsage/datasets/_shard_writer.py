"""Writing a dataset: ``ShardWriter`` appends shards to a dataset directory and merges them."""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .._io import PathLike, __version__, atomic_write_bytes, fsync_directory
from ._parquet import open_parquet, read_columns, shard_files, write_parquet_atomic
from ._schema import (
    CONSOLIDATED_SHARD_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    LOCK_NAME,
    MANIFEST_NAME,
    SHARD_NAME,
    SHARD_ZSTD_LEVEL,
    TEMPORARY_SHARD_NAME,
    DatasetError,
    Targets,
    arrow,
    check_schema,
    make_schema,
    read_manifest,
    rows_to_table,
)


class ShardWriter:
    """Appends rows to a dataset directory, one atomically renamed shard per :meth:`write`.

    Holds an exclusive lock on the directory for its lifetime, so two jobs never interleave their
    shards. On opening it checks that an existing dataset has the same targets, metrics, units and
    labeller settings (rows labelled differently must not mix silently), and deletes temporary
    files that a killed job left behind.
    """

    def __init__(self, path: PathLike, targets: Targets) -> None:
        self.path = Path(path)
        if self.path.is_file():
            raise DatasetError(
                f"{self.path}: a single-file (compacted) dataset; labelling appends shards to a "
                "directory: choose another output path"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.targets = json.loads(json.dumps(targets))  # plain JSON types, as read back
        self.schema = make_schema(self.targets)
        self._lock = open(self.path / LOCK_NAME, "a+")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise DatasetError(f"{self.path}: another perfsage job is writing to this dataset") from None
        try:
            self._check_or_create_manifest()
            for entry in self.path.iterdir():
                if TEMPORARY_SHARD_NAME.match(entry.name):
                    entry.unlink()  # a shard that a killed job did not finish
            existing = [int(SHARD_NAME.match(p.name).group(1)) for p in shard_files(self.path)]  # type: ignore[union-attr]
            self._next = max(existing, default=0) + 1
        except BaseException:
            self.close()
            raise
        self.written: List[Path] = []

    def _check_or_create_manifest(self) -> None:
        manifest_path = self.path / MANIFEST_NAME
        if manifest_path.exists():
            old = read_manifest(manifest_path)["targets"]
            if old != self.targets:
                raise DatasetError(_targets_difference(self.path, old, self.targets))
            return
        if shard_files(self.path):
            raise DatasetError(f"{self.path}: holds shards but no {MANIFEST_NAME}; not a dataset this perfsage wrote")
        others = [p.name for p in self.path.iterdir() if p.name != LOCK_NAME]
        if others:
            raise DatasetError(
                f"{self.path}: exists and is not a perfsage dataset directory "
                f"(it holds {', '.join(sorted(others)[:5])})"
            )
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "perfsage_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "targets": self.targets,
        }
        atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode(), durable=True)

    def existing(self) -> Dict[str, Optional[str]]:
        """``{id: error_kind}`` of every row already stored (the latest row of each id)."""
        done: Dict[str, Optional[str]] = {}
        for shard in shard_files(self.path):
            check_schema(shard, open_parquet(shard).schema_arrow)
            table = read_columns(shard, ["id", "error_kind"])
            for row_id, kind in zip(table.column("id").to_pylist(), table.column("error_kind").to_pylist()):
                done[row_id] = kind
        return done

    def write(self, rows: Sequence[Mapping[str, Any]]) -> Optional[Path]:
        """Writes ``rows`` as one new shard; returns its path (None when ``rows`` is empty)."""
        if not rows:
            return None
        table = rows_to_table(rows, self.schema)
        final = self.path / f"part-{self._next:06d}.parquet"
        self._next += 1
        write_parquet_atomic(table, final, SHARD_ZSTD_LEVEL)
        self.written.append(final)
        return final

    def consolidate(self, shards: Sequence[Path], target_bytes: int = CONSOLIDATED_SHARD_BYTES) -> List[Path]:
        """Merges ``shards`` (shards this writer wrote, in order) into fewer new shards of about
        ``target_bytes`` each on disk, deletes them, and returns the new shards.

        A job flushes small shards often (a kill loses little); merged, they read faster. The
        merged shards stay bounded in size so that merging never needs a whole dataset in memory.
        Safe to kill at any point: until a group's old shards are gone its rows are also in the
        new, higher-numbered shard, and the reader keeps one row per id.
        """
        groups: List[List[Path]] = [[]]
        size = 0
        for shard in shards:
            if groups[-1] and size >= target_bytes:
                groups.append([])
                size = 0
            groups[-1].append(shard)
            size += shard.stat().st_size
        pa, _ = arrow()
        merged: List[Path] = []
        for group in groups:
            if len(group) < 2:
                continue
            table = pa.concat_tables([read_columns(s, None) for s in group]).cast(self.schema)
            final = self.path / f"part-{self._next:06d}.parquet"
            self._next += 1
            write_parquet_atomic(table, final, SHARD_ZSTD_LEVEL)
            for shard in group:
                shard.unlink()
            fsync_directory(self.path)
            self.written = [p for p in self.written if p not in group] + [final]
            merged.append(final)
        return merged

    def close(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _targets_difference(path: Path, old: Targets, new: Targets) -> str:
    if list(old) != list(new):
        return (
            f"{path}: this dataset is labelled on targets {', '.join(old)}; this job labels on "
            f"{', '.join(new)}: write to another output path"
        )
    for target in old:
        if old[target].get("metrics") != new[target].get("metrics"):
            return (
                f"{path}: target {target} has metrics {old[target].get('metrics')} in this dataset but "
                f"{new[target].get('metrics')} in this job: write to another output path"
            )
        old_settings, new_settings = old[target].get("settings", {}), new[target].get("settings", {})
        if old_settings != new_settings:
            keys = sorted(set(old_settings) | set(new_settings))
            changed = [
                f"{k}: {old_settings.get(k)!r} -> {new_settings.get(k)!r}"
                for k in keys
                if old_settings.get(k) != new_settings.get(k)
            ]
            return (
                f"{path}: target {target} was labelled with other settings ({'; '.join(changed)}); "
                "rows labelled differently must not mix: write to another output path"
            )
    return f"{path}: targets differ"
