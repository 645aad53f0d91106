"""Super-resolution: ESPCN/FSRCNN/EDSR-style conv stacks with depth-to-space upsampling."""

from __future__ import annotations

import numpy as np

from ._blocks import choice, conv
from ._builder import SpecBuilder
from ._space import SearchSpace

KNOBS = {
    "resolution": [32, 48, 64, 96, 128],
    "scale": [2, 3, 4],
    "features": [8, 12, 16, 24, 32, 48],
    "first_kernel": [3, 5],
    "body_blocks": [0, 1, 2, 3, 4, 5, 6],
    "block_type": ["conv", "residual"],
    "activation": ["relu", "relu6"],
    "global_skip": ["none", "resize_bilinear", "anchor"],
}


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one SR network: a feature-extraction conv, body blocks (conv + act, or EDSR residual
    conv-act-conv + add), a conv to 3*scale^2 channels, and depth-to-space. The optional global
    skip adds the bilinearly resized input (VDSR) or, before depth-to-space, the input repeated
    scale^2 times along channels (the anchor of ABPN, which quantises well)."""
    size, scale = choice(rng, KNOBS["resolution"]), choice(rng, KNOBS["scale"])
    features, act = choice(rng, KNOBS["features"]), choice(rng, KNOBS["activation"])
    first_kernel = choice(rng, KNOBS["first_kernel"])
    blocks, block_type = choice(rng, KNOBS["body_blocks"]), choice(rng, KNOBS["block_type"])
    skip = choice(rng, KNOBS["global_skip"])

    b = SpecBuilder({"lr": [1, size, size, 3]})
    y = conv(b, "lr", "feature", features, first_kernel, act=act)
    for i in range(blocks):
        name = f"body{i + 1}"
        if block_type == "residual":
            r = conv(b, y, f"{name}_conv1", features, 3, act=act)
            r = conv(b, r, f"{name}_conv2", features, 3)
            y = b.add("add", [y, r], f"{name}_add")
        else:
            y = conv(b, y, name, features, 3, act=act)
    y = conv(b, y, "to_subpixels", 3 * scale * scale, 3)
    if skip == "anchor":
        anchor = b.add("concat", ["lr"] * (scale * scale), "anchor", axis=-1)
        y = b.add("add", [y, anchor], "anchor_add")
    y = b.add("depth_to_space", y, "upsample", block_size=scale)
    if skip == "resize_bilinear":
        upscaled = b.add("resize_bilinear", "lr", "lr_upscaled", size=[size * scale, size * scale])
        y = b.add("add", [y, upscaled], "skip_add")
    return b


SPACE = SearchSpace(
    name="super_resolution",
    description=(
        "x2/x3/x4 super-resolution of 32x32 to 128x128 RGB: conv feature extraction, 0-6 plain or "
        "residual conv blocks, sub-pixel conv + depth-to-space, optional global skip"
    ),
    knobs=KNOBS,
    build=build,
    max_macs=500_000_000,
)
