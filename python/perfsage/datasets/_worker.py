"""A labelling worker process: ``python -m perfsage.datasets._worker --parent PID``.

The runner (``_runner``) starts these itself rather than using a ``ProcessPoolExecutor``, because
a pool cannot kill a task that hangs (a Vela compile that never returns) and breaks as a whole when
one worker dies (a segfault in a native labeller). A worker is its own process group, so killing the
group also kills anything a labeller started.

Protocol: ``perfsage._rpc`` messages, requests on stdin and replies on the original stdout (file
descriptor 1 points at /dev/null, because labellers (Vela) print to stdout and would corrupt the
replies); stderr goes to the runner, which keeps its tail for crash reports.

1. runner -> worker ``{"sys_path", "labelers"}``; worker -> runner ``{"kind": "ready"}`` or
   ``{"kind": "init_error", "error"}``.
2. per task, runner -> worker ``{"id", "spec", "seed", "dtype"}`` (or ``{"id", "tflite", "dtype"}``
   for a model file); worker -> runner any number of
   ``{"kind": "stage"}`` / ``{"kind": "built", "tflite"}`` frames, then ``{"kind": "result"}``.
3. EOF on stdin: the worker exits.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import pickle
import signal
import socket
import sys
import time
import traceback
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

from .. import _rpc
from .._io import utc_timestamp
from .._graphs import load_tflite
from .._writer import build_model, strip_weights
from ._schema import node_column


def _describe(error: BaseException) -> str:
    """A labeller's LabelError already says why; anything else is named by its type."""
    text = str(error).strip() or "(no message)"
    return text if type(error).__name__ == "LabelError" else f"{type(error).__name__}: {text}"


def _checked_values(target: str, metrics: Mapping[str, str], values: Any) -> Dict[str, float]:
    # A labeller that returns the wrong thing is a bug to report on the row, not a value to store.
    if not isinstance(values, Mapping):
        raise TypeError(f"label() returned {type(values).__name__}, not a dict of metric -> value")
    missing = [m for m in metrics if m not in values]
    if missing:
        raise ValueError(f"label() returned no value for {', '.join(missing)} (got {', '.join(map(str, values))})")
    out = {}
    for metric in metrics:
        value = float(values[metric])
        if not math.isfinite(value):
            raise ValueError(f"label() returned {value} for {metric}")
        out[f"{target}/{metric}"] = value
    return out


def _checked_nodes(target: str, node_metrics: Mapping[str, str], nodes: Any, num_ops: int) -> Dict[str, List[float]]:
    # One list per per-operator metric, as long as the model's graph has nodes, all finite.
    if not isinstance(nodes, Mapping):
        raise TypeError(f"label_nodes() returned {type(nodes).__name__}, not a dict of metric -> per-operator values")
    out: Dict[str, List[float]] = {}
    for metric in node_metrics:
        if metric not in nodes:
            raise ValueError(f"label_nodes() returned no per-operator {metric}")
        values = [float(v) for v in nodes[metric]]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"label_nodes() returned a non-finite per-operator {metric}")
        if len(values) != num_ops:
            raise ValueError(f"label_nodes() returned {len(values)} values of {metric} for a model of {num_ops} "
                             "operators")
        out[node_column(target, metric)] = values
    return out


def label_task(
    task: Mapping[str, Any], labelers: Sequence[Any], settings: Optional[Mapping[str, Any]] = None
) -> Iterator[Dict[str, Any]]:
    """Builds one model and labels it on every labeller; yields progress frames, then the result.

    Returns a row even when something fails: the model's errors are data, the job goes on.
    ``settings`` (``{target: labeller.settings()}`` taken in this process) go into the result, so
    a row records the tool versions and machine where it was labelled, which on a Dask cluster
    need not be those of the machine that started the job.
    """
    result: Dict[str, Any] = {
        "id": task["id"],
        "tflite": None,
        "values": {},
        "error_kind": None,
        "error": None,
        "host": socket.gethostname(),
        "seconds": {},
        "settings": settings,
    }
    seconds: Dict[str, float] = result["seconds"]
    given = task.get("tflite")  # a model file's bytes, labelled as they are
    yield {"kind": "stage", "stage": "reading the model" if given is not None else "building the model"}
    start = time.perf_counter()
    try:
        model = bytes(given) if given is not None else build_model(task["spec"], seed=task["seed"], dtype=task["dtype"])
        result["tflite"] = strip_weights(model)
    except Exception as e:  # the writer refused the spec (or the file is no TFLite): a row of kind 'build'
        what = "cannot read the model" if given is not None else "cannot build the model"
        result.update(error_kind="build", error=f"{what}: {_describe(e)}")
        seconds["build"] = round(time.perf_counter() - start, 4)
        result["finished"] = utc_timestamp("milliseconds", zulu=True)
        yield {"kind": "result", "result": result}
        return
    seconds["build"] = round(time.perf_counter() - start, 4)
    yield {"kind": "built", "tflite": result["tflite"]}
    errors: List[str] = []
    for labeler in labelers:
        yield {"kind": "stage", "stage": f"labelling on {labeler.target}"}
        start = time.perf_counter()
        try:
            node_metrics = getattr(labeler, "node_metrics", None)
            if node_metrics:
                graph_values, nodes = labeler.label_nodes(model)
                values = _checked_values(labeler.target, labeler.metrics, graph_values)
                if nodes is not None:  # None: the model keeps its labels, its per-operator columns are null
                    values.update(_checked_nodes(labeler.target, node_metrics, nodes, load_tflite(model).num_nodes))
            else:
                values = _checked_values(labeler.target, labeler.metrics, labeler.label(model))
        except (Exception, SystemExit) as e:  # tools that sys.exit() on bad input included
            errors.append(f"{labeler.target}: {_describe(e)}")
        else:
            result["values"].update(values)
        seconds[labeler.target] = round(time.perf_counter() - start, 4)
    if errors:
        result.update(error_kind="label", error="; ".join(errors))
    result["finished"] = utc_timestamp("milliseconds", zulu=True)
    yield {"kind": "result", "result": result}


def _exit_with_parent(parent: int) -> None:
    """Asks Linux to SIGKILL this worker when the runner dies (even by SIGKILL), so a killed job
    leaves no orphans labelling models nobody will store."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the runner died before prctl took effect
        os._exit(1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", type=int, required=True, help="pid of the runner")
    args = parser.parse_args(argv)
    replies = _rpc.take_stdout()
    _exit_with_parent(args.parent)
    requests = sys.stdin.buffer
    init = _rpc.read_message(requests)
    if init is None:
        return 0
    try:
        sys.path.extend(p for p in init["sys_path"] if p not in sys.path)
        labelers = pickle.loads(init["labelers"])
        settings = {labeler.target: labeler.settings() for labeler in labelers}
    except BaseException:
        _rpc.write_message(replies, {"kind": "init_error", "error": traceback.format_exc()})
        return 1
    _rpc.write_message(replies, {"kind": "ready", "pid": os.getpid()})
    while True:
        task = _rpc.read_message(requests)
        if task is None:
            return 0
        for frame in label_task(task, labelers, settings):
            _rpc.write_message(replies, frame)


if __name__ == "__main__":
    sys.exit(main())
