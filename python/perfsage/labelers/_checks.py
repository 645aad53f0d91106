"""Checks shared by the labellers."""

from __future__ import annotations

from .._graphs import load_tflite
from ._base import LabelError


def verify_tflite(model: bytes) -> None:
    """Refuses bytes that are not a verifiable TFLite flatbuffer before a tool sees them: Vela's
    C++ core segfaults on a truncated model and LiteRT may abort, and a crash explains nothing.
    Uses perfsage's own reader, which runs the flatbuffers verifier."""
    if not isinstance(model, (bytes, bytearray, memoryview)):
        raise TypeError(f"model must be TFLite bytes, got {type(model).__name__}")
    try:
        load_tflite(bytes(model))
    except Exception as exc:
        raise LabelError(f"model is not a valid TFLite flatbuffer ({len(model)} bytes): {exc}") from exc
