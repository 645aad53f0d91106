"""Writing TFLite models from architecture specs."""

from __future__ import annotations

import json
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _core
from ._core import Graph
from ._graphs import batch_graphs, check_on_error, check_threads
from .spaces import nb201_spec

Spec = Union[Mapping[str, Any], str]

# What build_model writes: full-integer int8 as TensorFlow's converter emits it, float32, and 16x8
# (int16 activations, int8 weights, as audio models use).
DTYPES = ("int8", "float32", "int16x8")


def build_model(spec: Spec, seed: int = 0, dtype: str = "int8") -> bytes:
    """Builds a valid ``.tflite`` model from an architecture spec.

    ``spec`` is a dict (or its JSON text) in the format of ``cpp/include/perfsage/spec.h``: inputs,
    layers in execution order, outputs. ``dtype`` is ``"int8"`` (full-integer, as TensorFlow's
    converter emits it), ``"float32"`` or ``"int16x8"`` (int16 activations with zero point 0, int8
    per-channel weights, int64 biases, as the converter writes with
    ``EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8``; a layer LiteRT has no 16x8
    kernel for raises :class:`PerfSageError` naming it). Weights come from ``seed``: the same
    spec, seed and dtype give identical bytes. An invalid spec raises :class:`PerfSageError`
    naming the layer.
    """
    return _core.build_model(_spec_json(spec), _check_seed(seed), dtype)


def _check_seed(seed: object, what: str = "seed") -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**64:
        raise ValueError(f"{what} must be an int in [0, 2**64), got {seed!r}")
    return seed


def _spec_json(spec: Spec) -> str:
    return spec if isinstance(spec, str) else json.dumps(spec, separators=(",", ":"))


def _spec_name(spec: Spec) -> Optional[str]:
    name = spec.get("name") if isinstance(spec, Mapping) else None
    return name if isinstance(name, str) and name else None


def _core_spec(spec: Spec) -> Union[Mapping[str, Any], str]:
    """A spec as the core's spec functions take it: a dict goes as it is (the binding reads it as
    json.dumps would write it, without the text), any other mapping as its JSON text."""
    return spec if isinstance(spec, (dict, str)) else _spec_json(spec)


def spec_graph(spec: Spec, seed: int = 0, dtype: str = "int8") -> Graph:
    """The :class:`Graph` of ``load_tflite(build_model(spec, seed, dtype))``, without building it.

    No weights are drawn and no TFLite bytes written: the writer's layers give the graph directly,
    many times faster, with the same nodes, edges, operators, features and totals bit for bit, so
    the same predictions. What depends on the drawn weights is nominal: weight and bias quantisation
    scales (``Graph.tensors()``), and the two weight-value feature columns, which are what the spec's
    ``"weights"`` is expected to give (``spec_graph.h`` says how close). The graph's ``source`` is the spec's name (or ``"<spec>"``). An
    invalid spec raises :class:`PerfSageError` naming the layer, as ``build_model`` does.
    """
    return _core.spec_graph(_core_spec(spec), _check_seed(seed), dtype, _spec_name(spec) or "<spec>")


def spec_item(item: Any, where: str, seed: int = 0) -> Tuple[Union[Mapping[str, Any], str], int, str]:
    """The spec, seed and source of one spec or ``sample()`` item, for ``_core.spec_graphs``.

    A ``sample()`` item (a dict with a ``"spec"``) is built with its own ``"seed"``, as
    ``perfsage sample`` builds it; a bare spec with ``seed``. The source is the spec's name, else
    ``where``."""
    if isinstance(item, Mapping) and "spec" in item:
        seed = _check_seed(item.get("seed", seed), f"{where}['seed']")
        item = item["spec"]
    if not isinstance(item, (str, Mapping)):
        raise TypeError(f"{where}: expected a spec (a dict or its JSON text) or a sample() item, "
                        f"got {type(item).__name__}")
    return _core_spec(item), seed, _spec_name(item) or where


def spec_graphs(specs: Iterable[Any], dtype: str = "int8", threads: int = 0, on_error: str = "raise",
                seed: int = 0) -> List[Optional[Graph]]:
    """:func:`spec_graph` for many specs on ``threads`` threads (0: every core), GIL released.

    ``specs`` holds specs (dicts or JSON text) or ``sample()`` items, which are built with their
    own ``"seed"`` (bare specs with ``seed``). Each graph's ``source`` is its spec's name, or
    ``specs[i]`` for an unnamed one; errors start with it and name the layer. ``on_error`` is as in
    :func:`load_many`.
    """
    check_on_error(on_error)
    check_threads(threads)
    seed = _check_seed(seed)
    if isinstance(specs, (str, Mapping)) or not hasattr(specs, "__iter__"):
        raise TypeError(f"specs: expected a list of specs or sample() items, got one {type(specs).__name__}; "
                        "wrap a single spec in a list, or use spec_graph")
    items = [spec_item(item, f"specs[{i}]", seed) for i, item in enumerate(specs)]
    return batch_graphs(build_spec_graphs(items, dtype, threads), on_error)


def build_spec_graphs(items: Sequence[Tuple[Union[Mapping[str, Any], str], int, str]], dtype: str, threads: int
                      ) -> List[Tuple[Optional[Graph], str]]:
    """``_core.spec_graphs`` for :func:`spec_item` results: (graph or None, error) per item."""
    return _core.spec_graphs([spec for spec, _, _ in items], [seed for _, seed, _ in items],
                             [source for _, _, source in items], dtype, threads)


def strip_weights(model: Union[bytes, bytearray, memoryview]) -> bytes:
    """A copy of TFLite bytes with every constant buffer emptied but all shapes kept.

    The result is a valid TFLite file of a few KB that perfsage reads to exactly the same
    features as the original, which is what a dataset needs to store. Runtimes cannot run it.
    """
    return _core.strip_weights(model)


def nb201_model(arch_str: str, dtype: str = "float32", seed: int = 0, executed: bool = False) -> bytes:
    """The NAS-Bench-201 CIFAR-10 network for a cell string, as TFLite bytes.

    The skeleton is the one the measured latencies in shared/data/nasbench201 belong to. By
    default ``none`` edges are pruned and cell nodes that do not connect input to output are
    removed; ``executed=True`` keeps every edge, as NAS-Bench-201's PyTorch code runs the network
    (see ``perfsage.spaces.nb201``).
    """
    return build_model(nb201_spec(arch_str, executed), seed=seed, dtype=dtype)
