"""Search spaces: seeded and reproducible, JSON specs the writer builds, MACs spanning two orders
of magnitude per space, and NAS-Bench-201's skeleton reproducing the benchmark's published sizes."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Tuple

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import perfsage
from perfsage import spaces
from perfsage.spaces._blocks import gru
from perfsage.spaces.nb201 import EDGES, OPS, arch_string, parse_arch
from perfsage.datasets import plan, spec_id
from perfsage.spaces.motifs import MOTIFS
from perfsage.spaces.op_zoo import OP_DRAWS, PATTERNS

SPACE_NAMES = sorted(spaces.spaces())
# Enough samples to reach both ends of each space's MAC range; ~5 s to build them all.
N_SAMPLES = 256
ALL_CONV3X3 = arch_string(["nor_conv_3x3"] * 6)
ALL_SKIP = arch_string(["skip_connect"] * 6)
# NAS-Bench-201's CIFAR-10 extremes (its API's cost info: params and FLOPs in millions, where its
# FLOPs are multiply-accumulates), counting BN's scale and shift where we fold BN into biases.
NB201_PUBLISHED = {ALL_CONV3X3: (1.531546e6, 220.11969e6), ALL_SKIP: (0.073306e6, 7.78305e6)}

Built = Dict[str, List[Tuple[dict, perfsage.Graph]]]


@pytest.fixture(scope="module")
def built() -> Built:
    """N_SAMPLES items per space with their int8 models as perfsage graphs (the writer releases
    the GIL, so threads build in parallel)."""
    items = {name: spaces.sample(name, N_SAMPLES, seed=0) for name in SPACE_NAMES}
    flat = [item for name in SPACE_NAMES for item in items[name]]
    with ThreadPoolExecutor() as pool:
        models = list(pool.map(lambda item: perfsage.build_model(item["spec"], seed=item["seed"]), flat))
    graphs = iter(perfsage.load_many(models))
    return {name: [(item, next(graphs)) for item in items[name]] for name in SPACE_NAMES}


def test_registry_names_descriptions_and_knobs() -> None:
    registry = spaces.spaces()
    expected = ["image_classification", "kws", "super_resolution", "detection", "nb201", "autoencoder"]
    assert SPACE_NAMES == sorted(expected + ["transformer", "op_zoo", "mobile_v3", "cnn_families", "recurrent_audio",
                                      "motifs"])
    for name, space in registry.items():
        assert space.name == name and spaces.get_space(name) is space
        assert space.description
        assert space.knobs, name
        for knob, options in space.knobs.items():
            # A list of choices, or a description for choices that depend on other knobs.
            assert (isinstance(options, list) and options) or (isinstance(options, str) and options), knob
    registry.clear()  # a copy: callers cannot unregister spaces
    assert spaces.spaces()


def test_unknown_space_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown search space 'imagenet'.*image_classification.*kws"):
        spaces.get_space("imagenet")
    with pytest.raises(ValueError, match="unknown search space"):
        spaces.sample("imagenet", 1, seed=0)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_sample_rejects_bad_counts_and_seeds(bad: object) -> None:
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        spaces.sample("kws", bad, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        spaces.sample("kws", 1, seed=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_same_seed_same_specs_other_seed_other_specs(name: str) -> None:
    first = spaces.sample(name, 4, seed=11)
    assert first == spaces.sample(name, 4, seed=11)
    assert [i["spec"] for i in first] != [i["spec"] for i in spaces.sample(name, 4, seed=12)]
    assert [i["space"] for i in first] == [name] * 4


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_sample_i_does_not_depend_on_n(name: str) -> None:
    # A dataset grown from 3 to 8 samples keeps its first 3.
    assert spaces.sample(name, 8, seed=5)[:3] == spaces.sample(name, 3, seed=5)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_item_seed_redraws_the_spec(name: str) -> None:
    for item in spaces.sample(name, 3, seed=2):
        spec = spaces.get_space(name).sample_spec(np.random.default_rng(item["seed"]))
        assert {"name": item["spec"]["name"], **spec} == item["spec"]


def test_sample_seeds_differ_across_nearby_runs() -> None:
    seeds = {spaces.sample_seed(run, i) for run in range(20) for i in range(20)}
    assert len(seeds) == 400
    assert all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_specs_are_plain_json(name: str) -> None:
    # numpy scalars would fail json.dumps; the round trip also rules out tuples.
    items = spaces.sample(name, 32, seed=1)
    assert json.loads(json.dumps(items)) == items
    for item in items:
        spec = item["spec"]
        assert set(spec) == {"name", "inputs", "layers", "outputs"}
        names = [layer["name"] for layer in spec["layers"]]
        assert len(set(names)) == len(names)
        assert set(spec["outputs"]) <= set(names)


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_every_sample_builds_in_both_dtypes(name: str) -> None:
    for item in spaces.sample(name, 8, seed=3):
        for dtype in ("int8", "float32"):
            graph = perfsage.load_tflite(perfsage.build_model(item["spec"], seed=item["seed"], dtype=dtype))
            # The operator zoo also samples MAC-free operators on their own (a RESHAPE, a PAD).
            assert graph.num_nodes > 0 and (graph.totals["macs"] > 0 or name == "op_zoo")


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_estimated_cost_matches_perfsage(name: str, built: Built) -> None:
    # The estimate counts conv, depthwise, dense and batch-matmul work and weights only; perfsage
    # also counts pooling, elementwise and reduction work (large only for pooling-heavy NB201
    # cells) and a few constants (reshape shapes, layer-norm axes).
    # The operator zoo's pooling and elementwise samples, and motif samples of pools alone, are
    # mostly such work, so only the upper bound holds there.
    low = 0.0 if name in ("op_zoo", "motifs") else 0.6
    for item, graph in built[name]:
        cost = spaces.estimate_cost(item["spec"])
        assert low * graph.totals["macs"] <= cost["macs"] <= graph.totals["macs"]
        assert cost["params"] <= graph.totals["param_count"] <= cost["params"] * 1.01 + 16


@pytest.mark.parametrize("name", [n for n in SPACE_NAMES if n != "nb201"])
def test_macs_span_two_orders_of_magnitude(name: str, built: Built) -> None:
    macs = np.array([max(graph.totals["macs"], 1) for _, graph in built[name]], dtype=np.float64)
    assert macs.max() / macs.min() >= 100, f"{name}: {macs.min():.3g} .. {macs.max():.3g} MACs"
    budget = spaces.get_space(name).max_macs
    if budget is not None:
        assert macs.max() <= 1.25 * budget  # budgets bound the estimate, a little below perfsage's count


def test_nb201_samples_lie_between_the_benchmarks_extremes() -> None:
    # NAS-Bench-201's skeleton is fixed: its whole space spans 28x in (the benchmark's) MACs, from
    # all-skip cells to all-3x3-conv cells, not 100x.
    low, high = NB201_PUBLISHED[ALL_SKIP][1], NB201_PUBLISHED[ALL_CONV3X3][1]
    macs = [spaces.estimate_cost(item["spec"])["macs"] for item in spaces.sample("nb201", N_SAMPLES, seed=0)]
    assert 0.99 * low <= min(macs) and max(macs) <= 1.01 * high
    assert max(macs) / min(macs) > 10


@pytest.mark.parametrize("arch", sorted(NB201_PUBLISHED))
def test_nb201_reproduces_published_params_and_macs(arch: str) -> None:
    params, flops = NB201_PUBLISHED[arch]
    spec = spaces.nb201_spec(arch)
    for dtype in ("float32", "int8"):
        graph = perfsage.load_tflite(perfsage.build_model(spec, dtype=dtype))
        assert graph.totals["param_count"] == pytest.approx(params, rel=0.03)
    # The benchmark's FLOPs count convolutions and the classifier, as our estimate does.
    assert spaces.estimate_cost(spec)["macs"] == pytest.approx(flops, rel=0.03)


def test_nb201_cell_lowering() -> None:
    def ops_of(arch: str) -> List[str]:  # the layers of the second cell
        return [layer["op"] for layer in spaces.nb201_spec(arch)["layers"] if layer["name"].startswith("s1c2_")]

    # Three 3x3 convs reading node 0 share one ReLU; node 3 sums three edges with two adds.
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|skip_connect~1|avg_pool_3x3~2|"
    assert sorted(ops_of(arch)) == sorted(["relu"] + ["conv2d"] * 3 + ["avg_pool2d"] + ["add"] * 2)
    # Node 2 is dead (its only input is none; its output only feeds node 3, not reached): the
    # cell is node 3 = conv1x1(node 0) + avg_pool(node 1) where node 1 = node 0.
    arch = "|skip_connect~0|+|none~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    assert sorted(ops_of(arch)) == sorted(["relu", "conv2d", "avg_pool2d", "add"])
    # An identity cell adds nothing.
    assert ops_of("|skip_connect~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|") == []
    spec = spaces.nb201_spec(ALL_SKIP)
    assert spec["name"] == "nb201" + ALL_SKIP
    assert spec["inputs"] == [{"name": "image", "shape": [1, 32, 32, 3]}]


def test_nb201_unreachable_cell_is_an_error() -> None:
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"
    with pytest.raises(ValueError, match="has no path from input to output"):
        spaces.nb201_spec(arch)


@pytest.mark.parametrize(
    "arch, message",
    [
        ("", "expected 3 nodes"),
        ("|skip_connect~0|+|skip_connect~0|skip_connect~1|", "expected 3 nodes"),
        ("skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|", "'|' at each end"),
        ("|skip_connect~0|+|none~0|+|none~0|none~1|none~2|", "node 2.*expected 2 edges"),
        ("|skip_connect~1|+|none~0|none~1|+|none~0|none~1|none~2|", "'skip_connect~1' must be 'op~0'"),
        ("|skip_connect|+|none~0|none~1|+|none~0|none~1|none~2|", "must be 'op~0'"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_5x5'"),
        ("|skip_connect~0| +|none~0|none~1|+|none~0|none~1|none~2|", "'|' at each end"),
    ],
)
def test_nb201_malformed_strings_are_errors(arch: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spaces.nb201_spec(arch)


def test_nb201_parse_round_trips_and_rejects_non_strings() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        ops = [OPS[i] for i in rng.integers(len(OPS), size=len(EDGES))]
        arch = arch_string(ops)
        assert parse_arch(arch) == dict(zip(EDGES, ops))
    with pytest.raises(ValueError, match="must be a str"):
        parse_arch(None)  # type: ignore[arg-type]


def test_nb201_space_samples_valid_cells() -> None:
    for item in spaces.sample("nb201", 50, seed=0):
        arch = item["spec"]["name"][len("nb201"):]
        assert spaces.nb201_spec(arch) == item["spec"]


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_int16x8_samples_hold_only_16x8_layers_and_are_the_int8_ones_where_they_can_be(name: str) -> None:
    # Why: a 16x8 sample must build (no layer without a 16x8 kernel), and one dtype's data should
    # hold the other's models wherever the writer allows.
    int8 = spaces.sample(name, 24, seed=1)
    assert int8 == spaces.sample(name, 24, seed=1, dtype="float32")
    if name in ("super_resolution", "transformer"):  # depth-to-space, layer norms in every draw
        with pytest.raises(RuntimeError, match="made of the dtype's ops"):
            spaces.sample(name, 1, seed=1, dtype="int16x8")
        return
    allowed = set(perfsage._core.layer_ops("int16x8"))
    wide = spaces.sample(name, 24, seed=1, dtype="int16x8")
    for a, b in zip(int8, wide):
        assert a["seed"] == b["seed"] and {layer["op"] for layer in b["spec"]["layers"]} <= allowed
        if {layer["op"] for layer in a["spec"]["layers"]} <= allowed:
            assert a == b
    perfsage.build_model(wide[0]["spec"], seed=wide[0]["seed"], dtype="int16x8")
    with pytest.raises(ValueError, match="dtype must be 'int8', 'float32' or 'int16x8', got 'int4'"):
        spaces.sample(name, 1, seed=1, dtype="int4")


def test_plan_ids_name_the_dtype() -> None:
    # Why: the same spec and seed in another dtype is another model; int8 ids must not move.
    int8, wide = plan(["kws"], 3), plan(["kws"], 3, dtype="int16x8")
    assert [i["spec"] for i in int8] == [i["spec"] for i in wide]
    assert [i["id"] for i in int8] == [spec_id(i["spec"], i["seed"], "int8") for i in int8]
    assert [i["id"] for i in wide] == [spec_id(i["spec"], i["seed"], "int16x8") for i in wide]
    assert not {i["id"] for i in int8} & {i["id"] for i in wide}
    # The id of a fixed spec, as perfsage computed it before int16x8 existed.
    assert spec_id({"inputs": [], "layers": []}, 0, "int8") == "c277ca427d10013cc02d401b1c966de0"
    with pytest.raises(ValueError, match="dtype must be one of int8, float32, int16x8, got 'int16'"):
        plan(["kws"], 1, dtype="int16")


def test_op_zoo_covers_every_op_pattern_and_size() -> None:
    # Why: the zoo exists to show the predictor every op alone and in context, from tiny to large.
    items = spaces.sample("op_zoo", 1000, seed=0)
    seen = {layer["op"] for item in items for layer in item["spec"]["layers"]}
    assert set(OP_DRAWS) <= seen, sorted(set(OP_DRAWS) - seen)
    names = {layer["name"] for item in items for layer in item["spec"]["layers"]}
    assert {"sum", "join"} & names and any(n.startswith("res") for n in names)
    assert len(PATTERNS) == 4
    elements = [int(np.prod(item["spec"]["inputs"][0]["shape"])) for item in items]
    assert min(elements) <= 64 and max(elements) >= 100_000


def test_family_spaces_build_each_family_as_described() -> None:
    # Why: each family is there for operators and layouts the paper spaces lack; check they appear.
    seen = {}
    for item in spaces.sample("cnn_families", 60, seed=0) + spaces.sample("mobile_v3", 30, seed=0):
        graph = perfsage.load_tflite(perfsage.build_model(item["spec"], seed=item["seed"]))
        inputs = item["spec"]["inputs"][0]
        family = ("torch_layout" if inputs["name"] == "image_nchw" else
                  "unet" if any(l["name"] == "output" for l in item["spec"]["layers"]) else
                  "efficientnet" if any(l["name"] == "stem_swish" for l in item["spec"]["layers"]) else item["space"])
        seen.setdefault(family, set()).update(graph.op_names)
    assert {"TRANSPOSE", "PAD", "CONV_2D"} <= seen["torch_layout"]
    assert "CONCATENATION" in seen["unet"] and ({"TRANSPOSE_CONV", "RESIZE_NEAREST_NEIGHBOR"} & seen["unet"])
    assert {"LOGISTIC", "MUL"} <= seen["efficientnet"]
    assert "HARD_SWISH" in seen["mobile_v3"]
    assert "CONCATENATION" in seen["cnn_families"] and "MAX_POOL_2D" in seen["cnn_families"]


def test_recurrent_audio_builds_each_family_as_described() -> None:
    # Why: the space is there for the recurrent and streaming layouts the other spaces lack.
    seen: Dict[str, set] = {}
    for item in spaces.sample("recurrent_audio", 60, seed=0):
        spec = item["spec"]
        graph = perfsage.load_tflite(perfsage.build_model(spec, seed=item["seed"]))
        layers = {layer["op"] for layer in spec["layers"]}
        family = ("streaming" if len(spec["inputs"]) > 1 else "denoise" if spec["inputs"][0]["name"] == "spectrum"
                  else "svdf" if "svdf" in layers else "gru" if "split_v" in layers else "lstm")
        seen.setdefault(family, set()).update(graph.op_names)
        if family == "streaming":  # every context input has its next value as an output, at its scale
            assert len(spec["outputs"]) >= len(spec["inputs"]) - 1
            assert "QUANTIZE" not in graph.op_names
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in seen["lstm"] and "SVDF" in seen["svdf"]
    assert {"UNPACK", "FULLY_CONNECTED", "SPLIT", "SPLIT_V", "LOGISTIC", "TANH", "MUL", "ADD", "SUB"} <= seen["gru"]
    assert {"LOGISTIC", "FULLY_CONNECTED"} <= seen["denoise"]
    assert {"CONCATENATION", "STRIDED_SLICE", "RESHAPE", "CONV_2D"} <= seen["streaming"]


def test_motifs_draw_every_motif_and_the_layouts_they_are_for() -> None:
    # Why: the space exists for blocks at sizes and after neighbours their own families never give
    # them: every motif must occur, after other motifs too, with the converter's layouts it names.
    items = spaces.sample("motifs", 200, seed=0)
    drawn = [[layer["name"].split("_", 1)[1] for layer in item["spec"]["layers"] if layer["name"][:1] == "m"]
             for item in items]
    firsts = {motif for names in drawn for motif in MOTIFS if names and names[0].startswith(motif)}
    later = {motif for names in drawn for motif in MOTIFS for n in names[1:] if n.startswith(motif)}
    assert firsts == set(MOTIFS) and later == set(MOTIFS) - {"stem"}
    graphs = [perfsage.load_tflite(perfsage.build_model(item["spec"], seed=item["seed"])) for item in items]
    operators = [(op, graph.tensors()) for graph in graphs for op in graph.operators()]
    one_channel = [op for op, tensors in operators if op["name"] == "DEPTHWISE_CONV_2D"
                   and tensors[op["inputs"][0]]["shape"][-1] == 1 and op["options"]["depth_multiplier"] > 1]
    assert len(one_channel) >= 10
    assert any(op["name"] == "BATCH_MATMUL" and len(tensors[op["inputs"][0]]["shape"]) == 4 for op, tensors in operators)
    seen = {name for graph in graphs for name in graph.op_names}
    assert {"EXPAND_DIMS", "SQUEEZE", "RESIZE_BILINEAR", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM",
            "SVDF", "HARD_SWISH"} <= seen


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def test_unrolled_gru_computes_a_keras_gru() -> None:
    # Why: the lowering is only worth its operators if it is a GRU: gate order, which projection
    # the reset gate scales, and which way the update gate mixes must all be Keras's.
    b = spaces.SpecBuilder({"x": [1, 3, 5], "h": [1, 4]})
    sequence, last = gru(b, "x", "g", 4, state="h")
    b.outputs = [sequence, last]
    interpreter = Interpreter(model_content=perfsage.build_model(b.spec(), seed=4, dtype="float32"))
    interpreter.allocate_tensors()
    by_name = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    wx, bx, wh, bh = (interpreter.get_tensor(by_name[n])
                      for n in ("g_x0/kernel", "g_x0/bias", "g_t0_recurrent/kernel", "g_t0_recurrent/bias"))
    rng = np.random.default_rng(1)
    x, h = rng.uniform(-1, 1, (1, 3, 5)).astype(np.float32), rng.uniform(-1, 1, (1, 4)).astype(np.float32)
    inputs = {d["name"]: d["index"] for d in interpreter.get_input_details()}
    interpreter.set_tensor(inputs["x"], x)
    interpreter.set_tensor(inputs["h"], h)
    interpreter.invoke()
    expected = []
    for t in range(3):
        x_z, x_r, x_h = np.split(x[:, t] @ wx.T + bx, 3, axis=-1)
        h_z, h_r, h_h = np.split(h @ wh.T + bh, 3, axis=-1)
        z, r = _sigmoid(x_z + h_z), _sigmoid(x_r + h_r)
        h = z * h + (1 - z) * np.tanh(x_h + r * h_h)
        expected.append(h)
    outputs = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    np.testing.assert_allclose(outputs[sequence], np.stack(expected, axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs[last], expected[-1], rtol=1e-5, atol=1e-6)
    # All steps share one input and one recurrent weight matrix, as in the converter's lowering.
    graph = perfsage.load_tflite(perfsage.build_model(b.spec(), seed=4))
    fc_weights = {op["inputs"][1] for op in graph.operators() if op["name"] == "FULLY_CONNECTED"}
    assert graph.op_names.count("FULLY_CONNECTED") == 6 and len(fc_weights) == 2


def _float_layers(spec: Dict) -> set:
    """The layers of a spec that read float32 values: a dequantize's, or another such layer's."""
    floats = {layer["name"] for layer in spec["layers"] if layer["op"] == "dequantize"}
    for layer in spec["layers"]:  # spec order is topological
        if layer["op"] != "quantize" and any(x.split(":")[0] in floats for x in layer.get("inputs", [])):
            floats.add(layer["name"])
    return floats


@pytest.mark.parametrize("space", ["motifs", "op_zoo"])
def test_float_sections_leave_runs_of_the_same_layers_in_float32(space: str) -> None:
    # Why: converters leave what they do not quantize in float32 inside int8 models (7 of the 146
    # real models), which Vela leaves to the CPU; the data need such models, drawn from the spaces'
    # own specs so that nothing else about them changes.
    plain = spaces.sample(space, 30, seed=0)
    mixed = spaces.sample(space, 30, seed=0, float_sections="mixed")
    changed = 0
    for a, b in zip(plain, mixed):
        assert a["seed"] == b["seed"]
        names = {layer["name"] for layer in a["spec"]["layers"]}
        added = [layer for layer in b["spec"]["layers"] if layer["name"] not in names]
        kept = [(layer["name"], layer["op"]) for layer in b["spec"]["layers"] if layer["name"] in names]
        assert kept == [(layer["name"], layer["op"]) for layer in a["spec"]["layers"]]
        if not added:
            assert b["spec"] == a["spec"]
            continue
        changed += 1
        assert {layer["op"] for layer in added} == {"dequantize", "quantize"}
        floats = _float_layers(b["spec"]) - {layer["name"] for layer in added}
        assert 1 <= len(floats) <= 2 * spaces._float_sections.MAX_SECTION_LAYERS
        graph = perfsage.load_tflite(perfsage.build_model(b["spec"], seed=b["seed"]))
        dtypes = {t["name"]: t["dtype"] for t in graph.tensors()}
        for name in names & set(dtypes):
            assert (dtypes[name] == "float32") == (name in floats), name
        # In a float32 model the added layers fold away: the same operators as the spec drawn.
        assert (perfsage.load_tflite(perfsage.build_model(b["spec"], dtype="float32")).op_names ==
                perfsage.load_tflite(perfsage.build_model(a["spec"], dtype="float32")).op_names)
    assert 10 <= changed <= 28, changed
    assert spaces.sample(space, 30, seed=0, float_sections="mixed") == mixed
    for item in spaces.sample(space, 8, seed=1, dtype="int16x8", float_sections="mixed"):
        perfsage.load_tflite(perfsage.build_model(item["spec"], seed=item["seed"], dtype="int16x8"))
    with pytest.raises(ValueError, match="float_sections must be one of none, mixed, got 'some'"):
        spaces.sample(space, 1, float_sections="some")


def test_float_sections_requantize_every_value_leaving_a_section() -> None:
    # A split's outputs read apart, a model output inside the run and a value read twice: every
    # value read outside a section leaves it through one quantize layer.
    spec = {"inputs": [{"name": "x", "shape": [1, 8, 8, 16]}], "outputs": ["a", "sp:1"], "layers": [
        {"name": "c", "op": "conv2d", "filters": 16, "kernel": 3},
        {"name": "sp", "op": "split", "num_splits": 2},
        {"name": "a", "op": "add", "inputs": ["sp:0", "sp:1"]},
        {"name": "m", "op": "mul", "inputs": ["a", "sp:0"]}]}
    seen = set()
    for seed in range(40):
        out = spaces.with_float_sections(spec, np.random.default_rng(seed), sections=2)
        floats = _float_layers(out)
        seen.add(frozenset(floats))
        perfsage.load_tflite(perfsage.build_model(out))
        for layer in out["layers"]:
            if layer["op"] == "quantize":
                assert len(layer["inputs"]) == 1 and layer["inputs"][0].split(":")[0] in floats
        quantizes = [layer["inputs"][0] for layer in out["layers"] if layer["op"] == "quantize"]
        assert len(quantizes) == len(set(quantizes))
        assert len(out["outputs"]) == 2 and not {o.split(":")[0] for o in out["outputs"]} & floats
    assert len(seen) >= 5, seen


@pytest.mark.parametrize("space", ["cnn_families", "op_zoo", "recurrent_audio"])
def test_affine_layers_add_constant_operand_layers_and_keep_the_rest(space: str) -> None:
    # Why: input normalisation and unfolded batch norms are in most real Keras models and in no
    # space; Vela prices a MUL by a per-channel constant up to 60x a MUL by an activation.
    plain = spaces.sample(space, 30, seed=0)
    mixed = spaces.sample(space, 30, seed=0, affine="mixed")
    changed = 0
    for a, b in zip(plain, mixed):
        names = {layer["name"] for layer in a["spec"]["layers"]}
        added = [layer for layer in b["spec"]["layers"] if layer["name"] not in names]
        kept = [layer for layer in b["spec"]["layers"] if layer["name"] in names]
        assert [(x["name"], x["op"]) for x in kept] == [(x["name"], x["op"]) for x in a["spec"]["layers"]]
        if not added:
            assert b["spec"] == a["spec"]
            continue
        changed += 1
        assert all(x["op"] in ("mul", "add", "sub") and x["constant"] in ("scalar", "channel") and
                   len(x["inputs"]) == 1 for x in added)
        graph = perfsage.load_tflite(perfsage.build_model(b["spec"], seed=b["seed"]))
        constants = [t for t in graph.tensors() if t["name"].endswith("/constant")]
        assert len(constants) == len(added)
        # Each added layer is read: by the next added one, a layer of the spec or a model output.
        read = {x for layer in b["spec"]["layers"] for x in layer.get("inputs", [])}
        read |= set(b["spec"].get("outputs", []))
        last = b["spec"]["layers"][-1]["name"]
        assert all(x["name"] in read or x["name"] == last for x in added)
    assert 12 <= changed <= 28, changed
    assert spaces.sample(space, 30, seed=0, affine="mixed") == mixed
    with pytest.raises(ValueError, match="affine must be one of none, mixed, got 'yes'"):
        spaces.sample(space, 1, affine="yes")


def test_depthwise_stems_write_one_channel_convolutions_as_converters_do() -> None:
    # Why: converters write a Conv2D of a one-channel input as DEPTHWISE_CONV_2D with a depth
    # multiplier (micro_speech, person_detect); no space but motifs shows multipliers above 4.
    plain = spaces.sample("kws", 30, seed=0)
    mixed = spaces.sample("kws", 30, seed=0, stems="mixed")
    changed = 0
    for a, b in zip(plain, mixed):
        if b["spec"] == a["spec"]:
            continue
        changed += 1
        before = {layer["name"]: layer for layer in a["spec"]["layers"]}
        assert [x["name"] for x in b["spec"]["layers"]] == list(before)
        stems = [x for x in b["spec"]["layers"] if x["op"] != before[x["name"]]["op"]]
        assert len(stems) == 1
        stem, conv = stems[0], before[stems[0]["name"]]
        assert stem["op"] == "depthwise_conv2d" and conv["op"] == "conv2d"
        assert stem["depth_multiplier"] == conv["filters"]
        assert {k: v for k, v in stem.items() if k not in ("op", "depth_multiplier", "inputs")} == \
            {k: v for k, v in conv.items() if k not in ("op", "filters", "inputs")}
        # The same computation: the same operators' MACs and weights, the same output shapes.
        g_plain = perfsage.load_tflite(perfsage.build_model(a["spec"], seed=a["seed"]))
        g_stem = perfsage.load_tflite(perfsage.build_model(b["spec"], seed=b["seed"]))
        assert "DEPTHWISE_CONV_2D" in g_stem.op_names
        assert g_stem.totals["macs"] == g_plain.totals["macs"]
        assert g_stem.totals["param_count"] == g_plain.totals["param_count"]
        assert g_stem.num_nodes == g_plain.num_nodes
    assert 8 <= changed <= 22, changed
    assert spaces.sample("kws", 30, seed=0, stems="mixed") == mixed
    with pytest.raises(ValueError, match="stems must be one of none, mixed, got 'all'"):
        spaces.sample("kws", 1, stems="all")


def test_depthwise_stems_leave_other_convolutions_and_shared_weights() -> None:
    spec = {"inputs": [{"name": "x", "shape": [1, 8, 8, 1]}, {"name": "y", "shape": [1, 8, 8, 3]}],
            "outputs": ["c", "d", "e"], "layers": [
                {"name": "c", "op": "conv2d", "filters": 8, "kernel": 3, "stride": 2, "activation": "relu"},
                {"name": "d", "op": "conv2d", "filters": 8, "kernel": 3, "inputs": ["y"]},
                {"name": "e", "op": "conv2d", "filters": 4, "kernel": 1, "inputs": ["c"]}]}
    out = spaces.with_depthwise_stems(spec)
    assert [layer["op"] for layer in out["layers"]] == ["depthwise_conv2d", "conv2d", "conv2d"]
    assert out["layers"][0] == {"name": "c", "op": "depthwise_conv2d", "depth_multiplier": 8, "kernel": 3,
                                "stride": 2, "activation": "relu", "inputs": ["x"]}
    perfsage.load_tflite(perfsage.build_model(out))
    assert spec["layers"][0]["op"] == "conv2d"  # the spec itself is not changed
    assert spaces.with_depthwise_stems({**spec, "layers": spec["layers"][1:]}) is None
    shared = {**spec, "layers": spec["layers"] + [
        {"name": "f", "op": "conv2d", "filters": 8, "kernel": 3, "inputs": ["x"], "weights_of": "c"}]}
    assert spaces.with_depthwise_stems(shared) is None  # c's weights are f's too: both stay


def test_flat_inputs_declare_inputs_flat_and_reshape_them_as_converters_do() -> None:
    # Why: a Keras model whose input is a flat vector converts to a RESHAPE of a rank-2 model input
    # (micro_speech); no space declares one, and the operators after it were priced as garbage.
    for space in ("kws", "recurrent_audio", "image_classification"):
        plain = spaces.sample(space, 30, seed=0)
        flat = spaces.sample(space, 30, seed=0, flat_inputs="mixed")
        changed = 0
        for a, b in zip(plain, flat):
            if b["spec"] == a["spec"]:
                continue
            changed += 1
            old = {x["name"]: x for x in a["spec"]["inputs"]}
            reshapes = [layer for layer in b["spec"]["layers"] if layer["op"] == "reshape" and layer["name"] in old]
            assert reshapes and b["spec"]["layers"][:len(reshapes)] == reshapes
            for r in reshapes:
                (new,) = [x for x in b["spec"]["inputs"] if x["name"] == r["inputs"][0]]
                assert r["shape"] == old[r["name"]]["shape"] and len(old[r["name"]]["shape"]) >= 3
                assert new["shape"] == [1, int(np.prod(r["shape"][1:]))]
            # The same computation and one RESHAPE of a rank-2 model input more per flattened input.
            g_plain = perfsage.load_tflite(perfsage.build_model(a["spec"], seed=a["seed"]))
            g_flat = perfsage.load_tflite(perfsage.build_model(b["spec"], seed=b["seed"]))
            assert g_flat.totals["macs"] == g_plain.totals["macs"]
            assert g_flat.num_nodes == g_plain.num_nodes + len(reshapes)
            first = g_flat.operators()[0]
            assert first["name"] == "RESHAPE" and len(g_flat.tensors()[first["inputs"][0]]["shape"]) == 2
        assert 8 <= changed <= 22, (space, changed)
        assert spaces.sample(space, 30, seed=0, flat_inputs="mixed") == flat
    with pytest.raises(ValueError, match="flat_inputs must be one of none, mixed, got 'yes'"):
        spaces.sample("kws", 1, flat_inputs="yes")


def test_flat_inputs_leave_rank_two_inputs_and_keep_names_free() -> None:
    spec = {"inputs": [{"name": "x", "shape": [1, 8, 8, 2], "range": [0, 1]}, {"name": "v", "shape": [1, 16]}],
            "outputs": ["s"], "layers": [
                {"name": "x_flat", "op": "conv2d", "filters": 4, "kernel": 3},
                {"name": "g", "op": "global_avg_pool", "inputs": ["x_flat"]},
                {"name": "d", "op": "dense", "units": 4, "inputs": ["v"]},
                {"name": "s", "op": "add", "inputs": ["g", "d"]}]}
    out = spaces.with_flat_inputs(spec)
    assert out["inputs"] == [{"name": "x_flat1", "shape": [1, 128], "range": [0, 1]}, {"name": "v", "shape": [1, 16]}]
    assert out["layers"][0] == {"name": "x", "op": "reshape", "inputs": ["x_flat1"], "shape": [1, 8, 8, 2]}
    assert out["layers"][1]["inputs"] == ["x"]  # the first layer read the first input by default
    perfsage.load_tflite(perfsage.build_model(out))
    assert spec["inputs"][0]["shape"] == [1, 8, 8, 2]  # the spec itself is not changed
    assert spaces.with_flat_inputs({**spec, "inputs": spec["inputs"][1:], "layers": spec["layers"][2:3]}) is None


def test_affine_layers_go_after_the_named_layers_and_rename_their_readers() -> None:
    spec = {"inputs": [{"name": "x", "shape": [1, 8, 8, 3]}], "outputs": ["c2"], "layers": [
        {"name": "c", "op": "conv2d", "filters": 8, "kernel": 3},
        {"name": "r", "op": "relu"},
        {"name": "c2", "op": "conv2d", "filters": 8, "kernel": 1, "inputs": ["r"]}]}
    for seed in range(20):
        out = spaces.with_affine_layers(spec, np.random.default_rng(seed), normalise_input=True, batch_norms=2)
        ops = [layer["op"] for layer in out["layers"]]
        assert ops[0] in ("mul", "sub") and out["layers"][0]["inputs"] == ["x"]
        assert out["outputs"] == ["c2"]  # model outputs get no batch norm after them
        first_conv = next(layer for layer in out["layers"] if layer["name"] == "c")
        assert first_conv["inputs"] != ["x"]  # it reads the normalised input
        perfsage.load_tflite(perfsage.build_model(out))
        assert sum(layer["name"].endswith("_bn_scale") for layer in out["layers"]) == 2  # after c and r
