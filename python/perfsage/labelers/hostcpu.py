"""``host-cpu`` labels: LiteRT (``ai-edge-litert``) with its default XNNPACK delegate, one
thread, measured on this machine. Works for int8 and float32 models.

How one model is measured (all in a fresh process, see below):

1. ``Interpreter(model_content=..., num_threads=1)``, ``allocate_tensors()``, inputs filled once
   with seeded random values of their dtype (values do not change the work these ops do).
2. Warm-up: at least ``warmup_min`` invokes, continuing until ``warmup_s`` seconds have passed
   (at most ``warmup_max`` invokes). The first invoke packs XNNPACK's weights and is never timed.
3. Timed repeats, one ``invoke()`` each, timed with ``time.perf_counter_ns`` and with the
   thread's CPU-time clock; the cost of the clock reads, measured on an empty body, is subtracted
   from both. Stop rule (on the wall times): from ``min_repeats`` on, every ``check_every``
   repeats compare the median of all repeats so far with the median at the previous check; stop
   when they differ by at most ``rel_tol`` (relative). Also stop at ``max_repeats``, or once the
   timed loop has run ``budget_s`` seconds and at least ``min_repeats_over_budget`` repeats are in
   (so a 1 s model costs a few seconds, not 500).

Labels: ``latency_ms`` is the median repeat (wall clock). ``latency_spread`` is the relative
interquartile range of the repeats, (Q3 - Q1) / median (0.05 means the middle half of the repeats
lies within a 5%-of-median band): robust to the odd preempted repeat, unlike a standard deviation.
``cpu_time_ms`` is the median of the same invokes timed with the calling thread's CPU-time clock
(``time.thread_time_ns``); with one thread LiteRT computes on the calling thread, so this is the
work itself without the time the OS gave the core to other processes. On an idle machine the two
agree; on a shared one wall time grows with the load and CPU time barely moves (models that fit
in a scheduler time slice are the least affected), which is why both are recorded, with
``load_avg_1min`` (os.getloadavg at the end of the measurement) to filter on. ``repeats`` is how
many invokes were timed. ``xnnpack_partitions`` counts the XNNPACK delegate nodes LiteRT made (0
means XNNPACK took nothing and the reference kernels ran); it reads LiteRT's private
``Interpreter._get_ops_details``, so it is a metric only when the installed LiteRT has that method
(2.3.0 does).

Memory is measured in a process of its own so that nothing the caller (or an earlier model)
allocated counts: a long-lived helper (see ``_helper``), which has imported LiteRT and run nothing
but two fixed warm-up models, forks one child per model. Linux resets a forked child's peak resident set (VmHWM) to
its current size, so ``peak_rss_bytes`` is the child's VmHWM after all invokes: the whole process,
LiteRT runtime included. ``model_rss_bytes`` is that peak minus the child's resident size before
the interpreter was built: what this model's interpreter (its copy of weights, XNNPACK's packed
weights, the tensor arena) added. Before its first fork the helper builds and runs two tiny fixed
models (int8 and float32, ``_WARMUP_SPEC``), so that one-off runtime costs (pages of LiteRT's
libraries touched for the first time, XNNPACK's global state) sit in every child's baseline rather
than in the models' growth. What remains in ``model_rss_bytes`` includes what any interpreter
costs; LiteRT's Python API does not expose the arena size itself.
"""

from __future__ import annotations

import os
import platform
import signal
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

import numpy as np

from .. import _rpc
from .._io import package_version
from .._writer import build_model
from ._base import HelperProcessLabeler, LabelError, TaskError
from ._checks import verify_tflite
from ._helper import WorkerError, describe_exit

METRICS: Dict[str, str] = {
    "latency_ms": "ms",
    "latency_spread": "ratio",
    "cpu_time_ms": "ms",
    "load_avg_1min": "load",
    "repeats": "count",
    "peak_rss_bytes": "bytes",
    "model_rss_bytes": "bytes",
}
_PARTITIONS = {"xnnpack_partitions": "count"}


def _litert_lists_ops() -> bool:
    try:  # LiteRT is the optional extra 'label': imported when host-cpu labels, never at import time
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ImportError(
            f"the host-cpu labeller needs ai-edge-litert: pip install 'perfsage[label]' (import failed: {exc})"
        ) from exc
    return callable(getattr(Interpreter, "_get_ops_details", None))


@dataclass(frozen=True)
class RepeatRule:
    """When to stop timing; see the module docstring for how each field is used."""

    warmup_min: int = 2
    warmup_s: float = 0.05
    warmup_max: int = 20
    min_repeats: int = 10
    max_repeats: int = 500
    check_every: int = 5
    rel_tol: float = 0.01
    budget_s: float = 2.0
    min_repeats_over_budget: int = 3

    def __post_init__(self) -> None:
        for name in ("warmup_min", "warmup_max", "min_repeats", "max_repeats", "check_every",
                     "min_repeats_over_budget"):
            if getattr(self, name) < 1:
                raise ValueError(f"RepeatRule.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_s", "rel_tol", "budget_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"RepeatRule.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_repeats < self.min_repeats:
            raise ValueError(f"RepeatRule.max_repeats ({self.max_repeats}) < min_repeats ({self.min_repeats})")


def litert_version() -> str:
    return package_version("ai-edge-litert")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                value, unit = line.split(":", 1)[1].split()
                if unit != "kB":
                    raise RuntimeError(f"/proc/self/status {field} in unexpected unit {unit!r}")
                return int(value) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} (not Linux?)")


def _fill_inputs(interpreter: Any) -> None:
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        shape = tuple(int(d) for d in detail["shape"])
        if dtype.kind == "f":
            value = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu" and dtype.itemsize == 1:
            info = np.iinfo(dtype)
            value = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        elif dtype.kind == "b":
            value = rng.integers(0, 1, size=shape, endpoint=True).astype(dtype)
        else:  # wider integers are usually indices or shapes: zeros are always in range
            value = np.zeros(shape, dtype)
        interpreter.set_tensor(detail["index"], value)


def measure_here(model: bytes, rule: Dict[str, Any]) -> Dict[str, float]:
    """Builds the interpreter and times it in *this* process; call it in a fresh one."""
    from ai_edge_litert.interpreter import Interpreter  # optional extra 'label'; see _litert_lists_ops

    r = RepeatRule(**rule)
    rss_before = _proc_status_bytes("VmRSS")
    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    _fill_inputs(interpreter)
    ops = getattr(interpreter, "_get_ops_details", None)

    invoke = interpreter.invoke
    clock = time.perf_counter
    start = clock()
    warmups = 0
    while warmups < r.warmup_max and (warmups < r.warmup_min or clock() - start < r.warmup_s):
        invoke()
        warmups += 1

    now_ns = time.perf_counter_ns
    cpu_ns = time.thread_time_ns
    # The clock reads themselves take time (reading the thread CPU clock is a system call): time an
    # empty body the same way and subtract its median from every repeat.
    empty_wall, empty_cpu = [], []
    for _ in range(50):
        c0 = cpu_ns()
        t0 = now_ns()
        t1 = now_ns()
        empty_cpu.append(cpu_ns() - c0)
        empty_wall.append(t1 - t0)
    wall_overhead_ns = float(np.median(empty_wall))
    cpu_overhead_ns = float(np.median(empty_cpu))
    times_ns = []
    cpu_times_ns = []
    previous_median: Optional[float] = None
    loop_start = clock()
    while True:
        c0 = cpu_ns()
        t0 = now_ns()
        invoke()
        t1 = now_ns()
        cpu_times_ns.append(cpu_ns() - c0)
        times_ns.append(t1 - t0)
        n = len(times_ns)
        if n >= r.max_repeats:
            break
        if clock() - loop_start >= r.budget_s and n >= r.min_repeats_over_budget:
            break
        if n >= r.min_repeats and (n - r.min_repeats) % r.check_every == 0:
            median = float(np.median(times_ns))
            if previous_median is not None and abs(median - previous_median) <= r.rel_tol * previous_median:
                break
            previous_median = median

    times_ms = np.maximum(np.asarray(times_ns, dtype=np.float64) - wall_overhead_ns, 0.0) / 1e6
    cpu_ms = np.maximum(np.asarray(cpu_times_ns, dtype=np.float64) - cpu_overhead_ns, 0.0) / 1e6
    q1, median, q3 = np.percentile(times_ms, [25, 50, 75])
    if median <= 0:
        raise ValueError(
            f"an invoke takes no longer than reading the clock ({wall_overhead_ns:.0f} ns): nothing to time"
        )
    peak = _proc_status_bytes("VmHWM")
    labels = {
        "latency_ms": float(median),
        "latency_spread": float((q3 - q1) / median),
        "cpu_time_ms": float(np.median(cpu_ms)),
        "load_avg_1min": float(os.getloadavg()[0]),
        "repeats": float(len(times_ms)),
        "peak_rss_bytes": float(peak),
        "model_rss_bytes": float(max(peak - rss_before, 0)),
    }
    if ops is not None:
        labels["xnnpack_partitions"] = float(sum(op["op_name"] == "DELEGATE" for op in ops()))
    return labels


# A fixed, tiny network touching the common kernels (conv, depthwise conv, pooling, dense, softmax).
_WARMUP_SPEC = {
    "name": "perfsage-hostcpu-warmup",
    "inputs": [{"name": "x", "shape": [1, 8, 8, 3]}],
    "layers": [
        {"name": "conv", "op": "conv2d", "inputs": ["x"], "filters": 8, "kernel": 3, "activation": "relu"},
        {"name": "dw", "op": "depthwise_conv2d", "inputs": ["conv"], "kernel": 3, "activation": "relu6"},
        {"name": "add", "op": "add", "inputs": ["conv", "dw"]},
        {"name": "pool", "op": "avg_pool2d", "inputs": ["add"], "pool": [8, 8]},
        {"name": "flat", "op": "reshape", "inputs": ["pool"], "shape": [1, 8]},
        {"name": "logits", "op": "dense", "inputs": ["flat"], "units": 4},
        {"name": "probs", "op": "softmax", "inputs": ["logits"]},
    ],
}
_warmed = False


def _warm_runtime() -> None:
    """Runs the warm-up models once in this (helper) process; see the module docstring."""
    global _warmed
    if _warmed:
        return
    from ai_edge_litert.interpreter import Interpreter  # optional extra 'label'; see _litert_lists_ops

    for dtype in ("int8", "float32"):
        interpreter = Interpreter(model_content=build_model(_WARMUP_SPEC, seed=0, dtype=dtype), num_threads=1)
        interpreter.allocate_tensors()
        _fill_inputs(interpreter)
        interpreter.invoke()
        del interpreter
    _warmed = True


def measure_in_fork(model: bytes, rule: Dict[str, Any], timeout_s: float) -> Dict[str, float]:
    """Runs ``measure_here`` in a child forked from this (helper) process, so the child starts
    with a clean heap and a peak-RSS counter reset to its current size. A crash or hang of the
    child (LiteRT aborts on some models) becomes an exception here."""
    _warm_runtime()
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as child_stderr:
        pid = os.fork()
        if pid == 0:  # child: never return into the helper's loop
            status = 1
            try:
                os.close(read_fd)
                os.dup2(child_stderr.fileno(), 2)
                try:
                    reply = ("ok", measure_here(model, rule))
                except BaseException as exc:
                    reply = ("error", f"{type(exc).__name__}: {exc}")
                _rpc.write_message_fd(write_fd, reply)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        reply = None
        timed_out = False
        try:
            reply = _rpc.read_message_by(read_fd, time.monotonic() + timeout_s)
        except _rpc.HelperTimeout:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
        except _rpc.HelperClosed:
            pass  # the child died before it replied
        finally:
            os.close(read_fd)
            _, wait_status = os.waitpid(pid, 0)
        child_stderr.seek(0)
        stderr_tail = child_stderr.read().decode("utf-8", "replace").strip()[-1500:]
    if timed_out:
        raise TaskError(f"LiteRT measurement timed out after {timeout_s:g} s")
    if reply is None:
        returncode = -os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)
        raise TaskError(f"LiteRT process died with {describe_exit(returncode)}; stderr: {stderr_tail or '(empty)'}")
    status, result = reply
    if status != "ok":
        raise TaskError(f"LiteRT failed: {result}" + (f"; stderr: {stderr_tail}" if stderr_tail else ""))
    return result


class HostCpuLabeler(HelperProcessLabeler):
    """LiteRT + XNNPACK latency and memory on this machine, one thread; see the module docstring.

    Options (``get_labeler("host-cpu", **options)``): any RepeatRule field (``budget_s=0.5``,
    ``min_repeats=20``, ...) and ``timeout_s`` per model (default: ten times the budget plus 60 s).
    """

    target = "host-cpu"

    def __init__(self, *, timeout_s: Optional[float] = None, **rule: Any) -> None:
        unknown = set(rule) - set(RepeatRule.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown host-cpu option(s) {', '.join(sorted(unknown))}; repeat-rule fields: "
                f"{', '.join(RepeatRule.__dataclass_fields__)}"
            )
        self.rule = RepeatRule(**rule)
        self.metrics = {**METRICS, **(_PARTITIONS if _litert_lists_ops() else {})}
        self.timeout_s = float(timeout_s) if timeout_s is not None else 10 * self.rule.budget_s + 60.0

    def settings(self) -> Dict[str, Any]:
        return {
            "tool": "ai-edge-litert",
            "tool_version": litert_version(),
            "delegate": "XNNPACK (LiteRT's default CPU delegate)",
            "threads": 1,
            "cpu_model": cpu_model(),
            "machine": platform.machine(),
            "logical_cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "repeat_rule": asdict(self.rule),
            "latency": "median wall-clock time of the timed invokes (cpu_time_ms: median thread CPU time)",
            "latency_spread": "(Q3 - Q1) / median of the timed invokes",
            "memory": "VmHWM of a process forked per model (peak_rss_bytes) and its growth over the "
                      "pre-interpreter resident size (model_rss_bytes)",
            "note": "describes the machine settings() is called on; call it where the labels are made",
        }

    def label(self, model: bytes) -> Dict[str, float]:
        verify_tflite(model)
        try:
            return self._helper("LiteRT (host-cpu)").call(
                "perfsage.labelers.hostcpu:measure_in_fork",
                (bytes(model), asdict(self.rule), self.timeout_s),
                self.timeout_s + 30.0,
            )
        except WorkerError as exc:
            raise LabelError(str(exc)) from exc

