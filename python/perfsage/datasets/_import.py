"""Importing measurements made elsewhere: NAS-Bench-201 device latencies, or any CSV.

Imports write one Parquet file (atomically): they are deterministic and take a minute or two at
most, so there is nothing to resume.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

from tqdm import tqdm

from .._graphs import load_tflite
from .._io import PathLike, __version__, utc_timestamp
from .._writer import DTYPES, build_model, strip_weights
from ..spaces import nb201_spec
from ._ids import canonical_spec, content_id, model_id, spec_id
from ._parquet import write_parquet_atomic
from ._schema import SHARD_ZSTD_LEVEL, DatasetError, Targets, make_schema, rows_to_table

# shared/data/nasbench201/SOURCE.md: CSV column -> (target, what measured it).
NB201_DEVICES: Dict[str, Tuple[str, str]] = {
    "raspi4_ms": ("nb201-raspi4", "Raspberry Pi 4 (Cortex-A72 CPU), batch 1; measured by HW-NAS-Bench (ICLR'21)"),
    "pixel3_ms": ("nb201-pixel3", "Google Pixel 3 (mobile CPU, TFLite), batch 1; measured by HW-NAS-Bench"),
    "gold_6226_ms": ("nb201-gold_6226", "Intel Xeon Gold 6226 CPU, batch 1; measured by HELP (NeurIPS'21)"),
    "titan_rtx_1_ms": ("nb201-titan_rtx_1", "NVIDIA Titan RTX GPU, batch 1; measured by HELP"),
}
NB201_COLUMNS = ["arch_idx", "arch_str", *NB201_DEVICES]


def default_nb201_csv() -> Path:
    """``$PERFSAGE_DATA/nasbench201/latency.csv``, else ``../shared/data/...`` next to the repository."""
    data = os.environ.get("PERFSAGE_DATA")
    if data:
        return Path(data) / "nasbench201" / "latency.csv"
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared" / "data" / "nasbench201" / "latency.csv"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_csv(path: Path, required: Sequence[str]) -> List[Dict[str, str]]:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DatasetError(f"{path}: no column(s) {', '.join(missing)} (it has {', '.join(header) or 'none'})")
            return list(reader)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read it ({e.strerror or e})") from None
    except csv.Error as e:
        raise DatasetError(f"{path}: not a readable CSV ({e})") from None


def _number(path: Path, line: int, column: str, text: Optional[str]) -> Optional[float]:
    """A metric cell: empty means not measured (null); anything else must be a finite number."""
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{path}, line {line}, column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DatasetError(f"{path}, line {line}, column {column!r}: {text!r} is not a finite number")
    return value


def _parallel(function: Callable[[int], Any], count: int, threads: int, bar: Any) -> List[Any]:
    """function(0..count-1) on threads, in order; closes the progress bar however it ends."""
    # The writer and strip_weights release the GIL, so threads build models in parallel.
    try:
        with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
            return list(pool.map(function, range(count), chunksize=16))
    finally:
        bar.close()


def _progress(total: int, description: str, enabled: bool, log: TextIO):
    return tqdm(total=total, desc=description, unit="model", file=log, disable=not enabled or not log.isatty())


def _write(rows: List[Dict[str, Any]], targets: Targets, out: PathLike, tflite: bool) -> Path:
    out = Path(out)
    if out.is_dir():
        raise DatasetError(f"{out}: is a directory; an import writes one Parquet file")
    seen: Dict[str, int] = {}
    for index, row in enumerate(rows):
        if row["id"] in seen:
            raise DatasetError(
                f"rows {seen[row['id']]} and {index} describe the same model (id {row['id']}); "
                "a dataset holds one row per model"
            )
        seen[row["id"]] = index
    schema = make_schema(targets, compact=not tflite)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A fast level: zstd 19 is slow on a whole import's specs; `perfsage dataset compact` is there
    # for the smallest file.
    write_parquet_atomic(rows_to_table(rows, schema), out, SHARD_ZSTD_LEVEL)
    return out


def import_nb201(
    out: PathLike,
    csv_path: Optional[PathLike] = None,
    *,
    tflite: bool = True,
    limit: Optional[int] = None,
    threads: int = 0,
    progress: bool = True,
    log: Optional[TextIO] = None,
    executed: bool = True,
) -> Path:
    """Imports NAS-Bench-201 latencies measured on four devices as targets ``nb201-raspi4``,
    ``nb201-pixel3``, ``nb201-gold_6226`` and ``nb201-titan_rtx_1`` (metric ``latency_ms``, ms).

    Graphs are perfsage's own NAS-Bench-201 networks (``perfsage.nb201_model``) in **float32**:
    the devices ran the float network on their usual runtimes (SOURCE.md of the data), so an int8
    graph would describe a model other than the one measured. They are the networks as
    NAS-Bench-201's PyTorch code runs them, every edge computed (``executed``; see
    ``perfsage.spaces.nb201``), unless ``executed=False``, which prunes dead edges as TensorFlow's
    converter would. The seed is 0: weights do not change
    the graph, and one fixed seed keeps ids and rebuilds reproducible.

    The 341 cells with no path from input to output have no network to build; they become rows
    with ``error_kind="build"`` that keep their (near-zero) measurements. ``tflite=False`` writes
    a compact file (graphs rebuilt from the specs on demand); ``limit`` imports the first rows only.
    """
    log = log if log is not None else sys.stderr
    path = Path(csv_path) if csv_path is not None else default_nb201_csv()
    if csv_path is None and not path.is_file():
        raise DatasetError(
            f"no NAS-Bench-201 latency table at {path}: pass its CSV with --csv FILE (Python: csv_path=), "
            f"with columns {', '.join(NB201_COLUMNS)}, or set PERFSAGE_DATA to the folder holding "
            "nasbench201/latency.csv (perfsage does not ship the measurements)")
    records = _read_csv(path, NB201_COLUMNS)
    if limit is not None:
        records = records[:limit]
    csv_sha = _sha256_file(path)
    targets: Targets = {
        target: {
            "metrics": {"latency_ms": "ms"},
            "settings": {
                "source": "imported",
                "device": device,
                "csv": path.name,
                "csv_column": column,
                "csv_sha256": csv_sha,
                "network": "NAS-Bench-201 CIFAR-10 skeleton (perfsage.nb201_model), float32, batch 1, "
                           + ("every edge executed" if executed else "dead edges pruned"),
            },
        }
        for column, (target, device) in NB201_DEVICES.items()
    }
    host, when = socket.gethostname(), utc_timestamp("milliseconds", zulu=True)
    bar = _progress(len(records), "importing NAS-Bench-201", progress, log)

    def make(index: int) -> Dict[str, Any]:
        record = records[index]
        line = index + 2  # the header is line 1
        arch = record["arch_str"]
        values = {
            f"{target}/latency_ms": _number(path, line, column, record[column])
            for column, (target, _) in NB201_DEVICES.items()
        }
        provenance = {
            "perfsage": __version__,
            "host": host,
            "imported_at": when,
            "source": f"{path.name}, line {line}",
            "arch_idx": record["arch_idx"],
        }
        row: Dict[str, Any] = {"space": "nb201", "name": arch, "dtype": "float32", **values}
        try:
            spec = canonical_spec(nb201_spec(arch, executed))
        except ValueError as e:
            row.update(
                id=content_id({"dtype": "float32", "nb201_arch": arch, "seed": 0}),
                error_kind="build",
                error=f"no NAS-Bench-201 network: {e}",
            )
        else:
            row.update(id=spec_id(spec, 0, "float32"), spec=spec, seed=0)
            if tflite:
                row["tflite"] = strip_weights(build_model(spec, seed=0, dtype="float32"))
        row["provenance"] = json.dumps(provenance, separators=(",", ":"))
        bar.update(1)
        return row

    return _write(_parallel(make, len(records), threads, bar), targets, out, tflite)


def parse_metric(text: str) -> Tuple[str, str]:
    """``"latency_ms=ms"`` -> ``("latency_ms", "ms")``: a CSV column and its unit."""
    column, sep, unit = text.partition("=")
    if not sep or not column.strip() or not unit.strip():
        raise ValueError(f"--metric {text!r}: expected COLUMN=UNIT, e.g. latency_ms=ms")
    return column.strip(), unit.strip()


def _input_dtype(graph: Any) -> str:
    # What the model computes in: the type of its first input tensor (int8 for full-integer
    # models, float32 for float ones).
    tensors = graph.tensors(0)
    inputs = [t for t in tensors if not t["is_constant"]]
    return str(inputs[0]["dtype"]) if inputs else "unknown"


def import_csv(
    csv_path: PathLike,
    target: str,
    metrics: Mapping[str, str],
    out: PathLike,
    *,
    model_column: Optional[str] = None,
    spec_column: Optional[str] = None,
    seed_column: Optional[str] = None,
    dtype: Optional[str] = None,
    dtype_column: Optional[str] = None,
    space: str = "imported",
    space_column: Optional[str] = None,
    name_column: Optional[str] = None,
    description: Optional[str] = None,
    tflite: bool = True,
    threads: int = 0,
    progress: bool = True,
    log: Optional[TextIO] = None,
) -> Path:
    """Imports measurements from your own device: one CSV row per model, metric columns in units.

    Each row names its model either by a ``.tflite`` file (``model_column``; relative paths are
    relative to the CSV's folder) or by a spec (``spec_column``: spec JSON, with the writer's seed
    from ``seed_column``, default 0, and ``dtype``/``dtype_column``, default int8). ``metrics``
    maps CSV columns to units (``{"latency_ms": "ms"}``); columns are named ``"<target>/<column>"``.
    An empty cell is a missing value. A missing or unreadable model file, a malformed spec or a
    non-numeric value raises :class:`DatasetError` naming the line and column; a spec the writer
    refuses becomes a row with ``error_kind="build"``.
    """
    log = log if log is not None else sys.stderr
    if (model_column is None) == (spec_column is None):
        raise ValueError("give exactly one of model_column (model files) or spec_column (spec JSON)")
    if not metrics:
        raise ValueError("give at least one metric column (e.g. latency_ms=ms)")
    if "/" in target or not target:
        raise ValueError(f"target name {target!r} must be non-empty and without '/'")
    if dtype is not None and dtype_column is not None:
        raise ValueError("give dtype or dtype_column, not both")
    path = Path(csv_path)
    required = [c for c in (model_column, spec_column, seed_column, dtype_column, space_column, name_column) if c]
    records = _read_csv(path, required + list(metrics))
    targets: Targets = {
        target: {
            "metrics": dict(metrics),
            "settings": {
                "source": "imported",
                "csv": path.name,
                "csv_sha256": _sha256_file(path),
                **({"description": description} if description else {}),
            },
        }
    }
    host, when = socket.gethostname(), utc_timestamp("milliseconds", zulu=True)
    bar = _progress(len(records), f"importing {path.name}", progress, log)

    def make(index: int) -> Dict[str, Any]:
        record = records[index]
        line = index + 2
        row: Dict[str, Any] = {
            "space": record[space_column] if space_column else space,
            **{f"{target}/{column}": _number(path, line, column, record[column]) for column in metrics},
        }
        if model_column is not None:
            text = (record[model_column] or "").strip()
            if not text:
                raise DatasetError(f"{path}, line {line}, column {model_column!r}: empty model path")
            file = Path(text) if Path(text).is_absolute() else path.parent / text
            try:
                model = file.read_bytes()
            except OSError as e:
                raise DatasetError(f"{path}, line {line}: cannot read model {file} ({e.strerror or e})") from None
            try:
                graph = load_tflite(str(file))
            except ValueError as e:  # the message names the file and what is wrong with it
                raise DatasetError(f"{path}, line {line}: {e}") from None
            row.update(
                id=model_id(model),
                name=record[name_column] if name_column else file.name,
                dtype=record[dtype_column] if dtype_column else (dtype or _input_dtype(graph)),
                # Kept even in a compact import: no spec can rebuild a model file's graph.
                tflite=strip_weights(model),
            )
        else:
            try:
                spec = canonical_spec(record[spec_column] or "")
            except ValueError as e:
                raise DatasetError(f"{path}, line {line}, column {spec_column!r}: {e}") from None
            seed_text = record[seed_column].strip() if seed_column else "0"
            try:
                seed = int(seed_text)
                if not 0 <= seed < 2**64:
                    raise ValueError
            except ValueError:
                raise DatasetError(
                    f"{path}, line {line}, column {seed_column!r}: {seed_text!r} is not a seed in [0, 2**64)"
                ) from None
            model_dtype = record[dtype_column].strip() if dtype_column else (dtype or "int8")
            if model_dtype not in DTYPES:
                where = f"column {dtype_column!r}" if dtype_column else "dtype"
                raise DatasetError(f"{path}, line {line}, {where}: {model_dtype!r} is not one of {', '.join(DTYPES)}")
            row.update(
                id=spec_id(spec, seed, model_dtype),
                name=record[name_column] if name_column else json.loads(spec).get("name"),
                spec=spec,
                seed=seed,
                dtype=model_dtype,
            )
            try:
                built = build_model(spec, seed=seed, dtype=model_dtype)
                if tflite:
                    row["tflite"] = strip_weights(built)
            except ValueError as e:
                row.update(error_kind="build", error=f"cannot build the model: {e}")
        row["provenance"] = json.dumps(
            {"perfsage": __version__, "host": host, "imported_at": when, "source": f"{path.name}, line {line}"},
            separators=(",", ":"),
        )
        bar.update(1)
        return row

    return _write(_parallel(make, len(records), threads, bar), targets, out, tflite)

