"""The C++ GraphSAGE core against an independent NumPy reference (sage_reference.py).

First the reference is checked on its own: neighbourhoods follow the edge direction the model
definition gives, and its hand-written gradients agree with central finite differences in float64 for
every aggregator x direction x layer norm x residual x loss. Then perfsage.Predictor's
loss_and_gradients must reproduce the reference's loss, raw outputs and every gradient to 1e-5
relative in float64 (and to a looser, stated tolerance in float32) on generated models from several
search spaces, real models, a one-operator graph, graphs without edges and a graph with an isolated
node; predict() must equal exp(o * target_std + target_mean)."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest

import perfsage
import sage_reference as ref
from sage_reference import GraphArrays, SageConfig

TARGETS = ["latency", "memory"]
# Every combination that changes the computation graph.
ALL_COMBINATIONS = [
    SageConfig(aggregator=agg, direction=direction, layer_norm=ln, residual=res, loss=loss)
    for agg, direction, ln, res, loss in itertools.product(
        ref.AGGREGATORS, ref.DIRECTIONS, (True, False), (True, False), ref.LOSSES
    )
]
# Other depths and widths: one SAGE layer and a single linear head; a deeper, narrower stack; and
# F + D == H (45 + 19 == 64), where layer 0's input already has H columns but, per the definition
# ("k >= 1"), still gets no residual connection.
OTHER_SHAPES = [
    SageConfig(embedding_dim=4, hidden=8, layers=1, head_layers=1, aggregator="max", direction="out",
               readout_channels=0),
    SageConfig(embedding_dim=5, hidden=12, layers=4, head_layers=3, head_hidden=7, aggregator="sum",
               loss="log_mse"),
    SageConfig(embedding_dim=19, hidden=64, layers=2, aggregator="mean", direction="in"),
]


def config_id(config: SageConfig) -> str:
    return (
        f"{config.aggregator}-{config.direction}-{'ln' if config.layer_norm else 'noln'}-"
        f"{'res' if config.residual else 'nores'}-{config.loss}-"
        f"D{config.embedding_dim}H{config.hidden}K{config.layers}L{config.head_layers}"
    )


# ------------------------------------------------------------------ the reference on its own


def test_aggregation_follows_the_edge_direction() -> None:
    """a_in gathers predecessors (sources of edges into a node), a_out successors; nodes without
    such neighbours get zeros, and max credits the lowest node index on ties."""
    # 0 -> 1, 3 -> 1, 1 -> 2; node 4 isolated. Node 0 and node 3 tie in column 1.
    graph = ref.make_graph(np.zeros((5, 1)), np.zeros(5), np.array([[0, 3, 1], [1, 1, 2]]), np.zeros(1))
    h = np.array([[1.0, 5.0], [2.0, -1.0], [4.0, 0.5], [3.0, 5.0], [9.0, 9.0]])
    a_in, _ = ref.aggregate(h, graph.predecessors, "sum")
    np.testing.assert_array_equal(a_in, [[0, 0], [4, 10], [2, -1], [0, 0], [0, 0]])
    a_out, _ = ref.aggregate(h, graph.successors, "mean")
    np.testing.assert_array_equal(a_out, [[2, -1], [4, 0.5], [0, 0], [2, -1], [0, 0]])
    a_max, winners = ref.aggregate(h, graph.predecessors, "max")
    np.testing.assert_array_equal(a_max, [[0, 0], [3, 5], [2, -1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(winners[1], [3, 0])
    d_h = ref.aggregate_backward(np.ones((5, 2)), graph.predecessors, "max", winners)
    np.testing.assert_array_equal(d_h, [[0, 1], [1, 1], [0, 0], [1, 0], [0, 0]])


def _synthetic_graphs(rng: np.random.Generator) -> List[GraphArrays]:
    """Small graphs with features spanning magnitudes like real ones: a DAG with a join, a fan-in
    node and an isolated node; a single node; two unconnected nodes; a chain."""
    num_features, num_graph_features = 6, 5

    def graph(num_nodes: int, edges: Sequence[Tuple[int, int]]) -> GraphArrays:
        scale = rng.choice([1.0, 100.0, 1e5], size=(num_nodes, num_features))
        x = rng.standard_normal((num_nodes, num_features)) * scale
        edge_index = np.array(edges, dtype=np.int64).T if edges else np.zeros((2, 0), np.int64)
        graph_features = rng.standard_normal(num_graph_features) * 30
        return ref.make_graph(x, rng.integers(0, 9, num_nodes), edge_index, graph_features)

    return [
        graph(6, [(0, 1), (0, 2), (1, 3), (2, 3), (4, 3), (3, 0)]),
        graph(1, []),
        graph(2, []),
        graph(4, [(0, 1), (1, 2), (2, 3)]),
    ]


def _synthetic_labels(rng: np.random.Generator, num_graphs: int) -> np.ndarray:
    labels = np.exp(rng.standard_normal((num_graphs, len(TARGETS))))
    labels[0, 1] = np.nan
    labels[2, :] = np.nan  # a graph with no label at all contributes nothing
    return labels


FD_STEP = 1e-6
Setup = Tuple[SageConfig, List[GraphArrays], np.ndarray, Dict[str, np.ndarray], ref.Params]


def _fd_setup(config: SageConfig, seed: int) -> Setup:
    """Synthetic graphs and labels, fitted statistics and random parameters for a narrow version of
    `config` (D=3, H=4, M=5: few parameters, same computation)."""
    rng = np.random.default_rng(seed)
    graphs = _synthetic_graphs(rng)
    labels = _synthetic_labels(rng, len(graphs))
    norm = ref.fit_normalization(graphs, labels)
    small = SageConfig(**{**config.kwargs(), "embedding_dim": 3, "hidden": 4, "head_hidden": 5})
    num_features, num_graph_features = graphs[0].node_features.shape[1], graphs[0].graph_features.size
    shapes = ref.parameter_shapes(small, num_features, num_graph_features, len(TARGETS))
    return small, graphs, labels, norm, ref.random_parameters(shapes, rng)


def _central_difference(setup: Setup, name: str, direction: np.ndarray) -> float:
    """(L(p + step * direction) - L(p - step * direction)) / (2 step), moving parameter `name`."""
    config, graphs, labels, norm, params = setup
    losses = []
    for sign in (1.0, -1.0):
        moved = {**params, name: params[name] + sign * FD_STEP * direction}
        losses.append(ref.loss_and_gradients(moved, norm, config, graphs, labels)[0])
    return (losses[0] - losses[1]) / (2 * FD_STEP)


def _assert_close_to_fd(numeric: float, analytic: float, where: object) -> None:
    # Truncation ~step^2 and rounding ~1e-16/step are both far below 1e-6 of an O(1e-2..1) slope.
    assert abs(numeric - analytic) <= 1e-6 * max(abs(analytic), 1e-2), (where, numeric, analytic)


@pytest.mark.parametrize("config", ALL_COMBINATIONS + OTHER_SHAPES, ids=config_id)
def test_reference_gradients_match_finite_differences(config: SageConfig) -> None:
    """Per parameter, the derivative along a random direction, float64 central differences against
    the hand-written gradient."""
    setup = _fd_setup(config, seed=7)
    small, graphs, labels, norm, params = setup
    _, _, grads = ref.loss_and_gradients(params, norm, small, graphs, labels)
    assert set(grads) == set(params)
    rng = np.random.default_rng(8)
    for name, value in params.items():
        direction = rng.standard_normal(value.shape)
        analytic = float((grads[name] * direction).sum())
        _assert_close_to_fd(_central_difference(setup, name, direction), analytic, name)


@pytest.mark.parametrize(
    "config",
    [SageConfig(aggregator="max", direction="both", loss="mape"),
     SageConfig(aggregator="mean", direction="in", layer_norm=False, residual=True, loss="log_mse"),
     SageConfig(aggregator="sum", direction="out", layer_norm=True, residual=False, loss="mape")],
    ids=config_id,
)
def test_reference_gradients_entrywise(config: SageConfig) -> None:
    """Entry by entry (all entries of small parameters, 12 random ones plus the 12 largest of big
    ones): catches errors a random direction could average out, e.g. a transposed weight gradient.
    Embedding rows of op types absent from the batch have exactly zero gradient."""
    setup = _fd_setup(config, seed=3)
    small, graphs, labels, norm, params = setup
    _, _, grads = ref.loss_and_gradients(params, norm, small, graphs, labels)
    used_types = np.unique(np.concatenate([g.op_types for g in graphs]))
    unused = np.setdiff1d(np.arange(ref.NUM_OP_TYPES), used_types)
    assert np.all(grads["embedding"][unused] == 0.0)
    rng = np.random.default_rng(4)
    for name, value in params.items():
        if name == "embedding":
            rows, columns = np.meshgrid(used_types, np.arange(value.shape[1]), indexing="ij")
            candidates = np.ravel_multi_index((rows.ravel(), columns.ravel()), value.shape)
        else:
            candidates = np.arange(value.size)
        if candidates.size > 24:
            largest = candidates[np.argsort(-np.abs(grads[name].ravel()[candidates]))[:12]]
            candidates = np.union1d(largest, rng.choice(candidates, 12, replace=False))
        for index in candidates:
            direction = np.zeros(value.size)
            direction[index] = 1.0
            numeric = _central_difference(setup, name, direction.reshape(value.shape))
            _assert_close_to_fd(numeric, grads[name].ravel()[index], (name, int(index)))


def test_reference_rejects_what_the_definition_excludes() -> None:
    rng = np.random.default_rng(0)
    graphs = _synthetic_graphs(rng)
    config = SageConfig(embedding_dim=2, hidden=3, head_hidden=3)
    shapes = ref.parameter_shapes(config, 6, 5, len(TARGETS))
    params = ref.random_parameters(shapes, rng)
    labels = _synthetic_labels(rng, len(graphs))
    norm = ref.fit_normalization(graphs, labels)
    with pytest.raises(ValueError, match="no finite value"):
        ref.loss_and_gradients(params, norm, config, graphs, np.full_like(labels, np.nan))
    negative = labels.copy()
    negative[1, 0] = -2.0
    with pytest.raises(ValueError, match=r"labels\[1, 0\] = -2.0"):
        ref.loss_and_gradients(params, norm, config, graphs, negative)
    with pytest.raises(ValueError, match="duplicate edges"):
        ref.make_graph(np.zeros((2, 6)), np.zeros(2), np.array([[0, 0], [1, 1]]), np.zeros(5))


# ------------------------------------------------------------------ graphs for the C++ comparison


def _build(spec: dict, dtype: str = "int8") -> perfsage.Graph:
    return perfsage.load_tflite(perfsage.build_model(spec, seed=0, dtype=dtype))


# One FULLY_CONNECTED operator: a one-node graph with no edges.
ONE_NODE = {"inputs": [{"name": "x", "shape": [1, 8]}],
            "layers": [{"name": "fc", "op": "dense", "units": 4}]}
# Two independent operators on two inputs: two nodes, no edges.
TWO_UNCONNECTED = {
    "inputs": [{"name": "x", "shape": [1, 8]}, {"name": "y", "shape": [1, 6]}],
    "layers": [{"name": "fc", "op": "dense", "units": 4, "inputs": ["x"]},
               {"name": "t", "op": "tanh", "inputs": ["y"]}],
    "outputs": ["fc", "t"],
}
# A three-operator branch next to an operator whose only input is a graph input: an isolated node.
WITH_ISOLATED = {
    "inputs": [{"name": "x", "shape": [1, 8, 8, 3]}, {"name": "y", "shape": [1, 10]}],
    "layers": [{"name": "c", "op": "conv2d", "filters": 8, "kernel": 3, "inputs": ["x"]},
               {"name": "dw", "op": "depthwise_conv2d", "kernel": 3},
               {"name": "sum", "op": "add", "inputs": ["c", "dw"]},
               {"name": "sig", "op": "logistic", "inputs": ["y"]}],
    "outputs": ["sum", "sig"],
}
GENERATED_SPACES = ["kws", "autoencoder", "super_resolution", "nb201", "image_classification", "transformer"]


def _smallest_samples(space: str, count: int) -> List[perfsage.Graph]:
    """The `count` smallest of the first 8 seeded samples of a space: real structure, fast tests."""
    graphs = [_build(item["spec"]) for item in perfsage.sample(space, 8, seed=0)]
    return sorted(graphs, key=lambda g: g.num_nodes)[:count]


@pytest.fixture(scope="module")
def batch() -> List[perfsage.Graph]:
    """The edge cases first (their row positions matter to _labels), then generated models: 13
    graphs, 1 to ~40 nodes each."""
    edge_cases = [ONE_NODE, TWO_UNCONNECTED, WITH_ISOLATED]
    graphs = [_build(spec) for spec in edge_cases] + [_build(WITH_ISOLATED, "float32")]
    assert [g.num_nodes for g in graphs[:3]] == [1, 2, 4]
    assert graphs[0].num_edges == graphs[1].num_edges == 0
    connected = graphs[2].edge_index.ravel()
    assert graphs[2].num_edges == 3 and np.setdiff1d(np.arange(4), connected).size == 1
    for space in GENERATED_SPACES:
        graphs += _smallest_samples(space, 2 if space in ("kws", "autoencoder", "super_resolution") else 1)
    return graphs


def _labels(num_graphs: int, seed: int) -> np.ndarray:
    """Positive labels spanning two orders of magnitude with ~20% missing, one graph with none, and
    at least two observed per target. float32 so that both sides read the same values."""
    rng = np.random.default_rng(seed)
    labels = np.exp(rng.uniform(-2.0, 3.0, size=(num_graphs, len(TARGETS)))).astype(np.float32)
    labels[rng.random(labels.shape) < 0.2] = np.nan
    labels[1, :] = np.nan
    labels[0, :] = [1.5, 40.0]
    labels[2, :] = [0.3, 7.0]
    return labels


# ------------------------------------------------------------------ C++ against the reference


def _predictor(
    config: SageConfig, graphs: List[perfsage.Graph], labels: np.ndarray, seed: int
) -> perfsage.Predictor:
    predictor = perfsage.Predictor(targets=TARGETS, seed=seed, **config.kwargs())
    predictor.initialize(graphs, labels)
    return predictor


def _perturb(predictor: perfsage.Predictor, seed: int) -> None:
    """Moves every parameter off its initial value (biases and layer-norm parameters are usually
    initialised to 0 and 1, which would leave some gradient paths untested)."""
    rng = np.random.default_rng(seed)
    moved = {}
    for name, value in predictor.parameters().items():
        scale = 0.2 / np.sqrt(value.shape[0]) if value.ndim == 2 and name != "embedding" else 0.2
        moved[name] = (value + scale * rng.standard_normal(value.shape)).astype(np.float32)
    predictor.set_parameters(moved)
    for name, value in predictor.parameters().items():
        np.testing.assert_array_equal(value, moved[name], err_msg=name)


def _shapes(config: SageConfig, arrays: List[GraphArrays]) -> Dict[str, Tuple[int, ...]]:
    num_features, num_graph_features = arrays[0].node_features.shape[1], arrays[0].graph_features.size
    return ref.parameter_shapes(config, num_features, num_graph_features, len(TARGETS))


def _compare(
    predictor: perfsage.Predictor,
    config: SageConfig,
    graphs: List[perfsage.Graph],
    arrays: List[GraphArrays],
    labels: np.ndarray,
) -> None:
    """C++ float64 against the reference on the predictor's own (float32) parameters and statistics:
    1e-5 relative on everything, no absolute slack (exact zeros, e.g. embedding rows of absent op
    types, must be exact zeros on both sides)."""
    params = predictor.parameters()
    norm = predictor.normalization()
    loss, outputs, grads = predictor.loss_and_gradients(graphs, labels, precision="float64")
    ref_loss, ref_outputs, ref_grads = ref.loss_and_gradients(params, norm, config, arrays, labels)
    assert set(grads) == set(ref_grads)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, err_msg="loss")
    np.testing.assert_allclose(outputs, ref_outputs, rtol=1e-5, err_msg="raw outputs")
    for name, expected in ref_grads.items():
        assert grads[name].shape == expected.shape, name
        np.testing.assert_allclose(grads[name], expected, rtol=1e-5, atol=0.0, err_msg=name)


@pytest.mark.parametrize("config", ALL_COMBINATIONS + OTHER_SHAPES, ids=config_id)
def test_float64_loss_outputs_and_gradients_match_the_reference(
    config: SageConfig, batch: List[perfsage.Graph]
) -> None:
    labels = _labels(len(batch), seed=1)
    arrays = [ref.graph_arrays(g) for g in batch]
    predictor = _predictor(config, batch, labels, seed=5)
    assert {name: value.shape for name, value in predictor.parameters().items()} == _shapes(config, arrays)
    _compare(predictor, config, batch, arrays, labels)  # as initialised
    _perturb(predictor, seed=9)
    _compare(predictor, config, batch, arrays, labels)


def test_normalization_statistics_match_the_reference(batch: List[perfsage.Graph]) -> None:
    """Population statistics of slog(features) and log(labels), a std below 1e-6 replaced by 1 and
    a feature std below the floor raised to it (the batch has constant feature columns and rare
    ones, so both branches are taken). float32 on the C++ side."""
    labels = _labels(len(batch), seed=2)
    predictor = _predictor(SageConfig(), batch, labels, seed=0)
    expected = ref.fit_normalization([ref.graph_arrays(g) for g in batch], labels)
    assert np.any(expected["node_std"] == 1.0)
    assert np.any(expected["node_std"] == ref.FEATURE_STD_FLOOR)
    assert np.all(np.concatenate([expected["node_std"], expected["graph_std"]]) >= ref.FEATURE_STD_FLOOR)
    got = predictor.normalization()
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == np.float32, name
        np.testing.assert_allclose(got[name], value, rtol=2e-6, atol=1e-6, err_msg=name)


# float32 production path against the float64 reference. Measured over all 75 configurations on this
# batch, initial and perturbed parameters: loss 2.9e-6 relative, raw outputs 1.2e-6 of max |o|,
# gradients 4.1e-6 of each gradient's norm, predict() 5.5e-6 relative. The bounds give ~10x headroom.
FLOAT32_OUTPUT_RTOL = 3e-5
FLOAT32_GRADIENT_NORMWISE = 5e-5
FLOAT32_PREDICT_RTOL = 5e-5


FLOAT32_CONFIGS = [ALL_COMBINATIONS[0], ALL_COMBINATIONS[-1], *OTHER_SHAPES[:2]]


@pytest.mark.parametrize("config", FLOAT32_CONFIGS, ids=config_id)
def test_float32_path_is_close_to_the_reference(config: SageConfig, batch: List[perfsage.Graph]) -> None:
    labels = _labels(len(batch), seed=3)
    arrays = [ref.graph_arrays(g) for g in batch]
    predictor = _predictor(config, batch, labels, seed=11)
    _perturb(predictor, seed=12)
    loss, outputs, grads = predictor.loss_and_gradients(batch, labels, precision="float32")
    params, norm = predictor.parameters(), predictor.normalization()
    ref_loss, ref_outputs, ref_grads = ref.loss_and_gradients(params, norm, config, arrays, labels)
    np.testing.assert_allclose(loss, ref_loss, rtol=FLOAT32_OUTPUT_RTOL)
    output_scale = np.abs(ref_outputs).max()
    np.testing.assert_allclose(
        outputs, ref_outputs, rtol=FLOAT32_OUTPUT_RTOL, atol=FLOAT32_OUTPUT_RTOL * output_scale
    )
    for name, expected in ref_grads.items():
        error, size = np.linalg.norm(np.asarray(grads[name], np.float64) - expected), np.linalg.norm(expected)
        assert error <= FLOAT32_GRADIENT_NORMWISE * size, (name, error, size)


def test_predict_is_exp_of_the_denormalised_raw_output(batch: List[perfsage.Graph]) -> None:
    config = SageConfig(aggregator="max")
    labels = _labels(len(batch), seed=4)
    predictor = _predictor(config, batch, labels, seed=13)
    _perturb(predictor, seed=14)
    norm = predictor.normalization()
    _, outputs, _ = predictor.loss_and_gradients(batch, labels, precision="float64")
    expected = np.exp(outputs * norm["target_std"].astype(np.float64) + norm["target_mean"].astype(np.float64))
    arrays = [ref.graph_arrays(g) for g in batch]
    np.testing.assert_allclose(expected, ref.predict(predictor.parameters(), norm, config, arrays), rtol=1e-5)
    predicted = predictor.predict(batch)
    assert predicted.dtype == np.float32 and predicted.shape == (len(batch), len(TARGETS))
    np.testing.assert_allclose(predicted, expected, rtol=FLOAT32_PREDICT_RTOL)


def test_real_models_match_the_reference(real_models: List[Path]) -> None:
    """Converter-produced graphs, including the Vela-compiled one (a single custom operator)."""
    wanted = {"tflm_hello_world_int8.tflite", "mlperftiny_kws_ref_model.tflite", "mlperftiny_ad01_int8.tflite",
              "tflm_person_detect_vela.tflite", "mlperftiny_pretrainedResnet_quant.tflite"}
    paths = [p for p in real_models if p.name in wanted]
    assert len(paths) == len(wanted), sorted(p.name for p in paths)
    graphs = [perfsage.load_tflite(str(p)) for p in paths]
    assert min(g.num_nodes for g in graphs) == 1
    labels = _labels(len(graphs), seed=6)
    arrays = [ref.graph_arrays(g) for g in graphs]
    other = SageConfig(aggregator="max", direction="out", loss="log_mse", residual=False)
    for config in (SageConfig(), other):
        predictor = _predictor(config, graphs, labels, seed=21)
        _compare(predictor, config, graphs, arrays, labels)
        _perturb(predictor, seed=22)
        _compare(predictor, config, graphs, arrays, labels)


# ------------------------------------------------------------------ the additive readout

FAMILY_OF_OP = perfsage._core.op_families()
NUM_FAMILIES = len(perfsage._core.op_family_names())
# The second target is a peak (its name says so): a maximum over the nodes, not a sum.
ADDITIVE_TARGETS = ["latency", "peak_memory"]
ADDITIVE_CONFIGS = [
    SageConfig(readout="additive", embedding_dim=4, hidden=8, layers=2, head_hidden=6, node_loss_weight=0.7,
               node_log_weight=0.4),
    SageConfig(readout="additive", embedding_dim=3, hidden=6, layers=1, family_dim=3, aggregator="max",
               direction="out", layer_norm=False, loss="log_mse"),
    SageConfig(readout="additive", embedding_dim=2, hidden=5, layers=3, family_dim=2, head_layers=1,
               aggregator="sum", residual=False, node_graph_context=False),
]


def _with_max(config: SageConfig) -> SageConfig:
    return dataclasses.replace(config, max_targets=2)  # ADDITIVE_TARGETS[1] is a peak


def _node_labels(arrays: Sequence[GraphArrays], seed: int) -> List:
    """Per-operator labels for most graphs: positive, a zero (an operator with no cycles), and one
    graph with a missing value (its node loss is skipped); None for the first graph."""
    rng = np.random.default_rng(seed)
    out: List = [None]
    for i, g in enumerate(arrays[1:], start=1):
        labels = np.exp(rng.uniform(-3.0, 1.0, size=(g.num_nodes, 2))).astype(np.float32)
        labels[0, 0] = 0.0 if i == 2 else labels[0, 0]
        if i == 3:
            labels[-1, 0] = np.nan
        out.append(labels)
    return out


@pytest.mark.parametrize("config", ADDITIVE_CONFIGS, ids=lambda c: f"additive-{config_id(c)}-F{c.family_dim}")
def test_reference_additive_gradients_match_finite_differences(config: SageConfig) -> None:
    rng = np.random.default_rng(17)
    graphs = [dataclasses.replace(g, families=rng.integers(0, NUM_FAMILIES, g.num_nodes)) for g in _synthetic_graphs(rng)]
    labels = _synthetic_labels(rng, len(graphs))
    config = _with_max(config)
    node_labels = _node_labels(graphs, seed=2)
    norm = ref.fit_normalization(graphs, labels, config)
    shapes = ref.parameter_shapes(config, graphs[0].node_features.shape[1], graphs[0].graph_features.size,
                                  len(ADDITIVE_TARGETS), NUM_FAMILIES)
    params = ref.random_parameters(shapes, rng)
    _, _, grads = ref.loss_and_gradients(params, norm, config, graphs, labels, node_labels)
    assert set(grads) == set(params)
    direction_rng = np.random.default_rng(8)
    for name, value in params.items():
        direction = direction_rng.standard_normal(value.shape)
        losses = [ref.loss_and_gradients({**params, name: value + sign * FD_STEP * direction}, norm, config,
                                         graphs, labels, node_labels)[0] for sign in (1.0, -1.0)]
        numeric = (losses[0] - losses[1]) / (2 * FD_STEP)
        _assert_close_to_fd(numeric, float((grads[name] * direction).sum()), name)


@pytest.mark.parametrize("config", ADDITIVE_CONFIGS, ids=lambda c: f"additive-{config_id(c)}-F{c.family_dim}")
def test_additive_float64_matches_the_reference(config: SageConfig, batch: List[perfsage.Graph]) -> None:
    """Loss, raw outputs and every gradient, with per-operator labels and a peak target, as
    initialised and perturbed; the normalisation's per-node target offset too."""
    labels = _labels(len(batch), seed=7)
    arrays = [ref.graph_arrays(g, FAMILY_OF_OP) for g in batch]
    config = _with_max(config)
    node_labels = _node_labels(arrays, seed=3)
    predictor = perfsage.Predictor(targets=ADDITIVE_TARGETS, seed=5, **config.kwargs())
    predictor.initialize(batch, labels)
    expected_norm = ref.fit_normalization(arrays, labels, config)
    np.testing.assert_allclose(predictor.normalization()["target_mean"], expected_norm["target_mean"], rtol=2e-6)
    for perturbed in (False, True):
        if perturbed:
            _perturb(predictor, seed=9)
        params, norm = predictor.parameters(), predictor.normalization()
        loss, outputs, grads = predictor.loss_and_gradients(batch, labels, precision="float64",
                                                            operator_labels=node_labels)
        ref_loss, ref_outputs, ref_grads = ref.loss_and_gradients(params, norm, config, arrays, labels, node_labels)
        assert set(grads) == set(ref_grads)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, err_msg="loss")
        np.testing.assert_allclose(outputs, ref_outputs, rtol=1e-5, err_msg="raw outputs")
        for name, expected in ref_grads.items():
            np.testing.assert_allclose(grads[name], expected, rtol=1e-5, atol=1e-12, err_msg=name)


def test_additive_prediction_is_the_sum_of_operator_costs(batch: List[perfsage.Graph]) -> None:
    labels = _labels(len(batch), seed=8)
    predictor = perfsage.Predictor(targets=ADDITIVE_TARGETS, seed=3, **ADDITIVE_CONFIGS[1].kwargs())
    predictor.initialize(batch, labels)
    _perturb(predictor, seed=4)
    predicted = predictor.predict(batch)
    for graph, row in zip(batch, predicted):
        prediction, costs, constant = predictor.operator_costs(graph)
        assert costs.shape == (graph.num_nodes, 2) and np.all(costs > 0)
        np.testing.assert_allclose(prediction, row, rtol=1e-6)
        np.testing.assert_allclose(costs[:, 0].sum() + constant[0], row[0], rtol=1e-5)
        np.testing.assert_allclose(max(costs[:, 1].max(), constant[1]), row[1], rtol=1e-5)
        explanation = predictor.explain(graph)
        contributions = sorted(op["contribution"]["latency"] for op in explanation.operators)
        np.testing.assert_allclose(contributions, np.sort(costs[:, 0]), rtol=1e-6)
    with pytest.raises(ValueError, match="not additive"):
        _predictor(SageConfig(), batch, labels, seed=0).operator_costs(batch[0])
