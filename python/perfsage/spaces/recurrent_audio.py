"""Recurrent and streaming audio models: what keyword spotters and denoisers on microcontrollers run.

Three families, from a few KB to a few MB of weights:

- ``kws``: recurrent keyword spotting on MFCC or log-mel frames [1, T, F]: stacked LSTMs (one
  UNIDIRECTIONAL_SEQUENCE_LSTM each) or GRUs (unrolled over time, as the converter lowers them),
  optionally after a convolutional front-end (CRNN: strided 2D convolutions over the
  time-frequency image, frequency folded into channels), read out at the last step, flattened or
  averaged over time, then a dense classifier; or streaming SVDF stacks on one frame [1, F] with
  dense bottlenecks between them, as TFLM's keyword model.
- ``denoise``: RNNoise-like mask estimators: a dense input layer, GRU or LSTM layers each also
  fed the input features (RNNoise's skip concatenations), and a sigmoid mask per band, or per bin
  applied to the input (DTLN-style).
- ``streaming``: one frame per invocation with the context in state tensors, as streaming TCN
  keyword spotters are exported: each causal convolution concatenates its saved context with the
  new frame (CONCATENATION), keeps the newest frames as the next context (STRIDED_SLICE, a model
  output) and convolves the window (RESHAPE, CONV_2D, RESHAPE); optionally a GRU step on a saved
  state or a one-step LSTM after the convolutions, then a classifier.
"""

from __future__ import annotations

from typing import List

import numpy as np

from ._blocks import choice, conv, dense, gru
from ._builder import SpecBuilder
from ._space import SearchSpace

KNOBS = {
    "family": ["kws", "denoise", "streaming"],
    "kws.cell": ["lstm", "gru", "svdf"],
    "kws.frames": [10, 16, 25, 49],
    "kws.features": [10, 13, 20, 40],
    "kws.front_end": ["none", "conv"],
    "kws.conv_layers": [1, 2],
    "kws.conv_filters": [8, 16, 32, 64],
    "kws.layers": "lstm: 1, 2 or 3; gru: 1 or 2 (unrolled, about 15 operators per step and layer)",
    "kws.units": [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512],
    "kws.readout": ["last", "flatten", "mean"],
    "kws.hidden": [0, 32, 64, 128],  # a dense ReLU layer before the classifier (0: none)
    "kws.classes": [2, 4, 12, 35],
    "kws.svdf_layers": [2, 3, 4],
    "kws.svdf_units": [16, 24, 32, 48, 64, 96, 128, 192],
    "kws.svdf_memory": [4, 8, 16, 32],
    "kws.svdf_rank": [1, 2],
    "kws.svdf_bottleneck": [0, 16, 32, 64],
    "denoise.cell": ["gru", "lstm"],
    "denoise.gru_activation": ["tanh", "relu"],
    "denoise.input_units": [24, 48, 96, 128],
    "denoise.frames": [1, 2, 4, 8, 16],
    "denoise.features": [22, 42, 64, 129, 257],
    "denoise.layers": "lstm: 1, 2 or 3; gru: 1 or 2",
    "denoise.units": [24, 48, 96, 128, 256, 384],
    "denoise.skip": [False, True],
    "denoise.mask": ["bands", "apply"],
    "streaming.features": [10, 20, 40, 64],
    "streaming.layers": [1, 2, 3, 4, 5, 6],
    "streaming.kernel": [2, 3, 5],
    "streaming.dilation": ["one", "doubling"],
    "streaming.filters": [8, 16, 32, 64, 128, 256],
    "streaming.residual": [False, True],
    "streaming.cell": ["none", "gru", "lstm"],
    "streaming.cell_units": [16, 32, 64, 128],
}
# Unrolled GRUs write about 15 operators per step and layer; more than two layers over the
# longest inputs would be thousands of operators, more than deployed GRU spotters have.
LAYERS = {"lstm": [1, 2, 3], "gru": [1, 2]}
# The writer's int8 range of a convolution's ReLU output (kNormalizedSpread in writer_graph.h).
RELU_CONV_RANGE = (0.0, 4.0)
# The bands of an RNNoise-style mask (RNNoise's 22 Bark bands).
MASK_BANDS = 22


def _recurrent(b: SpecBuilder, x: str, name: str, cell: str, units: int, sequences: bool, act: str = "tanh") -> str:
    if cell == "lstm":
        return b.add("lstm", x, name, units=units, **({} if sequences else {"return_sequences": False}))
    return gru(b, x, name, units, return_sequences=sequences, act=act)[0]


def _conv_front_end(b: SpecBuilder, x: str, rng: np.random.Generator) -> str:
    """CRNN's front-end: [1, T, F] as a one-channel image, one or two convolutions strided in time
    and frequency, frequency folded into the channels: [1, T', F' x C]."""
    _, frames, features = b.shape(x)
    y = b.add("reshape", x, "image", shape=[1, frames, features, 1])
    for i in range(choice(rng, KNOBS["kws.conv_layers"])):
        _, t, f, _ = b.shape(y)
        stride = [2 if t >= 8 else 1, 2 if f >= 8 else 1]
        y = conv(b, y, f"conv{i + 1}", choice(rng, KNOBS["kws.conv_filters"]), [3, 3], stride, act="relu")
    _, t, f, c = b.shape(y)
    return b.add("reshape", y, "fold", shape=[1, t, f * c])


def _kws(rng: np.random.Generator) -> SpecBuilder:
    cell = choice(rng, KNOBS["kws.cell"])
    features = choice(rng, KNOBS["kws.features"])
    classes = choice(rng, KNOBS["kws.classes"])
    if cell == "svdf":
        b = SpecBuilder({"frame": [1, features]})
        y = "frame"
        for i in range(choice(rng, KNOBS["kws.svdf_layers"])):
            y = b.add("svdf", y, f"svdf{i + 1}", units=choice(rng, KNOBS["kws.svdf_units"]),
                      memory=choice(rng, KNOBS["kws.svdf_memory"]), rank=choice(rng, KNOBS["kws.svdf_rank"]))
            bottleneck = choice(rng, KNOBS["kws.svdf_bottleneck"])
            if bottleneck:
                y = dense(b, y, f"bottleneck{i + 1}", bottleneck, act="relu")
    else:
        b = SpecBuilder({"mfcc": [1, choice(rng, KNOBS["kws.frames"]), features]})
        y = "mfcc"
        if choice(rng, KNOBS["kws.front_end"]) == "conv":
            y = _conv_front_end(b, y, rng)
        layers = choice(rng, LAYERS[cell])
        readout = choice(rng, KNOBS["kws.readout"])
        units = choice(rng, KNOBS["kws.units"])
        for i in range(layers):
            last = i == layers - 1
            y = _recurrent(b, y, f"{cell}{i + 1}", cell, units, sequences=not (last and readout == "last"))
        if readout == "flatten":
            y = b.add("reshape", y, "flatten", shape=[1, -1])
        elif readout == "mean":
            y = b.add("mean", y, "pool", axes=[1], keep_dims=False)
    hidden = choice(rng, KNOBS["kws.hidden"])
    if hidden:
        y = dense(b, y, "hidden", hidden, act="relu")
    b.add("softmax", dense(b, y, "logits", classes), "probs")
    return b


def _denoise(rng: np.random.Generator) -> SpecBuilder:
    cell = choice(rng, KNOBS["denoise.cell"])
    features = choice(rng, KNOBS["denoise.features"])
    b = SpecBuilder({"spectrum": [1, choice(rng, KNOBS["denoise.frames"]), features]})
    skip = choice(rng, KNOBS["denoise.skip"])
    act = choice(rng, KNOBS["denoise.gru_activation"]) if cell == "gru" else "tanh"  # RNNoise's GRUs: ReLU
    y = b.add("tanh", dense(b, "spectrum", "input_dense", choice(rng, KNOBS["denoise.input_units"])), "input_tanh")
    layers = choice(rng, LAYERS[cell])
    for i in range(layers):
        if skip and i > 0:
            y = b.add("concat", [y, "spectrum"], f"skip{i}", axis=-1)
        y = _recurrent(b, y, f"{cell}{i + 1}", cell, choice(rng, KNOBS["denoise.units"]), sequences=True, act=act)
    if choice(rng, KNOBS["denoise.mask"]) == "apply":
        mask = b.add("logistic", dense(b, y, "mask_dense", features), "mask")
        b.add("mul", [mask, "spectrum"], "denoised")
    else:
        b.add("logistic", dense(b, y, "gains_dense", MASK_BANDS), "gains")
    return b


def _streaming(rng: np.random.Generator) -> SpecBuilder:
    features = choice(rng, KNOBS["streaming.features"])
    layers = choice(rng, KNOBS["streaming.layers"])
    kernel = choice(rng, KNOBS["streaming.kernel"])
    doubling = choice(rng, KNOBS["streaming.dilation"]) == "doubling"
    filters = choice(rng, KNOBS["streaming.filters"])
    residual = choice(rng, KNOBS["streaming.residual"])
    cell = choice(rng, KNOBS["streaming.cell"])
    # Each context holds past values of its layer's input, so it spans that input's range and the
    # window's concatenation needs no requantisation, as in a converted model.
    inputs, ranges = {"frame": [1, 1, features]}, {}
    channels, value_range = features, (-1.0, 1.0)
    for i in range(layers):
        dilation = 2 ** i if doubling else 1
        inputs[f"context{i + 1}"] = [1, (kernel - 1) * dilation, channels]
        ranges[f"context{i + 1}"] = value_range
        lo, hi = value_range
        value_range = (lo, hi + RELU_CONV_RANGE[1]) if residual and channels == filters else RELU_CONV_RANGE
        channels = filters
    if cell == "gru":
        units = choice(rng, KNOBS["streaming.cell_units"])
        inputs["gru_state"] = [1, units]
    b = SpecBuilder(inputs, ranges=ranges)
    y = "frame"
    new_states: List[str] = []
    for i in range(layers):
        dilation = 2 ** i if doubling else 1
        window = b.add("concat", [f"context{i + 1}", y], f"window{i + 1}", axis=1)
        _, length, c = b.shape(window)
        new_states.append(b.add("strided_slice", window, f"new_context{i + 1}", begin=[0, 1, 0], end=[1, length, c]))
        image = b.add("reshape", window, f"window{i + 1}_image", shape=[1, 1, length, c])
        out = b.add("conv2d", image, f"tcn{i + 1}", filters=filters, kernel=[1, kernel], dilation=[1, dilation],
                    padding="valid", activation="relu")
        out = b.add("reshape", out, f"tcn{i + 1}_frame", shape=[1, 1, filters])
        y = b.add("add", [y, out], f"tcn{i + 1}_residual") if residual and b.channels(y) == filters else out
    if cell == "gru":
        y, state = gru(b, y, "gru", inputs["gru_state"][1], return_sequences=False, state="gru_state")
        new_states.append(state)
    elif cell == "lstm":
        y = b.add("lstm", y, "lstm", units=choice(rng, KNOBS["streaming.cell_units"]), return_sequences=False)
    else:
        y = b.add("reshape", y, "features", shape=[1, filters])
    b.add("softmax", dense(b, y, "logits", choice(rng, KNOBS["kws.classes"])), "probs")
    b.outputs = ["probs", *new_states]
    return b


def build(rng: np.random.Generator) -> SpecBuilder:
    """Draws one model of a family (see the module docstring)."""
    return {"kws": _kws, "denoise": _denoise, "streaming": _streaming}[choice(rng, KNOBS["family"])](rng)


SPACE = SearchSpace(
    name="recurrent_audio",
    description=(
        "recurrent keyword spotting (LSTM, unrolled GRU or SVDF stacks on MFCC/log-mel frames, optional conv "
        "front-end, dense classifier), RNNoise/DTLN-like denoisers (GRU or LSTM with sigmoid masks) and "
        "streaming TCN spotters with their context in state inputs and outputs; from a few KB to a few MB"
    ),
    knobs=KNOBS,
    build=build,
    max_macs=300_000_000,
    max_params=4_000_000,
)
