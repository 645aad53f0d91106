"""A long-lived helper process that runs labelling tools for a labeller.

Why a helper process: Vela's C++ core (regor) segfaults on some inputs and LiteRT aborts on others;
run in the caller's interpreter, one bad model would kill a whole labelling job. Starting a fresh
``vela`` process per model is safe but costs ~0.4 s of interpreter start-up and imports, against
~10 ms for the compile itself. The helper is started once (``python -m perfsage.labelers._worker``),
keeps the tools imported, and runs one task per request. If it dies, the request fails with the
exit status and the tail of its stderr, and the next request starts a new helper.

Protocol, over the helper's stdin/stdout: each message is an 8-byte little-endian length followed
by a pickle. A request is ``(task, args)``; ``task`` names a function ``"module:function"`` inside
``perfsage.labelers``. The reply is ``("ok", result)`` or ``("error", message)``. Pickle is safe
here: both ends are this package, talking over a private pipe. The helper points its own fd 1 at
/dev/null so that stray prints from C/C++ code cannot corrupt the replies.

Subprocess rather than multiprocessing: multiprocessing refuses to start children from daemonic
processes (multiprocessing.Pool workers, Dask workers), where labellers are meant to run.
"""

from __future__ import annotations

import importlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, BinaryIO, Optional, Tuple

_HEADER = struct.Struct("<Q")
_TASK_PREFIX = "perfsage.labelers."


class WorkerError(RuntimeError):
    """The helper process died, timed out, or the task raised; the message says which."""


class TaskError(RuntimeError):
    """An expected failure inside a task (the tool rejected the model): its message alone is
    reported, without a traceback."""


def describe_exit(returncode: int) -> str:
    """'exit code 1' or 'signal 11 (SIGSEGV)': a negative returncode is a signal (POSIX)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"signal {-returncode} ({name})"
    return f"exit code {returncode}"


def _read_exact_blocking(stream: BinaryIO, n: int) -> Optional[bytes]:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _resolve(task: str):
    module_name, _, function_name = task.partition(":")
    if not module_name.startswith(_TASK_PREFIX) or not function_name:
        raise ValueError(f"task {task!r} is not a perfsage.labelers function")
    return getattr(importlib.import_module(module_name), function_name)


def serve() -> None:
    """The helper's main loop: one request at a time until stdin closes."""
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")
    while True:
        header = _read_exact_blocking(requests, _HEADER.size)
        if header is None:
            return
        body = _read_exact_blocking(requests, _HEADER.unpack(header)[0])
        if body is None:
            return
        try:
            task, args = pickle.loads(body)
            reply: Tuple[str, Any] = ("ok", _resolve(task)(*args))
        except TaskError as exc:
            reply = ("error", str(exc))
        except Exception as exc:  # a bug, not the model: keep where it happened
            tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
            reply = ("error", f"{type(exc).__name__}: {exc}\n{tail}")
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        replies.write(_HEADER.pack(len(data)) + data)
        replies.flush()


class WorkerProcess:
    """Client side: starts the helper on first use, sends tasks, restarts it after a crash.

    One request at a time (a lock serialises threads). Not picklable on purpose: owners drop it
    in ``__getstate__`` and make a new one after unpickling.
    """

    def __init__(self, label: str) -> None:
        self._label = label
        self._proc: Optional[subprocess.Popen] = None
        self._stderr: Optional[BinaryIO] = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def _start(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        # One thread per helper: the labellers measure single-thread behaviour and the helper
        # must not compete with the caller's own threads.
        # (OpenBLAS also starts its thread pool at numpy import; the host-cpu helper forks.)
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "perfsage.labelers._worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            close_fds=True,
        )

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace")
        return text[-limit:].strip()

    def _fail(self, what: str) -> WorkerError:
        proc = self._proc
        status = ""
        if proc is not None:
            try:
                status = describe_exit(proc.wait(timeout=5))
            except subprocess.TimeoutExpired:
                proc.kill()
                status = "killed"
        tail = self._stderr_tail()
        self._discard()
        message = f"{self._label} helper process {what}" + (f" ({status})" if status else "")
        if tail:
            message += f"; its stderr ends with:\n{tail}"
        return WorkerError(message)

    def _discard(self) -> None:
        if self._proc is not None:
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
        if self._stderr is not None:
            self._stderr.close()
        self._proc = None
        self._stderr = None

    def _read_exact(self, n: int, deadline: float) -> bytes:
        fd = self._proc.stdout.fileno()
        chunks = []
        while n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self._proc.kill()
                raise self._fail("timed out")
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                raise self._fail("exited")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def call(self, task: str, args: tuple, timeout: float) -> Any:
        """Runs ``task(*args)`` in the helper; returns its result or raises WorkerError."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self._discard()
                self._start()
            data = pickle.dumps((task, args), protocol=pickle.HIGHEST_PROTOCOL)
            try:
                self._proc.stdin.write(_HEADER.pack(len(data)) + data)
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                raise self._fail("exited before it read the request") from None
            deadline = time.monotonic() + timeout
            size = _HEADER.unpack(self._read_exact(_HEADER.size, deadline))[0]
            status, result = pickle.loads(self._read_exact(size, deadline))
        if status != "ok":
            raise WorkerError(result)
        return result

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                try:
                    self._proc.stdin.close()
                    self._proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._discard()

    def __del__(self) -> None:
        try:
            self._discard()
        except Exception:
            pass


if __name__ == "__main__":
    # Run the package's copy of this module, not __main__'s: tasks raise
    # perfsage.labelers._worker.TaskError, which must be the class serve() catches.
    from perfsage.labelers._worker import serve as _serve

    _serve()
