"""CNN families the paper spaces lack: ResNet-50 bottlenecks, DenseNet, Inception-style cells,
U-Net encoder-decoders, and networks laid out as PyTorch exports them.

* ``bottleneck``: ResNet-50-style stages of 1x1-3x3-1x1 bottleneck blocks with 4x expansion and
  projection shortcuts, after a 7x7 stem and max pool (He et al., 2016).
* ``densenet``: dense blocks whose layers (1x1 to 4x the growth rate, then 3x3 to the growth rate)
  see the concatenation of all earlier outputs, with 1x1 + average-pool transitions halving the
  channels (Huang et al., 2017).
* ``inception``: cells of four branches (1x1; 1x1-3x3; 1x1-3x3-3x3; 3x3 max pool-1x1) joined by a
  concatenation, with stride-2 reduction cells between stages (Szegedy et al., 2016).
* ``unet``: a U-Net (Ronneberger et al., 2015) for segmentation or denoising: conv pairs and max
  pools down, TRANSPOSE_CONV (or nearest resize + conv) up, skip concatenations across.
* ``torch_layout``: a ResNet-18-like network as a PyTorch model reaches TFLite: an NCHW input
  transposed to NHWC, explicit PAD before VALID convolutions and pools, and a transpose back to
  NCHW before the flatten that feeds the classifier.
"""

from __future__ import annotations

from typing import List

import numpy as np

from ._blocks import choice, classifier, conv
from ._builder import SpecBuilder
from ._space import SearchSpace

FAMILIES = ["bottleneck", "densenet", "inception", "unet", "torch_layout"]
KNOBS = {
    "family": FAMILIES,
    "resolution": [32, 64, 96, 128, 160, 224],
    "num_classes": [10, 100, 1000],
    "bottleneck.base_width": [8, 16, 32, 64],
    "bottleneck.stage_depth": [1, 2, 3, 4, 6],
    "densenet.growth": [8, 12, 16, 24, 32],
    "densenet.block_layers": [2, 4, 6, 8],
    "densenet.blocks": [2, 3, 4],
    "inception.base_width": [8, 16, 24, 32],
    "inception.cells_per_stage": [1, 2, 3],
    "unet.levels": [2, 3, 4],
    "unet.base_filters": [8, 16, 24, 32],
    "unet.input_channels": [1, 3],
    "unet.output_channels": [1, 2, 4, 8],
    "unet.upsampling": ["transpose_conv", "resize_nearest"],
    "torch_layout.base_width": [16, 32, 64],
    "torch_layout.stage_depth": [1, 2],
}
MIN_SIZE_TO_DOWNSAMPLE = 8


def _halve(b: SpecBuilder, x: str) -> int:
    return 2 if b.shape(x)[1] >= MIN_SIZE_TO_DOWNSAMPLE else 1


def _bottleneck(b: SpecBuilder, rng: np.random.Generator, x: str) -> str:
    width = choice(rng, KNOBS["bottleneck.base_width"])
    y = conv(b, x, "stem", width, 7, _halve(b, x), act="relu")
    if _halve(b, y) == 2:
        y = b.add("max_pool2d", y, "stem_pool", pool=3, stride=2, padding="same")
    for s in range(4):
        mid = width * 2**s
        for i in range(choice(rng, KNOBS["bottleneck.stage_depth"])):
            name, stride = f"s{s + 1}b{i + 1}", (_halve(b, y) if s > 0 and i == 0 else 1)
            r = conv(b, y, f"{name}_reduce", mid, 1, act="relu")
            r = conv(b, r, f"{name}_conv", mid, 3, stride, act="relu")
            r = conv(b, r, f"{name}_expand", 4 * mid, 1)
            shortcut = y if stride == 1 and b.channels(y) == 4 * mid else conv(b, y, f"{name}_proj", 4 * mid, 1, stride)
            y = b.add("add", [shortcut, r], f"{name}_add", activation="relu")
    return y


def _densenet(b: SpecBuilder, rng: np.random.Generator, x: str) -> str:
    growth = choice(rng, KNOBS["densenet.growth"])
    y = conv(b, x, "stem", 2 * growth, 3, _halve(b, x), act="relu")
    blocks = choice(rng, KNOBS["densenet.blocks"])
    for k in range(blocks):
        features: List[str] = [y]
        for i in range(choice(rng, KNOBS["densenet.block_layers"])):
            name = f"d{k + 1}l{i + 1}"
            joined = features[0] if len(features) == 1 else b.add("concat", features, f"{name}_in", axis=-1)
            z = conv(b, joined, f"{name}_bottleneck", 4 * growth, 1, act="relu")
            features.append(conv(b, z, f"{name}_conv", growth, 3, act="relu"))
        y = b.add("concat", features, f"d{k + 1}_out", axis=-1)
        if k + 1 < blocks:
            y = conv(b, y, f"t{k + 1}_conv", max(growth, b.channels(y) // 2), 1, act="relu")
            if _halve(b, y) == 2:
                y = b.add("avg_pool2d", y, f"t{k + 1}_pool", pool=2)
    return y


def _inception_cell(b: SpecBuilder, x: str, name: str, width: int, stride: int) -> str:
    branches = [
        conv(b, x, f"{name}_1x1", width, 1, stride, act="relu"),
        conv(b, conv(b, x, f"{name}_3x3r", width, 1, act="relu"), f"{name}_3x3", width, 3, stride, act="relu"),
    ]
    d = conv(b, x, f"{name}_dblr", width // 2 or 1, 1, act="relu")
    d = conv(b, d, f"{name}_dbl1", width, 3, act="relu")
    branches.append(conv(b, d, f"{name}_dbl2", width, 3, stride, act="relu"))
    pool = b.add("max_pool2d", x, f"{name}_pool", pool=3, stride=stride, padding="same")
    branches.append(conv(b, pool, f"{name}_poolproj", width, 1, act="relu"))
    return b.add("concat", branches, f"{name}_out", axis=-1)


def _inception(b: SpecBuilder, rng: np.random.Generator, x: str) -> str:
    width = choice(rng, KNOBS["inception.base_width"])
    y = conv(b, x, "stem", 2 * width, 3, _halve(b, x), act="relu")
    for s in range(3):
        for i in range(choice(rng, KNOBS["inception.cells_per_stage"])):
            y = _inception_cell(b, y, f"s{s + 1}c{i + 1}", width * 2**s, 1)
        if s < 2:
            y = _inception_cell(b, y, f"r{s + 1}", width * 2**s, _halve(b, y))
    return y


def _unet(rng: np.random.Generator, size: int) -> SpecBuilder:
    levels = choice(rng, KNOBS["unet.levels"])
    while size % 2**levels:
        size += 1  # every pooling halves the map exactly, so the skips line up
    filters = choice(rng, KNOBS["unet.base_filters"])
    upsampling = choice(rng, KNOBS["unet.upsampling"])
    out_channels = choice(rng, KNOBS["unet.output_channels"])
    b = SpecBuilder({"image": [1, size, size, choice(rng, KNOBS["unet.input_channels"])]})
    y, skips = "image", []
    for level in range(levels):
        f = filters * 2**level
        y = conv(b, conv(b, y, f"down{level}_a", f, 3, act="relu"), f"down{level}_b", f, 3, act="relu")
        skips.append(y)
        y = b.add("max_pool2d", y, f"down{level}_pool", pool=2)
    f = filters * 2**levels
    y = conv(b, conv(b, y, "bottom_a", f, 3, act="relu"), "bottom_b", f, 3, act="relu")
    for level in reversed(range(levels)):
        f = filters * 2**level
        if upsampling == "transpose_conv":
            y = b.add("transpose_conv2d", y, f"up{level}_tconv", filters=f, kernel=2, stride=2)
        else:
            _, h, w, _ = b.shape(y)
            y = conv(b, b.add("resize_nearest", y, f"up{level}_resize", size=[2 * h, 2 * w]), f"up{level}_conv", f, 3)
        y = b.add("concat", [skips[level], y], f"up{level}_cat", axis=-1)
        y = conv(b, conv(b, y, f"up{level}_a", f, 3, act="relu"), f"up{level}_b", f, 3, act="relu")
    conv(b, y, "output", out_channels, 1)
    return b


def _torch_conv(b: SpecBuilder, x: str, name: str, filters: int, kernel: int, stride: int, act: str = "none") -> str:
    """A PyTorch conv with padding kernel // 2: an explicit PAD, then a VALID convolution."""
    pad = kernel // 2
    if pad:
        x = b.add("pad", x, f"{name}_pad", paddings=[[0, 0], [pad, pad], [pad, pad], [0, 0]])
    params = {"activation": act} if act != "none" else {}
    return b.add("conv2d", x, name, filters=filters, kernel=kernel, stride=stride, padding="valid", **params)


def _torch_layout(rng: np.random.Generator, size: int, num_classes: int) -> SpecBuilder:
    b = SpecBuilder({"image_nchw": [1, 3, size, size]})
    y = b.add("transpose", "image_nchw", "to_nhwc", perm=[0, 2, 3, 1])
    width = choice(rng, KNOBS["torch_layout.base_width"])
    y = _torch_conv(b, y, "stem", width, 7, _halve(b, y), act="relu")
    if _halve(b, y) == 2:
        y = b.add("pad", y, "stem_pool_pad", paddings=[[0, 0], [1, 1], [1, 1], [0, 0]])
        y = b.add("max_pool2d", y, "stem_pool", pool=3, stride=2)
    for s in range(4):
        for i in range(choice(rng, KNOBS["torch_layout.stage_depth"])):
            name, stride = f"s{s + 1}b{i + 1}", (_halve(b, y) if s > 0 and i == 0 else 1)
            r = _torch_conv(b, y, f"{name}_conv1", width * 2**s, 3, stride, act="relu")
            r = _torch_conv(b, r, f"{name}_conv2", width * 2**s, 3, 1)
            shortcut = y if stride == 1 and b.channels(y) == width * 2**s else \
                _torch_conv(b, y, f"{name}_down", width * 2**s, 1, stride)
            y = b.add("add", [shortcut, r], f"{name}_add", activation="relu")
    y = b.add("mean", y, "pool", axes=[1, 2], keep_dims=True)
    y = b.add("transpose", y, "to_nchw", perm=[0, 3, 1, 2])
    y = b.add("reshape", y, "flatten", shape=[1, -1])
    b.add("dense", y, "fc", units=num_classes)
    return b


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one network of one of :data:`FAMILIES`."""
    family = choice(rng, FAMILIES)
    size = choice(rng, KNOBS["resolution"])
    num_classes = choice(rng, KNOBS["num_classes"])
    if family == "unet":
        return _unet(rng, size)
    if family == "torch_layout":
        return _torch_layout(rng, size, num_classes)
    b = SpecBuilder({"image": [1, size, size, 3]})
    y = {"bottleneck": _bottleneck, "densenet": _densenet, "inception": _inception}[family](b, rng, "image")
    classifier(b, y, num_classes)
    return b


SPACE = SearchSpace(
    name="cnn_families",
    description=(
        "ResNet-50-style bottleneck networks, DenseNets, Inception-style multi-branch cells, U-Nets with "
        "TRANSPOSE_CONV or resize upsampling, and ResNets laid out as PyTorch exports them (NCHW input, "
        "TRANSPOSE, explicit PAD), 32x32 to 224x224"
    ),
    knobs=KNOBS,
    build=build,
    max_macs=700_000_000,
    max_params=14_000_000,
)
