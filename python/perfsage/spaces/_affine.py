"""Affine layers: elementwise arithmetic with constant operands, as real models carry it.

What a converter cannot fold into a neighbouring convolution stays a standalone MUL, ADD or SUB
with a constant operand: input normalisation (Keras ``Rescaling``: a scalar scale and offset;
``Normalization``: a mean and a scale per channel, as EfficientNet's first layers), batch norms
after an addition or before a convolution (pre-activation ResNets) and layer scales. The spaces
draw none of them, and Vela prices them far from their shape's other elementwise ops: a MUL by a
per-channel constant on a 224x224x3 image takes Vela 25.7 ms on the Ethos-U55-256, a MUL by a
scalar 0.11 ms, a MUL by a per-channel activation (squeeze-excite) about 0.35 ms.
:func:`with_affine_layers` inserts them into a spec.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

import numpy as np

from ._spec_edit import explicit_inputs, plain_values, unique, with_layers

# What sample(..., affine=...) takes: "none" (specs as drawn) or "mixed" (a third as drawn, two
# thirds with input normalisation, unfolded batch norms or both, from each sample's seed).
AFFINE = ("none", "mixed")
# Keeps the affine layers' generator apart from the spec's, the weights' and the float sections'.
_AFFINE_STREAM = 0x6166666E
MAX_BATCH_NORMS = 3
# Layers after which no batch norm goes: conversions (their outputs may be of another type),
# multi-output layers (their outputs are named apart) and what float sections add.
_NO_NORM_AFTER = frozenset({"cast", "quantize", "dequantize", "arg_max", "split", "split_v", "unpack"})


def _normalisation(x: str, rng: np.random.Generator, taken: set) -> List[Dict[str, Any]]:
    """Input normalisation layers on the input ``x``: a Keras Rescaling (x / 255 or x / 127.5 - 1),
    a Normalization (a mean and a scale per channel), or both as EfficientNet has them."""
    layers: List[Dict[str, Any]] = []

    def add(op: str, kind: str, lo: float, hi: float) -> None:
        name = unique(f"{x}_{op}_{kind}", taken)
        layers.append({"name": name, "op": op, "inputs": [layers[-1]["name"] if layers else x], "constant": kind,
                       "constant_range": [lo, hi]})

    form = ("rescale", "normalise", "both")[int(rng.integers(3))]
    if form in ("rescale", "both"):
        add("mul", "scalar", 1 / 255, 1 / 127.5)
        if rng.random() < 0.5:
            add("add", "scalar", -1.0, -0.99)
    if form in ("normalise", "both"):
        add("sub", "channel", 0.3, 0.6)
        add("mul", "channel", 3.5, 4.5)
    return layers


def with_affine_layers(spec: Dict[str, Any], rng: np.random.Generator, normalise_input: bool = True,
                       batch_norms: int = 1) -> Dict[str, Any]:
    """``spec`` with its first input normalised (``normalise_input``) and up to ``batch_norms``
    unfolded batch norms (a MUL and an ADD by per-channel constants; one in four a layer scale, the
    MUL alone) after distinct layers drawn with ``rng``. Batch norms skip conversions, multi-output
    layers, values of another type, model outputs and the inputs of layers that share weights."""
    layers = explicit_inputs(spec)
    taken = {x["name"] for x in spec["inputs"]} | {layer["name"] for layer in layers}
    outputs = list(spec.get("outputs") or [])
    plain = plain_values(layers)
    shared = {layer["name"] for layer in layers if "weights_of" in layer}
    shared |= {layer["weights_of"] for layer in layers if "weights_of" in layer}
    excluded = plain | {x for layer in layers if layer["name"] in shared for x in layer["inputs"]} | set(outputs)
    candidates = [layer["name"] for layer in layers
                  if layer["op"] not in _NO_NORM_AFTER and layer["name"] not in excluded]
    chosen = set()
    if candidates and batch_norms > 0:
        picks = rng.choice(len(candidates), size=min(batch_norms, len(candidates)), replace=False)
        chosen = {candidates[int(i)] for i in picks}
    renamed: Dict[str, str] = {}
    out: List[Dict[str, Any]] = []
    if normalise_input:
        x = spec["inputs"][0]["name"]
        out += _normalisation(x, rng, taken)
        renamed[x] = out[-1]["name"]
    for layer in layers:
        layer["inputs"] = [renamed.get(v, v) for v in layer["inputs"]]
        out.append(layer)
        if layer["name"] in chosen:
            name = layer["name"]
            scale = unique(f"{name}_bn_scale", taken)
            out.append({"name": scale, "op": "mul", "inputs": [name], "constant": "channel",
                        "constant_range": [0.5, 2.0]})
            renamed[name] = scale
            if rng.random() < 0.75:
                shift = unique(f"{name}_bn_shift", taken)
                out.append({"name": shift, "op": "add", "inputs": [scale], "constant": "channel",
                            "constant_range": [-1.0, 1.0]})
                renamed[name] = shift
    if not renamed:
        return copy.deepcopy(spec)
    rewritten = with_layers(spec, out)
    if outputs:
        rewritten["outputs"] = [renamed.get(v, v) for v in outputs]
    return rewritten


def affine_spec(spec: Dict[str, Any], item_seed: int) -> Optional[Dict[str, Any]]:
    """What an ``affine="mixed"`` sample with seed ``item_seed`` becomes: ``None`` for a third of
    the seeds (the spec stays as drawn); else the spec with its input normalised (half of those),
    1 to MAX_BATCH_NORMS unfolded batch norms (two thirds), or both, drawn from a generator seeded
    by ``item_seed`` alone."""
    rng = np.random.default_rng([int(item_seed), _AFFINE_STREAM])
    if int(rng.integers(3)) == 0:
        return None
    form = int(rng.integers(3))  # 0: input normalisation, 1: batch norms, 2: both
    norms = int(rng.integers(1, MAX_BATCH_NORMS + 1)) if form > 0 else 0
    return with_affine_layers(spec, rng, normalise_input=form != 1, batch_norms=norms)
