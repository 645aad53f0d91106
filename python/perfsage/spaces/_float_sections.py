"""Float sections: runs of a quantized spec's layers left in float32, as converters leave them.

A converter that cannot (or is told not to) quantize an operator leaves it in float32 inside an
int8 model, between a DEQUANTIZE and a QUANTIZE: 7 of the 146 real models hold such sections (a
float swish, ADD and MUL, NEG, SPLIT). The Ethos-U leaves those operators to the CPU, so the
model's NPU latency drops and its schedule splits in two; a predictor trained only on fully
quantized models prices them as NPU operators. :func:`with_float_sections` rewrites a spec so that
runs of its layers are such a section: each value entering a run is dequantized, each leaving it
quantized again, and the writer builds the layers in between as in a float32 model.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

import numpy as np

from ._spec_edit import explicit_inputs, plain_values, source, unique, with_layers

# What sample(..., float_sections=...) takes: "none" (specs as drawn) or "mixed" (a third as drawn,
# two thirds with one or two float sections, from each sample's seed).
FLOAT_SECTIONS = ("none", "mixed")
# Keeps the sections' generator apart from the spec's and the weights' (see sample()).
_SECTIONS_STREAM = 0x666C6F61
# Layers a section cannot hold: the conversions themselves, arg_max's int32 indices, and
# hard_swish and lstm, whose float32 forms in a quantized model Vela 5.2 refuses to read ("IFM has
# to be 8bit", "IFM must be INT8 or INT16": the model would be an error row); layers sharing
# weights cannot either (one copy cannot be both int8 and float32).
_FIXED_OPS = frozenset({"cast", "quantize", "dequantize", "arg_max", "hard_swish", "lstm"})
MAX_SECTION_LAYERS = 4


def _eligible(layers: List[Dict[str, Any]]) -> List[bool]:
    """Which layers a section may hold."""
    op_of = {layer["name"]: layer["op"] for layer in layers}
    shared = {layer["weights_of"] for layer in layers if "weights_of" in layer}
    plain = plain_values(layers)
    ok = []
    for layer in layers:
        ok.append(layer["op"] not in _FIXED_OPS and "weights_of" not in layer and layer["name"] not in shared
                  and all(source(x) not in plain for x in layer["inputs"])
                  and all(op_of.get(source(x)) != "dequantize" for x in layer["inputs"]))
    return ok


def with_float_sections(spec: Dict[str, Any], rng: np.random.Generator, sections: int = 1) -> Dict[str, Any]:
    """``spec`` with up to ``sections`` runs of 1 to MAX_SECTION_LAYERS consecutive layers (in spec
    order) left in float32, drawn with ``rng``: a ``dequantize`` layer before each value a run
    reads from outside it, a ``quantize`` layer after each of its values read outside it (or a
    model output). Runs avoid the layers no section can hold (conversions, arg_max, shared
    weights); a spec without room for one comes back unchanged. In a float32 model the added
    layers fold away and the spec builds as before."""
    layers = explicit_inputs(spec)
    eligible = _eligible(layers)
    in_section = [False] * len(layers)
    for _ in range(sections):
        starts = [i for i in range(len(layers)) if eligible[i] and not in_section[i]
                  and (i == 0 or not in_section[i - 1])]
        if not starts:
            break
        start = starts[int(rng.integers(len(starts)))]
        length = int(rng.integers(1, MAX_SECTION_LAYERS + 1))
        end = start
        while end + 1 < len(layers) and end + 1 - start < length and eligible[end + 1] and not in_section[end + 1]:
            end += 1
        for i in range(start, end + 1):
            in_section[i] = True
    if not any(in_section):
        return copy.deepcopy(spec)
    return _rewrite(spec, layers, in_section)


def _rewrite(spec: Dict[str, Any], layers: List[Dict[str, Any]], in_section: List[bool]) -> Dict[str, Any]:
    floating = {layer["name"] for layer, f in zip(layers, in_section) if f}
    taken = {x["name"] for x in spec["inputs"]} | {layer["name"] for layer in layers}
    dequantized: Dict[str, str] = {}  # a value read into a section -> its dequantize layer
    quantized: Dict[str, str] = {}  # a section's value read outside it -> its quantize layer
    out: List[Dict[str, Any]] = []
    outputs = list(spec.get("outputs") or [layers[-1]["name"]])

    def requantized(value: str) -> str:
        if value not in quantized:
            quantized[value] = unique(value.replace(":", "_") + "_quantize", taken)
            out.append({"name": quantized[value], "op": "quantize", "inputs": [value]})
        return quantized[value]

    for layer, floats in zip(layers, in_section):
        if floats:
            for k, value in enumerate(layer["inputs"]):
                if source(value) in floating:
                    continue
                if value not in dequantized:
                    dequantized[value] = unique(value.replace(":", "_") + "_dequantize", taken)
                    out.append({"name": dequantized[value], "op": "dequantize", "inputs": [value]})
                layer["inputs"][k] = dequantized[value]
        else:
            layer["inputs"] = [requantized(v) if source(v) in floating else v for v in layer["inputs"]]
        out.append(layer)
    outputs = [requantized(v) if source(v) in floating else v for v in outputs]
    rewritten = with_layers(spec, out)
    if spec.get("outputs") or outputs[0] != out[-1]["name"]:
        rewritten["outputs"] = outputs
    return rewritten


def float_sections_spec(spec: Dict[str, Any], item_seed: int) -> Optional[Dict[str, Any]]:
    """What a ``float_sections="mixed"`` sample with seed ``item_seed`` becomes: ``None`` for a
    third of the seeds (the spec stays as drawn), else the spec with one (two thirds of those) or
    two float sections of its own, drawn from a generator seeded by ``item_seed`` alone."""
    rng = np.random.default_rng([int(item_seed), _SECTIONS_STREAM])
    kind = int(rng.integers(3))
    if kind == 0:
        return None
    return with_float_sections(spec, rng, sections=1 if rng.random() < 2 / 3 else 2)
