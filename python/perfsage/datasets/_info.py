"""``perfsage dataset info``: what a dataset holds, as a dict (``--json``) or text."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from .._io import PathLike
from ._reader import open_dataset


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


# Rows whose graphs ``dataset_info(op_types=True)`` holds at once.
_OPS_CHUNK = 5000


def dataset_info(path: PathLike, op_types: bool = False, threads: int = 0) -> Dict[str, Any]:
    """Rows, spaces, dtypes, targets and metrics with units and label ranges, errors by kind; with
    ``op_types``, how many labelled models hold each TFLite operator type (reads every model)."""
    dataset = open_dataset(path)
    meta = dataset.metadata
    ok = dataset.ok
    kinds = dataset.error_kinds
    errors = collections.Counter(k for k in kinds if k is not None)
    examples: Dict[str, str] = {}
    for kind, message in zip(kinds, dataset.errors):
        if kind is not None and kind not in examples:
            examples[kind] = (message or "")[:300]
    targets: Dict[str, Any] = {}
    for target, info in dataset.targets.items():
        settings = info.get("settings", {})
        metrics: Dict[str, Any] = {}
        columns = [f"{target}/{m}" for m in info["metrics"]]
        values = dataset.labels(columns) if columns else np.empty((dataset.num_rows, 0))
        for j, (metric, unit) in enumerate(info["metrics"].items()):
            column = values[:, j]
            finite = column[np.isfinite(column)]
            metrics[metric] = {
                "column": columns[j],
                "unit": unit,
                "values": int(finite.size),
                "min": float(finite.min()) if finite.size else None,
                "median": float(np.median(finite)) if finite.size else None,
                "max": float(finite.max()) if finite.size else None,
            }
        targets[target] = {
            "source": settings.get("tool") or settings.get("source"),
            "source_version": settings.get("tool_version"),
            "metrics": metrics,
        }
        node_metrics = info.get("node_metrics", {})
        if node_metrics:
            per_row = dataset.node_labels(target, next(iter(node_metrics)))
            labelled = [v for v in per_row if v is not None]
            targets[target]["per_operator"] = {
                "metrics": dict(node_metrics),
                "rows": len(labelled),
                "operators": int(sum(v.size for v in labelled)),
            }
    resolved = Path(path)
    ops: Dict[str, int] = {}
    if op_types:
        counts: collections.Counter = collections.Counter()
        rows = np.flatnonzero(ok)
        for start in range(0, len(rows), _OPS_CHUNK):  # a chunk's graphs at a time: bounded memory
            for graph in dataset.select(rows[start:start + _OPS_CHUNK]).graphs(threads=threads):
                if graph is not None:
                    counts.update(set(graph.op_names))
        ops = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return {
        "path": str(resolved),
        "layout": "directory of shards" if resolved.is_dir() else "single file",
        "files": len(dataset._files.files),
        "bytes": _size(resolved),
        "format": meta.get("perfsage.format"),
        "format_version": int(meta.get("perfsage.format_version", 0)),
        "written_by": meta.get("perfsage.version"),
        "feature_schema_version": meta.get("perfsage.feature_schema_version"),
        "compact": dataset.compact,
        "rows": dataset.num_rows,
        "rows_ok": int(ok.sum()),
        "spaces": dict(sorted(collections.Counter(dataset.spaces.tolist()).items())),
        "dtypes": dict(sorted(collections.Counter(dataset.dtypes.tolist()).items())),
        "errors": dict(sorted(errors.items())),
        "error_examples": examples,
        "targets": targets,
        **({"op_types": ops} if op_types else {}),
    }


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return f"{value:.4g}"
    return f"{value:.3e}"


def _bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def format_info(info: Dict[str, Any]) -> str:
    """The text ``perfsage dataset info`` prints."""
    lines: List[str] = []
    compact = ", compact (TFLite rebuilt from specs)" if info["compact"] else ""
    lines.append(
        f"{info['path']}: perfsage dataset format {info['format_version']} ({info['layout']}, "
        f"{info['files']} file{'s' if info['files'] != 1 else ''}, {_bytes(info['bytes'])}{compact}), "
        f"written by perfsage {info['written_by']}, feature schema {info['feature_schema_version']}"
    )
    bad = info["rows"] - info["rows_ok"]
    lines.append(f"rows: {info['rows']} ({info['rows_ok']} labelled, {bad} with errors)")
    lines.append("spaces: " + (", ".join(f"{k} {v}" for k, v in info["spaces"].items()) or "none"))
    lines.append("dtypes: " + (", ".join(f"{k} {v}" for k, v in info["dtypes"].items()) or "none"))
    if info["errors"]:
        lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in info["errors"].items()))
        for kind, message in info["error_examples"].items():
            lines.append(f"  {kind}, e.g.: {message.splitlines()[0] if message else ''}")
    else:
        lines.append("errors: none")
    lines.append("targets:")
    for target, t in info["targets"].items():
        source = " ".join(str(s) for s in (t["source"], t["source_version"]) if s)
        lines.append(f"  {target}" + (f" ({source})" if source else ""))
        width = max((len(m) + len(v["unit"]) + 3 for m, v in t["metrics"].items()), default=0)
        for metric, v in t["metrics"].items():
            label = f"{metric} [{v['unit']}]".ljust(width)
            lines.append(
                f"    {label}  {v['values']:>6} values  min {_number(v['min']):>10}  "
                f"median {_number(v['median']):>10}  max {_number(v['max']):>10}"
            )
        if "per_operator" in t:
            ops = t["per_operator"]
            lines.append(f"    per-operator labels: {ops['rows']} of {info['rows_ok']} labelled rows, "
                         f"{ops['operators']} operators ({', '.join(ops['metrics'])})")
    if "op_types" in info:
        lines.append("labelled models per operator type: " +
                     (", ".join(f"{op} {n}" for op, n in info["op_types"].items()) or "none"))
    return "\n".join(lines)
