"""A real architecture to try perfsage on before bringing models of one's own.

The example is MLPerf Tiny's keyword-spotting reference network (a DS-CNN after Zhang et al.,
"Hello Edge", 2017), written by perfsage's own writer from its published layer list: a 10x4
stride-2 convolution with 64 filters on 49x10 MFCCs, four depthwise-separable blocks of 64
channels with 3x3 depthwise kernels, average pooling over the 25x5 map, a 12-way dense layer and
softmax. Its weights are seeded random numbers (latency, energy and memory do not depend on their
values), quantised as TensorFlow's converter quantises an int8 model.
"""

from __future__ import annotations

from typing import Any, Dict

from ._writer import build_model
from .spaces.kws import dscnn

__all__ = ["EXAMPLE_NAME", "example_model", "example_spec"]

EXAMPLE_NAME = "mlperftiny-kws-dscnn"

# MLPerf Tiny's KWS reference (mlcommons/tiny, benchmark/training/keyword_spotting): the layer list
# of its DS-CNN, as (filters, depthwise kernel) per separable block.
_FIRST_FILTERS, _FIRST_KERNEL, _FIRST_STRIDE = 64, (10, 4), (2, 2)
_BLOCKS = [(64, 3)] * 4


def example_spec() -> Dict[str, Any]:
    """The example's architecture spec (the format :func:`perfsage.build_model` takes)."""
    spec = dscnn(_FIRST_FILTERS, _FIRST_KERNEL, _FIRST_STRIDE, _BLOCKS).spec()
    return {"name": EXAMPLE_NAME, **{k: v for k, v in spec.items() if k != "name"}}


def example_model(dtype: str = "int8", seed: int = 0) -> bytes:
    """The example as ``.tflite`` bytes (``dtype`` ``"int8"`` or ``"float32"``)."""
    return build_model(example_spec(), seed=seed, dtype=dtype)
