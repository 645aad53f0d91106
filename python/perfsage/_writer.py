"""Writing TFLite models from architecture specs."""

from __future__ import annotations

import json
from typing import Any, Mapping, Union

from . import _core
from .spaces import nb201_spec

Spec = Union[Mapping[str, Any], str]

# What build_model writes: full-integer int8 as TensorFlow's converter emits it, float32, and 16x8
# (int16 activations, int8 weights, as audio models use).
DTYPES = ("int8", "float32", "int16x8")


def build_model(spec: Spec, seed: int = 0, dtype: str = "int8") -> bytes:
    """Builds a valid ``.tflite`` model from an architecture spec.

    ``spec`` is a dict (or its JSON text) in the format of ``cpp/include/perfsage/spec.h``: inputs,
    layers in execution order, outputs. ``dtype`` is ``"int8"`` (full-integer, as TensorFlow's
    converter emits it), ``"float32"`` or ``"int16x8"`` (int16 activations with zero point 0, int8
    per-channel weights, int64 biases, as the converter writes with
    ``EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8``; a layer LiteRT has no 16x8
    kernel for raises :class:`PerfSageError` naming it). Weights come from ``seed``: the same
    spec, seed and dtype give identical bytes. An invalid spec raises :class:`PerfSageError`
    naming the layer.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
    text = spec if isinstance(spec, str) else json.dumps(spec, separators=(",", ":"))
    return _core.build_model(text, seed, dtype)


def strip_weights(model: Union[bytes, bytearray, memoryview]) -> bytes:
    """A copy of TFLite bytes with every constant buffer emptied but all shapes kept.

    The result is a valid TFLite file of a few KB that perfsage reads to exactly the same
    features as the original, which is what a dataset needs to store. Runtimes cannot run it.
    """
    return _core.strip_weights(model)


def nb201_model(arch_str: str, dtype: str = "float32", seed: int = 0, executed: bool = False) -> bytes:
    """The NAS-Bench-201 CIFAR-10 network for a cell string, as TFLite bytes.

    The skeleton is the one the measured latencies in shared/data/nasbench201 belong to. By
    default ``none`` edges are pruned and cell nodes that do not connect input to output are
    removed; ``executed=True`` keeps every edge, as NAS-Bench-201's PyTorch code runs the network
    (see ``perfsage.spaces.nb201``).
    """
    return build_model(nb201_spec(arch_str, executed), seed=seed, dtype=dtype)
