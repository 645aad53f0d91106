"""Seeded search spaces of architecture specs (the format of ``cpp/include/perfsage/spec.h``).

::

    from perfsage import spaces
    spaces.spaces()                             # {name: SearchSpace}
    items = spaces.sample("kws", n=100, seed=0)  # [{"space", "seed", "spec"}, ...]
    spec = spaces.nb201_spec("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...")
    spaces.estimate_cost(spec)                  # {"macs", "params"} before any TFLite is written

Sample ``i`` of ``sample(space, n, seed)`` is drawn from a generator seeded with a value derived
from ``(seed, i)`` alone, recorded as the item's ``"seed"``: it is the same whatever ``n`` is, and
``get_space(space).sample_spec(numpy.random.default_rng(item["seed"]))`` draws it again.

``sample(..., weights="mixed")`` also sets each spec's ``"weights"`` (how the writer draws weight
values: distribution and pruning sparsity) from a second generator seeded by the item's seed, so
that a data set holds trained-like and pruned models too (see :func:`weights_spec`);
``weights="trained"`` draws every spec's weights as trained and converted models carry them:
normal, laplace or heavy-tailed Student-t values, some pruned, and dense layers quantised per
tensor in half of them (see :func:`trained_weights_spec`).
``sample(..., float_sections="mixed")`` leaves runs of two thirds of the specs' layers in float32
inside the quantized model, from a third generator seeded by the item's seed, as converters leave
what they do not quantize (see :func:`float_sections_spec`). ``sample(..., affine="mixed")``
inserts what converters leave unfolded into two thirds of the specs, from a fourth generator:
input normalisation and batch norms, elementwise layers with constant operands (see
:func:`affine_spec`). ``sample(..., stems="mixed")`` writes half of the convolutions of one-channel
inputs as the depthwise convolutions with a depth multiplier that converters write for them, from
a fifth generator (see :func:`depthwise_stems_spec`). ``sample(..., flat_inputs="mixed")`` declares
the inputs of rank 3 or more of half of the specs as flat vectors with a reshape after them, as
converters write models whose input is one, from a sixth generator (see :func:`flat_inputs_spec`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from .._core import layer_ops
from . import (
    autoencoder,
    cnn_families,
    detection,
    image_classification,
    kws,
    mobile_v3,
    motifs,
    nb201,
    op_zoo,
    recurrent_audio,
    super_resolution,
    transformer,
)
from ._affine import AFFINE, affine_spec, with_affine_layers
from ._builder import SpecBuilder, estimate_cost
from ._depthwise_stems import STEMS, depthwise_stems_spec, with_depthwise_stems
from ._flat_inputs import FLAT_INPUTS, flat_inputs_spec, with_flat_inputs
from ._float_sections import FLOAT_SECTIONS, float_sections_spec, with_float_sections
from ._space import SearchSpace
from .nb201 import nb201_spec

__all__ = [
    "AFFINE",
    "FLAT_INPUTS",
    "FLOAT_SECTIONS",
    "STEMS",
    "SearchSpace",
    "SpecBuilder",
    "affine_spec",
    "depthwise_stems_spec",
    "estimate_cost",
    "flat_inputs_spec",
    "float_sections_spec",
    "get_space",
    "nb201_spec",
    "sample",
    "sample_seed",
    "spaces",
    "trained_weights_spec",
    "weights_spec",
    "with_affine_layers",
    "with_depthwise_stems",
    "with_flat_inputs",
    "with_float_sections",
    "WEIGHTS",
]

# What sample(..., weights=...) takes: "uniform" (every spec without "weights": the writer's
# Glorot-uniform, unpruned), "mixed" (weights_spec's mix) or "trained" (trained_weights_spec's).
WEIGHTS = ("uniform", "mixed", "trained")
# Keep the weights' generators apart from the spec's, which is seeded by the item's seed alone.
_WEIGHTS_STREAM = 0x77656967
_TRAINED_WEIGHTS_STREAM = 0x74726E64

_SPACES: Dict[str, SearchSpace] = {
    m.SPACE.name: m.SPACE
    for m in (image_classification, kws, super_resolution, detection, nb201, autoencoder, transformer, op_zoo,
              mobile_v3, cnn_families, recurrent_audio, motifs)
}


def spaces() -> Dict[str, SearchSpace]:
    """Every search space by name."""
    return dict(_SPACES)


def get_space(name: str) -> SearchSpace:
    """The search space called ``name``; ``ValueError`` listing the known spaces otherwise."""
    try:
        return _SPACES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown search space {name!r} (known: {', '.join(_SPACES)})") from None


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a run seeded with ``seed``: a 63-bit int that depends on
    both (through numpy's SeedSequence), so runs with nearby seeds do not share samples."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _non_negative_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{what} must be a non-negative int, got {value!r}")
    return int(value)


def weights_spec(item_seed: int) -> Optional[Dict[str, Any]]:
    """The ``"weights"`` a ``weights="mixed"`` sample with seed ``item_seed`` gets: a third none
    (``None``: Glorot-uniform, as a freshly initialised model), a third trained-like (``normal`` or
    ``laplace`` values, unpruned) and a third pruned (``normal`` or ``laplace``, sparsity uniform
    in [0.3, 0.95], rounded to 3 decimals). Vela compresses the weights of the last two; their
    weight-bound layers run faster than the shapes alone say."""
    rng = np.random.default_rng([_non_negative_int(item_seed, "item_seed"), _WEIGHTS_STREAM])
    kind = int(rng.integers(3))
    distribution = "normal" if rng.random() < 0.5 else "laplace"
    sparsity = round(float(rng.uniform(0.3, 0.95)), 3)
    if kind == 0:
        return None
    if kind == 1:
        return {"distribution": distribution}
    return {"distribution": distribution, "sparsity": sparsity}


def trained_weights_spec(item_seed: int) -> Dict[str, Any]:
    """The ``"weights"`` a ``weights="trained"`` sample with seed ``item_seed`` gets: ``normal``,
    ``laplace`` or ``student_t`` values (a third each), pruned to a sparsity uniform in [0.3, 0.95]
    (rounded to 3 decimals) for a quarter of the seeds, and ``"dense": "per_tensor"`` for half.

    Trained weights quantise to smaller integers than a fresh initialisation's: a few large values
    set each scale and most weights sit far below it, the more so with one scale per tensor. The
    shared MLPerf Tiny and TFLite Micro models carry every FULLY_CONNECTED kernel per tensor, with
    a mean log2(1 + |q|) down to 1.1 bits against 5.6 for Glorot-uniform, and Vela's weight
    compression makes their weight-bound layers up to three times faster than uniform weights of
    the same shapes. Heavy-tailed Student-t values reach that range; normal and laplace do not."""
    rng = np.random.default_rng([_non_negative_int(item_seed, "item_seed"), _TRAINED_WEIGHTS_STREAM])
    out: Dict[str, Any] = {"distribution": ("normal", "laplace", "student_t")[int(rng.integers(3))]}
    pruned = rng.random() < 0.25
    sparsity = round(float(rng.uniform(0.3, 0.95)), 3)
    if pruned:
        out["sparsity"] = sparsity
    if rng.random() < 0.5:
        out["dense"] = "per_tensor"
    return out


def sample(space: str, n: int, seed: int = 0, dtype: str = "int8", weights: str = "uniform",
           float_sections: str = "none", affine: str = "none", stems: str = "none",
           flat_inputs: str = "none") -> List[Dict[str, Any]]:
    """``n`` samples of ``space``: ``[{"space": name, "seed": int, "spec": dict}, ...]``.

    Each spec is JSON-serialisable and named ``"<space>-<seed>"`` unless the space names it (NAS-Bench-201
    specs carry their cell string). The same ``(space, seed, dtype)`` always gives the same specs.
    ``dtype`` is the type the models will be written in: every spec of ``"int8"`` and ``"float32"``
    builds in both (the same specs); ``"int16x8"`` redraws, from the same generator, any draw with a
    layer the writer has no 16x8 kernel for, so its sample ``i`` is the int8 one when that has none.
    A space made only of such draws (``super_resolution``: depth-to-space; ``transformer``: layer
    norms) raises ``RuntimeError``. ``weights`` is ``"uniform"`` (no spec has ``"weights"``),
    ``"mixed"`` (each spec gets :func:`weights_spec` of its seed when that is not ``None``) or
    ``"trained"`` (each spec gets :func:`trained_weights_spec` of its seed); the layers drawn are
    the same whichever. ``float_sections`` is ``"none"`` or ``"mixed"`` (each
    spec becomes :func:`float_sections_spec` of its seed when that is not ``None``: the same
    layers, runs of them between added dequantize and quantize layers). ``affine`` is ``"none"``
    or ``"mixed"`` (each spec becomes :func:`affine_spec` of its seed when that is not ``None``:
    the same layers and constant-operand mul, add and sub layers among them), applied before the
    float sections. ``stems`` is ``"none"`` or ``"mixed"`` (each spec becomes
    :func:`depthwise_stems_spec` of its seed when that is not ``None``: its conv2d layers on
    one-channel inputs as depthwise_conv2d with a depth multiplier), applied first. ``flat_inputs``
    is ``"none"`` or ``"mixed"`` (each spec becomes :func:`flat_inputs_spec` of its seed when that
    is not ``None``: its inputs of rank 3 or more flat, each with a reshape after it), applied last.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if float_sections not in FLOAT_SECTIONS:
        raise ValueError(f"float_sections must be one of {', '.join(FLOAT_SECTIONS)}, got {float_sections!r}")
    if affine not in AFFINE:
        raise ValueError(f"affine must be one of {', '.join(AFFINE)}, got {affine!r}")
    if stems not in STEMS:
        raise ValueError(f"stems must be one of {', '.join(STEMS)}, got {stems!r}")
    if flat_inputs not in FLAT_INPUTS:
        raise ValueError(f"flat_inputs must be one of {', '.join(FLAT_INPUTS)}, got {flat_inputs!r}")
    search_space = get_space(space)
    n = _non_negative_int(n, "n")
    seed = _non_negative_int(seed, "seed")
    ops = frozenset(layer_ops(dtype))
    items = []
    for i in range(n):
        item_seed = sample_seed(seed, i)
        spec = search_space.sample_spec(np.random.default_rng(item_seed), ops)
        if stems == "mixed":
            spec = depthwise_stems_spec(spec, item_seed) or spec
        if affine == "mixed":
            spec = affine_spec(spec, item_seed) or spec
        if float_sections == "mixed":
            spec = float_sections_spec(spec, item_seed) or spec
        if flat_inputs == "mixed":
            spec = flat_inputs_spec(spec, item_seed) or spec
        spec = {"name": f"{space}-{item_seed}", **spec}
        values = (weights_spec(item_seed) if weights == "mixed" else
                  trained_weights_spec(item_seed) if weights == "trained" else None)
        if values is not None:
            spec["weights"] = values
        items.append({"space": space, "seed": item_seed, "spec": spec})
    return items
