"""Edits of architecture specs that the spec transforms (float sections, affine layers) share."""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Set

import numpy as np

# Producers whose outputs are not the model's activations (int32 indices, a cast's values).
_PLAIN_PRODUCERS = frozenset({"cast", "arg_max"})


def source(name: str) -> str:
    """The layer a value name comes from: "sp:1" is layer "sp"'s second output."""
    return name.split(":", 1)[0]


def explicit_inputs(spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    """A copy of the spec's layers, each with its inputs named (the writer's default: the layer
    before it, the first input for the first layer)."""
    layers = copy.deepcopy(spec["layers"])
    for i, layer in enumerate(layers):
        if "inputs" not in layer or not layer["inputs"]:
            layer["inputs"] = [layers[i - 1]["name"] if i else spec["inputs"][0]["name"]]
        elif isinstance(layer["inputs"], str):
            layer["inputs"] = [layer["inputs"]]
    return layers


def plain_values(layers: List[Dict[str, Any]]) -> Set[str]:
    """The layers whose outputs are not the model's activations: int32 indices, a cast's values,
    a requantisation to another type; elementwise layers cannot take them."""
    return {layer["name"] for layer in layers
            if layer["op"] in _PLAIN_PRODUCERS or (layer["op"] == "quantize" and "to" in layer)}


def unique(name: str, taken: Set[str]) -> str:
    """``name``, or ``name`` with the first number that makes it a name not in ``taken``; taken."""
    out, k = name, 1
    while out in taken:
        out, k = f"{name}{k}", k + 1
    taken.add(out)
    return out


def with_layers(spec: Dict[str, Any], layers: List[Dict[str, Any]]) -> Dict[str, Any]:
    """A copy of ``spec`` with ``layers`` as its layers (the old ones are not copied)."""
    return {**{k: copy.deepcopy(v) for k, v in spec.items() if k != "layers"}, "layers": layers}


def in_half(item_seed: int, stream: int) -> bool:
    """Whether the sample with seed ``item_seed`` is in the half a transform rewrites: a coin from
    a generator seeded by the seed and the transform's ``stream`` alone."""
    return np.random.default_rng([int(item_seed), stream]).random() >= 0.5
