"""Weight values: the spec's "weights" (distribution, magnitude pruning), what the writer draws for
it, and the weight features the reader computes from the stored values (feature schema 2; schema 3
appends alignment columns after them).

Vela compresses weights losslessly, so trained and pruned models run their weight-bound layers
faster than freshly initialised ones of the same shapes; these tests hold the writer to drawing
such weights validly and the features to seeing them."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import List

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import perfsage
from perfsage.cli import main
from vela_compile import compile_with_vela
from writer_specs import ALL, KWS

# One weight-heavy layer: a 256 -> 512 dense kernel (131,072 weights) after a small conv.
DENSE = {"name": "dense", "inputs": [{"name": "x", "shape": [1, 4, 4, 16]}], "layers": [
    {"name": "c", "op": "conv2d", "filters": 16, "kernel": 3},
    {"name": "f", "op": "reshape", "shape": [1, 256]},
    {"name": "d", "op": "dense", "units": 512}]}
PRUNED = {"distribution": "normal", "sparsity": 0.75}
COLUMNS = ["weight_zero_fraction", "weight_log2_magnitude"]


def with_weights(spec: dict, weights: dict) -> dict:
    return {**spec, "weights": weights}


def constant(model: bytes, name: str) -> np.ndarray:
    """The stored values of the constant tensor called `name`, as LiteRT reads them."""
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    detail = next(d for d in interpreter.get_tensor_details() if d["name"] == name)
    return interpreter.get_tensor(detail["index"])


def weight_columns(graph: perfsage.Graph) -> np.ndarray:
    names = perfsage.node_feature_names()
    return graph.node_features[:, [names.index(c) for c in COLUMNS]]


def test_weight_columns_are_the_last_two_of_schema_2() -> None:
    # Appended, so a schema-1 network reads the first columns of a schema-2 row unchanged; schema
    # 3 appended its alignment columns after them in turn.
    assert perfsage.FEATURE_SCHEMA_VERSION == 3
    assert perfsage.node_feature_names()[-10:] == COLUMNS + [
        "in_c_pad8", "in_c_pad16", "out_c_pad8", "out_c_pad16", "out_w_pad8", "padded_macs", "padded_in_elements",
        "padded_out_elements"]


@pytest.mark.parametrize(("name", "dtype", "digest"), [
    ("kws", "int8", "0953be370f8462f7"), ("kws", "float32", "b499e799fff4c273"),
    ("transformer", "int8", "56a5d82f1574f1b9"), ("transformer", "float32", "541ad97f09adadd0"),
    ("image_all_ops", "int8", "c98204c8f89b84bf"), ("image_all_ops", "float32", "5d9ef23ebeecc8cd")])
def test_without_weights_the_bytes_are_those_before_the_field(name: str, dtype: str, digest: str) -> None:
    # Dataset ids and 100,000 labels rest on these bytes (digests of the writer before "weights"
    # existed); the defaults spelt out give them too.
    spec = ALL[name]
    model = perfsage.build_model(spec, seed=3, dtype=dtype)
    assert hashlib.sha256(model).hexdigest()[:16] == digest
    for defaults in ({}, {"distribution": "uniform"}, {"distribution": "uniform", "sparsity": 0}):
        assert perfsage.build_model(with_weights(spec, defaults), seed=3, dtype=dtype) == model


@pytest.mark.parametrize("distribution", ["uniform", "normal", "laplace", "student_t"])
def test_every_distribution_has_glorot_uniform_variance(distribution: str) -> None:
    model = perfsage.build_model(with_weights(DENSE, {"distribution": distribution}), seed=1, dtype="float32")
    w = constant(model, "d/kernel").astype(np.float64)
    limit = np.sqrt(6.0 / (256 + 512))
    # t with 3 degrees of freedom has no fourth moment, so its sample variance wanders more.
    assert w.var() == pytest.approx(limit**2 / 3, rel=0.1 if distribution == "student_t" else 0.03)
    assert abs(w.mean()) < 0.01 * limit
    # The shapes differ: kurtosis 1.8 (uniform), 3 (normal), 6 (laplace), unbounded (student_t).
    kurtosis = np.mean((w - w.mean()) ** 4) / w.var() ** 2
    if distribution == "student_t":
        assert kurtosis > 9.0
    else:
        assert kurtosis == pytest.approx({"uniform": 1.8, "normal": 3.0, "laplace": 6.0}[distribution], rel=0.1)
    if distribution == "uniform":
        assert np.abs(w).max() <= limit


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9, 0.99])
def test_pruning_zeroes_exactly_the_smallest_magnitudes(sparsity: float) -> None:
    dense = perfsage.build_model(with_weights(DENSE, {"distribution": "laplace"}), seed=2, dtype="float32")
    pruned = perfsage.build_model(with_weights(DENSE, {"distribution": "laplace", "sparsity": sparsity}), seed=2,
                                  dtype="float32")
    w, p = constant(dense, "d/kernel"), constant(pruned, "d/kernel")
    zeroed = w.size - round(w.size * (1 - sparsity))
    assert np.count_nonzero(p == 0) == zeroed
    # The same draws, with the smallest magnitudes zeroed and the rest kept as they were.
    kept = p != 0
    assert np.array_equal(p[kept], w[kept])
    assert np.abs(w[~kept]).max() <= np.abs(w[kept]).min()
    # Biases are left alone.
    assert np.array_equal(constant(pruned, "d/bias"), constant(dense, "d/bias"))


def test_pruned_int8_features_see_the_sparsity() -> None:
    for sparsity in (0.0, 0.5, 0.9):
        spec = with_weights(DENSE, {"distribution": "normal", "sparsity": sparsity})
        model = perfsage.build_model(spec, seed=4, dtype="int8")
        graph = perfsage.load_tflite(model)
        zero_fraction, log2_magnitude = weight_columns(graph)[-1]  # the dense layer
        q = constant(model, "d/kernel")
        assert zero_fraction == pytest.approx(np.mean(q == 0), abs=1e-6)
        assert log2_magnitude == pytest.approx(np.mean(np.log2(1 + np.abs(q.astype(np.float64)))), rel=1e-5)
        # Quantisation rounds a few small survivors to 0 as well.
        assert sparsity <= zero_fraction <= sparsity + 0.02


def test_weight_columns_are_zero_without_integer_weights() -> None:
    for dtype in ("float32", "int8"):
        graph = perfsage.load_tflite(perfsage.build_model(with_weights(DENSE, PRUNED), dtype=dtype))
        columns = weight_columns(graph)
        ops = graph.op_names
        assert np.all(columns[[i for i, op in enumerate(ops) if op == "RESHAPE"]] == 0)
        if dtype == "float32":
            assert np.all(columns == 0)
        else:
            assert np.all(columns[[i for i, op in enumerate(ops) if op != "RESHAPE"], 1] > 0)


def test_stripped_models_keep_the_weight_columns() -> None:
    for dtype in ("int8", "int16x8"):
        model = perfsage.build_model(with_weights(DENSE, PRUNED), seed=5, dtype=dtype)
        stripped = perfsage.strip_weights(model)
        assert len(stripped) < len(model) // 10
        full, light = perfsage.load_tflite(model), perfsage.load_tflite(stripped)
        assert light.node_features.tobytes() == full.node_features.tobytes()
        assert weight_columns(light)[-1, 0] >= 0.75


@pytest.mark.parametrize(("weights", "message"), [
    ([1], "'weights' must be an object, got a list"),
    ({"distribution": "cauchy"},
     "weights.distribution must be 'uniform', 'normal', 'laplace' or 'student_t', got 'cauchy'"),
    ({"dense": "per_row"}, "weights.dense must be 'per_channel' or 'per_tensor', got 'per_row'"),
    ({"distribution": 1}, "weights.distribution must be a string"),
    ({"sparsity": 1.0}, r"weights.sparsity must be a number in \[0, 0.99\], got 1.0"),
    ({"sparsity": -0.1}, r"weights.sparsity must be a number in \[0, 0.99\]"),
    ({"sparsity": "half"}, r"weights.sparsity must be a number in \[0, 0.99\], got a string"),
    ({"sparsity": 0.5, "bits": 4}, "weights: unknown key 'bits'"),
])
def test_bad_weights_are_refused_naming_the_field(weights: object, message: str) -> None:
    spec = with_weights(KWS, weights)
    with pytest.raises(perfsage.PerfSageError, match=message):
        perfsage.build_model(spec)
    with pytest.raises(perfsage.PerfSageError, match=message):
        perfsage.spec_graph(spec)


@pytest.mark.parametrize("dtype", ["int8", "int16x8", "float32"])
@pytest.mark.parametrize("weights", [{"distribution": "normal", "sparsity": 0.9}, {"distribution": "laplace"},
                                     {"distribution": "laplace", "sparsity": 0.99},
                                     {"distribution": "student_t", "dense": "per_tensor"},
                                     {"distribution": "normal", "sparsity": 0.5, "dense": "per_tensor"}])
def test_litert_runs_trained_and_pruned_models(dtype: str, weights: dict) -> None:
    spec = with_weights(KWS, weights)
    interpreter = Interpreter(model_content=perfsage.build_model(spec, seed=6, dtype=dtype))
    interpreter.allocate_tensors()
    for d in interpreter.get_input_details():
        interpreter.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    interpreter.invoke()
    for d in interpreter.get_output_details():
        y = interpreter.get_tensor(d["index"])
        assert y.size and (dtype != "float32" or np.isfinite(y).all())


def encoded_weight_bytes(workdir: Path) -> float:
    (summary,) = (workdir / "out").glob("*_summary_*.csv")
    with summary.open() as f:
        return float(next(csv.DictReader(f))["total_npu_encoded_weights"])


def test_vela_compiles_pruned_models_and_encodes_them_smaller(tmp_path: Path) -> None:
    # What the features are for: the encoded weights shrink as sparsity grows, at equal shapes.
    spec = {"name": "pointwise", "inputs": [{"name": "x", "shape": [1, 8, 8, 64]}], "layers": [
        {"name": "a", "op": "conv2d", "filters": 128, "kernel": 1},
        {"name": "b", "op": "conv2d", "filters": 128, "kernel": 1}]}
    sizes = []
    for k, weights in enumerate([{}, {"distribution": "laplace"}, {"distribution": "normal", "sparsity": 0.5},
                                 {"distribution": "normal", "sparsity": 0.9}]):
        result = compile_with_vela(perfsage.build_model(with_weights(spec, weights)), tmp_path / str(k))
        assert result.cpu_operators == 0 and result.npu_operators == 2
        sizes.append(encoded_weight_bytes(tmp_path / str(k)))
    assert sizes[0] > sizes[1] > sizes[2] > sizes[3], sizes
    assert sizes[3] < 0.5 * sizes[0], sizes


def test_vela_compiles_dense_weights_per_tensor_and_heavy_tails_encode_smaller(tmp_path: Path) -> None:
    # One scale for a whole FULLY_CONNECTED kernel, as TFLite Micro and MLPerf Tiny models carry
    # it: Vela runs it on the NPU, and heavy-tailed values under that one scale, mostly small
    # integers, encode smaller than the same values with a scale per unit.
    spec = {"name": "mlp", "inputs": [{"name": "x", "shape": [1, 256]}], "layers": [
        {"name": "a", "op": "dense", "units": 128, "activation": "relu"},
        {"name": "b", "op": "dense", "units": 128}]}
    sizes = []
    for k, weights in enumerate([{"distribution": "student_t"}, {"distribution": "student_t", "dense": "per_tensor"}]):
        model = perfsage.build_model(with_weights(spec, weights))
        per_channel = perfsage.load_tflite(model).node_features[:, perfsage.node_feature_names().index(
            "per_channel_weights")]
        assert per_channel.tolist() == [float(k == 0)] * 2
        result = compile_with_vela(model, tmp_path / str(k))
        assert result.cpu_operators == 0 and result.npu_operators == 2
        sizes.append(encoded_weight_bytes(tmp_path / str(k)))
    assert sizes[1] < 0.9 * sizes[0], sizes


def test_a_pruned_real_model_has_mostly_zero_convolution_weights(models_dir: Path) -> None:
    # mlperftiny_vww_96_int8: 83% of its int8 weights are 0 (what Vela's encoder sees).
    path = models_dir / "mlperftiny_vww_96_int8.tflite"
    if not path.exists():
        pytest.skip(f"{path.name} is not in the shared data")
    graph = perfsage.load_tflite(str(path))
    columns = weight_columns(graph)
    convs = [i for i, op in enumerate(graph.op_names) if op == "CONV_2D"]
    # The late pointwise convolutions, which hold most weights, are the pruned ones (Vela's model of
    # them at dense weights over-prices them 5-7x): over all convolutions' weights, most are 0.
    params = graph.node_features[convs, perfsage.node_feature_names().index("param_count")]
    assert convs and np.average(columns[convs, 0], weights=params) > 0.5
    assert np.all(columns[convs[-4:], 0] > 0.5)
    dense = perfsage.load_tflite(str(models_dir / "tflm_person_detect.tflite")) if (
        models_dir / "tflm_person_detect.tflite").exists() else None
    if dense is not None:  # the same architecture with dense weights
        other = weight_columns(dense)
        assert np.max(other[[i for i, op in enumerate(dense.op_names) if op == "CONV_2D"], 0]) < 0.2


# A predictor as perfsage shipped it before feature schema 2 (the ethos-u55-256 file of commit
# 34abd69, trained on schema 1): what users' own schema-1 checkpoints must keep doing.
SCHEMA_1_CHECKPOINT = Path(__file__).parent / "data" / "schema1-ethos-u55-256.psage"


def _schema_1_checkpoints() -> List[Path]:
    shipped = [Path(perfsage.__file__).parent / "predictors" / f"{name}.psage" for name in perfsage.shipped_predictors()]
    return [SCHEMA_1_CHECKPOINT] + [p for p in shipped if b'"feature_schema_version":1' in p.read_bytes()]


def test_schema_1_predictors_ignore_the_weight_columns() -> None:
    # A schema-1 network reads the first node columns only: a pruned model of the same shapes
    # gets the same prediction, to the bit.
    models = [perfsage.build_model(DENSE, seed=7), perfsage.build_model(with_weights(DENSE, PRUNED), seed=7)]
    assert not np.array_equal(perfsage.load_tflite(models[0]).node_features,
                              perfsage.load_tflite(models[1]).node_features)
    for path in _schema_1_checkpoints():
        predictions = perfsage.load_predictor(path).predict(models)
        assert np.array_equal(predictions[0], predictions[1]), path.name


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def with_schema(checkpoint: bytes, schema: int) -> bytes:
    """The checkpoint with its header's feature schema set to `schema` and the checksum redone."""
    payload = bytearray(checkpoint[32:])
    header_size = int.from_bytes(payload[:4], "little")
    header = bytes(payload[4:4 + header_size]).replace(b'"feature_schema_version":1', b'"feature_schema_version":%d' % schema)
    assert len(header) == header_size
    payload[4:4 + header_size] = header
    return checkpoint[:24] + fnv1a64(bytes(payload)).to_bytes(8, "little") + bytes(payload)


def test_shipped_checkpoints_save_again_bit_for_bit() -> None:
    for name in perfsage.shipped_predictors():
        path = Path(perfsage.__file__).parent / "predictors" / f"{name}.psage"
        assert perfsage.load_predictor(path).to_bytes() == path.read_bytes(), name


def test_schema_1_checkpoints_load_save_and_refuse_newer_schemas(tmp_path: Path) -> None:
    for path in _schema_1_checkpoints():
        name = path.stem
        data = path.read_bytes()
        assert b'"feature_schema_version":1' in data
        predictor = perfsage.load_predictor(path)
        assert predictor.to_bytes() == data  # saved again as schema 1, bit for bit
        assert with_schema(data, 1) == data  # the helper below changes only what it is asked to
        newer = tmp_path / f"{name}-newer.psage"
        newer.write_bytes(with_schema(data, 4))
        with pytest.raises(perfsage.PerfSageError, match="feature schema version 4.*upgrade perfsage"):
            perfsage.load_predictor(newer)
        # A schema-2 header over a schema-1 network's 45 columns is inconsistent, and said to be.
        wrong = tmp_path / f"{name}-wrong.psage"
        wrong.write_bytes(with_schema(data, 2))
        with pytest.raises(perfsage.PerfSageError, match="feature schema 2 has 47"):
            perfsage.load_predictor(wrong)


def test_new_training_uses_schema_3(tmp_path: Path) -> None:
    items = perfsage.sample("kws", 12, seed=2, weights="mixed")
    graphs = [perfsage.spec_graph(item["spec"], seed=item["seed"]) for item in items]
    labels = np.array([[1e-6 * g.totals["macs"] + 0.05] for g in graphs])
    predictor = perfsage.Predictor(["lat"], units=["ms"], hidden=8, head_hidden=8, layers=1)
    predictor.fit((graphs, labels), epochs=1, progress=False)
    predictor.save(tmp_path / "p.psage")
    assert b'"feature_schema_version":3' in (tmp_path / "p.psage").read_bytes()
    assert predictor.predict(graphs).shape == (12, 1)


def test_mixed_sampling_sets_weights_from_the_item_seed() -> None:
    uniform = perfsage.sample("kws", 60, seed=5)
    mixed = perfsage.sample("kws", 60, seed=5, weights="mixed")
    assert all("weights" not in item["spec"] for item in uniform)
    # The same layers, and sample i whatever n.
    for a, b in zip(uniform, mixed):
        assert {k: v for k, v in b["spec"].items() if k != "weights"} == a["spec"]
    assert perfsage.sample("kws", 7, seed=5, weights="mixed") == mixed[:7]
    kinds = {"uniform": 0, "trained": 0, "pruned": 0}
    for item in mixed:
        weights = item["spec"].get("weights")
        assert weights == perfsage.spaces.weights_spec(item["seed"])
        if weights is None:
            kinds["uniform"] += 1
        elif "sparsity" not in weights:
            assert weights["distribution"] in ("normal", "laplace")
            kinds["trained"] += 1
        else:
            assert weights["distribution"] in ("normal", "laplace") and 0.3 <= weights["sparsity"] <= 0.95
            kinds["pruned"] += 1
    assert all(10 <= count <= 30 for count in kinds.values()), kinds
    with pytest.raises(ValueError, match="weights must be one of uniform, mixed, trained"):
        perfsage.sample("kws", 1, weights="pruned")


def test_trained_sampling_draws_every_distribution_pruning_and_per_tensor_dense() -> None:
    uniform = perfsage.sample("kws", 300, seed=5)
    trained = perfsage.sample("kws", 300, seed=5, weights="trained")
    for a, b in zip(uniform, trained):
        assert {k: v for k, v in b["spec"].items() if k != "weights"} == a["spec"]
        assert b["spec"]["weights"] == perfsage.spaces.trained_weights_spec(b["seed"])
    assert perfsage.sample("kws", 7, seed=5, weights="trained") == trained[:7]
    weights = [item["spec"]["weights"] for item in trained]
    counts = {d: sum(w["distribution"] == d for w in weights) for d in ("normal", "laplace", "student_t")}
    assert all(70 <= c <= 130 for c in counts.values()), counts
    pruned = [w["sparsity"] for w in weights if "sparsity" in w]
    assert 50 <= len(pruned) <= 100 and all(0.3 <= x <= 0.95 for x in pruned)
    assert 120 <= sum(w.get("dense") == "per_tensor" for w in weights) <= 180
    # Every spec builds, and its dense layer is per tensor exactly when the spec says so.
    column = perfsage.node_feature_names().index("per_channel_weights")
    for item in trained[:12]:
        graph = perfsage.spec_graph(item["spec"], seed=item["seed"])
        dense = [i for i, op in enumerate(graph.op_names) if op == "FULLY_CONNECTED"]
        per_channel = float(item["spec"]["weights"].get("dense") != "per_tensor")
        assert dense and all(graph.node_features[i, column] == per_channel for i in dense)


def test_plan_takes_weights_and_ids_follow_the_spec() -> None:
    uniform = perfsage.datasets.plan(["kws"], 12, seed=1)
    mixed = perfsage.datasets.plan(["kws"], 12, seed=1, weights="mixed")
    assert [i["seed"] for i in uniform] == [i["seed"] for i in mixed]
    for a, b in zip(uniform, mixed):
        # A model drawn uniform either way is the same row; the others are new rows.
        assert (a["id"] == b["id"]) == ('"weights"' not in b["spec"])
    with pytest.raises(ValueError, match="weights must be one of"):
        perfsage.datasets.plan(["kws"], 1, weights="normal")


def test_dataset_build_with_mixed_weights_stores_their_features(tmp_path: Path) -> None:
    # End to end: the CLI plans mixed weights, Vela labels them, and the stored weight-free
    # models keep the weight columns of the models that were labelled.
    pytest.importorskip("pyarrow", reason="datasets need pyarrow (pip install perfsage[label])")
    pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install perfsage[label])")
    out = tmp_path / "mixed"
    assert main(["dataset", "build", "--space", "kws", "--n", "4", "--target", "ethos-u55-256", "--out", str(out),
                 "--weights", "mixed", "--workers", "1", "--no-progress"]) == 0
    dataset = perfsage.datasets.open_dataset(out)
    planned = perfsage.datasets.plan(["kws"], 4, weights="mixed")
    assert sorted(dataset.ids) == sorted(item["id"] for item in planned)
    assert dataset.ok.all()
    specs = {row_id: spec for row_id, spec in zip(dataset.ids, dataset.specs)}
    for graph, row_id, seed in zip(dataset.graphs(threads=1), dataset.ids, dataset.seeds):
        built = perfsage.load_tflite(perfsage.build_model(specs[row_id], seed=int(seed)))
        assert graph.node_features.tobytes() == built.node_features.tobytes()
