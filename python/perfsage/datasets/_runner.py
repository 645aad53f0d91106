"""Running labelling tasks: a local pool of killable worker processes, or a Dask cluster.

Both executors yield the same result dicts (one per task, in completion order)::

    {"id", "tflite", "values": {"<target>/<metric>": float}, "error_kind", "error",
     "host", "finished", "seconds": {"build": s, "<target>": s}}

and ``None`` about once a second while nothing finished, so the caller can flush and redraw.

A task that crashes its worker (a segfault in a native labeller) or runs past the per-model timeout
becomes a result with ``error_kind`` ``crash`` or ``timeout``; the worker is killed with its whole
process group and replaced, and the job goes on.
"""

from __future__ import annotations

import collections
import os
import pickle
import selectors
import socket
import sys
import time
from typing import Any, Deque, Dict, Iterable, Iterator, List, Optional, Sequence

from .. import _rpc
from .._io import utc_timestamp

Task = Dict[str, Any]
Result = Dict[str, Any]

# Tail of a worker's stderr kept for the error message when it dies.
_STDERR_TAIL = 2000
# Consecutive workers that may die before reporting ready before the job stops: a labeller that
# cannot even start is a setup problem, not a property of a model.
_MAX_START_FAILURES = 3


class RunnerError(RuntimeError):
    """The labelling job itself cannot go on (e.g. workers cannot start); not a per-model error."""


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def error_result(task_id: str, kind: str, message: str, tflite: Optional[bytes] = None) -> Result:
    return {
        "id": task_id,
        "tflite": tflite,
        "values": {},
        "error_kind": kind,
        "error": message,
        "host": socket.gethostname(),
        "finished": utc_timestamp("milliseconds", zulu=True),
        "seconds": {},
    }


class _Worker:
    """One worker process and what the runner knows about it."""

    def __init__(self, init_frame: bytes) -> None:
        # Its own process group: a kill reaches whatever it started.
        self.process = _rpc.start("perfsage.datasets._worker", ["--parent", str(os.getpid())], new_session=True)
        assert self.process.stdin and self.process.stdout and self.process.stderr
        os.set_blocking(self.process.stdout.fileno(), False)
        os.set_blocking(self.process.stderr.fileno(), False)
        self.buffer = bytearray()
        self.stderr_tail = bytearray()
        self.state = "starting"  # starting -> idle <-> busy; retiring; dead
        self.task: Optional[Task] = None
        self.deadline = 0.0
        self.stage = ""
        self.tflite: Optional[bytes] = None
        self.tasks_done = 0
        self.send_raw(init_frame)

    @property
    def pid(self) -> int:
        return self.process.pid

    def send_raw(self, frame: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(frame)
        stdin.flush()

    def read_frames(self) -> List[Dict[str, Any]]:
        return _rpc.unpack_messages(self.buffer)

    def kill(self) -> None:
        _rpc.kill(self.process, group=True)
        self.state = "dead"

    def reap(self) -> None:
        _rpc.reap(self.process)
        self.state = "dead"

    def death_reason(self, stage: str = "") -> str:
        code = self.process.poll()
        if code is None:
            how = "stopped answering"
        elif code < 0:
            how = f"was killed by {_rpc.signal_name(code) or f'signal {-code}'}"
        else:
            how = f"exited with status {code}"
        tail = self.stderr_tail.decode("utf-8", "replace").strip()
        tail = f"; its last stderr: {tail[-500:]}" if tail else ""
        where = f" while {stage}" if stage else ""
        return f"the worker process {how}{where}{tail}"


def run_local(
    tasks: Iterable[Task],
    labelers: Sequence[Any],
    workers: int = 0,
    timeout: float = 600.0,
    max_tasks_per_worker: int = 500,
    tick: float = 1.0,
    start_timeout: float = 300.0,
) -> Iterator[Optional[Result]]:
    """Labels ``tasks`` (``{"id", "spec", "seed", "dtype"}``) on ``workers`` processes (0: all cores).

    ``timeout`` bounds one model's build plus all its labels, in seconds. Workers are replaced
    after ``max_tasks_per_worker`` models so that memory a labeller leaks stays bounded. Stopping
    the iteration (or an exception in the caller) kills every worker.
    """
    pending: Deque[Task] = collections.deque(tasks)
    if not pending:
        return
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    size = min(workers or default_workers(), len(pending))
    init_frame = _rpc.pack({"sys_path": list(sys.path), "labelers": pickle.dumps(list(labelers))})
    selector = selectors.DefaultSelector()
    pool: List[_Worker] = []
    start_failures = 0

    def start() -> None:
        worker = _Worker(init_frame)
        worker.deadline = time.monotonic() + start_timeout
        assert worker.process.stdout and worker.process.stderr
        selector.register(worker.process.stdout, selectors.EVENT_READ, (worker, "out"))
        selector.register(worker.process.stderr, selectors.EVENT_READ, (worker, "err"))
        pool.append(worker)

    def retire(worker: _Worker, kill: bool) -> None:
        for stream in (worker.process.stdout, worker.process.stderr):
            try:
                selector.unregister(stream)
            except (KeyError, ValueError):
                pass
        if kill:
            worker.kill()
        else:
            worker.reap()
        pool.remove(worker)

    try:
        while True:
            busy = [w for w in pool if w.state == "busy"]
            if not pending and not busy:
                break
            live = [w for w in pool if w.state in ("starting", "idle", "busy")]
            while len(live) < min(size, len(busy) + len(pending)):
                start()
                live = [w for w in pool if w.state in ("starting", "idle", "busy")]
            for worker in [w for w in pool if w.state == "idle"]:
                if not pending:
                    break
                task = pending.popleft()
                try:
                    worker.send_raw(_rpc.pack(task))
                except (BrokenPipeError, OSError):
                    pending.appendleft(task)  # it died while idle; the task never started
                    retire(worker, kill=True)
                    continue
                worker.state, worker.task, worker.stage, worker.tflite = "busy", task, "", None
                worker.deadline = time.monotonic() + timeout

            now = time.monotonic()
            waiting = [w.deadline - now for w in pool if w.state in ("starting", "busy")]
            events = selector.select(max(0.0, min([tick, *waiting])))
            finished: List[Result] = []
            for key, _ in events:
                worker, stream = key.data
                if worker.state == "dead":
                    continue
                try:
                    data = os.read(key.fd, 1 << 20)
                except BlockingIOError:
                    continue
                if stream == "err":
                    if data:
                        worker.stderr_tail = (worker.stderr_tail + data)[-_STDERR_TAIL:]
                    continue
                if data:
                    worker.buffer.extend(data)
                    for message in worker.read_frames():
                        kind = message["kind"]
                        if kind == "ready":
                            worker.state = "idle"
                            start_failures = 0
                        elif kind == "init_error":
                            raise RunnerError(f"a labelling worker could not load the labellers:\n{message['error']}")
                        elif kind == "stage":
                            worker.stage = message["stage"]
                        elif kind == "built":
                            worker.tflite = message["tflite"]
                        elif kind == "result":
                            finished.append(message["result"])
                            worker.state, worker.task = "idle", None
                            worker.tasks_done += 1
                            if worker.tasks_done >= max_tasks_per_worker:
                                worker.state = "retiring"
                                retire(worker, kill=False)
                    continue
                # End of output: the worker is gone.
                state, task = worker.state, worker.task
                if state != "retiring":
                    retire(worker, kill=True)
                if state == "busy" and task is not None:
                    finished.append(error_result(task["id"], "crash", worker.death_reason(worker.stage), worker.tflite))
                elif state == "starting":
                    start_failures += 1
                    if start_failures >= _MAX_START_FAILURES:
                        raise RunnerError(f"labelling workers die while starting: {worker.death_reason()}")

            now = time.monotonic()
            for worker in [w for w in pool if w.state in ("starting", "busy") and w.deadline < now]:
                if worker.state == "starting":
                    retire(worker, kill=True)
                    raise RunnerError(f"a labelling worker did not start within {start_timeout:g} s")
                assert worker.task is not None
                task, stage, tflite = worker.task, worker.stage, worker.tflite
                retire(worker, kill=True)
                where = f" (it was {stage})" if stage else ""
                message = f"no result within {timeout:g} s{where}; the worker was killed"
                finished.append(error_result(task["id"], "timeout", message, tflite))
            if finished:
                yield from finished
            else:
                yield None
    finally:
        for worker in list(pool):
            retire(worker, kill=True)
        selector.close()


def label_chunk(tasks: List[Task], labelers: Sequence[Any], timeout: float) -> List[Result]:
    """Labels ``tasks`` on one local worker process; what a Dask task runs.

    Going through the same killable worker as the local executor gives Dask jobs the same
    per-model timeout and crash isolation (a Dask worker thread cannot be interrupted).
    """
    results = [r for r in run_local(tasks, labelers, workers=1, timeout=timeout) if r is not None]
    try:  # Dask is the optional extra 'dask', imported only on its code paths
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):  # called outside a Dask worker
        address = None
    for result in results:
        result["dask_worker"] = address
    return results


def run_dask(
    tasks: Sequence[Task],
    labelers: Sequence[Any],
    scheduler: Any,
    timeout: float = 600.0,
    chunk_size: int = 16,
    tick: float = 1.0,
) -> Iterator[Optional[Result]]:
    """Labels ``tasks`` on the Dask cluster at ``scheduler`` (an address such as
    ``tcp://host:8786``), in chunks of ``chunk_size`` models per Dask task.

    The cluster's workers need perfsage and the labellers' tools installed. A chunk lost with its
    Dask worker (after Dask's own retries) becomes ``executor`` error rows, which
    ``--retry-errors`` labels again.
    """
    # Dask is the optional extra 'dask', imported only when a job runs on a cluster.
    from distributed import Client, wait
    from distributed import TimeoutError as DaskTimeoutError

    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    chunks = [list(tasks[i : i + chunk_size]) for i in range(0, len(tasks), chunk_size)]
    if not chunks:
        return
    with Client(scheduler) as client:
        futures = {client.submit(label_chunk, chunk, list(labelers), timeout, pure=False): chunk for chunk in chunks}
        waiting = set(futures)
        while waiting:
            try:
                done = wait(waiting, timeout=tick, return_when="FIRST_COMPLETED").done
            except (DaskTimeoutError, TimeoutError):
                yield None
                continue
            for future in done:
                waiting.discard(future)
                try:
                    results = future.result()
                except Exception as e:  # noqa: BLE001 - whatever took the chunk down, record it
                    message = f"the Dask task failed: {type(e).__name__}: {e}"
                    results = [error_result(t["id"], "executor", message) for t in futures[future]]
                yield from results
