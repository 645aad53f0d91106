"""Framing between the runner and its worker processes: an 8-byte big-endian length, then a pickle.

Pickle is safe here: both ends are this package, talking over a private pipe. Kept apart from
``_worker`` so that importing the runner does not import the worker's entry module, which
``python -m`` then runs.
"""

from __future__ import annotations

import pickle
import struct
from datetime import datetime, timezone
from typing import Any, BinaryIO, Optional

_HEADER = struct.Struct(">Q")


def write_frame(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: BinaryIO) -> Optional[Any]:
    """The next frame, or None at end of input."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def utc_now() -> str:
    """ISO 8601 UTC time to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
