"""Image classification: MobileNetV2/EfficientNet-style or ResNet-style networks, 32x32 to 224x224."""

from __future__ import annotations

import numpy as np

from ._blocks import (
    ACTIVATIONS,
    MOBILENET_KNOBS,
    MOBILENET_STAGES,
    basic_block,
    choice,
    classifier,
    conv,
    mobilenet_backbone,
)
from ._builder import SpecBuilder
from ._space import SearchSpace

RESOLUTIONS = [32, 48, 64, 96, 128, 160, 192, 224]
NUM_CLASSES = [10, 100, 1000]
STEM_STRIDES = [1, 2]
STAGE_STRIDES = [1, 2]
# Below this size a stage keeps stride 1: halving a 4x4 map buys nothing on any target.
MIN_SIZE_TO_DOWNSAMPLE = 8

RESNET_BASE_WIDTHS = [8, 16, 24, 32, 48, 64]
RESNET_DEPTHS = [1, 2, 3]
RESNET_KERNELS = [3]
RESNET_STEMS = ["conv3x3", "conv7x7_maxpool"]

KNOBS = {
    "block_family": ["inverted_residual", "basic"],
    "resolution": RESOLUTIONS,
    "num_classes": NUM_CLASSES,
    "activation": list(ACTIVATIONS),
    "stem_stride": STEM_STRIDES,
    "inverted_residual.width_multiplier": MOBILENET_KNOBS["width_multiplier"],
    "inverted_residual.stage_depth": MOBILENET_KNOBS["stage_depth"],
    "inverted_residual.kernel": MOBILENET_KNOBS["kernel"],
    "inverted_residual.expansion": MOBILENET_KNOBS["expansion"],
    "inverted_residual.squeeze_excite": MOBILENET_KNOBS["squeeze_excite"],
    "inverted_residual.stage_stride": STAGE_STRIDES,
    "inverted_residual.head_channels": MOBILENET_KNOBS["head_channels"],
    "basic.stem": RESNET_STEMS,
    "basic.base_width": RESNET_BASE_WIDTHS,
    "basic.stage_depth": RESNET_DEPTHS,
    "basic.kernel": RESNET_KERNELS,
}


def _mobilenet_strides(rng: np.random.Generator, size: int) -> list:
    """Strides of MobileNetV2's stages: each stage that downsamples in MobileNetV2 draws 1 or 2,
    down to a minimum feature map size."""
    strides = []
    for _, base_stride, _ in MOBILENET_STAGES:
        stride = choice(rng, STAGE_STRIDES) if base_stride == 2 else 1
        stride = _downsample(size, stride)
        size = -(-size // stride)
        strides.append(stride)
    return strides


def _downsample(size: int, stride: int) -> int:
    """``stride``, or 1 when the feature map is already too small to halve."""
    return stride if size >= MIN_SIZE_TO_DOWNSAMPLE else 1


def _resnet(b: SpecBuilder, x: str, rng: np.random.Generator, act: str, stem_stride: int) -> str:
    """ResNet-18-like: a stem (3x3, or ResNet's 7x7 and 3x3/2 max pool), then four stages of basic
    blocks at 1x, 2x, 4x, 8x the base width, the last three downsampling by 2 while the map is
    large enough."""
    width = choice(rng, RESNET_BASE_WIDTHS)
    kernel = choice(rng, RESNET_KERNELS)
    if choice(rng, RESNET_STEMS) == "conv7x7_maxpool":
        y = conv(b, x, "stem", width, 7, stem_stride, act=act)
        if _downsample(b.shape(y)[1], 2) == 2:
            y = b.add("max_pool2d", y, "stem_pool", pool=3, stride=2, padding="same")
    else:
        y = conv(b, x, "stem", width, 3, stem_stride, act=act)
    for s in range(4):
        for i in range(choice(rng, RESNET_DEPTHS)):
            stride = _downsample(b.shape(y)[1], 2) if s > 0 and i == 0 else 1
            y = basic_block(b, y, f"s{s + 1}b{i + 1}", width * 2**s, kernel, stride, act)
    return y


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one image classifier."""
    resolution = choice(rng, RESOLUTIONS)
    num_classes = choice(rng, NUM_CLASSES)
    act = choice(rng, ACTIVATIONS)
    stem_stride = choice(rng, STEM_STRIDES)
    b = SpecBuilder({"image": [1, resolution, resolution, 3]})
    if choice(rng, KNOBS["block_family"]) == "basic":
        y = _resnet(b, "image", rng, act, stem_stride)
    else:
        strides = _mobilenet_strides(rng, -(-resolution // stem_stride))
        y = mobilenet_backbone(b, "image", rng, act, stem_stride, strides)[-1]
    classifier(b, y, num_classes)
    return b


SPACE = SearchSpace(
    name="image_classification",
    description=(
        "MobileNetV2/EfficientNet-style inverted residual networks (kernel, expansion, width, depth, "
        "squeeze-excite, stride) or ResNet-style basic-block networks, on 32x32 to 224x224 RGB "
        "inputs, with a GAP-dense-softmax classifier"
    ),
    knobs=KNOBS,
    build=build,
    max_macs=400_000_000,  # EfficientNet-B0's 390M; MobileNetV2-1.0 at 224 is 300M
    max_params=10_000_000,
)
