"""MobileNetV3 and EfficientNet families: inverted residuals with hard-swish or swish, squeeze-excite.

The two families the paper spaces lack most: MobileNetV3's hard-swish blocks with squeeze-excite
in its later stages and a hard-swish head (Howard et al., 2019, Table 1 for MobileNetV3-Large),
and EfficientNet's swish (LOGISTIC x MUL) blocks with squeeze-excite everywhere (Tan and Le, 2019,
Table 1 for B0; width and depth coefficients of B0-B3 from the paper's compound scaling).
"""

from __future__ import annotations

import math

import numpy as np

from ._blocks import activation, choice, conv, dense, depthwise, make_divisible, squeeze_excite
from ._builder import SpecBuilder
from ._space import SearchSpace

# MobileNetV3-Large's stages after the stem: (kernel, expansion, channels, squeeze-excite,
# activation, stride, blocks), the table's consecutive rows of one shape grouped into a stage.
V3_STAGES = (
    (3, 1, 16, False, "relu", 1, 1),
    (3, 4, 24, False, "relu", 2, 2),
    (5, 3, 40, True, "relu", 2, 3),
    (3, 6, 80, False, "hard_swish", 2, 4),
    (3, 6, 112, True, "hard_swish", 1, 2),
    (5, 6, 160, True, "hard_swish", 2, 3),
)
# EfficientNet-B0's stages: (kernel, expansion, channels, stride, blocks).
B0_STAGES = ((3, 1, 16, 1, 1), (3, 6, 24, 2, 2), (5, 6, 40, 2, 2), (3, 6, 80, 2, 3), (5, 6, 112, 1, 3),
             (5, 6, 192, 2, 4), (3, 6, 320, 1, 1))
# (width, depth) coefficients of EfficientNet-B0..B3.
EFFICIENTNET_SCALING = ((1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4))

KNOBS = {
    "family": ["mobilenet_v3", "efficientnet"],
    "resolution": [64, 96, 128, 160, 192, 224],
    "num_classes": [10, 100, 1000],
    "mobilenet_v3.width_multiplier": [0.35, 0.5, 0.75, 1.0, 1.25],
    "mobilenet_v3.stage_kernel": "the table's, or the other of 3 and 5",
    "mobilenet_v3.stage_depth": "the table's, minus one to plus one block",
    "efficientnet.scaling": ["b0", "b1", "b2", "b3"],
    "efficientnet.stage_expansion": [4, 6],
}
# Below this size a stage keeps stride 1.
MIN_SIZE_TO_DOWNSAMPLE = 8


def _block(b: SpecBuilder, x: str, name: str, out: int, kernel: int, expansion: int, stride: int, se: bool,
           act: str) -> str:
    """Expand 1x1 -> depthwise -> (SE, reduced to a quarter of the expanded width) -> project 1x1,
    with an identity shortcut when the shape is unchanged; ``act`` may be a standalone one."""
    c = b.channels(x)
    y = x
    if expansion != 1:
        y = activation(b, conv(b, x, f"{name}_expand", c * expansion, 1), f"{name}_expand_{act}", act)
    y = activation(b, depthwise(b, y, f"{name}_dw", kernel, stride), f"{name}_dw_{act}", act)
    if se:
        y = squeeze_excite(b, y, f"{name}_se", make_divisible(c * expansion / 4))
    y = conv(b, y, f"{name}_project", out, 1)
    return b.add("add", [x, y], f"{name}_add") if stride == 1 and c == out else y


def _stride(b: SpecBuilder, x: str, stride: int) -> int:
    return stride if b.shape(x)[1] >= MIN_SIZE_TO_DOWNSAMPLE else 1


def _mobilenet_v3(b: SpecBuilder, x: str, rng: np.random.Generator, num_classes: int) -> None:
    width = choice(rng, KNOBS["mobilenet_v3.width_multiplier"])
    y = activation(b, conv(b, x, "stem", make_divisible(16 * width), 3, _stride(b, x, 2)), "stem_hs", "hard_swish")
    for s, (kernel, expansion, channels, se, act, stride, blocks) in enumerate(V3_STAGES):
        kernel = kernel if rng.random() < 0.5 else 8 - kernel
        depth = max(1, blocks + int(rng.integers(-1, 2)))
        for i in range(depth):
            y = _block(b, y, f"s{s + 1}b{i + 1}", make_divisible(channels * width), kernel, expansion,
                       _stride(b, y, stride) if i == 0 else 1, se, act)
    y = activation(b, conv(b, y, "head", make_divisible(960 * width), 1), "head_hs", "hard_swish")
    y = b.add("mean", y, "pool", axes=[1, 2], keep_dims=False)
    y = activation(b, dense(b, y, "features", 1280), "features_hs", "hard_swish")
    b.add("softmax", dense(b, y, "logits", num_classes), "probs")


def _efficientnet(b: SpecBuilder, x: str, rng: np.random.Generator, num_classes: int) -> None:
    width, depth = EFFICIENTNET_SCALING[KNOBS["efficientnet.scaling"].index(choice(rng, KNOBS["efficientnet.scaling"]))]
    y = activation(b, conv(b, x, "stem", make_divisible(32 * width), 3, _stride(b, x, 2)), "stem_swish", "swish")
    for s, (kernel, expansion, channels, stride, blocks) in enumerate(B0_STAGES):
        if expansion != 1:
            expansion = choice(rng, KNOBS["efficientnet.stage_expansion"])
        for i in range(int(math.ceil(blocks * depth))):
            y = _block(b, y, f"s{s + 1}b{i + 1}", make_divisible(channels * width), kernel, expansion,
                       _stride(b, y, stride) if i == 0 else 1, True, "swish")
    y = activation(b, conv(b, y, "head", make_divisible(1280 * width), 1), "head_swish", "swish")
    y = b.add("mean", y, "pool", axes=[1, 2], keep_dims=False)
    b.add("softmax", dense(b, y, "logits", num_classes), "probs")


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one MobileNetV3-Large-like or EfficientNet-B0..B3-like classifier."""
    family = choice(rng, KNOBS["family"])
    resolution = choice(rng, KNOBS["resolution"])
    num_classes = choice(rng, KNOBS["num_classes"])
    b = SpecBuilder({"image": [1, resolution, resolution, 3]})
    (_mobilenet_v3 if family == "mobilenet_v3" else _efficientnet)(b, "image", rng, num_classes)
    return b


SPACE = SearchSpace(
    name="mobile_v3",
    description=(
        "MobileNetV3-Large-like (hard-swish, squeeze-excite, width 0.35-1.25, per-stage kernel and depth) "
        "and EfficientNet-B0..B3-like (swish as LOGISTIC x MUL, squeeze-excite) classifiers on 64x64 to "
        "224x224 RGB"
    ),
    knobs=KNOBS,
    build=build,
    max_macs=700_000_000,
    max_params=14_000_000,
)
