"""Flat model inputs as converters write them: a rank-2 input and a RESHAPE to the first layer's shape.

A Keras model whose input is a flat vector (``Input(shape=(1960,))``, then ``Reshape((49, 40, 1))``)
converts to a TFLite graph that starts with a RESHAPE of a [1, N] tensor; TensorFlow Lite Micro's
micro_speech is one. The spaces declare their inputs in the shape their first layers read, so no
training graph had a RESHAPE of a rank-2 model input, and ``Predictor.check`` names that operator as
outside the training domain. Worse than a guess for the RESHAPE itself (Vela prices it at about 0):
its unfamiliar features reach the operators after it through GraphSAGE's neighbourhood, and a
predictor trained on the full world build priced micro_speech's depthwise stem after one at about
0 (latency -86% on ``ethos-u65-512``). :func:`with_flat_inputs` rewrites a spec that way.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ._spec_edit import explicit_inputs, in_half, unique, with_layers

# What sample(..., flat_inputs=...) takes: "none" (specs as drawn) or "mixed" (half of the specs
# with an input of rank 3 or more get every such input flattened, from each seed).
FLAT_INPUTS = ("none", "mixed")
# Keeps this choice's generator apart from the spec's, the weights', the float sections', the
# affine layers' and the depthwise stems'.
_FLAT_STREAM = 0x666C6174


def with_flat_inputs(spec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``spec`` with every model input of rank 3 or more declared as [batch, elements] and a reshape
    layer, named as the input was, that gives the layers their old shape back: the same
    computation, one RESHAPE more per such input. ``None`` when the spec has no such input."""
    layers = explicit_inputs(spec)
    taken = {x["name"] for x in spec["inputs"]} | {layer["name"] for layer in layers}
    inputs, reshapes = [], []
    for x in spec["inputs"]:
        shape = [int(d) for d in x["shape"]]
        if len(shape) < 3:
            inputs.append(dict(x))
            continue
        flat = unique(f"{x['name']}_flat", taken)
        inputs.append({**x, "name": flat, "shape": [shape[0], int(np.prod(shape[1:]))]})
        reshapes.append({"name": x["name"], "op": "reshape", "inputs": [flat], "shape": shape})
    if not reshapes:
        return None
    out = with_layers(spec, reshapes + layers)
    out["inputs"] = inputs
    return out


def flat_inputs_spec(spec: Dict[str, Any], item_seed: int) -> Optional[Dict[str, Any]]:
    """What a ``flat_inputs="mixed"`` sample with seed ``item_seed`` becomes: :func:`with_flat_inputs`
    of the spec for half of the seeds (a generator seeded by ``item_seed`` alone decides), ``None``
    (the spec stays as drawn) for the other half and for specs without an input of rank 3 or more."""
    return with_flat_inputs(spec) if in_half(item_seed, _FLAT_STREAM) else None
