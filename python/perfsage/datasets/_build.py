"""Labelling jobs: sample search spaces, label every model on some targets, store the rows.

A job is resumable by construction: the plan (which models) is a pure function of the spaces,
``n``, seed and dtype; every planned model has a content id before anything is built; and the job
skips the ids the dataset already holds. Rows are flushed as atomically renamed shards every
``flush_rows`` rows or ``flush_seconds`` seconds, so killing the job loses at most the rows since
the last flush, and running it again labels exactly the models still missing.
"""

from __future__ import annotations

import itertools
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, TextIO, Union

from tqdm import tqdm

from .._io import PathLike, __version__
from .._writer import DTYPES
from ..labelers import get_labeler
from ..spaces import sample
from ._ids import canonical_spec, spec_id
from ._runner import Result, default_workers, run_dask, run_local
from ._schema import Targets
from ._shard_writer import ShardWriter


@dataclass
class BuildSummary:
    """What a labelling job did."""

    path: Path
    planned: int
    already_stored: int
    labelled: int = 0
    errors: Dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    shards_written: int = 0

    @property
    def complete(self) -> bool:
        return self.already_stored + self.labelled >= self.planned


def plan(spaces: Sequence[str], n: int, seed: int = 0, dtype: str = "int8",
         weights: str = "uniform", float_sections: str = "none", affine: str = "none",
         stems: str = "none", flat_inputs: str = "none") -> List[Dict[str, Any]]:
    """The models a job labels: ``sample(space, n, seed, dtype, weights, float_sections, affine,
    stems, flat_inputs)`` of each space, interleaved.

    Interleaving (one model of each space in turn) means a job stopped early still holds every
    space in equal measure. Each item has its content id and its spec as canonical JSON.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    per_space = [sample(space, n, seed, dtype, weights, float_sections, affine, stems, flat_inputs)
                 for space in spaces]
    items: List[Dict[str, Any]] = []
    seen = set()
    for i in range(n):
        for samples in per_space:
            item = samples[i]
            spec = canonical_spec(item["spec"])
            row_id = spec_id(spec, item["seed"], dtype)
            if row_id in seen:  # the same space named twice
                continue
            seen.add(row_id)
            items.append(
                {
                    "id": row_id,
                    "space": item["space"],
                    "name": item["spec"].get("name"),
                    "spec": spec,
                    "seed": int(item["seed"]),
                    "dtype": dtype,
                }
            )
    return items


def make_labelers(targets: Sequence[Any], options: Optional[Mapping[str, Mapping[str, Any]]] = None) -> List[Any]:
    """A labeller per target: names go to ``get_labeler(name, **options[name])`` (``options["*"]``
    applies to all); objects with ``target``, ``metrics``, ``settings()`` and ``label()`` (your own
    :class:`perfsage.labelers.Labeler` subclasses) are used as they are."""
    if not targets:
        raise ValueError("name at least one target to label on")
    options = options or {}
    names = [t for t in targets if isinstance(t, str)]
    unknown = set(options) - set(names) - {"*"}
    if unknown:
        raise ValueError(f"labeller options for target(s) not labelled: {', '.join(sorted(unknown))}")
    labelers = []
    for target in targets:
        if isinstance(target, str):
            labelers.append(get_labeler(target, **{**options.get("*", {}), **options.get(target, {})}))
        elif all(hasattr(target, a) for a in ("target", "metrics", "settings", "label")):
            labelers.append(target)
        else:
            raise TypeError(f"a target must be a labeller name or a Labeler, got {type(target).__name__}")
    seen = [l.target for l in labelers]
    if len(set(seen)) != len(seen):
        raise ValueError(f"a target is named twice: {', '.join(seen)}")
    return labelers


def targets_of(labelers: Sequence[Any]) -> Targets:
    targets: Targets = {}
    for l in labelers:
        targets[l.target] = {"metrics": dict(l.metrics), "settings": l.settings()}
        if getattr(l, "node_metrics", None):
            targets[l.target]["node_metrics"] = dict(l.node_metrics)
    return targets


def _row(item: Mapping[str, Any], result: Result, settings: Mapping[str, Any], executor: str) -> Dict[str, Any]:
    provenance = {
        "perfsage": __version__,
        "host": result.get("host"),
        "labelled_at": result.get("finished"),
        "seconds": result.get("seconds", {}),
        "executor": executor,
        # As the worker saw them where it labelled; the job's own for rows no worker finished.
        "labelers": result.get("settings") or settings,
        **item.get("provenance", {}),
    }
    if result.get("dask_worker"):
        provenance["dask_worker"] = result["dask_worker"]
    return {
        "id": item["id"],
        "space": item["space"],
        "name": item.get("name"),
        "spec": item.get("spec"),
        "seed": item.get("seed"),
        "dtype": item["dtype"],
        "tflite": result.get("tflite"),
        **result.get("values", {}),
        "provenance": json.dumps(provenance, separators=(",", ":")),
        "error_kind": result.get("error_kind"),
        "error": result.get("error"),
    }


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class _Progress:
    """A tqdm bar (with ETA) on a terminal; plain status lines every minute in a log file."""

    def __init__(self, total: int, description: str, enabled: bool, log: TextIO) -> None:
        self.total, self.done, self.errors = total, 0, 0
        self.log = log
        self.start = time.monotonic()
        self.last_line = self.start
        self.estimated = False
        self.bar = None
        if enabled and hasattr(log, "isatty") and log.isatty():
            self.bar = tqdm(total=total, desc=description, unit="model", file=log, dynamic_ncols=True)

    def update(self, result: Optional[Result]) -> None:
        now = time.monotonic()
        if result is not None:
            self.done += 1
            self.errors += result.get("error_kind") is not None
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(errors=self.errors, refresh=False)
        elapsed = now - self.start
        # One explicit estimate once the first rows give a rate (the bar's ETA keeps moving).
        if not self.estimated and self.done and (self.done >= 20 or elapsed >= 60) and self.done < self.total:
            self.estimated = True
            rate = self.done / elapsed
            self._print(
                f"estimate: {self.total} models at {rate:.2f} models/s (first {self.done}) take about "
                f"{_duration(self.total / rate)}; about {_duration((self.total - self.done) / rate)} to go"
            )
        if self.bar is None and now - self.last_line >= 60 and self.done:
            self.last_line = now
            rate = self.done / elapsed
            self._print(
                f"{self.done}/{self.total} labelled, {self.errors} errors, {rate:.2f} models/s, "
                f"about {_duration((self.total - self.done) / rate)} to go"
            )

    def _print(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.log)
        else:
            print(line, file=self.log, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _results(
    executor: str,
    tasks: List[Dict[str, Any]],
    labelers: Sequence[Any],
    workers: int,
    timeout: float,
    scheduler: Optional[str],
    chunk_size: int,
) -> Iterator[Optional[Result]]:
    if executor == "local":
        return run_local(tasks, labelers, workers=workers, timeout=timeout)
    return run_dask(tasks, labelers, scheduler, timeout=timeout, chunk_size=chunk_size)


def build_dataset(
    out: PathLike,
    spaces: Union[str, Sequence[str]],
    n: int,
    targets: Union[str, Any, Sequence[Any]],
    *,
    seed: int = 0,
    dtype: str = "int8",
    weights: str = "uniform",
    float_sections: str = "none",
    affine: str = "none",
    stems: str = "none",
    flat_inputs: str = "none",
    workers: int = 0,
    timeout: float = 600.0,
    executor: str = "local",
    scheduler: Optional[Any] = None,
    chunk_size: int = 16,
    retry_errors: bool = False,
    flush_rows: int = 200,
    flush_seconds: float = 5.0,
    labeler_options: Optional[Mapping[str, Mapping[str, Any]]] = None,
    progress: bool = True,
    log: Optional[TextIO] = None,
) -> BuildSummary:
    """Labels ``n`` models of each of ``spaces`` on ``targets`` into the dataset directory ``out``.

    ``targets`` are labeller names (``"ethos-u55-256"``; ``labeler_options`` go to their
    constructors) or Labeler objects. ``weights`` is how the models' weight values are drawn
    (:func:`perfsage.spaces.sample`): ``"uniform"`` or ``"mixed"``; ``float_sections`` is
    ``"none"`` or ``"mixed"`` (two thirds of the models with runs of layers left in float32), and
    so is ``affine`` (two thirds with input normalisation or unfolded batch norms) and ``stems``
    (half of the convolutions of one-channel inputs as depthwise convolutions with a multiplier),
    and ``flat_inputs`` (half of the models with inputs of rank 3 or more flat, reshaped after).

    Resumes: ids already in ``out`` are skipped (rows with errors too, unless ``retry_errors``).
    ``workers=0`` uses every core; ``timeout`` (seconds) bounds one model's build and labels.
    ``executor="dask"`` sends the work to the Dask scheduler at ``scheduler`` in chunks of
    ``chunk_size`` models. Returns what was done; raises :class:`DatasetError` when ``out`` holds
    a dataset labelled on other targets or with other labeller settings.
    """
    spaces = [spaces] if isinstance(spaces, str) else list(spaces)
    targets = list(targets) if isinstance(targets, (list, tuple)) else [targets]
    if not spaces:
        raise ValueError("name at least one search space")
    check_job_options(executor, scheduler, timeout, flush_rows, flush_seconds)
    labelers = make_labelers(targets, labeler_options)
    return run_job(
        out,
        plan(spaces, n, seed, dtype, weights, float_sections, affine, stems, flat_inputs),
        labelers,
        f"({', '.join(spaces)}; n={n} each, seed {seed}, {dtype}"
        f"{'' if weights == 'uniform' else f', {weights} weights'}"
        f"{', float sections' if float_sections == 'mixed' else ''}{', affine layers' if affine == 'mixed' else ''}"
        f"{', depthwise stems' if stems == 'mixed' else ''}{', flat inputs' if flat_inputs == 'mixed' else ''})",
        workers=workers,
        timeout=timeout,
        executor=executor,
        scheduler=scheduler,
        chunk_size=chunk_size,
        retry_errors=retry_errors,
        flush_rows=flush_rows,
        flush_seconds=flush_seconds,
        progress=progress,
        log=log,
    )


def check_job_options(
    executor: str, scheduler: Optional[Any], timeout: float, flush_rows: int, flush_seconds: float
) -> None:
    """Refuses job options that cannot work, before any dataset directory is touched."""
    if flush_rows < 1 or flush_seconds <= 0:
        raise ValueError("flush_rows must be >= 1 and flush_seconds > 0")
    if executor not in ("local", "dask"):
        raise ValueError(f"executor must be 'local' or 'dask', got {executor!r}")
    if executor == "dask" and not scheduler:
        raise ValueError("the dask executor needs a scheduler address (--scheduler tcp://HOST:8786)")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")


def _task(item: Mapping[str, Any]) -> Dict[str, Any]:
    """What a worker receives for ``item``: its ``task`` (e.g. a model file's bytes), else the
    spec, seed and dtype to build the model from."""
    return dict(item["task"]) if "task" in item else {k: item[k] for k in ("id", "spec", "seed", "dtype")}


def run_job(
    out: PathLike,
    items: Sequence[Dict[str, Any]],
    labelers: Sequence[Any],
    planned: str,
    *,
    workers: int = 0,
    timeout: float = 600.0,
    executor: str = "local",
    scheduler: Optional[Any] = None,
    chunk_size: int = 16,
    retry_errors: bool = False,
    flush_rows: int = 200,
    flush_seconds: float = 5.0,
    progress: bool = True,
    log: Optional[TextIO] = None,
) -> BuildSummary:
    """Labels the ``items`` that ``out`` does not hold yet on ``labelers``; the resumable job
    behind :func:`build_dataset` and :func:`perfsage.datasets.label_files`.

    Each item has the row's ``id``, ``space``, ``name``, ``dtype`` (and ``spec``/``seed`` when a
    spec describes it); optionally ``task`` (what a worker receives instead of the spec),
    ``provenance`` (extra keys for the row's provenance) or ``result`` (a finished result, e.g. an
    error found before labelling, stored without a worker). ``planned`` describes the plan in the
    first log line.
    """
    log = log if log is not None else sys.stderr
    check_job_options(executor, scheduler, timeout, flush_rows, flush_seconds)
    target_info = targets_of(labelers)
    names = list(target_info)
    settings = {t: info["settings"] for t, info in target_info.items()}
    started = time.monotonic()
    with ShardWriter(out, target_info) as writer:
        stored = writer.existing()
        todo = [
            item
            for item in items
            if item["id"] not in stored or (retry_errors and stored[item["id"]] is not None)
        ]
        summary = BuildSummary(writer.path, planned=len(items), already_stored=len(items) - len(todo))
        retried = sum(1 for item in todo if item["id"] in stored)
        size = 0 if executor == "dask" else min(workers or default_workers(), len(todo))
        how = (
            f"on {size} worker process{'es' if size != 1 else ''}"
            if executor == "local"
            else f"on the Dask cluster at {scheduler}"
        )
        print(
            f"{writer.path}: {len(items)} models planned {planned}; "
            f"{summary.already_stored} already stored; labelling {len(todo)}"
            + (f" ({retried} retried after errors)" if retried else "")
            + f" on {', '.join(names)} {how}",
            file=log,
            flush=True,
        )
        if "host-cpu" in names and executor == "local" and size > 1:
            print(
                "note: host-cpu measures latency on this machine; parallel workers share its cores and "
                "slow each other down (consider --workers 1)",
                file=log,
            )
        if not todo:
            return summary
        by_id = {item["id"]: item for item in todo}
        decided = [item["result"] for item in todo if "result" in item]
        tasks = [_task(item) for item in todo if "result" not in item]
        buffer: List[Dict[str, Any]] = []
        last_flush = time.monotonic()
        bar = _Progress(len(todo), f"labelling ({', '.join(names)})", progress, log)

        def flush() -> None:
            nonlocal last_flush
            if buffer:
                writer.write(buffer)
                summary.shards_written += 1
                buffer.clear()
            last_flush = time.monotonic()

        results = _results(executor, tasks, labelers, workers, timeout, scheduler, chunk_size)
        try:
            with _sigterm_as_interrupt():
                for result in itertools.chain(decided, results):
                    if result is not None:
                        buffer.append(_row(by_id[result["id"]], result, settings, executor))
                        summary.labelled += 1
                        kind = result.get("error_kind")
                        if kind is not None:
                            summary.errors[kind] = summary.errors.get(kind, 0) + 1
                    bar.update(result)
                    if len(buffer) >= flush_rows or (buffer and time.monotonic() - last_flush >= flush_seconds):
                        flush()
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # stops the workers before the last flush
            bar.close()
            flush()
            summary.seconds = time.monotonic() - started
        # Many small shards read slower; merge this job's shards now that it is complete.
        writer.consolidate(list(writer.written))
    errors = ", ".join(f"{count} {kind}" for kind, count in sorted(summary.errors.items())) or "no"
    print(
        f"{summary.path}: labelled {summary.labelled} models in {_duration(summary.seconds)} "
        f"({summary.labelled / max(summary.seconds, 1e-9):.2f} models/s), {errors} errors",
        file=log,
        flush=True,
    )
    return summary


class _sigterm_as_interrupt:
    """Turns SIGTERM (what schedulers and ``kill`` send) into KeyboardInterrupt while a job runs,
    so the rows labelled since the last flush are written before the process ends."""

    def __enter__(self) -> "_sigterm_as_interrupt":
        self.previous = None
        try:
            self.previous = signal.signal(signal.SIGTERM, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    @staticmethod
    def _handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)

