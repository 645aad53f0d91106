"""Object detection: SSDLite heads on a MobileNetV2-style backbone, two outputs (boxes, scores)."""

from __future__ import annotations

import numpy as np

from ._blocks import ACTIVATIONS, MOBILENET_KNOBS, choice, conv, mobilenet_backbone, separable
from ._builder import SpecBuilder
from ._space import SearchSpace

# Index of the backbone's stride-16 stage output (MobileNetV2's 96-channel stage), SSDLite's
# first feature map; the second is the head conv at stride 32.
_STRIDE16_STAGE = 4

KNOBS = {
    "resolution": [64, 80, 96, 128, 160, 192, 224, 256, 320],
    "activation": list(ACTIVATIONS),
    "backbone.width_multiplier": MOBILENET_KNOBS["width_multiplier"],
    "backbone.stage_depth": MOBILENET_KNOBS["stage_depth"],
    "backbone.kernel": MOBILENET_KNOBS["kernel"],
    "backbone.expansion": MOBILENET_KNOBS["expansion"],
    "backbone.squeeze_excite": MOBILENET_KNOBS["squeeze_excite"],
    "backbone.head_channels": MOBILENET_KNOBS["head_channels"],
    "num_feature_maps": [2, 3, 4],
    "extra_channels": [64, 128, 256],
    "anchors_per_location": [3, 6],
    "num_classes": [2, 21, 91],
}


def _extra_layer(b: SpecBuilder, x: str, name: str, channels: int, act: str) -> str:
    """SSDLite's extra feature layer: 1x1 conv to half the width, depthwise 3x3 stride 2, 1x1 conv."""
    y = conv(b, x, f"{name}_reduce", channels // 2, 1, act=act)
    return separable(b, y, name, channels, 3, 2, act=act)


def _head(b: SpecBuilder, x: str, name: str, channels: int, per_anchor: int, act: str) -> str:
    """SSDLite predictor: depthwise 3x3 + act, linear 1x1, reshaped to [1, anchors, per_anchor]."""
    y = separable(b, x, name, channels, 3, act=act, pointwise_act="none")
    return b.add("reshape", y, f"{name}_reshape", shape=[1, -1, per_anchor])


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one SSDLite detector."""
    size, act = choice(rng, KNOBS["resolution"]), choice(rng, KNOBS["activation"])
    b = SpecBuilder({"image": [1, size, size, 3]})
    stages = mobilenet_backbone(b, "image", rng, act)
    maps = [stages[_STRIDE16_STAGE], stages[-1]]
    extra_channels = choice(rng, KNOBS["extra_channels"])
    for i in range(choice(rng, KNOBS["num_feature_maps"]) - 2):
        maps.append(_extra_layer(b, maps[-1], f"extra{i + 1}", extra_channels, act))

    anchors, num_classes = choice(rng, KNOBS["anchors_per_location"]), choice(rng, KNOBS["num_classes"])
    boxes, scores = [], []
    for i, feature in enumerate(maps):
        boxes.append(_head(b, feature, f"box{i + 1}", anchors * 4, 4, act))
        scores.append(_head(b, feature, f"cls{i + 1}", anchors * num_classes, num_classes, act))
    # Raw class logits, as SSD exports leave them: the sigmoid belongs to detection post-processing.
    b.outputs = [b.add("concat", boxes, "boxes", axis=1), b.add("concat", scores, "scores", axis=1)]
    return b


SPACE = SearchSpace(
    name="detection",
    description=(
        "SSDLite on a MobileNetV2-style backbone at 64x64 to 320x320: depthwise-separable box and "
        "class heads on 2-4 feature maps (stride 16, 32, then extra layers), concatenated into two "
        "outputs, boxes [1, N, 4] and class logits [1, N, classes]"
    ),
    knobs=KNOBS,
    build=build,
    max_macs=500_000_000,  # SSDLite-MobileNetV2 at 320x320 is 800M
    max_params=10_000_000,
)
