"""Reading a dataset: ``open_dataset`` and the ``Dataset`` it returns."""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._core import Graph, node_feature_names
from .._graphs import load_many, load_tflite
from .._io import PathLike
from .._writer import build_model, spec_graphs
from ._parquet import open_parquet, read_columns, shard_files
from ._schema import (
    MANIFEST_NAME,
    REQUIRED_COLUMNS,
    DatasetError,
    Targets,
    arrow,
    check_schema,
    label_columns_of,
    make_schema,
    node_column,
    node_columns_of,
    read_manifest,
)

# Operators whose weights always have a summary in a model stripped by this perfsage (int8 and
# 16x8 models): all-zero statistics there mean a file stripped before summaries were kept.
_WEIGHTED_OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"]

if TYPE_CHECKING:
    import pyarrow as pa


class _Files:
    """The Parquet files of one dataset, their common metadata, and the rows that count."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            self.files = shard_files(path)
            if not self.files:
                manifest = path / MANIFEST_NAME
                if not manifest.exists():
                    raise DatasetError(
                        f"{path}: a directory without perfsage dataset shards (part-NNNNNN.parquet) "
                        f"or {MANIFEST_NAME}"
                    )
                self.targets = read_manifest(manifest)["targets"]
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
            schema = open_parquet(file).schema_arrow
            targets, units, metadata = check_schema(file, schema)
            self.has_tflite = self.has_tflite and "tflite" in schema.names
            if first is None:
                first = (file, targets, units)
                self.targets, self.units, self.metadata = targets, units, metadata
            elif units != first[2]:
                raise DatasetError(
                    f"{file}: its label columns {sorted(units)} differ from those of {first[0]} "
                    f"({sorted(first[2])}); shards of one dataset must share their targets"
                )

    def read(self, columns: List[str]) -> "pa.Table":
        pa, _ = arrow()
        tables = [read_columns(f, columns) for f in self.files]
        if not tables:
            return make_schema(self.targets).empty_table().select(columns)
        return pa.concat_tables(tables)


def _values_at(column: "pa.ChunkedArray", positions: np.ndarray) -> List[Any]:
    """``column``'s values at ``positions`` as Python objects, converting only those rows (the
    whole column of a 100,000-model dataset as Python bytes is many GB). Chunk by chunk: one take()
    over the column would concatenate its chunks into one binary array, whose 32-bit offsets
    overflow past 2 GiB (a 21,000-model dataset's models are more than that)."""
    out: List[Any] = [None] * len(positions)
    for c, picked, local in _by_part([len(chunk) for chunk in column.chunks], positions):
        for k, value in zip(picked.tolist(), column.chunks[c].take(local).to_pylist()):
            out[k] = value
    return out


def _by_part(sizes: Sequence[int], positions: np.ndarray) -> Iterator[Tuple[int, np.ndarray, np.ndarray]]:
    """For parts of ``sizes`` rows laid end to end (a column's chunks, a dataset's files) and
    ``positions`` into them: (part, indices into ``positions`` that fall in it, their offsets
    within it), once per part that has any."""
    positions = np.asarray(positions, dtype=np.int64)
    starts = np.cumsum([0] + list(sizes))
    which = np.searchsorted(starts, positions, side="right") - 1
    for part in np.unique(which).tolist():
        picked = np.flatnonzero(which == part)
        yield part, picked, positions[picked] - starts[part]


def _last_occurrence(ids: Sequence[str]) -> np.ndarray:
    last: Dict[str, int] = {}
    for position, row_id in enumerate(ids):
        last[row_id] = position
    return np.fromiter(sorted(last.values()), dtype=np.int64, count=len(last))


class Dataset:
    """A labelled dataset: one row per model, read from a shard directory or one Parquet file.

    Everything but the ``tflite``, per-operator and ``provenance`` columns is read when the dataset
    is opened; those are read when first needed (the models one file at a time by :meth:`graphs`),
    so labels of a large dataset load quickly.
    """

    def __init__(self, files: _Files, table: "pa.Table", positions: np.ndarray) -> None:
        self._files = files
        self._table = table  # every column but tflite, the rows that count, in file order
        self._positions = positions  # row -> index into the concatenated rows of all files
        self._tflite: Optional["pa.ChunkedArray"] = None
        self._lazy: Dict[str, "pa.ChunkedArray"] = {}  # per-operator label columns read so far

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
        return [json.loads(p) if p else {} for p in self._stored_column("provenance")]

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

    def node_labels(self, target: str, metric: str) -> List[Optional[np.ndarray]]:
        """Per-operator labels: for each row, ``float32 [num_nodes]`` values of ``metric`` on
        ``target`` in the node order of the row's graph; None where the row has none or an error."""
        node_metrics = self._files.targets.get(target, {}).get("node_metrics", {})
        if metric not in node_metrics:
            have = [f"{t}/ops/{m}" for t, info in self._files.targets.items() for m in info.get("node_metrics", {})]
            raise DatasetError(f"{self.path}: no per-operator labels {node_column(target, metric)!r}; it has "
                               f"{', '.join(have) or 'none'}")
        values = self._stored_column(node_column(target, metric))
        return [None if v is None or not ok else np.asarray(v, dtype=np.float32) for v, ok in zip(values, self.ok)]

    def _node_columns(self) -> List[str]:
        return list(node_columns_of(self._files.targets))

    def _stored_column(self, name: str) -> List[Any]:
        """One column read when first asked for, not when the dataset is opened (per-operator
        labels are most of a large dataset's bytes)."""
        if name not in self._lazy:
            self._lazy[name] = self._files.read([name]).column(name)
        return _values_at(self._lazy[name], self._positions)

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
        return _values_at(self._tflite, self._positions)

    def _stored_models(self) -> Iterator[Tuple[np.ndarray, List[Optional[bytes]]]]:
        """(rows, their stored TFLite bytes or None) one Parquet file at a time, so that only one
        file's models are in memory at once (all of a 100,000-model dataset's are several GB)."""
        if not self._files.has_tflite or self.num_rows == 0:
            return
        if self._tflite is not None:  # already read (table() does)
            yield np.arange(self.num_rows), _values_at(self._tflite, self._positions)
            return
        sizes = [open_parquet(f).metadata.num_rows for f in self._files.files]
        for f, rows, local in _by_part(sizes, self._positions):
            yield rows, _values_at(read_columns(self._files.files[f], ["tflite"]).column("tflite"), local)

    def graphs(self, threads: int = 0) -> List[Optional[Graph]]:
        """One :class:`perfsage.Graph` per row, in row order.

        From the stored weight-free TFLite where there is one, otherwise rebuilt from spec, seed and
        dtype (the writer is deterministic, so the rebuilt graph is the stored one). ``None`` for a
        row that has neither (e.g. a NAS-Bench-201 cell without an input->output path, or a spec
        the writer refused); such rows always carry an error. ``threads=0`` uses every core.
        """
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise ValueError(f"threads must be a non-negative int (0: all cores), got {threads!r}")
        graphs: List[Optional[Graph]] = [None] * self.num_rows
        have: List[int] = []
        for rows, stored in self._stored_models():
            present = [k for k, b in enumerate(stored) if b is not None]
            loaded = load_many([stored[k] for k in present], threads=threads, on_error="none") if present else []
            for k, graph in zip(present, loaded):
                graphs[int(rows[k])] = graph
            have.extend(int(rows[k]) for k in present)
            del stored, loaded
        have.sort()
        stored_rows = set(have)
        specs, seeds, dtypes = self.specs, self.seeds, self._column("dtype")
        self._refresh_weight_statistics(graphs, have, specs, seeds, dtypes, threads)
        rebuild = [i for i in range(self.num_rows) if i not in stored_rows and specs[i] is not None]

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

    def _refresh_weight_statistics(self, graphs: List[Optional[Graph]], have: Sequence[int], specs: Sequence[Any],
                                   seeds: Sequence[Any], dtypes: Sequence[str], threads: int) -> None:
        """Stored models stripped before perfsage kept weight summaries (feature schema 1) read as
        weightless: their weight-statistics columns are 0, which no real model shows. Rows with a
        spec get their graph from the spec path instead, whose columns estimate those of the spec's
        declared weights, so that old and new rows agree. Rows labelled from a file (``dataset
        label`` records it in the provenance) get theirs from that file when it is still there with
        the same content; any other such row is named in a warning."""
        names = node_feature_names()
        zeros, magnitude, params = (names.index(n) for n in ("weight_zero_fraction", "weight_log2_magnitude",
                                                             "param_count"))
        stale: Dict[str, List[int]] = {}
        orphans: List[int] = []
        for i in have:
            graph = graphs[i]
            if graph is None or dtypes[i] == "float32":
                continue
            x = graph.node_features
            weighted = np.isin(graph.op_names, _WEIGHTED_OPS) & (x[:, params] > 0)
            if np.any(weighted & (x[:, zeros] == 0) & (x[:, magnitude] == 0)):
                if specs[i] is None:
                    orphans.append(i)
                else:
                    stale.setdefault(dtypes[i], []).append(i)
        if orphans:
            self._reload_from_source_files(graphs, orphans)
        for dtype, rows in stale.items():
            items = [{"spec": specs[i], "seed": int(seeds[i] or 0)} for i in rows]
            for i, graph in zip(rows, spec_graphs(items, dtype=dtype, threads=threads, on_error="none")):
                if graph is not None:
                    graphs[i] = graph

    def _reload_from_source_files(self, graphs: List[Optional[Graph]], rows: Sequence[int]) -> None:
        """Graphs of ``rows`` from the model files they were labelled from (provenance ``file``,
        checked against ``file_sha256``; a relative path is tried from the working directory and
        from each folder above the dataset), or a warning naming the rows left as they are."""
        provenance = self._stored_column("provenance")
        bases = [Path.cwd(), *Path(self.path).resolve().parents]
        missing = []
        for i in rows:
            record = json.loads(provenance[i]) if provenance[i] else {}
            name, digest = record.get("file"), record.get("file_sha256")
            found = None
            if isinstance(name, str) and isinstance(digest, str):
                for candidate in ([Path(name)] if Path(name).is_absolute() else [b / name for b in bases]):
                    if candidate.is_file():
                        data = candidate.read_bytes()
                        if hashlib.sha256(data).hexdigest() == digest:
                            found = data
                            break
            if found is None:
                missing.append(i)
            else:
                graphs[i] = load_tflite(found)
        if missing:
            ids = self.ids
            warnings.warn(
                f"{self.path}: {len(missing)} row(s) (e.g. id {ids[missing[0]]}) were stored before perfsage kept "
                "weight statistics, and neither a spec nor the model file they were labelled from (with the same "
                "content) is there to restore them: their weight_zero_fraction and weight_log2_magnitude read 0, "
                "which predictors trained on feature schema 2 or later do not expect. Label those models again.",
                stacklevel=3)

    def table(self, tflite: bool = True) -> "pa.Table":
        """The rows as a pyarrow Table (with the ``tflite`` column unless ``tflite=False``)."""
        pa, _ = arrow()
        names, arrays = [], []
        for field in make_schema(self._files.targets):
            if field.name == "tflite":
                if not (tflite and self._files.has_tflite):
                    continue
                arrays.append(pa.array(self._tflite_values(), type=pa.binary()))
            elif field.name in self._table.column_names:
                arrays.append(self._table.column(field.name))
            else:  # read when first needed: per-operator labels, provenance
                arrays.append(pa.array(self._stored_column(field.name), type=field.type))
            names.append(field.name)
        return pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(self._table.schema.metadata)

    def select(self, rows: Union[np.ndarray, Sequence[int]]) -> "Dataset":
        """The dataset restricted to ``rows`` (indices, or a boolean mask of ``num_rows``)."""
        index = np.asarray(rows)
        if index.dtype == bool:
            if index.shape != (self.num_rows,):
                raise ValueError(f"a boolean row mask must have shape ({self.num_rows},), got {index.shape}")
            index = np.flatnonzero(index)
        index = index.astype(np.int64)
        pa, _ = arrow()
        subset = Dataset(self._files, self._table.take(pa.array(index)), self._positions[index])
        subset._tflite = self._tflite
        subset._lazy = self._lazy
        return subset


def open_dataset(path: PathLike) -> Dataset:
    """Opens a dataset: a ``.parquet`` file or a directory of shards written by a labelling job.

    Raises :class:`DatasetError` naming the file when it is missing, truncated or corrupt, when it
    is a Parquet file that perfsage did not write, or when shards disagree on their columns.
    """
    pa, _ = arrow()
    path = Path(path)
    for attempt in range(3):
        try:
            files = _Files(path)
            # The models, and each row's provenance (a tenth of a large dataset's other bytes), are
            # read when first needed.
            columns = [c for c in REQUIRED_COLUMNS if c not in ("tflite", "provenance")] + list(files.units)
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
