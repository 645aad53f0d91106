"""One-channel convolutions as converters write them: DEPTHWISE_CONV_2D with a depth multiplier.

A Conv2D on a one-channel input (a spectrogram, a grayscale image) computes what a depthwise
convolution with a depth multiplier equal to its filter count computes, and TensorFlow's
converters have written it that way: among the shared real models, micro_speech, person_detect and
the MLPerf Tiny streaming wake-word model start with such a DEPTHWISE_CONV_2D (multiplier 8),
while the MLPerf Tiny keyword-spotting model keeps its CONV_2D. The spaces write CONV_2D only,
so no space but ``motifs`` shows a depth multiplier above 4, and a predictor that never trained on
``motifs`` prices those layers tens of times too high (leave-one-space-out, motifs held out:
multipliers 17-64 at 10,690% latency MAPE). :func:`with_depthwise_stems` rewrites them.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from ._spec_edit import explicit_inputs, in_half, with_layers

# What sample(..., stems=...) takes: "none" (specs as drawn) or "mixed" (half of the specs that
# have a convolution of a one-channel input get it as a depthwise convolution, from each seed).
STEMS = ("none", "mixed")
# Keeps this choice's generator apart from the spec's, the weights', the float sections' and the
# affine layers'.
_STEMS_STREAM = 0x7374656D
# What the writer's depthwise_conv2d reads besides its depth multiplier: everything a conv2d takes
# but its filter count (writer_layers.cpp: conv).
_SHARED_PARAMS = frozenset({"name", "op", "inputs", "kernel", "stride", "dilation", "padding", "activation", "bias"})


def with_depthwise_stems(spec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``spec`` with every conv2d that reads a one-channel model input written as the
    depthwise_conv2d with ``depth_multiplier`` = its filters that computes the same outputs;
    ``None`` when it has no such layer. Layers that share weights (``weights_of``) stay."""
    one_channel = {x["name"] for x in spec["inputs"] if x["shape"][-1] == 1 and len(x["shape"]) == 4}
    layers = explicit_inputs(spec)
    shared = {layer["weights_of"] for layer in layers if "weights_of" in layer}
    changed = False
    for i, layer in enumerate(layers):
        if (layer["op"] != "conv2d" or len(layer["inputs"]) != 1 or layer["inputs"][0] not in one_channel
                or layer["name"] in shared or not set(layer) - {"filters"} <= _SHARED_PARAMS):
            continue
        rewritten = {k: v for k, v in layer.items() if k != "filters"}
        rewritten["op"] = "depthwise_conv2d"
        rewritten["depth_multiplier"] = layer["filters"]
        layers[i] = rewritten
        changed = True
    return with_layers(spec, layers) if changed else None


def depthwise_stems_spec(spec: Dict[str, Any], item_seed: int) -> Optional[Dict[str, Any]]:
    """What a ``stems="mixed"`` sample with seed ``item_seed`` becomes: :func:`with_depthwise_stems`
    of the spec for half of the seeds (a generator seeded by ``item_seed`` alone decides), ``None``
    (the spec stays as drawn) for the other half and for specs without such a convolution."""
    return with_depthwise_stems(spec) if in_half(item_seed, _STEMS_STREAM) else None
