"""Talking to helper processes: the one message format, starting, reading with a deadline, killing.

perfsage runs native tools (Vela's C++ core, LiteRT) in helper processes, because those tools
segfault or abort on some models and a crash must cost one model, not the job. Every helper speaks
the same format over its stdin/stdout (or a pipe): a message is an 8-byte big-endian length, then
a pickle. Pickle is safe here: both ends are this package, talking over a private pipe.

Two kinds of callers use these pieces: ``labelers._helper`` (one request at a time, a deadline
per request) and ``datasets._runner`` (many workers multiplexed on a selector, whose buffers
``unpack_messages`` drains).

A bottom module: it imports nothing of perfsage's.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from typing import Any, BinaryIO, Dict, List, Optional, Sequence

HEADER = struct.Struct(">Q")


class HelperTimeout(Exception):
    """No complete message arrived before the deadline."""


class HelperClosed(Exception):
    """The other end closed its side (it exited or crashed) before a complete message."""


def pack(message: Any) -> bytes:
    """One framed message: length, then the pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def write_message(stream: BinaryIO, message: Any) -> None:
    stream.write(pack(message))
    stream.flush()


def write_message_fd(fd: int, message: Any) -> None:
    """Writes one message to a raw file descriptor (a pipe), looping over short writes."""
    view = memoryview(pack(message))
    while view:
        view = view[os.write(fd, view):]


def _read_exact(stream: BinaryIO, n: int) -> Optional[bytes]:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_message(stream: BinaryIO) -> Optional[Any]:
    """The next message from a blocking stream, or None at end of input."""
    header = _read_exact(stream, HEADER.size)
    if header is None:
        return None
    data = _read_exact(stream, HEADER.unpack(header)[0])
    if data is None:
        return None
    return pickle.loads(data)


def _read_exact_by(fd: int, n: int, deadline: float) -> bytes:
    chunks = []
    while n:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise HelperTimeout()
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise HelperClosed()
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_message_by(fd: int, deadline: float) -> Any:
    """The next message from file descriptor ``fd``, waiting until ``deadline`` (``time.monotonic``);
    raises HelperTimeout or HelperClosed."""
    (size,) = HEADER.unpack(_read_exact_by(fd, HEADER.size, deadline))
    return pickle.loads(_read_exact_by(fd, size, deadline))


def unpack_messages(buffer: bytearray) -> List[Any]:
    """Every complete message at the start of ``buffer`` (bytes read so far from a non-blocking
    pipe), removed from it; a partial message stays for the next read."""
    messages = []
    while len(buffer) >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer)
        if len(buffer) < HEADER.size + size:
            break
        messages.append(pickle.loads(bytes(buffer[HEADER.size:HEADER.size + size])))
        del buffer[:HEADER.size + size]
    return messages


def take_stdout() -> BinaryIO:
    """For the helper's side: a stream to the original stdout for replies, with file descriptor 1
    pointed at /dev/null, so that prints from native code (Vela prints) cannot corrupt them."""
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")
    return replies


def start(module: str, args: Sequence[str] = (), stderr: Any = subprocess.PIPE,
          env: Optional[Dict[str, str]] = None, new_session: bool = False) -> subprocess.Popen:
    """Starts ``python -m module args`` with this interpreter, stdin and stdout as pipes.
    ``new_session`` makes it its own process group, so that ``kill(..., group=True)`` also
    reaches whatever it started."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
        env=env, close_fds=True, start_new_session=new_session,
    )


def kill(process: subprocess.Popen, group: bool = False) -> None:
    """SIGKILLs the helper (with its process group if ``group``), closes its pipes and reaps it."""
    if group:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    elif process.poll() is None:
        process.kill()
    reap(process)


def reap(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Closes the helper's pipes and waits for it, killing it if it has not exited by ``timeout``."""
    for stream in (process.stdin, process.stdout, process.stderr):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def signal_name(returncode: int) -> Optional[str]:
    """``"SIGSEGV"`` for a returncode that is a signal (negative, POSIX), None if not a known one."""
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return None
