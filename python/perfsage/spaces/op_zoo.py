"""Operator zoo: single operators and short chains or small DAGs of any op, at random sizes.

Whole-architecture spaces show a predictor each operator only in the few contexts its family uses
(a 3x3 depthwise after a 1x1 expansion, at a handful of sizes). The zoo is the kernel-level
coverage that nn-Meter measures, for a network that has to price each operator on its own: every
op the writer supports, over input sizes from a few bytes to 224x224 images, with random kernels,
strides, dilations, paddings and activations, alone or in short chains, residuals and branches
joined by a concatenation or an addition.

Each op has a small drawing function in ``OP_DRAWS`` that says which input ranks it takes and
returns its output tensor (or ``None`` when the input cannot take it, e.g. a 7x7 VALID kernel on a
3x3 map). ``keep`` asks for an output of the input's shape, which residuals and additive branches
need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._blocks import choice, log_uniform
from ._builder import SpecBuilder
from ._space import SearchSpace

PATTERNS = ("single", "chain", "residual", "branches")
ACTS = ("none", "relu", "relu6")
KERNELS = (1, 2, 3, 5, 7)



def _image_input(rng: np.random.Generator) -> List[int]:
    h = log_uniform(rng, 1, 224)
    w = h if rng.random() < 0.7 else log_uniform(rng, 1, 224)
    return [1, h, w, log_uniform(rng, 1, 512)]


def _input_shape(rng: np.random.Generator) -> List[int]:
    """Mostly NHWC images; sequences [1, T, D] and vectors [1, D] for the ops that take them."""
    kind = rng.random()
    if kind < 0.7:
        return _image_input(rng)
    if kind < 0.9:
        return [1, log_uniform(rng, 1, 256), log_uniform(rng, 2, 512)]
    return [1, log_uniform(rng, 2, 2048)]


@dataclass(frozen=True)
class Draw:
    """``fn(builder, x, rng, name, keep) -> output or None`` for inputs of ``ranks``."""

    ranks: Tuple[int, ...]
    fn: Callable[[SpecBuilder, str, np.random.Generator, str, bool], Optional[str]]


def _act(rng: np.random.Generator) -> Dict[str, str]:
    act = choice(rng, ACTS)
    return {} if act == "none" else {"activation": act}


def _window(rng: np.random.Generator, b: SpecBuilder, x: str, keep: bool, dilate: bool = True) -> Optional[Dict]:
    """Kernel, stride, dilation and padding that fit ``x``'s map; ``keep``: stride 1, SAME."""
    _, h, w, _ = b.shape(x)
    kh = choice(rng, [k for k in KERNELS if k <= h] or [1])
    kw = kh if rng.random() < 0.8 else choice(rng, [k for k in KERNELS if k <= w] or [1])
    params: Dict = {"kernel": kh if kh == kw else [kh, kw]}
    if keep:
        return params
    stride = choice(rng, (1, 1, 2, 2, 3))
    if stride > 1:
        params["stride"] = stride
    elif dilate and rng.random() < 0.15 and max(kh, kw) > 1:
        params["dilation"] = 2
    if rng.random() < 0.4:
        params["padding"] = "valid"
        d = params.get("dilation", 1)
        if (kh - 1) * d + 1 > h or (kw - 1) * d + 1 > w:
            return None
    return params


def _conv(b, x, rng, name, keep):
    window = _window(rng, b, x, keep)
    if window is None:
        return None
    filters = b.channels(x) if keep else log_uniform(rng, 1, 512)
    return b.add("conv2d", x, name, filters=filters, **window, **_act(rng))


def _depthwise(b, x, rng, name, keep):
    window = _window(rng, b, x, keep)
    if window is None:
        return None
    multiplier = 1 if keep or rng.random() < 0.85 else choice(rng, (2, 4))
    extra = {"depth_multiplier": multiplier} if multiplier > 1 else {}
    return b.add("depthwise_conv2d", x, name, **window, **extra, **_act(rng))


def _transpose_conv(b, x, rng, name, keep):
    if keep:
        return None
    _, h, w, _ = b.shape(x)
    stride = choice(rng, (1, 2, 2))
    if h * stride > 448 or w * stride > 448:
        stride = 1
    return b.add("transpose_conv2d", x, name, filters=log_uniform(rng, 1, 256), kernel=choice(rng, (2, 3, 4, 5)),
                 stride=stride)


def _pool(op):
    def draw(b, x, rng, name, keep):
        _, h, w, _ = b.shape(x)
        if keep:
            pool, params = choice(rng, (3, 5)), {"stride": 1, "padding": "same"}
            return b.add(op, x, name, pool=pool, **params)
        pool = choice(rng, [p for p in (2, 3, 5, 7) if p <= min(h, w)] or [1])
        stride = choice(rng, (1, 2, pool))
        padding = choice(rng, ("valid", "same"))
        return b.add(op, x, name, pool=pool, stride=stride, padding=padding)
    return draw


def _dense(b, x, rng, name, keep):
    units = b.channels(x) if keep else log_uniform(rng, 1, 1024)
    return b.add("dense", x, name, units=units, **_act(rng))


# Longest sequence an LSTM is drawn on: Vela unrolls it into some twenty operations per step.
_MAX_LSTM_STEPS = 100


def _lstm(b, x, rng, name, keep):
    # Over the sequence [1, T, D]: all steps (a residual or branch keeps D units), or the last.
    _, steps, features = b.shape(x)
    if steps > _MAX_LSTM_STEPS:
        return None
    units = features if keep else log_uniform(rng, 4, 512)
    last = {} if keep or rng.random() < 0.5 else {"return_sequences": False}
    return b.add("lstm", x, name, units=units, **last)


def _svdf(b, x, rng, name, keep):
    # SVDF takes one frame [1, D]: a vector, a sequence's newest frame or its frames flattened.
    shape = b.shape(x)
    if keep and len(shape) != 2:
        return None
    if len(shape) == 3:
        _, steps, features = shape
        if rng.random() < 0.5 or steps * features > 2048:
            x = b.add("strided_slice", x, f"{name}_newest", begin=[0, steps - 1, 0], end=[1, steps, features])
            steps = 1
        x = b.add("reshape", x, f"{name}_frame", shape=[1, steps * features])
    units = b.channels(x) if keep else log_uniform(rng, 4, 256)
    return b.add("svdf", x, name, units=units, memory=choice(rng, (2, 4, 8, 16, 32)), rank=choice(rng, (1, 2)))


# Ops into which the writer fuses a following relu/relu6, as the converter does.
_FUSING_OPS = frozenset({"conv2d", "depthwise_conv2d", "dense", "add", "sub", "mul"})


def _unary(op):
    def draw(b, x, rng, name, keep):
        if op in ("relu", "relu6") and b.op_of(x) in _FUSING_OPS:
            return None  # it would be fused: drawn instead as that op's activation
        return b.add(op, x, name)
    return draw


def _rsqrt(b, x, rng, name, keep):
    # RSQRT is defined for positive inputs only (LiteRT's int8 kernel refuses others): it takes a
    # logistic's output, as normalisations take a variance.
    return b.add("rsqrt", b.add("logistic", x, f"{name}_positive"), name)


def _leaky_relu(b, x, rng, name, keep):
    return b.add("leaky_relu", x, name, alpha=choice(rng, (0.01, 0.1, 0.2, 0.3)))


def _softmax(b, x, rng, name, keep):
    return b.add("softmax", x, name, beta=choice(rng, (1.0, 1.0, 0.5, 0.125)))


def _binary(op):
    def draw(b, x, rng, name, keep):
        # The second operand: the tensor itself, or a per-channel vector through a reduction of it
        # (broadcasting), as squeeze-excite and normalisations use.
        if rng.random() < 0.5 or len(b.shape(x)) < 3:
            other = x
        else:
            axes = list(range(1, len(b.shape(x)) - 1))
            other = b.add("mean", x, f"{name}_stat", axes=axes)
        extra = _act(rng) if op in ("add", "sub", "mul") else {}
        return b.add(op, [x, other], name, **extra)
    return draw


def _div(b, x, rng, name, keep):
    # The divisor is kept away from zero, as real models keep theirs (a variance plus epsilon, a
    # count): the exp of a logistic lies in [1, e]. The spec format has no constant operand to add
    # to a logistic instead, and quotients by values near zero fit no int8 scale (float32: inf).
    other = x if rng.random() < 0.5 or len(b.shape(x)) < 3 else b.add(
        "mean", x, f"{name}_stat", axes=list(range(1, len(b.shape(x)) - 1)))
    divisor = b.add("exp", b.add("logistic", other, f"{name}_gate"), f"{name}_divisor")
    return b.add("div", [x, divisor], name, **_act(rng))


def _cast(b, x, rng, name, keep):
    # As converters emit it around index arithmetic: to int32 and back to float32, then quantised
    # to the model's activations again (the QUANTIZE vanishes from float32 models).
    as_int = b.add("cast", x, name, to="int32")
    return b.add("quantize", b.add("cast", as_int, f"{name}_float", to="float32"), f"{name}_quantize")


def _quantize(b, x, rng, name, keep):
    # A requantisation to another scale, or a round trip through int16 (int8 <-> int16 in int8
    # models, as their 16x8 islands have it). Not on a spec input: a float32 model, where the
    # layer folds away, would have no operator.
    if b.op_of(x) is None:
        return None
    if rng.random() < 0.5:
        return b.add("quantize", x, name, range_scale=choice(rng, (0.5, 2.0, 4.0)))
    return b.add("quantize", b.add("quantize", x, f"{name}_wide", to="int16"), name)


def _concat(b, x, rng, name, keep):
    if keep:
        return None
    return b.add("concat", [x] * choice(rng, (2, 3)), name, axis=-1)


def _split(op):
    def draw(b, x, rng, name, keep):
        # Cut a dimension after the batch into parts and concatenate them back in reverse order
        # (ShuffleNet's channel split and shuffle): the input's shape, so residuals can take it.
        shape = b.shape(x)
        axes = [d for d in range(1, len(shape)) if shape[d] >= 2]
        if not axes:
            return None
        axis = choice(rng, axes)
        n = shape[axis]
        if op == "split":
            counts = [c for c in (2, 3, 4) if n % c == 0]
            if not counts:
                return None
            count = choice(rng, counts)
            b.add("split", x, name, num_splits=count, axis=axis)
        else:
            cuts = sorted(int(c) for c in rng.choice(np.arange(1, n), size=min(n - 1, choice(rng, (1, 2))), replace=False))
            sizes = [e - s for s, e in zip([0] + cuts, cuts + [n])]
            count = len(sizes)
            b.add("split_v", x, name, sizes=sizes, axis=axis)
        return b.add("concat", [f"{name}:{i}" for i in reversed(range(count))], f"{name}_join", axis=axis)
    return draw


def _pack(b, x, rng, name, keep):
    if keep:
        return None
    rank = len(b.shape(x))
    return b.add("pack", [x] * choice(rng, (2, 3)), name, axis=choice(rng, list(range(1, rank + 1))))


def _unpack(b, x, rng, name, keep):
    # Unstack a short dimension after the batch and stack the slices back in reverse order, as
    # unrolled recurrent models treat their time steps: the input's shape again.
    shape = b.shape(x)
    axes = [d for d in range(1, len(shape)) if 2 <= shape[d] <= 8]
    if not axes:
        return None
    axis = choice(rng, axes)
    b.add("unpack", x, name, axis=axis)
    return b.add("pack", [f"{name}:{i}" for i in reversed(range(shape[axis]))], f"{name}_join", axis=axis)


def _reduction(op):
    def draw(b, x, rng, name, keep):
        if keep:
            return None
        rank = len(b.shape(x))
        axes = [1, 2] if rank == 4 and rng.random() < 0.7 else [choice(rng, list(range(1, rank)))]
        return b.add(op, x, name, axes=axes, keep_dims=bool(rng.random() < 0.7))
    return draw


def _arg_max(b, x, rng, name, keep):
    # Its int32 indices end the sample: no op takes them (_chain stops after it).
    if keep:
        return None
    return b.add("arg_max", x, name, axis=choice(rng, list(range(1, len(b.shape(x))))))


def _gather(b, x, rng, name, keep):
    # A few entries of one dimension after the batch, in any order and with repeats.
    if keep:
        return None
    shape = b.shape(x)
    axis = choice(rng, list(range(1, len(shape))))
    indices = [int(i) for i in rng.integers(0, shape[axis], size=log_uniform(rng, 1, 64))]
    return b.add("gather", x, name, axis=axis, indices=indices)


def _global_pool(b, x, rng, name, keep):
    return None if keep else b.add("global_avg_pool", x, name)


def _reshape(b, x, rng, name, keep):
    if keep:
        return None
    shape = b.shape(x)
    total = math.prod(shape[1:])
    if len(shape) == 4 and rng.random() < 0.5:
        return b.add("reshape", x, name, shape=[1, shape[1] * shape[2], shape[3]])
    return b.add("reshape", x, name, shape=[1, total])


def _transpose(b, x, rng, name, keep):
    if keep:
        return None
    rank = len(b.shape(x))
    perm = [0] + [int(i) + 1 for i in rng.permutation(rank - 1)]
    return b.add("transpose", x, name, perm=perm)


def _strided_slice(b, x, rng, name, keep):
    # A window of every dimension after the batch, strided 1-2 except the channels (Vela takes no
    # batch or channel stride), as streaming models cut their state buffers.
    if keep:
        return None
    shape = b.shape(x)
    begin, end, strides = [0], [1], [1]
    for d, n in enumerate(shape[1:], start=1):
        begin.append(int(rng.integers(0, n)))
        end.append(int(rng.integers(begin[-1] + 1, n + 1)))
        strides.append(1 if d == len(shape) - 1 else choice(rng, (1, 1, 2)))
    return b.add("strided_slice", x, name, begin=begin, end=end, strides=strides)


def _slice(b, x, rng, name, keep):
    if keep:
        return None
    shape = b.shape(x)
    begin = [0] + [int(rng.integers(0, n)) for n in shape[1:]]
    size = [-1] + [int(rng.integers(1, n - s + 1)) if rng.random() < 0.8 else -1 for n, s in zip(shape[1:], begin[1:])]
    return b.add("slice", x, name, begin=begin, size=size)


def _squeeze(b, x, rng, name, keep):
    # The size-1 dimensions after the batch; without any, a mean keeping its dimensions makes one
    # (a pooled output squeezed for a dense layer, as Keras models give the converter). The batch
    # stays: the other draws take it as the first dimension.
    if keep:
        return None
    shape = b.shape(x)
    ones = [d for d in range(1, len(shape)) if shape[d] == 1]
    if not ones and len(shape) >= 3:
        ones = [choice(rng, list(range(1, len(shape) - 1)))]
        x = b.add("mean", x, f"{name}_pool", axes=ones)
    if not ones or len(shape) - len(ones) < 2:
        return None
    return b.add("squeeze", x, name, axes=ones)


def _expand_dims(b, x, rng, name, keep):
    # [1, T, D] -> [1, T, 1, D] is how the converter feeds a Conv1D to CONV_2D.
    if keep:
        return None
    return b.add("expand_dims", x, name, axis=choice(rng, list(range(1, len(b.shape(x)) + 1))))


def _pad(b, x, rng, name, keep):
    if keep:
        return None
    rank = len(b.shape(x))
    paddings = [[0, 0]] + [[int(rng.integers(0, 3)), int(rng.integers(0, 3))] for _ in range(rank - 2)] + [[0, 0]]
    return b.add("pad", x, name, paddings=paddings)


def _mirror_pad(b, x, rng, name, keep):
    # Height and width only (all Vela pads), each side narrower than its dimension (reflect).
    if keep:
        return None
    _, h, w, _ = b.shape(x)
    mode = choice(rng, ("reflect", "symmetric"))
    limit = {"reflect": 1, "symmetric": 0}[mode]
    paddings = [[0, 0]] + [[int(rng.integers(0, min(3, n - limit + 1))), int(rng.integers(0, min(3, n - limit + 1)))]
                           for n in (h, w)] + [[0, 0]]
    return b.add("mirror_pad", x, name, paddings=paddings, mode=mode)


def _resize(op):
    def draw(b, x, rng, name, keep):
        if keep:
            return None
        _, h, w, _ = b.shape(x)
        scale = choice(rng, (2, 2, 3, 4))
        if h * scale > 448 or w * scale > 448:
            return None
        return b.add(op, x, name, size=[h * scale, w * scale])
    return draw


def _depth_to_space(b, x, rng, name, keep):
    if keep:
        return None
    block = choice(rng, (2, 3))
    if b.channels(x) % (block * block):
        x = b.add("conv2d", x, f"{name}_in", filters=block * block * log_uniform(rng, 1, 32), kernel=1)
    return b.add("depth_to_space", x, name, block_size=block)


def _batch_matmul(b, x, rng, name, keep):
    # x [1, T, D] times its own transpose: [1, T, T] (adj_y), or [1, D, D] (adj_x).
    if keep:
        return None
    return b.add("batch_matmul", [x, x], name, **({"adj_y": True} if rng.random() < 0.5 else {"adj_x": True}))


def _layer_norm(b, x, rng, name, keep):
    return b.add("layer_norm", x, name)


OP_DRAWS: Dict[str, Draw] = {
    "conv2d": Draw((4,), _conv),
    "depthwise_conv2d": Draw((4,), _depthwise),
    "transpose_conv2d": Draw((4,), _transpose_conv),
    "avg_pool2d": Draw((4,), _pool("avg_pool2d")),
    "max_pool2d": Draw((4,), _pool("max_pool2d")),
    "global_avg_pool": Draw((4,), _global_pool),
    "dense": Draw((2, 3, 4), _dense),
    "lstm": Draw((3,), _lstm),
    "svdf": Draw((2, 3), _svdf),
    "add": Draw((2, 3, 4), _binary("add")),
    "sub": Draw((2, 3, 4), _binary("sub")),
    "mul": Draw((2, 3, 4), _binary("mul")),
    "squared_difference": Draw((2, 3, 4), _binary("squared_difference")),
    "maximum": Draw((2, 3, 4), _binary("maximum")),
    "minimum": Draw((2, 3, 4), _binary("minimum")),
    "div": Draw((2, 3, 4), _div),
    "concat": Draw((2, 3, 4), _concat),
    "split": Draw((2, 3, 4), _split("split")),
    "split_v": Draw((2, 3, 4), _split("split_v")),
    "pack": Draw((2, 3), _pack),
    "unpack": Draw((2, 3, 4), _unpack),
    "mean": Draw((3, 4), _reduction("mean")),
    "sum": Draw((3, 4), _reduction("sum")),
    "reduce_max": Draw((3, 4), _reduction("reduce_max")),
    "gather": Draw((2, 3, 4), _gather),
    "arg_max": Draw((2, 3, 4), _arg_max),
    "cast": Draw((2, 3, 4), _cast),
    "quantize": Draw((2, 3, 4), _quantize),
    "relu": Draw((2, 3, 4), _unary("relu")),
    "relu6": Draw((2, 3, 4), _unary("relu6")),
    "logistic": Draw((2, 3, 4), _unary("logistic")),
    "tanh": Draw((2, 3, 4), _unary("tanh")),
    "hard_swish": Draw((2, 3, 4), _unary("hard_swish")),
    "rsqrt": Draw((2, 3, 4), _rsqrt),
    "leaky_relu": Draw((2, 3, 4), _leaky_relu),
    "exp": Draw((2, 3, 4), _unary("exp")),
    "abs": Draw((2, 3, 4), _unary("abs")),
    "prelu": Draw((2, 3, 4), _unary("prelu")),
    "softmax": Draw((2, 3, 4), _softmax),
    "layer_norm": Draw((3,), _layer_norm),
    "reshape": Draw((3, 4), _reshape),
    "transpose": Draw((3, 4), _transpose),
    "pad": Draw((3, 4), _pad),
    "mirror_pad": Draw((4,), _mirror_pad),
    "strided_slice": Draw((2, 3, 4), _strided_slice),
    "slice": Draw((2, 3, 4), _slice),
    "squeeze": Draw((2, 3, 4), _squeeze),
    "expand_dims": Draw((2, 3), _expand_dims),
    "resize_bilinear": Draw((4,), _resize("resize_bilinear")),
    "resize_nearest": Draw((4,), _resize("resize_nearest")),
    "depth_to_space": Draw((4,), _depth_to_space),
    "batch_matmul": Draw((3,), _batch_matmul),
}

KNOBS = {
    "pattern": list(PATTERNS),
    "ops": sorted(OP_DRAWS),
    "input": "NHWC 1..224 x 1..224 x 1..512 (70%), sequence [1, 1..256, 2..512] (20%), vector [1, 2..2048]; "
             "log-uniform sizes",
    "chain_length": [2, 3, 4],
    "branches": [2, 3],
    "activation": list(ACTS),
    "kernel": list(KERNELS),
    "stride": [1, 2, 3],
}

# Draws of an op that does not fit the tensor at hand before the sample gives up on that step.
_ATTEMPTS = 12
# Relative draw weights: the ops whose cost varies most with their options are drawn most often.
# Ops that only fit some tensors (no residual or branch can take a resize) are drawn more often
# so that each appears in a few percent of the samples.
WEIGHTS = {"conv2d": 6.0, "depthwise_conv2d": 4.0, "dense": 3.0, "transpose_conv2d": 3.0, "avg_pool2d": 2.0,
           "max_pool2d": 2.0, "batch_matmul": 2.0, "add": 1.5, "mul": 1.5, "concat": 1.5, "reshape": 2.0,
           "transpose": 2.0, "pad": 2.0, "resize_bilinear": 2.5, "resize_nearest": 2.5, "depth_to_space": 2.0,
           "global_avg_pool": 2.0}


def _one_op(b: SpecBuilder, x: str, rng: np.random.Generator, name: str, keep: bool,
            ops: Sequence[str]) -> Optional[str]:
    rank = len(b.shape(x))
    usable = [op for op in ops if rank in OP_DRAWS[op].ranks]
    if not usable:
        return None
    weights = np.array([WEIGHTS.get(op, 1.0) for op in usable])
    for _ in range(_ATTEMPTS):
        op = usable[int(rng.choice(len(usable), p=weights / weights.sum()))]
        y = OP_DRAWS[op].fn(b, x, rng, name, keep)
        if y is not None:
            return y
    return None


def _chain(b: SpecBuilder, x: str, rng: np.random.Generator, name: str, length: int, keep: bool) -> str:
    ops = sorted(OP_DRAWS)
    for i in range(length):
        y = _one_op(b, x, rng, f"{name}{i}", keep, ops)
        if y is None:
            break
        x = y
        if b.op_of(x) == "arg_max":
            break
    return x


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one zoo sample: an input, then a pattern of ops on it (see the module docstring)."""
    b = SpecBuilder({"x": _input_shape(rng)})
    pattern = choice(rng, PATTERNS)
    if pattern == "single":
        y = _chain(b, "x", rng, "op", 1, keep=False)
    elif pattern == "chain":
        y = _chain(b, "x", rng, "op", choice(rng, KNOBS["chain_length"]), keep=False)
    elif pattern == "residual":
        y = _chain(b, "x", rng, "res", choice(rng, (1, 2, 3)), keep=True)
        y = b.add("add", ["x", y], "sum") if y != "x" else y
    else:
        outs = [_chain(b, "x", rng, f"b{i}_", choice(rng, (1, 2)), keep=True)
                for i in range(choice(rng, KNOBS["branches"]))]
        outs = [o for o in dict.fromkeys(outs) if o != "x"] or ["x"]
        if len(outs) == 1:
            y = outs[0]
        elif rng.random() < 0.6:
            y = b.add("concat", outs, "join", axis=-1)
        else:
            y = outs[0]
            for i, other in enumerate(outs[1:]):
                y = b.add("add", [y, other], f"join{i}")
        if rng.random() < 0.5:
            y = _chain(b, y, rng, "tail", 1, keep=False)
    if y == "x":  # nothing fitted the input: one op that takes any tensor
        y = b.add("relu", "x", "op")
    return b


SPACE = SearchSpace(
    name="op_zoo",
    description=(
        "single operators, chains of 2-4, residuals and 2-3 branches joined by concat or add, of every op "
        "the writer supports, on log-uniform random NHWC, sequence and vector inputs"
    ),
    knobs=KNOBS,
    build=build,
    max_macs=400_000_000,
    max_params=8_000_000,
)
