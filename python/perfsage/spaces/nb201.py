"""NAS-Bench-201: the CIFAR-10 macro skeleton around any cell string.

The network is ``TinyNetwork(C=16, N=5, genotype, num_classes=10)`` of NAS-Bench-201
(D-X-Y/AutoDL-Projects, lib/models/cell_infers/tiny_network.py and lib/models/cell_operations.py):

- stem: conv 3x3, 16 channels + BN;
- three stages of five cells at 16, 32, 64 channels, separated by ``ResNetBasicblock(stride=2)``:
  ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, plus a shortcut of AvgPool2d(2, 2) and a bias-free
  conv 1x1 (no BN), summed (the shortcut reads the block input before the ReLU);
- BN + ReLU, global average pooling, dense 10 (logits; no softmax, as the benchmark's network).

A cell is a DAG on nodes 0-3; edge ``i <- j`` carries none, skip_connect, nor_conv_1x1 or
nor_conv_3x3 (ReLU-conv-BN) or avg_pool_3x3 (stride 1, padding 1, count_include_pad=False, which
is what TFLite's SAME-padded AVERAGE_POOL_2D computes); node i sums its incoming edges.

Lowering choices, each what TensorFlow's converter (with its graph optimisations) would give:

- BN folds into the preceding conv as a bias. The final BN follows an add, so it cannot fold; it
  is a 1x1 depthwise conv with bias and fused ReLU (a per-channel scale and shift: 2 x 64
  parameters, exactly BN's affine parameters). The shortcut's bias-free conv gets a zero bias, as
  the converter gives it.
- ``none`` edges are dropped, and so are nodes that the cell input does not reach or that do not
  reach the cell output: what remains computes the same output up to the constant that BN adds
  to a zero input. A cell whose output the input does not reach at all (all such paths ``none``)
  raises ``ValueError``: the network's output would not depend on its input, and the
  benchmark's own data marks these architectures as degenerate.
- Identical parameter-free operations on the same tensor (the ReLU in front of two convs reading
  the same node, two average pools of one node) are computed once, as common-subexpression
  elimination does.

``executed=True`` builds instead the network as NAS-Bench-201's PyTorch code runs it, which is what
the measured devices timed (a linear fit on which edges carry which op explains gold_6226 and
titan_rtx_1 latencies closely only when dead edges count; commit 37c9f17): every edge is computed, including
those of nodes that do not connect input to output; each conv edge has its own ReLU and each pool
edge its own pool (no common subexpressions); a ``none`` edge is PyTorch's ``Zero``, ``x * 0``,
written as ``SUB(x, x)``, an elementwise op of the same cost.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Set, Tuple

import numpy as np

from ._blocks import choice, classifier, conv, depthwise
from ._builder import SpecBuilder
from ._space import SearchSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# The cell's edges (to, from), in the order of the arch string.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_NODES = 4
STAGE_CHANNELS = (16, 32, 64)
CELLS_PER_STAGE = 5
INPUT_SHAPE = [1, 32, 32, 3]
NUM_CLASSES = 10

Cell = Dict[Tuple[int, int], str]


def parse_arch(arch: str) -> Cell:
    """Parses a cell string such as ``|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...~0|...~1|...~2|``
    into ``{(to, from): op}``; raises ``ValueError`` saying what is malformed."""
    if not isinstance(arch, str):
        raise ValueError(f"NAS-Bench-201 arch string must be a str, got {type(arch).__name__}")
    nodes = arch.split("+")
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(
            f"NAS-Bench-201 arch string {arch!r}: expected {NUM_NODES - 1} nodes separated by '+', "
            f"got {len(nodes)}"
        )
    cell: Cell = {}
    for to, node in enumerate(nodes, start=1):
        where = f"NAS-Bench-201 arch string {arch!r}, node {to} ({node!r})"
        if len(node) < 2 or not (node.startswith("|") and node.endswith("|")):
            raise ValueError(f"{where}: must be '|op~j|...|' with a '|' at each end")
        edges = node[1:-1].split("|")
        if len(edges) != to:
            raise ValueError(f"{where}: expected {to} edges (from nodes 0..{to - 1}), got {len(edges)}")
        for source, edge in enumerate(edges):
            op, sep, index = edge.partition("~")
            if not sep or index != str(source):
                raise ValueError(f"{where}: edge {edge!r} must be 'op~{source}'")
            if op not in OPS:
                raise ValueError(f"{where}: unknown op {op!r} (expected one of {', '.join(OPS)})")
            cell[(to, source)] = op
    return cell


def arch_string(ops: Sequence[str]) -> str:
    """The cell string of six edge ops given in the order of :data:`EDGES`."""
    if len(ops) != len(EDGES):
        raise ValueError(f"expected {len(EDGES)} edge ops, got {len(ops)}")
    cell = dict(zip(EDGES, ops))
    return "+".join(
        "|" + "|".join(f"{cell[(to, j)]}~{j}" for j in range(to)) + "|" for to in range(1, NUM_NODES)
    )


def live_nodes(cell: Cell) -> Set[int]:
    """Nodes on some path of non-``none`` edges from the cell input (0) to its output (3)."""
    reached = {0}
    for to in range(1, NUM_NODES):
        if any(cell[(to, j)] != "none" and j in reached for j in range(to)):
            reached.add(to)
    reaching = {NUM_NODES - 1}
    for source in range(NUM_NODES - 2, -1, -1):
        if any(cell[(to, source)] != "none" and to in reaching for to in range(source + 1, NUM_NODES)):
            reaching.add(source)
    return reached & reaching


class _Cse:
    """Adds each parameter-free layer once per (op, input), as common-subexpression elimination
    does."""

    def __init__(self, b: SpecBuilder, shared: bool = True) -> None:
        self._b = b
        self._shared = shared  # False: every call adds its own layer (executed networks)
        self._seen: Dict[Tuple[str, str], str] = {}

    def __call__(self, op: str, x: str, name: str, **params: object) -> str:
        """The output of ``op`` on ``x``, added as layer ``name`` unless it exists already."""
        key = (op, x) if self._shared else (op, name)
        if key not in self._seen:
            self._seen[key] = self._b.add(op, x, name, **params)
        return self._seen[key]


def _cell(b: SpecBuilder, cse: _Cse, x: str, name: str, cell: Cell, live: Set[int], executed: bool) -> str:
    """One cell on input ``x`` (only the ``live`` nodes unless ``executed``); returns node 3."""
    channels = b.channels(x)
    nodes = {0: x}
    for to in range(1, NUM_NODES):
        if not executed and to not in live:
            continue
        terms: List[str] = []
        for source in range(to):
            op = cell[(to, source)]
            if not executed and (op == "none" or source not in live):
                continue
            t = nodes[source]
            # Executed: one operator per edge. Pruned: one per (op, node), shared by its edges.
            prefix = f"{name}_e{to}{source}" if executed else f"{name}_n{source}"
            if op == "none":
                terms.append(b.add("sub", [t, t], f"{name}_e{to}{source}_zero"))
            elif op == "skip_connect":
                terms.append(t)
            elif op == "avg_pool_3x3":
                terms.append(cse("avg_pool2d", t, f"{prefix}_avgpool", pool=3, stride=1, padding="same"))
            else:
                kernel = 1 if op == "nor_conv_1x1" else 3
                conv_name = f"{name}_e{to}{source}_conv{kernel}x{kernel}"
                terms.append(conv(b, cse("relu", t, f"{prefix}_relu"), conv_name, channels, kernel))
        total = terms[0]
        for k, term in enumerate(terms[1:], start=1):
            total = b.add("add", [total, term], f"{name}_n{to}_add{k}")
        nodes[to] = total
    return nodes[NUM_NODES - 1]


def _reduction_block(b: SpecBuilder, cse: _Cse, x: str, name: str, channels: int) -> str:
    """NAS-Bench-201's ResNetBasicblock with stride 2."""
    y = conv(b, cse("relu", x, f"{name}_relu"), f"{name}_conv_a", channels, 3, 2, act="relu")
    y = conv(b, y, f"{name}_conv_b", channels, 3)
    shortcut = b.add("avg_pool2d", x, f"{name}_down_pool", pool=2, stride=2)
    shortcut = conv(b, shortcut, f"{name}_down_conv", channels, 1)
    return b.add("add", [shortcut, y], f"{name}_add")


def build_arch(arch: str, executed: bool = False) -> SpecBuilder:
    """The NAS-Bench-201 network of one cell string, as a builder (see :func:`nb201_spec`)."""
    cell = parse_arch(arch)
    live = live_nodes(cell)
    if NUM_NODES - 1 not in live:
        raise ValueError(
            f"NAS-Bench-201 cell {arch!r} has no path from input to output (every path has a "
            "'none' edge): the network's output does not depend on its input"
        )
    b = SpecBuilder({"image": INPUT_SHAPE}, name=f"nb201{arch}")
    cse = _Cse(b, shared=not executed)
    y = conv(b, "image", "stem", STAGE_CHANNELS[0], 3)
    for s, channels in enumerate(STAGE_CHANNELS):
        if s > 0:
            y = _reduction_block(b, cse, y, f"reduce{s}", channels)
        for c in range(CELLS_PER_STAGE):
            y = _cell(b, cse, y, f"s{s + 1}c{c + 1}", cell, live, executed)
    y = depthwise(b, y, "lastact", 1, act="relu")
    classifier(b, y, NUM_CLASSES, softmax=False)
    return b


def nb201_spec(arch: str, executed: bool = False) -> dict:
    """The spec of NAS-Bench-201's CIFAR-10 network with cell ``arch``: pruned as TensorFlow's
    converter would, or ``executed`` as NAS-Bench-201's PyTorch code runs it (module docstring).

    Raises ``ValueError`` for a malformed string or a cell whose output its input does not reach.
    """
    return build_arch(arch, executed).spec()


def _sample(rng: np.random.Generator) -> SpecBuilder:
    """A cell drawn uniformly from the 5^6 strings, redrawn while its output is unreachable."""
    while True:
        ops = [choice(rng, OPS) for _ in EDGES]
        if NUM_NODES - 1 in live_nodes(dict(zip(EDGES, ops))):
            return build_arch(arch_string(ops))


SPACE = SearchSpace(
    name="nb201",
    description=(
        "NAS-Bench-201: the CIFAR-10 macro skeleton (stem, 3 x 5 cells at 16/32/64 channels, "
        "ResNet reduction blocks, BN-ReLU, GAP, dense 10) around a cell drawn uniformly among the "
        "5^6 strings whose output depends on the input"
    ),
    knobs={f"edge_{to}<-{source}": list(OPS) for to, source in EDGES},
    build=_sample,
)
