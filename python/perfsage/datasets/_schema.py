"""The dataset format: columns, schema metadata, the manifest, and how shards are named.

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
dtype           string       ``int8``, ``float32`` or ``int16x8`` (or the model's input type when imported)
tflite          binary       weight-free TFLite (``strip_weights``); null in compact copies
                             wherever the spec rebuilds it
<target>/<m>    float64      one column per target and metric; units in the schema metadata
<target>/ops/<m> list<float32> per-operator labels where the labeller gives them (the target's
                             ``node_metrics``): one value per node of the model's perfsage
                             graph, in node order; null where the row has none
provenance      string       JSON: labeller settings, host, time, perfsage version, seconds
error_kind      string       null when the row is fine; else build, label, timeout, crash,
                             executor or import
error           string       the error message (null when fine)
=============== ============ ==============================================================

Shards are written to a dot-prefixed temporary name and renamed to ``part-NNNNNN.parquet``,
so a reader never sees half a shard and a killed job leaves at most a temporary file, which the
next writer deletes. When an id appears in several shards (a ``--retry-errors`` run, or a
consolidation killed half-way), the row in the highest-numbered shard wins.

The files that read and write this format: ``_parquet`` (one Parquet file), ``_reader``
(``open_dataset``), ``_shard_writer`` (``ShardWriter``), ``_compact`` (compact and expand copies).

pyarrow is the optional extra ``label``: these modules import it when they first read or write,
through ``arrow()``, so that ``import perfsage`` (whose ``Predictor.fit`` opens datasets) and the
command line start without it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Sequence, Tuple

from .._core import FEATURE_SCHEMA_VERSION, PerfSageError
from .._io import __version__

if TYPE_CHECKING:
    import pyarrow as pa

FORMAT_NAME = "perfsage-dataset"
FORMAT_VERSION = 1
MANIFEST_NAME = "_perfsage_dataset.json"
LOCK_NAME = "_perfsage_dataset.lock"
ERROR_KINDS = ("build", "label", "timeout", "crash", "executor", "import")

SHARD_NAME = re.compile(r"^part-(\d{6,})\.parquet$")
TEMPORARY_SHARD_NAME = re.compile(r"^\.part-(\d{6,})\.parquet\.tmp$")  # _io.temporary_path of a shard
# Column name -> Arrow type (a pyarrow factory's name), before and after the label columns.
_LEADING = [
    ("id", "string"),
    ("space", "string"),
    ("name", "string"),
    ("spec", "string"),
    ("seed", "uint64"),
    ("dtype", "string"),
    ("tflite", "binary"),
]
_TRAILING = [("provenance", "string"), ("error_kind", "string"), ("error", "string")]
REQUIRED_COLUMNS = [name for name, _ in _LEADING + _TRAILING]
# Shards favour write speed; compact copies are written once and kept, so they favour size.
SHARD_ZSTD_LEVEL = 3
COMPACT_ZSTD_LEVEL = 19
# Size on disk that a job's small shards are merged up to when it completes.
CONSOLIDATED_SHARD_BYTES = 64 << 20

Targets = Dict[str, Dict[str, Any]]  # target -> {"metrics": {metric: unit}, "settings": {...}}


class DatasetError(PerfSageError):
    """A dataset file or directory that cannot be read or written as asked; the message names it.

    A :class:`perfsage.PerfSageError`, so a ``ValueError`` too: one base for all of perfsage's errors."""


def arrow() -> Tuple[Any, Any]:
    """``pyarrow`` and ``pyarrow.parquet``, imported on first use (the optional extra ``label``)."""
    import pyarrow  # optional extra 'label', see the module docstring
    import pyarrow.parquet

    return pyarrow, pyarrow.parquet


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


def node_column(target: str, metric: str) -> str:
    """The column of a per-operator label: ``"<target>/ops/<metric>"``."""
    return f"{target}/ops/{metric}"


def node_columns_of(targets: Mapping[str, Mapping[str, Any]]) -> Dict[str, str]:
    """``{"<target>/ops/<metric>": unit}`` of the targets' per-operator labels (``node_metrics``)."""
    columns: Dict[str, str] = {}
    for target, info in targets.items():
        for metric, unit in info.get("node_metrics", {}).items():
            if "/" in metric:
                raise DatasetError(f"per-operator metric name {metric!r} of target {target!r} must not contain '/'")
            columns[node_column(target, metric)] = str(unit)
    return columns


def make_schema(targets: Targets, compact: bool = False) -> pa.Schema:
    """The Arrow schema, with perfsage's metadata, of a dataset labelled on ``targets``."""
    pa, _ = arrow()
    units = label_columns_of(targets)
    fields = [pa.field(n, getattr(pa, t)()) for n, t in _LEADING]
    fields += [pa.field(column, pa.float64()) for column in units]
    # Per-operator values in float32: they are many, and a float32 keeps 7 digits of each.
    fields += [pa.field(column, pa.list_(pa.float32())) for column in node_columns_of(targets)]
    fields += [pa.field(n, getattr(pa, t)()) for n, t in _TRAILING]
    metadata = {
        "perfsage.format": FORMAT_NAME,
        "perfsage.format_version": str(FORMAT_VERSION),
        "perfsage.version": __version__,
        "perfsage.feature_schema_version": str(FEATURE_SCHEMA_VERSION),
        "perfsage.targets": json.dumps(targets, sort_keys=False),
        "perfsage.units": json.dumps(units),
        "perfsage.compact": "true" if compact else "false",
    }
    return pa.schema(fields, metadata=metadata)


def rows_to_table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Row dicts (column name -> value; absent keys are null) as a table of ``schema``."""
    pa, _ = arrow()
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as e:
            raise DatasetError(f"column {field.name!r}: cannot store the values given ({e})") from None
    return pa.Table.from_arrays(arrays, schema=schema)


def check_schema(path: Path, schema: pa.Schema) -> Tuple[Targets, Dict[str, str], Dict[str, str]]:
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
    expected = REQUIRED_COLUMNS + list(units) + list(node_columns_of(targets))
    missing = [c for c in expected if c not in schema.names and c != "tflite"]
    if missing:
        raise DatasetError(f"{path}: perfsage dataset without the column(s) {', '.join(missing)}")
    return targets, units, metadata


def read_manifest(path: Path) -> Dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: unreadable dataset manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME or "targets" not in manifest:
        raise DatasetError(f"{path}: not a perfsage dataset manifest")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise DatasetError(f"{path}: written in a newer perfsage dataset format ({manifest['format_version']})")
    return manifest
