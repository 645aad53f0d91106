"""Labelling model files: ``.tflite`` files that no search space produced, e.g. real models.

::

    from perfsage.datasets import label_files
    label_files("real.parquet", ["models/", "kws.tflite"], ["ethos-u55-256", "ethos-u65-512"])

The same job as :func:`perfsage.datasets.build_dataset` (the same killable workers, shards,
progress and resuming) with the models read from files instead of built from specs. A row's id is
the content id of the file's bytes (``model_id``), so running the job again labels only the files
whose bytes the dataset does not hold yet, and a renamed file is not labelled twice. Its ``name``
is the file's stem; ``spec`` and ``seed`` are null; the ``tflite`` column holds the weight-free
copy, as for generated models; ``dtype`` is the type of the model's input. A file that is not a
valid TFLite model becomes a row with ``error_kind="import"`` saying why, and the job goes on; a
file that cannot be read at all stops the job before it starts, naming the file.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple, Union

from .._core import load_bytes
from .._io import PathLike
from ._build import BuildSummary, make_labelers, run_job
from ._ids import model_id
from ._import import _input_dtype
from ._runner import error_result
from ._schema import DatasetError

# Targets whose labeller compiles for an Ethos-U NPU: Vela runs float operators on the CPU and
# its latency then counts the NPU part only.
_NPU_PREFIX = "ethos-u"


def collect_model_files(paths: Sequence[PathLike]) -> List[Path]:
    """The ``.tflite`` files named by ``paths``: files as given, directories by their
    ``*.tflite`` files (not recursively), sorted by name; each file once.

    Raises :class:`DatasetError` naming a path that does not exist or a directory without models.
    """
    if not paths:
        raise ValueError("name at least one .tflite file or directory")
    files: List[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.glob("*.tflite") if p.is_file())
            if not found:
                raise DatasetError(f"{path}: a directory without .tflite files")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise DatasetError(f"{path}: no such file or directory")
    unique: Dict[Path, Path] = {}
    for file in files:
        unique.setdefault(file.resolve(), file)
    return list(unique.values())


def _float_tensors(graph: Any) -> int:
    """How many tensors of ``graph`` hold floats: 0 for a full-integer model."""
    return sum(
        str(t["dtype"]).startswith(("float", "bfloat"))
        for s in range(graph.num_subgraphs)
        for t in graph.tensors(s)
    )


def _inspect(file: Path, model: bytes) -> Tuple[Optional[str], int, Optional[str]]:
    """(input dtype, float tensors, error): what the job needs to know of one model file."""
    try:
        graph = load_bytes(model, str(file))
    except ValueError as e:  # PerfSageError naming the file: truncated, corrupt or not TFLite
        return None, 0, f"not a valid TFLite model: {e}"
    return _input_dtype(graph), _float_tensors(graph), None


def file_items(files: Sequence[Path], space: str, log: TextIO) -> List[Dict[str, Any]]:
    """One job item per distinct model among ``files``: valid models become tasks carrying their
    bytes; files that are not valid TFLite become finished ``import`` error rows.

    Raises :class:`DatasetError` for a file that cannot be read at all (no bytes to name it by).
    """
    items: List[Dict[str, Any]] = []
    first_of: Dict[str, Path] = {}
    for file in files:
        try:
            model = file.read_bytes()
        except OSError as e:
            raise DatasetError(f"{file}: cannot read the file ({e.strerror or e})") from None
        row_id = model_id(model)
        if row_id in first_of:
            print(f"note: {file} has the same bytes as {first_of[row_id]}; labelled once, as "
                  f"{first_of[row_id].stem}", file=log)
            continue
        first_of[row_id] = file
        dtype, floats, error = _inspect(file, model)
        item: Dict[str, Any] = {
            "id": row_id,
            "space": space,
            "name": file.stem,
            "dtype": dtype or "unknown",
            "float_tensors": floats,
            "provenance": {"file": str(file), "file_sha256": hashlib.sha256(model).hexdigest()},
        }
        if error is not None:
            item["result"] = error_result(row_id, "import", error)
        else:
            item["task"] = {"id": row_id, "tflite": model, "dtype": item["dtype"]}
        items.append(item)
    return items


def _warn_float_on_npu(items: Sequence[Mapping[str, Any]], targets: Sequence[str], log: TextIO) -> None:
    npu = [t for t in targets if t.startswith(_NPU_PREFIX)]
    floats = [item["name"] for item in items if "task" in item and item["float_tensors"]]
    if npu and floats:
        shown = ", ".join(floats[:8]) + (f" and {len(floats) - 8} more" if len(floats) > 8 else "")
        print(
            f"note: {len(floats)} model(s) have float tensors ({shown}); Vela ({', '.join(npu)}) runs float "
            "operators on the CPU and its latency counts only the NPU part (see the cpu_ops column)",
            file=log,
        )


def label_files(
    out: PathLike,
    paths: Union[PathLike, Sequence[PathLike]],
    targets: Union[str, Any, Sequence[Any]],
    *,
    space: str = "real",
    workers: int = 0,
    timeout: float = 600.0,
    retry_errors: bool = False,
    flush_rows: int = 200,
    flush_seconds: float = 5.0,
    labeler_options: Optional[Mapping[str, Mapping[str, Any]]] = None,
    progress: bool = True,
    log: Optional[TextIO] = None,
) -> BuildSummary:
    """Labels the ``.tflite`` files (or directories of them) in ``paths`` on ``targets`` into the
    dataset directory ``out``, rows in space ``space``.

    ``targets``, ``labeler_options``, ``workers``, ``timeout`` and ``retry_errors`` work as in
    :func:`perfsage.datasets.build_dataset`; models are labelled with their weights as the files
    hold them. Resumes: files whose bytes ``out`` already holds are skipped. Raises
    :class:`DatasetError` for a path that does not exist or a file that cannot be read; a file
    that is not a valid TFLite model becomes an error row.
    """
    log = log if log is not None else sys.stderr
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    targets = list(targets) if isinstance(targets, (list, tuple)) else [targets]
    if not space or "/" in space:
        raise ValueError(f"space name {space!r} must be non-empty and without '/'")
    files = collect_model_files(paths)
    labelers = make_labelers(targets, labeler_options)
    items = file_items(files, space, log)
    _warn_float_on_npu(items, [l.target for l in labelers], log)
    return run_job(
        out,
        items,
        labelers,
        f"({len(files)} files, space {space})",
        workers=workers,
        timeout=timeout,
        retry_errors=retry_errors,
        flush_rows=flush_rows,
        flush_seconds=flush_seconds,
        progress=progress,
        log=log,
    )
