"""Motifs: the blocks real models repeat, one to four in a row, each at sizes drawn anew.

The architecture spaces show each block only at the sizes and next to the neighbours of its own
family (attention only inside 16-128 token encoders, one-channel inputs only in keyword spotters),
and the operator zoo shows operators alone or in short random chains. Real models sit between the
two: a grayscale or spectrogram stem, a depthwise-separable stack on a 96x96 image, an attention
block at a width no encoder space draws. A motif sample strings together blocks from this list,
each with its own sizes, so that a predictor prices every block after neighbours and at sizes its
own family never gives it:

- ``stem``: the first layer on a one- to three-channel image or spectrogram, strided, with a kernel
  up to 10x8 (audio front-ends use tall non-square ones). On one channel it is usually the
  DEPTHWISE_CONV_2D with a depth multiplier equal to the filter count that TensorFlow's converter
  writes for a convolution of a one-channel input (the only depth multiplier above 1 that Vela
  runs on the NPU).
- ``separable``: MobileNetV1 pairs (depthwise kxk, pointwise 1x1).
- ``inverted_residual``: MobileNetV2/V3 and EfficientNet blocks, squeeze-excite optional, with ReLU,
  ReLU6, hard-swish or swish.
- ``bottleneck``: ResNet blocks, basic (kxk, kxk) or bottleneck (1x1, kxk, 1x1 at 4x), with
  projection shortcuts.
- ``decoder``: a strided convolution down, an upsampling by 2 (TRANSPOSE_CONV, nearest or bilinear
  resize) back up, concatenated with the block's input (a U-Net level) or not, then a 3x3
  convolution.
- ``pool``: max or average pooling.
- ``attention``: a transformer encoder block on a sequence: multi-head attention (rank-4
  BATCH_MATMUL once there are two heads or more), residual adds, layer norms or none, a dense FFN.
- ``mlp``: one to four dense layers on a vector or on every step of a sequence.
- ``conv1d``: a temporal convolution as Keras's Conv1D reaches TFLite: EXPAND_DIMS, CONV_2D or
  DEPTHWISE_CONV_2D with a kx1 kernel, SQUEEZE.
- ``recurrent``: an LSTM (UNIDIRECTIONAL_SEQUENCE_LSTM), a GRU unrolled as the converter lowers it,
  or an SVDF on a vector.

A motif that takes a sequence after an image gets the image as tokens (its pixels, as vision
transformers do) or as rows (width folded into features, as CRNNs do); one that takes a vector gets
the mean over the spatial or time axes. A sample ends with a classifier or with its last block.
"""

from __future__ import annotations

from typing import Callable, Dict, List

import numpy as np

from ._blocks import basic_block, choice, classifier, conv, dense, gru, inverted_residual, log_uniform, make_divisible
from ._blocks import separable as separable_block
from ._builder import SpecBuilder
from ._space import SearchSpace
from .transformer import attention as attention_layer

IMAGE_MOTIFS = ("stem", "separable", "inverted_residual", "bottleneck", "decoder", "pool")
MOTIFS = IMAGE_MOTIFS + ("attention", "mlp", "conv1d", "recurrent")

KNOBS = {
    "motif": list(MOTIFS),
    "motifs_per_sample": [1, 2, 3, 4],
    "input": "image [1, 8..224, 4..224, 1 or 3 before a stem, else 4..256], sequence [1, 1..128, 8..256] "
             "or vector [1, 8..2048]; log-uniform sizes",
    "stem.kernel": [3, 5, 7, [10, 4], [10, 8], [8, 4], [3, 1], [1, 3]],
    "stem.depthwise_on_one_channel": [True, False],
    "kernel": [3, 5, 7],
    "stride": [1, 2],
    "activation": ["relu", "relu6", "hard_swish", "swish"],
    "inverted_residual.expansion": [1, 3, 4, 6],
    "bottleneck.kind": ["basic", "bottleneck"],
    "decoder.upsampling": ["transpose_conv", "resize_nearest", "resize_bilinear"],
    "decoder.skip": [True, False],
    "attention.heads": [1, 2, 4, 8],
    "attention.norm": [True, False],
    "attention.ffn_ratio": [1, 2, 4],
    "mlp.layers": [1, 2, 3, 4],
    "mlp.activation": ["relu", "relu6", "tanh", "logistic", "none"],
    "conv1d.kernel": [3, 5, 8, 9, 10],
    "recurrent.cell": ["lstm", "gru", "svdf"],
    "head": ["classifier", "none"],
}

FIRST_STEM = 1 / 3
# Longest sequences the recurrent cells are drawn on: an LSTM is one operator but Vela unrolls it
# into some twenty per step; the writer unrolls a GRU into about fifteen operators per step.
MAX_LSTM_STEPS = 100
MAX_GRU_STEPS = 24
# Longest sequence an image becomes as tokens (attention is quadratic in it).
MAX_TOKENS = 256
# Widest image row folded into one step's features.
MAX_ROW_FEATURES = 2048



def _stride(b: SpecBuilder, x: str, rng: np.random.Generator) -> int:
    """1 or 2, never 2 on a map smaller than 4 in height or width."""
    _, h, w, _ = b.shape(x)
    return choice(rng, KNOBS["stride"]) if min(h, w) >= 4 else 1


def _stem(b: SpecBuilder, x: str, rng: np.random.Generator, name: str) -> str:
    filters = log_uniform(rng, 4, 64)
    kernel = choice(rng, KNOBS["stem.kernel"])
    stride = _stride(b, x, rng)
    act = choice(rng, ("relu", "relu6", "none"))
    if b.channels(x) == 1 and rng.random() < 0.7:
        params = {"kernel": kernel, "depth_multiplier": filters}
        if stride > 1:
            params["stride"] = stride
        if act != "none":
            params["activation"] = act
        return b.add("depthwise_conv2d", x, name, **params)
    return conv(b, x, name, filters, kernel, stride, act=act)


def _separable(b: SpecBuilder, x: str, rng: np.random.Generator, name: str) -> str:
    kernel = choice(rng, (3, 3, 5))
    act = choice(rng, ("relu", "relu6"))
    for i in range(choice(rng, (1, 2, 3))):
        x = separable_block(b, x, f"{name}_{i}", log_uniform(rng, 8, 512), kernel,
                            _stride(b, x, rng) if i == 0 else 1, act=act)
    return x


def _inverted_residual(b: SpecBuilder, x: str, rng: np.random.Generator, name: str) -> str:
    out = make_divisible(log_uniform(rng, 8, 320))
    kernel, expansion = choice(rng, KNOBS["kernel"]), choice(rng, KNOBS["inverted_residual.expansion"])
    se, act = bool(rng.random() < 0.5), choice(rng, KNOBS["activation"])
    for i in range(choice(rng, (1, 2, 3))):
        x = inverted_residual(b, x, f"{name}_{i}", out, kernel, expansion, _stride(b, x, rng) if i == 0 else 1, se, act)
    return x


def _bottleneck(b: SpecBuilder, x: str, rng: np.random.Generator, name: str) -> str:
    width = log_uniform(rng, 8, 256)
    stride = _stride(b, x, rng)
    if choice(rng, KNOBS["bottleneck.kind"]) == "basic":
        return basic_block(b, x, name, width, choice(rng, (3, 3, 5)), stride, act="relu")
    # ResNet-50's: the stride on the 3x3, 4x the width out, a projection where the shape changes.
    y = conv(b, x, f"{name}_reduce", width, 1, act="relu")
    y = conv(b, y, f"{name}_conv", width, 3, stride, act="relu")
    y = conv(b, y, f"{name}_expand", 4 * width, 1)
    shortcut = x if stride == 1 and b.channels(x) == 4 * width else conv(b, x, f"{name}_shortcut", 4 * width, 1, stride)
    return b.add("add", [shortcut, y], f"{name}_add", activation="relu")


def _decoder(b: SpecBuilder, x: str, rng: np.random.Generator, name: str) -> str:
    _, h, w, _ = b.shape(x)
    filters = log_uniform(rng, 4, 256)
    down = x
    if h >= 4 and w >= 4 and h % 2 == 0 and w % 2 == 0:
        down = conv(b, x, f"{name}_down", filters, 3, 2, act="relu")
    _, dh, dw, _ = b.shape(down)
    mode = choice(rng, KNOBS["decoder.upsampling"])
    if 2 * max(dh, dw) > 448:
        mode = "none"
    if mode == "transpose_conv":
        up = b.add("transpose_conv2d", down, f"{name}_up", filters=filters, kernel=choice(rng, (2, 3, 4)), stride=2)
    elif mode != "none":
        up = b.add(mode, down, f"{name}_up", size=[2 * dh, 2 * dw])
    else:
        up = down
    if down != x and b.shape(up)[1:3] == (h, w) and choice(rng, KNOBS["decoder.skip"]):
        up = b.add("concat", [x, up], f"{name}_skip", axis=-1)
    return conv(b, up, f"{name}_conv", filters, 3, act=choice(rng, ("relu", "relu6", "none")))


def _pool(b: SpecBuilder, x: str, rng: np.random.Generator, name: str) -> str:
    _, h, w, _ = b.shape(x)
    pool = choice(rng, [p for p in (2, 3) if p <= min(h, w)] or [1])
    return b.add(choice(rng, ("max_pool2d", "avg_pool2d")), x, name, pool=pool, stride=min(2, pool),
                 padding=choice(rng, ("same", "valid")))


def _attention(b: SpecBuilder, x: str, rng: np.random.Generator, name: str) -> str:
    _, _, d = b.shape(x)
    heads = choice(rng, [h for h in KNOBS["attention.heads"] if d % h == 0 and d // h >= 4] or [1])
    norm = choice(rng, KNOBS["attention.norm"])
    h = b.add("layer_norm", x, f"{name}_ln1") if norm else x
    x = b.add("add", [x, attention_layer(b, h, f"{name}_attn", heads)], f"{name}_attn_add")
    h = b.add("layer_norm", x, f"{name}_ln2") if norm else x
    h = dense(b, h, f"{name}_ffn1", d * choice(rng, KNOBS["attention.ffn_ratio"]), act=choice(rng, ("relu", "hard_swish")))
    return b.add("add", [x, dense(b, h, f"{name}_ffn2", d)], f"{name}_ffn_add")


def _mlp(b: SpecBuilder, x: str, rng: np.random.Generator, name: str) -> str:
    act = choice(rng, KNOBS["mlp.activation"])
    for i in range(choice(rng, KNOBS["mlp.layers"])):
        units = log_uniform(rng, 8, 1024)
        if act in ("relu", "relu6", "none"):
            x = dense(b, x, f"{name}_{i}", units, act=act)
        else:
            x = b.add(act, dense(b, x, f"{name}_{i}", units), f"{name}_{i}_{act}")
    return x


def _conv1d(b: SpecBuilder, x: str, rng: np.random.Generator, name: str) -> str:
    _, steps, _ = b.shape(x)
    kernel = min(choice(rng, KNOBS["conv1d.kernel"]), steps)
    y = b.add("expand_dims", x, f"{name}_expand", axis=2)
    stride = choice(rng, KNOBS["stride"]) if steps >= 4 else 1
    window = {"kernel": [kernel, 1], **({"stride": [stride, 1]} if stride > 1 else {})}
    act = choice(rng, ("relu", "relu6"))
    if rng.random() < 0.3:
        y = b.add("depthwise_conv2d", y, f"{name}_dw", activation=act, **window)
    else:
        y = b.add("conv2d", y, f"{name}_conv", filters=log_uniform(rng, 8, 256), activation=act, **window)
    return b.add("squeeze", y, f"{name}_squeeze", axes=[2])


def _recurrent(b: SpecBuilder, x: str, rng: np.random.Generator, name: str) -> str:
    shape = b.shape(x)
    if len(shape) == 2:
        return b.add("svdf", x, name, units=log_uniform(rng, 16, 256), memory=choice(rng, (4, 8, 16, 32)),
                     rank=choice(rng, (1, 2)))
    steps = shape[1]
    cell = "gru" if steps <= MAX_GRU_STEPS and rng.random() < 0.4 else "lstm"
    sequences = bool(rng.random() < 0.6)
    if cell == "gru":
        return gru(b, x, name, log_uniform(rng, 16, 128), return_sequences=sequences)[0]
    if steps > MAX_LSTM_STEPS:
        x = b.add("strided_slice", x, f"{name}_recent", begin=[0, steps - MAX_LSTM_STEPS, 0],
                  end=[1, steps, shape[2]])
    return b.add("lstm", x, name, units=log_uniform(rng, 16, 256), **({} if sequences else {"return_sequences": False}))


BUILDERS: Dict[str, Callable[[SpecBuilder, str, np.random.Generator, str], str]] = {
    "stem": _stem,
    "separable": _separable,
    "inverted_residual": _inverted_residual,
    "bottleneck": _bottleneck,
    "decoder": _decoder,
    "pool": _pool,
    "attention": _attention,
    "mlp": _mlp,
    "conv1d": _conv1d,
    "recurrent": _recurrent,
}
RANKS = {**{m: (4,) for m in IMAGE_MOTIFS}, "attention": (3,), "conv1d": (3,), "mlp": (2, 3), "recurrent": (2, 3)}


def _to_rank(b: SpecBuilder, x: str, rng: np.random.Generator, motif: str, name: str) -> str:
    """``x`` as the rank ``motif`` takes, or ``x`` itself when no conversion leads there."""
    shape = b.shape(x)
    ranks = RANKS[motif]
    if len(shape) in ranks:
        return x
    if len(shape) == 4 and 3 in ranks:
        _, h, w, c = shape
        if h * w <= MAX_TOKENS and (rng.random() < 0.5 or w * c > MAX_ROW_FEATURES):
            return b.add("reshape", x, f"{name}_tokens", shape=[1, h * w, c])
        if w * c <= MAX_ROW_FEATURES:
            return b.add("reshape", x, f"{name}_rows", shape=[1, h, w * c])
    if len(shape) >= 3 and 2 in ranks:
        return b.add("mean", x, f"{name}_pool", axes=list(range(1, len(shape) - 1)), keep_dims=False)
    return x


def _input(rng: np.random.Generator, motif: str) -> List[int]:
    if RANKS[motif] == (4,):
        h = log_uniform(rng, 8, 224)
        w = h if rng.random() < 0.7 else log_uniform(rng, 4, 224)
        return [1, h, w, choice(rng, (1, 1, 3)) if motif == "stem" else log_uniform(rng, 4, 256)]
    if 3 in RANKS[motif] and (2 not in RANKS[motif] or rng.random() < 0.5):
        return [1, log_uniform(rng, 1, 128), log_uniform(rng, 8, 256)]
    return [1, log_uniform(rng, 8, 2048)]


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one sample: an input for its first motif, then its motifs in turn (module docstring)."""
    count = choice(rng, KNOBS["motifs_per_sample"])
    # A third of the samples start with a stem: the only motif that sees one-channel inputs.
    first = "stem" if rng.random() < FIRST_STEM else choice(rng, MOTIFS[1:])
    b = SpecBuilder({"x": _input(rng, first)})
    y = "x"
    for i in range(count):
        # Later motifs: those the current tensor can reach (no way leads back from a sequence to an image).
        rank = len(b.shape(y))
        motif = first if i == 0 else choice(rng, [m for m in MOTIFS[1:] if min(RANKS[m]) <= rank])
        name = f"m{i}_{motif}"
        z = _to_rank(b, y, rng, motif, name)
        if len(b.shape(z)) in RANKS[motif]:
            y = BUILDERS[motif](b, z, rng, name)
    if y == "x" or choice(rng, KNOBS["head"]) == "classifier":
        classes = choice(rng, (2, 10, 12, 100, 1000))
        if len(b.shape(y)) == 4:
            classifier(b, y, classes)
        else:
            if len(b.shape(y)) == 3:
                y = b.add("mean", y, "pool", axes=[1], keep_dims=False)
            b.add("softmax", dense(b, y, "logits", classes), "probs")
    return b


SPACE = SearchSpace(
    name="motifs",
    description=(
        "1-4 blocks that real models repeat (stems on 1-3 channel inputs, separable, inverted-residual and "
        "ResNet blocks, U-Net decoder levels, pools, attention, MLPs, Conv1D, LSTM/GRU/SVDF), each at its "
        "own random sizes, on images, sequences or vectors"
    ),
    knobs=KNOBS,
    build=build,
    max_macs=400_000_000,
    max_params=8_000_000,
)
