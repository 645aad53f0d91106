"""Keyword spotting: DS-CNN (Hello Edge; MLPerf Tiny's KWS model) on 49x10 MFCC features."""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ._blocks import choice, classifier, conv, dense, separable
from ._builder import SpecBuilder
from ._space import SearchSpace

INPUT_SHAPE = [1, 49, 10, 1]  # 49 frames x 10 MFCCs
NUM_CLASSES = 12  # Google Speech Commands: 10 words, silence, unknown

KNOBS = {
    "first_filters": [24, 32, 48, 64, 96, 128, 172, 276],
    "first_kernel": [[10, 4], [8, 4], [5, 3], [3, 3]],
    "first_stride": [[2, 2], [2, 1], [1, 1]],
    "num_blocks": [1, 2, 3, 4, 5, 6],
    "block_filters": [24, 32, 48, 64, 96, 128, 172, 276],
    "block_kernel": [3, 5],
}


def dscnn(
    first_filters: int,
    first_kernel: Sequence[int],
    first_stride: Sequence[int],
    blocks: Sequence[Tuple[int, int]],
) -> SpecBuilder:
    """One DS-CNN: conv (+ReLU) -> one [depthwise + ReLU, pointwise + ReLU] per ``(filters,
    depthwise kernel)`` in ``blocks`` -> average pool over the whole map -> flatten -> dense 12 ->
    softmax."""
    b = SpecBuilder({"mfcc": INPUT_SHAPE})
    y = conv(b, "mfcc", "conv1", first_filters, list(first_kernel), list(first_stride), act="relu")
    for i, (filters, kernel) in enumerate(blocks):
        y = separable(b, y, f"ds{i + 1}", filters, kernel)
    _, h, w, c = b.shape(y)
    # As MLPerf Tiny's DS-CNN: AveragePooling2D over the map, Flatten, Dense.
    y = b.add("avg_pool2d", y, "pool", pool=[h, w])
    y = b.add("reshape", y, "flatten", shape=[1, c])
    y = dense(b, y, "logits", NUM_CLASSES)
    b.add("softmax", y, "probs")
    return b


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one DS-CNN (see :func:`dscnn`) from the knobs."""
    first_filters = choice(rng, KNOBS["first_filters"])
    first_kernel = choice(rng, KNOBS["first_kernel"])
    first_stride = choice(rng, KNOBS["first_stride"])
    blocks = [(choice(rng, KNOBS["block_filters"]), choice(rng, KNOBS["block_kernel"]))
              for _ in range(choice(rng, KNOBS["num_blocks"]))]
    return dscnn(first_filters, first_kernel, first_stride, blocks)


SPACE = SearchSpace(
    name="kws",
    description=(
        "DS-CNN keyword spotting on 1x49x10x1 MFCCs: a first conv (kernel, stride, filters), 1-6 "
        "depthwise-separable blocks (filters, depthwise kernel), average pool, dense 12, softmax"
    ),
    knobs=KNOBS,
    build=build,
    max_macs=60_000_000,
)
