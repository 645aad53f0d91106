"""Block builders shared by the search spaces.

Each builder appends layers to a :class:`SpecBuilder` and returns the name of its output tensor.
Batch norm is always folded into the preceding convolution's bias, as TensorFlow's converter does,
so "conv-BN-act" is one conv2d layer; every conv has a bias (the converter gives bias-free convs a
zero bias anyway). ReLU and ReLU6 are written as the fused activation of the conv, dense or add;
hard-swish, which TFLite cannot fuse, is a layer of its own.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, TypeVar

import numpy as np

from ._builder import Size, SpecBuilder

T = TypeVar("T")

ACTIVATIONS = ("relu", "relu6", "hard_swish")
_FUSABLE = ("relu", "relu6")


def choice(rng: np.random.Generator, options: Sequence[T]) -> T:
    """One of ``options``, uniformly, keeping its Python type (``rng.choice`` returns numpy
    scalars, which are not JSON-serialisable)."""
    return options[int(rng.integers(len(options)))]


def log_uniform(rng: np.random.Generator, low: int, high: int) -> int:
    """An integer between ``low`` and ``high``, uniform in log space (as many 2-4 as 200-400)."""
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: nearest multiple of ``divisor``, never below 90% of value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def activation(b: SpecBuilder, x: str, name: str, act: str) -> str:
    """A standalone activation layer (``none`` adds nothing). ``swish`` (EfficientNet's x *
    sigmoid(x)) is LOGISTIC then MUL, as TensorFlow's converter writes it."""
    if act == "none":
        return x
    if act == "swish":
        return b.add("mul", [x, b.add("logistic", x, f"{name}_sigmoid")], name)
    return b.add(act, x, name)


def _with_activation(b: SpecBuilder, op: str, x: str, name: str, act: str, **params: object) -> str:
    fused = act in _FUSABLE
    if fused:
        params["activation"] = act
    out = b.add(op, x, name, **params)
    return out if fused else activation(b, out, f"{name}_{act}", act)


def _window_params(kernel: Size, stride: Size) -> dict:
    params: dict = {"kernel": list(kernel) if not isinstance(kernel, int) else kernel}
    if stride != 1:
        params["stride"] = list(stride) if not isinstance(stride, int) else stride
    return params


def conv(
    b: SpecBuilder, x: str, name: str, filters: int, kernel: Size, stride: Size = 1, act: str = "none"
) -> str:
    """conv2d with SAME padding (+BN folded) and an activation."""
    return _with_activation(b, "conv2d", x, name, act, filters=filters, **_window_params(kernel, stride))


def depthwise(b: SpecBuilder, x: str, name: str, kernel: Size, stride: Size = 1, act: str = "none") -> str:
    """depthwise_conv2d with SAME padding (+BN folded) and an activation."""
    return _with_activation(b, "depthwise_conv2d", x, name, act, **_window_params(kernel, stride))


def dense(b: SpecBuilder, x: str, name: str, units: int, act: str = "none") -> str:
    """A fully connected layer on the last dimension and an activation."""
    return _with_activation(b, "dense", x, name, act, units=units)


def squeeze_excite(b: SpecBuilder, x: str, name: str, reduced: int) -> str:
    """Squeeze-and-excite: GAP -> 1x1 conv + ReLU -> 1x1 conv -> logistic -> scale ``x``."""
    s = b.add("global_avg_pool", x, f"{name}_squeeze")
    s = conv(b, s, f"{name}_reduce", reduced, 1, act="relu")
    s = conv(b, s, f"{name}_expand", b.channels(x), 1)
    s = b.add("logistic", s, f"{name}_gate")
    return b.add("mul", [x, s], f"{name}_scale")


def inverted_residual(
    b: SpecBuilder,
    x: str,
    name: str,
    out_channels: int,
    kernel: int,
    expansion: int,
    stride: int,
    se: bool,
    act: str,
) -> str:
    """MobileNetV2/V3 block: 1x1 expand (skipped at expansion 1) -> depthwise kxk -> optional SE
    (reduced to a quarter of the expanded width, as MobileNetV3) -> linear 1x1 project, with an
    identity shortcut when the shape is unchanged."""
    in_channels = b.channels(x)
    hidden = in_channels * expansion
    y = x if expansion == 1 else conv(b, x, f"{name}_expand", hidden, 1, act=act)
    y = depthwise(b, y, f"{name}_dw", kernel, stride, act=act)
    if se:
        y = squeeze_excite(b, y, f"{name}_se", make_divisible(hidden / 4))
    y = conv(b, y, f"{name}_project", out_channels, 1)
    if stride == 1 and in_channels == out_channels:
        y = b.add("add", [x, y], f"{name}_add")
    return y


def basic_block(
    b: SpecBuilder, x: str, name: str, out_channels: int, kernel: int, stride: int, act: str
) -> str:
    """ResNet basic block: conv kxk (stride) + act -> conv kxk, plus the input (through a 1x1
    projection when the shape changes), then the activation."""
    y = conv(b, x, f"{name}_conv1", out_channels, kernel, stride, act=act)
    y = conv(b, y, f"{name}_conv2", out_channels, kernel)
    shortcut = x
    if stride != 1 or b.channels(x) != out_channels:
        shortcut = conv(b, x, f"{name}_shortcut", out_channels, 1, stride)
    fused = act in _FUSABLE
    y = b.add("add", [shortcut, y], f"{name}_add", **({"activation": act} if fused else {}))
    return y if fused else activation(b, y, f"{name}_{act}", act)


def separable(
    b: SpecBuilder,
    x: str,
    name: str,
    out_channels: int,
    kernel: Size = 3,
    stride: Size = 1,
    act: str = "relu",
    pointwise_act: Optional[str] = None,
) -> str:
    """Depthwise-separable conv: depthwise kxk + act -> pointwise 1x1 + ``pointwise_act``
    (default: ``act``)."""
    y = depthwise(b, x, f"{name}_dw", kernel, stride, act=act)
    return conv(b, y, f"{name}_pw", out_channels, 1, act=act if pointwise_act is None else pointwise_act)


def classifier(b: SpecBuilder, x: str, num_classes: int, softmax: bool = True) -> str:
    """Global average pool (MEAN over H, W, as Keras's GlobalAveragePooling2D converts) -> dense
    -> softmax."""
    y = b.add("mean", x, "pool", axes=[1, 2], keep_dims=False)
    y = dense(b, y, "logits", num_classes)
    return b.add("softmax", y, "probs") if softmax else y


# MobileNetV2's stages: (base output channels, base stride, whether the depth is searched).
# The first and last stages hold one block, as in MobileNetV2.
MOBILENET_STAGES = (
    (16, 1, False),
    (24, 2, True),
    (32, 2, True),
    (64, 2, True),
    (96, 1, True),
    (160, 2, True),
    (320, 1, False),
)
MOBILENET_KNOBS = {
    "width_multiplier": [0.25, 0.35, 0.5, 0.75, 1.0, 1.4],
    "stage_depth": [1, 2, 3, 4],
    "kernel": [3, 5, 7],
    "expansion": [1, 3, 4, 6],
    "squeeze_excite": [False, True],
    "head_channels": [0, 512, 1024, 1280],  # 0: no head conv
}


def mobilenet_backbone(
    b: SpecBuilder,
    x: str,
    rng: np.random.Generator,
    act: str,
    stem_stride: int = 2,
    stage_strides: Sequence[int] = tuple(s for _, s, _ in MOBILENET_STAGES),
) -> List[str]:
    """Samples and builds a MobileNetV2-like network: a 3x3 stem, the seven stages of
    :data:`MOBILENET_STAGES` and a 1x1 head conv (or none). The width multiplier is drawn per
    network; depth, kernel, expansion and SE per stage, as in MnasNet's factorised hierarchical
    space (per-block draws would average out and bunch the samples' MACs together). Returns the
    output of every stage, then the head's."""
    width = choice(rng, MOBILENET_KNOBS["width_multiplier"])
    y = conv(b, x, "stem", make_divisible(32 * width), 3, stem_stride, act=act)
    outputs = []
    for s, ((channels, _, searched), stride) in enumerate(zip(MOBILENET_STAGES, stage_strides)):
        depth = choice(rng, MOBILENET_KNOBS["stage_depth"]) if searched else 1
        kernel = choice(rng, MOBILENET_KNOBS["kernel"])
        expansion = choice(rng, MOBILENET_KNOBS["expansion"])
        se = choice(rng, MOBILENET_KNOBS["squeeze_excite"])
        for i in range(depth):
            y = inverted_residual(
                b,
                y,
                f"s{s + 1}b{i + 1}",
                make_divisible(channels * width),
                kernel,
                expansion,
                stride=stride if i == 0 else 1,
                se=se,
                act=act,
            )
        outputs.append(y)
    head_channels = choice(rng, MOBILENET_KNOBS["head_channels"])
    outputs.append(conv(b, y, "head", head_channels, 1, act=act) if head_channels else y)
    return outputs


# A GRU state's magnitude: a convex mix of candidates in [-1, 1] (tanh), or of ReLU candidates,
# which trained RNNoise-style models keep within a few units.
GRU_STATE_BOUND = {"tanh": 1.0, "relu": 4.0}


def gru(
    b: SpecBuilder,
    x: str,
    name: str,
    units: int,
    return_sequences: bool = True,
    act: str = "tanh",
    state: Optional[str] = None,
) -> Tuple[str, str]:
    """Keras GRU (``reset_after``, TF2's default) on ``x`` [1, T, F], unrolled over the T steps as
    TensorFlow's converter lowers it: the frames unpacked, each projected by one FULLY_CONNECTED
    whose weights all steps share, and per step a shared recurrent FULLY_CONNECTED, the input
    projection SPLIT and the recurrent one SPLIT_V into the update, reset and candidate parts, then

    .. math::
        z = \\sigma(x_z + h_z), \\quad r = \\sigma(x_r + h_r), \\quad
        \\tilde h = \\mathrm{act}(x_h + r \\odot h_h), \\quad h' = \\tilde h + z \\odot (h - \\tilde h)

    (ADD, LOGISTIC, MUL, TANH or a fused ReLU, SUB). Without ``state`` the first step starts from
    zeros, which the converter folds away: :math:`h_1 = \\tilde h - z \\odot \\tilde h` with no
    recurrent product. With ``state`` (a [1, units] tensor: a streaming model's saved state) every
    step has it. Returns the output ([1, T, units] stacked by PACK, or the last step's [1, units])
    and the last state."""
    _, steps, _ = b.shape(x)
    bound = GRU_STATE_BOUND[act]
    if state is not None and act != "tanh":
        # The recurrent weights are shared by all steps, so their int8 input scale must be the
        # saved state's, which spec inputs hold in [-1, 1].
        raise ValueError(f"gru {name!r}: a given state needs the tanh candidate")
    frames = b.add("unpack", x, f"{name}_frames", axis=1)
    inputs = [frames] + [f"{frames}:{t}" for t in range(1, steps)]
    projected = [b.add("dense", frame, f"{name}_x{t}", units=3 * units,
                       **({"weights_of": f"{name}_x0"} if t else {})) for t, frame in enumerate(inputs)]
    h, outputs, recurrent_owner = state, [], None
    candidate_act = {"activation": "relu"} if act == "relu" else {}
    for t, xp in enumerate(projected):
        step = f"{name}_t{t}"
        xs = b.add("split", xp, f"{step}_xsplit", num_splits=3)
        x_z, x_r, x_h = xs, f"{xs}:1", f"{xs}:2"
        if h is None:
            z = b.add("logistic", x_z, f"{step}_z")
            pre = x_h
        else:
            hp = b.add("dense", h, f"{step}_recurrent", units=3 * units,
                       **({"weights_of": recurrent_owner} if recurrent_owner else {}))
            recurrent_owner = recurrent_owner or hp
            hs = b.add("split_v", hp, f"{step}_hsplit", sizes=[units] * 3)
            h_z, h_r, h_h = hs, f"{hs}:1", f"{hs}:2"
            z = b.add("logistic", b.add("add", [x_z, h_z], f"{step}_zsum"), f"{step}_z")
            r = b.add("logistic", b.add("add", [x_r, h_r], f"{step}_rsum"), f"{step}_r")
            pre = b.add("add", [x_h, b.add("mul", [r, h_h], f"{step}_reset")], f"{step}_hsum", **candidate_act)
        if act == "tanh":
            candidate = b.add("tanh", pre, f"{step}_candidate")
        else:
            candidate = pre if h is not None else b.add("relu", pre, f"{step}_candidate")
        if h is None:
            keep = b.add("mul", [z, candidate], f"{step}_keep", bound=bound)
            h = b.add("sub", [candidate, keep], f"{step}_h", bound=bound)
        else:
            change = b.add("sub", [h, candidate], f"{step}_change", bound=2 * bound)
            h = b.add("add", [candidate, b.add("mul", [z, change], f"{step}_keep", bound=2 * bound)], f"{step}_h",
                      bound=bound)
        outputs.append(h)
    if not return_sequences:
        return h, h
    if len(outputs) == 1:
        return b.add("expand_dims", h, f"{name}_sequence", axis=1), h
    return b.add("pack", outputs, f"{name}_sequence", axis=1), h
