"""The client side of a labeller's helper process: start it, send a task, wait with a deadline.

Why a helper process: Vela's C++ core (regor) segfaults on some inputs and LiteRT aborts on others;
run in the caller's interpreter, one bad model would kill a whole labelling job. Starting a fresh
``vela`` process per model is safe but pays an interpreter start-up and the tool's imports for
every model, many times the compile itself. The helper is started once
(``python -m perfsage.labelers._worker``), keeps the tools imported, and runs one task per request.
If it dies, the request fails with the exit status and the tail of its stderr, and the next
request starts a new helper.

Protocol: ``perfsage._rpc`` messages over the helper's stdin/stdout. A request is
``(task, args)``; ``task`` names a function ``"module:function"`` inside ``perfsage.labelers``.
The reply is ``("ok", result)`` or ``("error", message)``.

Subprocess rather than multiprocessing: multiprocessing refuses to start children from daemonic
processes (multiprocessing.Pool workers, Dask workers), where labellers are meant to run.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Optional

from .. import _rpc


class WorkerError(RuntimeError):
    """The helper process died, timed out, or the task raised; the message says which."""


def describe_exit(returncode: int) -> str:
    """'exit code 1' or 'signal 11 (SIGSEGV)': a negative returncode is a signal (POSIX)."""
    if returncode < 0:
        return f"signal {-returncode} ({_rpc.signal_name(returncode) or 'unknown signal'})"
    return f"exit code {returncode}"


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
        self._proc = _rpc.start("perfsage.labelers._worker", stderr=self._stderr, env=env)

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
            _rpc.kill(self._proc)
        if self._stderr is not None:
            self._stderr.close()
        self._proc = None
        self._stderr = None

    def call(self, task: str, args: tuple, timeout: float) -> Any:
        """Runs ``task(*args)`` in the helper; returns its result or raises WorkerError."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                if self._proc is not None:
                    self._discard()
                self._start()
            try:
                _rpc.write_message(self._proc.stdin, (task, args))
            except (BrokenPipeError, OSError):
                raise self._fail("exited before it read the request") from None
            try:
                status, result = _rpc.read_message_by(self._proc.stdout.fileno(), time.monotonic() + timeout)
            except _rpc.HelperTimeout:
                self._proc.kill()
                raise self._fail("timed out") from None
            except _rpc.HelperClosed:
                raise self._fail("exited") from None
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
