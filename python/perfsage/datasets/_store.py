"""The Parquet dataset store: schema, append-only shard writer, reader.

A dataset is either a directory of shards (what labelling jobs write) or one Parquet file (what
``compact_dataset`` writes). One row per model:

=============== ============ ==============================================================
column          type         meaning
=============== ============ ==============================================================
id              string       content id (see ``_ids``)
space           string       search space, ``nb201`` or ``imported``
name            string       the spec's name, the model file's name, or the NB201 cell
spec            string       canonical spec JSON; null for models that no spec describes
seed            uint64       the writer's weight seed; null without a spec
dtype           string       ``int8`` or ``float32`` (or the model's input type when imported)
tflite          binary       weight-free TFLite (``strip_weights``); null in compact copies
                             wherever the spec rebuilds it
<target>/<m>    float64      one column per target and metric; units in the schema metadata
provenance      string       JSON: labeller settings, host, time, perfsage version, seconds
error_kind      string       null when the row is fine; else build, label, timeout, crash,
                             executor or import
error           string       the error message (null when fine)
=============== ============ ==============================================================

Shards are written to a dot-prefixed temporary name and ``os.replace``d to ``part-NNNNNN.parquet``,
so a reader never sees half a shard and a killed job leaves at most a temporary file, which the
next writer deletes. When an id appears in several shards (a ``--retry-errors`` run, or a
consolidation killed half-way), the row in the highest-numbered shard wins.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .._core import FEATURE_SCHEMA_VERSION, Graph, PerfSageError

FORMAT_NAME = "perfsage-dataset"
FORMAT_VERSION = 1
MANIFEST_NAME = "_perfsage_dataset.json"
LOCK_NAME = "_perfsage_dataset.lock"
ERROR_KINDS = ("build", "label", "timeout", "crash", "executor", "import")

_SHARD = re.compile(r"^part-(\d{6,})\.parquet$")
_TEMPORARY = re.compile(r"^\.part-(\d{6,})\.parquet\.tmp$")
_LEADING = [
    ("id", pa.string()),
    ("space", pa.string()),
    ("name", pa.string()),
    ("spec", pa.string()),
    ("seed", pa.uint64()),
    ("dtype", pa.string()),
    ("tflite", pa.binary()),
]
_TRAILING = [("provenance", pa.string()), ("error_kind", pa.string()), ("error", pa.string())]
REQUIRED_COLUMNS = [name for name, _ in _LEADING + _TRAILING]
# Shards favour write speed; compact copies are written once and kept, so they favour size.
SHARD_ZSTD_LEVEL = 3
COMPACT_ZSTD_LEVEL = 19
# Size on disk that a job's small shards are merged up to when it completes.
CONSOLIDATED_SHARD_BYTES = 64 << 20

PathLike = Union[str, "os.PathLike[str]"]
Targets = Dict[str, Dict[str, Any]]  # target -> {"metrics": {metric: unit}, "settings": {...}}


class DatasetError(PerfSageError):
    """A dataset file or directory that cannot be read or written as asked; the message names it.

    A :class:`perfsage.PerfSageError`, so a ``ValueError`` too: one base for all of perfsage's errors."""


def _version() -> str:
    from .. import __version__

    return __version__


def label_columns_of(targets: Mapping[str, Mapping[str, Any]]) -> Dict[str, str]:
    """``{"<target>/<metric>": unit}`` in target order, then metric order."""
    columns: Dict[str, str] = {}
    for target, info in targets.items():
        if "/" in target:
            raise DatasetError(f"target name {target!r} must not contain '/'")
        for metric, unit in info["metrics"].items():
            if "/" in metric:
                raise DatasetError(f"metric name {metric!r} of target {target!r} must not contain '/'")
            columns[f"{target}/{metric}"] = str(unit)
    return columns


def make_schema(targets: Targets, compact: bool = False) -> pa.Schema:
    """The Arrow schema, with perfsage's metadata, of a dataset labelled on ``targets``."""
    units = label_columns_of(targets)
    fields = [pa.field(n, t) for n, t in _LEADING]
    fields += [pa.field(column, pa.float64()) for column in units]
    fields += [pa.field(n, t) for n, t in _TRAILING]
    metadata = {
        "perfsage.format": FORMAT_NAME,
        "perfsage.format_version": str(FORMAT_VERSION),
        "perfsage.version": _version(),
        "perfsage.feature_schema_version": str(FEATURE_SCHEMA_VERSION),
        "perfsage.targets": json.dumps(targets, sort_keys=False),
        "perfsage.units": json.dumps(units),
        "perfsage.compact": "true" if compact else "false",
    }
    return pa.schema(fields, metadata=metadata)


def rows_to_table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Row dicts (column name -> value; absent keys are null) as a table of ``schema``."""
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as e:
            raise DatasetError(f"column {field.name!r}: cannot store the values given ({e})") from None
    return pa.Table.from_arrays(arrays, schema=schema)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    # Makes a rename durable across power loss; a killed process needs no fsync at all.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_parquet_atomic(table: pa.Table, path: Path, level: int) -> None:
    """Writes ``table`` to a temporary name next to ``path``, syncs it, and renames it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd", compression_level=level)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


# ----------------------------------------------------------------------------------------------
# Reading


def _shard_files(directory: Path) -> List[Path]:
    shards = []
    for entry in directory.iterdir():
        match = _SHARD.match(entry.name)
        if match:
            shards.append((int(match.group(1)), entry))
    return [path for _, path in sorted(shards)]


def _check_schema(path: Path, schema: pa.Schema) -> Tuple[Targets, Dict[str, str], Dict[str, str]]:
    """Validates perfsage's metadata and columns; returns (targets, units, metadata)."""
    raw = schema.metadata or {}
    metadata = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}
    if metadata.get("perfsage.format") != FORMAT_NAME:
        columns = ", ".join(schema.names[:8]) + (", ..." if len(schema.names) > 8 else "")
        raise DatasetError(
            f"{path}: a Parquet file, but not a perfsage dataset: its schema metadata has no "
            f"'perfsage.format: {FORMAT_NAME}' (columns: {columns})"
        )
    try:
        version = int(metadata.get("perfsage.format_version", ""))
    except ValueError:
        raise DatasetError(f"{path}: bad perfsage.format_version {metadata.get('perfsage.format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise DatasetError(
            f"{path}: written in perfsage dataset format {version} (by perfsage "
            f"{metadata.get('perfsage.version', '?')}); this perfsage reads format {FORMAT_VERSION} and older"
        )
    try:
        targets = json.loads(metadata["perfsage.targets"])
        units = json.loads(metadata["perfsage.units"])
    except (KeyError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: perfsage metadata is damaged ({type(e).__name__}: {e})") from None
    missing = [c for c in REQUIRED_COLUMNS + list(units) if c not in schema.names and c != "tflite"]
    if missing:
        raise DatasetError(f"{path}: perfsage dataset without the column(s) {', '.join(missing)}")
    return targets, units, metadata


def _recovery(path: Path) -> str:
    """How to recover from a damaged shard of a dataset directory ("" for other files)."""
    if not _SHARD.match(path.name):
        return ""
    return (f"; to recover, `perfsage dataset repair {path.parent}` sets damaged shards aside, then the same "
            "build or label command labels their rows again")


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(
            f"{path}: not a readable Parquet file ({e}); it is truncated, corrupt or not Parquet{_recovery(path)}"
        ) from None


def _read_columns(path: Path, columns: Optional[List[str]]) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{path}: cannot read its data ({e}); the file is damaged{_recovery(path)}") from None


class _Files:
    """The Parquet files of one dataset, their common metadata, and the rows that count."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            self.files = _shard_files(path)
            if not self.files:
                manifest = path / MANIFEST_NAME
                if not manifest.exists():
                    raise DatasetError(
                        f"{path}: a directory without perfsage dataset shards (part-NNNNNN.parquet) "
                        f"or {MANIFEST_NAME}"
                    )
                self.targets = _read_manifest(manifest)["targets"]
                schema = make_schema(self.targets)
                self.units = label_columns_of(self.targets)
                self.metadata = {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}
                self.has_tflite = True
                return
        elif path.is_file():
            self.files = [path]
        else:
            raise DatasetError(f"{path}: no such dataset file or directory")
        first: Optional[Tuple[Path, Targets, Dict[str, str]]] = None
        self.has_tflite = True
        for file in self.files:
            schema = _open_parquet(file).schema_arrow
            targets, units, metadata = _check_schema(file, schema)
            self.has_tflite = self.has_tflite and "tflite" in schema.names
            if first is None:
                first = (file, targets, units)
                self.targets, self.units, self.metadata = targets, units, metadata
            elif units != first[2]:
                raise DatasetError(
                    f"{file}: its label columns {sorted(units)} differ from those of {first[0]} "
                    f"({sorted(first[2])}); shards of one dataset must share their targets"
                )

    def read(self, columns: List[str]) -> pa.Table:
        tables = [_read_columns(f, columns) for f in self.files]
        if not tables:
            return make_schema(self.targets).empty_table().select(columns)
        return pa.concat_tables(tables)


def _read_manifest(path: Path) -> Dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: unreadable dataset manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME or "targets" not in manifest:
        raise DatasetError(f"{path}: not a perfsage dataset manifest")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise DatasetError(f"{path}: written in a newer perfsage dataset format ({manifest['format_version']})")
    return manifest


def _last_occurrence(ids: Sequence[str]) -> np.ndarray:
    last: Dict[str, int] = {}
    for position, row_id in enumerate(ids):
        last[row_id] = position
    return np.fromiter(sorted(last.values()), dtype=np.int64, count=len(last))


class Dataset:
    """A labelled dataset: one row per model, read from a shard directory or one Parquet file.

    Everything but the ``tflite`` column is read when the dataset is opened; the TFLite bytes are
    read only by :meth:`graphs` and :meth:`table`, so labels of a large dataset load quickly.
    """

    def __init__(self, files: _Files, table: pa.Table, positions: np.ndarray) -> None:
        self._files = files
        self._table = table  # every column but tflite, the rows that count, in file order
        self._positions = positions  # row -> index into the concatenated rows of all files
        self._tflite: Optional[pa.ChunkedArray] = None

    @property
    def path(self) -> Path:
        return self._files.path

    @property
    def num_rows(self) -> int:
        return self._table.num_rows

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, rows={self.num_rows}, label_columns={self.label_columns})"

    def _column(self, name: str) -> List[Any]:
        return self._table.column(name).to_pylist()

    @property
    def ids(self) -> List[str]:
        return self._column("id")

    @property
    def spaces(self) -> np.ndarray:
        return np.array(self._column("space"), dtype=str)

    @property
    def names(self) -> List[Optional[str]]:
        return self._column("name")

    @property
    def specs(self) -> List[Optional[str]]:
        """Canonical spec JSON per row (None for models that no spec describes)."""
        return self._column("spec")

    @property
    def seeds(self) -> List[Optional[int]]:
        return self._column("seed")

    @property
    def dtypes(self) -> np.ndarray:
        return np.array(self._column("dtype"), dtype=str)

    @property
    def errors(self) -> List[Optional[str]]:
        return self._column("error")

    @property
    def error_kinds(self) -> List[Optional[str]]:
        return self._column("error_kind")

    @property
    def ok(self) -> np.ndarray:
        """True for rows without an error."""
        return np.array([e is None for e in self._column("error_kind")], dtype=bool)

    @property
    def provenance(self) -> List[Dict[str, Any]]:
        return [json.loads(p) if p else {} for p in self._column("provenance")]

    @property
    def targets(self) -> Dict[str, Dict[str, Any]]:
        """``{target: {"metrics": {metric: unit}, "settings": {...}}}``."""
        return json.loads(json.dumps(self._files.targets))

    @property
    def label_columns(self) -> List[str]:
        return list(self._files.units)

    @property
    def units(self) -> Dict[str, str]:
        return dict(self._files.units)

    @property
    def metadata(self) -> Dict[str, str]:
        """The perfsage schema metadata (format version, units, feature schema version, ...)."""
        return dict(self._files.metadata)

    @property
    def compact(self) -> bool:
        """True when TFLite bytes are stored only for rows that no spec rebuilds."""
        return self._files.metadata.get("perfsage.compact") == "true" or not self._files.has_tflite

    def labels(self, columns: Union[str, Sequence[str]]) -> np.ndarray:
        """``float64 [num_rows, len(columns)]``; NaN where a value is missing or the row has an error.

        ``columns`` are label column names (``"ethos-u55-256/latency_ms"``); a bare target name
        (``"ethos-u55-256"``) stands for all of its metrics.
        """
        wanted = self._resolve_columns([columns] if isinstance(columns, str) else list(columns))
        out = np.empty((self.num_rows, len(wanted)), dtype=np.float64)
        for j, column in enumerate(wanted):
            out[:, j] = self._table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        out[~self.ok] = np.nan
        return out

    def _resolve_columns(self, columns: List[str]) -> List[str]:
        resolved: List[str] = []
        for column in columns:
            if column in self._files.units:
                resolved.append(column)
            elif column in self._files.targets:
                resolved.extend(f"{column}/{m}" for m in self._files.targets[column]["metrics"])
            else:
                raise DatasetError(
                    f"{self.path}: no label column {column!r}; it has {', '.join(self.label_columns) or 'none'}"
                )
        return resolved

    def _tflite_values(self) -> List[Optional[bytes]]:
        if not self._files.has_tflite:
            return [None] * self.num_rows
        if self._tflite is None:
            self._tflite = self._files.read(["tflite"]).column("tflite")
        # Row by row from the chunks: a take() would concatenate them into one binary array, whose
        # 32-bit offsets overflow past 2 GiB (a 21,000-model dataset's models are more than that).
        values = self._tflite.to_pylist()
        return [values[p] for p in self._positions]

    def graphs(self, threads: int = 0) -> List[Optional[Graph]]:
        """One :class:`perfsage.Graph` per row, in row order.

        From the stored weight-free TFLite where there is one, otherwise rebuilt from spec, seed and
        dtype (the writer is deterministic, so the rebuilt graph is the stored one). ``None`` for a
        row that has neither (e.g. a NAS-Bench-201 cell without an input->output path, or a spec
        the writer refused); such rows always carry an error. ``threads=0`` uses every core.
        """
        from .._graphs import load_tflite, load_many
        from .._writer import build_model

        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise ValueError(f"threads must be a non-negative int (0: all cores), got {threads!r}")
        stored = self._tflite_values()
        graphs: List[Optional[Graph]] = [None] * self.num_rows
        have = [i for i, b in enumerate(stored) if b is not None]
        if have:
            loaded = load_many([stored[i] for i in have], threads=threads, on_error="none")
            for i, graph in zip(have, loaded):
                graphs[i] = graph
        specs, seeds, dtypes = self.specs, self.seeds, self._column("dtype")
        rebuild = [i for i, b in enumerate(stored) if b is None and specs[i] is not None]

        def make(i: int) -> Optional[Graph]:
            # build_model and load_tflite release the GIL, so threads run them in parallel; the
            # full model is dropped right away (an int8 image model is ~2 MB, its graph far less).
            try:
                return load_tflite(build_model(specs[i], seed=int(seeds[i] or 0), dtype=dtypes[i]))
            except ValueError:
                return None

        if rebuild:
            with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
                for i, graph in zip(rebuild, pool.map(make, rebuild)):
                    graphs[i] = graph
        return graphs

    def table(self, tflite: bool = True) -> pa.Table:
        """The rows as a pyarrow Table (with the ``tflite`` column unless ``tflite=False``)."""
        if not tflite or not self._files.has_tflite:
            return self._table
        column = pa.array(self._tflite_values(), type=pa.binary())
        position = self._table.schema.get_field_index("dtype") + 1
        table = self._table.add_column(position, "tflite", column)
        return table.replace_schema_metadata(self._table.schema.metadata)

    def select(self, rows: Union[np.ndarray, Sequence[int]]) -> "Dataset":
        """The dataset restricted to ``rows`` (indices, or a boolean mask of ``num_rows``)."""
        index = np.asarray(rows)
        if index.dtype == bool:
            if index.shape != (self.num_rows,):
                raise ValueError(f"a boolean row mask must have shape ({self.num_rows},), got {index.shape}")
            index = np.flatnonzero(index)
        index = index.astype(np.int64)
        subset = Dataset(self._files, self._table.take(pa.array(index)), self._positions[index])
        subset._tflite = self._tflite
        return subset


def open_dataset(path: PathLike) -> Dataset:
    """Opens a dataset: a ``.parquet`` file or a directory of shards written by a labelling job.

    Raises :class:`DatasetError` naming the file when it is missing, truncated or corrupt, when it
    is a Parquet file that perfsage did not write, or when shards disagree on their columns.
    """
    path = Path(path)
    for attempt in range(3):
        try:
            files = _Files(path)
            columns = [c for c in REQUIRED_COLUMNS if c != "tflite"] + list(files.units)
            table = files.read(columns)
            break
        except FileNotFoundError:
            # A writer consolidated shards between listing and reading; list again.
            if attempt == 2:
                raise
            time.sleep(0.1)
    positions = _last_occurrence(table.column("id").to_pylist())
    if len(positions) != table.num_rows:
        table = table.take(pa.array(positions))
    table = table.replace_schema_metadata(files.metadata)
    return Dataset(files, table, positions)


# ----------------------------------------------------------------------------------------------
# Writing


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
                if _TEMPORARY.match(entry.name):
                    entry.unlink()  # a shard that a killed job did not finish
            existing = [int(_SHARD.match(p.name).group(1)) for p in _shard_files(self.path)]  # type: ignore[union-attr]
            self._next = max(existing, default=0) + 1
        except BaseException:
            self.close()
            raise
        self.written: List[Path] = []

    def _check_or_create_manifest(self) -> None:
        manifest_path = self.path / MANIFEST_NAME
        if manifest_path.exists():
            old = _read_manifest(manifest_path)["targets"]
            if old != self.targets:
                raise DatasetError(_targets_difference(self.path, old, self.targets))
            return
        if _shard_files(self.path):
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
            "perfsage_version": _version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "targets": self.targets,
        }
        _atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())

    def existing(self) -> Dict[str, Optional[str]]:
        """``{id: error_kind}`` of every row already stored (the latest row of each id)."""
        done: Dict[str, Optional[str]] = {}
        for shard in _shard_files(self.path):
            _check_schema(shard, _open_parquet(shard).schema_arrow)
            table = _read_columns(shard, ["id", "error_kind"])
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
        merged: List[Path] = []
        for group in groups:
            if len(group) < 2:
                continue
            table = pa.concat_tables([_read_columns(s, None) for s in group]).cast(self.schema)
            final = self.path / f"part-{self._next:06d}.parquet"
            self._next += 1
            write_parquet_atomic(table, final, SHARD_ZSTD_LEVEL)
            for shard in group:
                shard.unlink()
            _fsync_dir(self.path)
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


# ----------------------------------------------------------------------------------------------
# Compact copies


def compact_dataset(
    source: PathLike, out: PathLike, keep_tflite: bool = False, level: int = COMPACT_ZSTD_LEVEL
) -> Path:
    """Writes ``source`` as one Parquet file sorted by id, compressed with zstd at ``level``.

    Level 19 is slow (about 2 MB of spec text per second) but finds the repeats between specs
    that lower levels miss: on the NAS-Bench-201 import it gives 172 bytes per row against 350 at
    level 9.

    Without ``keep_tflite`` the TFLite bytes are kept only for rows that no spec rebuilds (imported
    model files); everything else is rebuilt from spec + seed + dtype by :meth:`Dataset.graphs` or
    :func:`expand_dataset`. That is what makes a 20,000-model dataset small enough to version.
    """
    out = Path(out)
    if out.is_dir():
        raise DatasetError(f"{out}: is a directory; a compact dataset is one file")
    dataset = open_dataset(source)
    specs = dataset.table(tflite=False).column("spec").to_pylist()
    # The TFLite column of a 20,000-model dataset is gigabytes in memory (past a binary column's
    # 2 GiB offsets once concatenated), so it is only read when some row has no spec to rebuild from.
    need_tflite = keep_tflite or any(s is None for s in specs)
    table = dataset.table(tflite=need_tflite)
    if "tflite" not in table.column_names:
        position = table.schema.get_field_index("dtype") + 1
        table = table.add_column(position, "tflite", pa.nulls(table.num_rows, pa.binary()))
    elif not keep_tflite:
        values = table.column("tflite").to_pylist()
        kept = [b if s is None else None for b, s in zip(values, specs)]
        table = table.set_column(table.schema.get_field_index("tflite"), "tflite", pa.array(kept, pa.binary()))
    order = np.argsort(np.array(table.column("id").to_pylist(), dtype=str), kind="stable")
    table = table.take(pa.array(order))
    schema = make_schema(dataset._files.targets, compact=not keep_tflite)
    table = table.select(schema.names).cast(schema)
    write_parquet_atomic(table, out, level)
    return out


def expand_dataset(source: PathLike, out: PathLike, threads: int = 0) -> Tuple[Path, int]:
    """Writes ``source`` as one Parquet file with the ``tflite`` column rebuilt from the specs.

    Returns the path and the number of rows rebuilt. The writer is deterministic, so the rebuilt
    bytes equal those the labelling job stored.
    """
    from .._writer import build_model, strip_weights

    out = Path(out)
    if out.is_dir():
        raise DatasetError(f"{out}: is a directory; an expanded dataset is one file")
    dataset = open_dataset(source)
    table = dataset.table(tflite=True)
    stored = table.column("tflite").to_pylist() if "tflite" in table.column_names else [None] * table.num_rows
    specs, seeds, dtypes = dataset.specs, dataset.seeds, table.column("dtype").to_pylist()
    rebuild = [i for i, b in enumerate(stored) if b is None and specs[i] is not None]

    def make(i: int) -> Optional[bytes]:
        try:
            return strip_weights(build_model(specs[i], seed=int(seeds[i] or 0), dtype=dtypes[i]))
        except ValueError:
            return None  # the spec never built (an error row of kind 'build')

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        for i, model in zip(rebuild, pool.map(make, rebuild)):
            stored[i] = model
    schema = make_schema(dataset._files.targets, compact=False)
    if "tflite" in table.column_names:
        table = table.drop_columns(["tflite"])
    table = table.add_column(schema.get_field_index("tflite"), "tflite", pa.array(stored, pa.binary()))
    table = table.select(schema.names).cast(schema)
    write_parquet_atomic(table, out, SHARD_ZSTD_LEVEL)
    return out, len(rebuild)

