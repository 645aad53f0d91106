"""Editing TFLite bytes in place, for tests of what a reader makes of odd files."""

from __future__ import annotations

import struct


def name_offset(data: bytes, name: str) -> int:
    """Where the bytes of tensor name ``name`` start: a flatbuffer string is a little-endian
    length, the bytes and a NUL, and the test needs the one copy."""
    needle = struct.pack("<I", len(name)) + name.encode() + b"\0"
    assert data.count(needle) == 1, name
    return data.index(needle) + 4


def with_byte(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


def bad_name_model(data: bytes, name: str, index: int = 5) -> bytes:
    """``data`` with byte ``index`` of tensor name ``name`` set to 0xB7, a stray UTF-8 continuation byte."""
    return with_byte(data, name_offset(data, name) + index, b"\xb7")
