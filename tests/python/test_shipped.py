"""Shipped predictors, `Predictor.explain` and `check`, and `perfsage predict`."""

from __future__ import annotations

import json

import numpy as np
import pytest

import perfsage
from perfsage import cli
from perfsage._recipes import RECIPES, SHIPPED_TARGETS


@pytest.fixture(scope="module")
def small():
    """A small trained predictor (seconds) for the parts that do not need the shipped ones."""
    samples = perfsage.sample("kws", 40, seed=11)
    graphs = [perfsage.load_tflite(perfsage.build_model(s["spec"], seed=s["seed"])) for s in samples]
    labels = np.array([[1e-6 * g.totals["macs"] + 0.05, 1e-3 * g.totals["param_bytes"] + 1.0] for g in graphs])
    p = perfsage.Predictor(["t/lat", "t/mem"], units=["ms", "bytes"], hidden=16, head_hidden=16, layers=2)
    p.fit((graphs, labels), epochs=4, progress=False)
    return p, graphs


@pytest.mark.parametrize("target", SHIPPED_TARGETS)
def test_shipped_predictors_load_by_name(target):
    assert target in perfsage.shipped_predictors()
    p = perfsage.load_predictor(target)
    assert p.output_names == RECIPES[target].columns
    assert all(p.units) and p.provenance["domain"]["graphs"] > 1000
    # Intervals calibrated per search space (the default scope), on every space of the world data.
    assert p.default_interval_scope == "per-space"
    for entry in p.provenance["intervals"]["targets"].values():
        assert {"op_zoo", "motifs", "kws", "transformer"} <= set(entry["groups"])
        assert all(g["rows"] >= 50 for g in entry["groups"].values())


@pytest.mark.parametrize("target", SHIPPED_TARGETS)
def test_shipped_u65_predictors_hold_peak_sram_under_the_dedicated_sram(target):
    # Vela's Dedicated_Sram_384KB mode (the U65's) uses at most 384 KB of SRAM however large the
    # model; the U55's Shared_Sram keeps the whole arena in SRAM, which nothing caps.
    p = perfsage.load_predictor(target)
    expected = {f"{target}/peak_sram_bytes": 393216.0} if target.startswith("ethos-u65") else {}
    assert p.provenance["output_limits"] == expected


def test_a_recorded_limit_holds_every_prediction_path_under_it(small):
    p, graphs = small
    specs = perfsage.sample("kws", 40, seed=11)
    raw, raw_specs = p.predict(graphs), p.predict(specs)
    cap = float(np.median(raw[:, 1]))
    limited = perfsage.Predictor.from_bytes(p.to_bytes())
    limited.provenance["output_limits"] = {"t/mem": cap}
    saved = perfsage.Predictor.from_bytes(limited.to_bytes())  # the limit travels with the file
    for q in (limited, saved):
        out = q.predict(graphs)
        np.testing.assert_array_equal(out[:, 0], raw[:, 0])
        np.testing.assert_array_equal(out[:, 1], np.minimum(raw[:, 1], np.float32(cap)))
        assert 0 < np.sum(raw[:, 1] > cap) < len(graphs) and np.all(out[:, 1] <= np.float32(cap))
        np.testing.assert_array_equal(q.predict(specs), np.column_stack(
            [raw_specs[:, 0], np.minimum(raw_specs[:, 1], np.float32(cap))]))
        above = int(np.argmax(raw[:, 1]))
        assert q.explain(graphs[above]).prediction["t/mem"] == pytest.approx(cap)


def test_unknown_name_lists_the_shipped_predictors():
    with pytest.raises(FileNotFoundError, match="ethos-u55-256"):
        perfsage.load_predictor("ethos-u99")


def test_explain_matches_predict_and_shares_sum_to_one(small):
    p, graphs = small
    for g in graphs[:5]:
        ex = p.explain(g)
        np.testing.assert_allclose(list(ex.prediction.values()), p.predict([g])[0], rtol=1e-5)
        assert len(ex.operators) == g.num_nodes
        for t in p.output_names:
            shares = np.array([o["share"][t] for o in ex.operators])
            assert np.all(shares >= 0) and abs(shares.sum() - 1) < 1e-4
            np.testing.assert_allclose(sum(o["contribution"][t] for o in ex.operators), ex.prediction[t], rtol=1e-4)
        first = [o["share"]["t/lat"] for o in ex.operators]
        assert first == sorted(first, reverse=True)
    assert len(p.explain(graphs[0], top=3).operators) == 3


def test_explain_needs_readout_channels():
    g = perfsage.load_tflite(perfsage.build_model(perfsage.sample("kws", 1, seed=1)[0]["spec"]))
    p = perfsage.Predictor(["x"], readout_channels=0, hidden=8, head_hidden=8).initialize([g, g], [1.0, 2.0])
    with pytest.raises(perfsage.PerfSageError, match="readout_channels"):
        p.explain(g)


def test_check_flags_float_unknown_ops_and_size(small):
    p, graphs = small
    assert p.check(graphs[0]) == []
    spec = perfsage.sample("kws", 1, seed=3)[0]["spec"]
    float_graph = perfsage.load_tflite(perfsage.build_model(spec, dtype="float32"))
    assert any("float model" in w for w in p.check(float_graph))
    big = perfsage.load_tflite(perfsage.build_model(perfsage.sample("image_classification", 1, seed=2)[0]["spec"]))
    warnings = p.check(big)
    assert any("total_macs" in w and "largest in training" in w for w in warnings)
    assert any("never appeared" in w for w in warnings) or set(big.op_names) <= set(p.provenance["domain"]["op_types"])
    # The domain survives save and load.
    assert perfsage.Predictor.from_bytes(p.to_bytes()).check(float_graph) == p.check(float_graph)


def test_check_names_an_operator_feature_far_outside_training(small):
    # kws has depthwise convolutions with channel multiplier 1 only: one of 8 is an option value
    # the network never saw (a multiplier of 41 was priced 230x too high on held-out motifs).
    p, graphs = small
    assert p.provenance["domain"]["operator_features"]["depth_multiplier"] == [0.0, 1.0]
    spec = {"inputs": [{"name": "x", "shape": [1, 49, 10, 1]}],
            "layers": [{"op": "conv2d", "filters": 8, "kernel": 3},
                       {"op": "depthwise_conv2d", "kernel": 3, "depth_multiplier": 8}]}
    warnings = p.check(perfsage.load_tflite(perfsage.build_model(spec)))
    wide = [w for w in warnings if "depth_multiplier = 8" in w]
    assert len(wide) == 1 and wide[0].startswith("operator 1 (DEPTHWISE_CONV_2D)"), warnings
    assert "far outside its range in training (0 to 1)" in wide[0]
    # Within the range, or within twice it, nothing is said about that column.
    spec["layers"][1]["depth_multiplier"] = 2
    assert not any("depth_multiplier" in w for w in p.check(perfsage.load_tflite(perfsage.build_model(spec))))
    # The ranges survive save and load.
    old = perfsage.Predictor.from_bytes(p.to_bytes())
    assert old.provenance["domain"]["operator_features"] == p.provenance["domain"]["operator_features"]


def test_check_names_unquantized_operators_of_a_quantized_model(small):
    # Converters leave what they cannot quantize in float between dequantizing and quantizing
    # operators; the Ethos-U leaves those operators to the CPU (Vela prices them at 0), and a
    # predictor that never saw them unquantized prices them as if the NPU ran them.
    p, graphs = small
    assert p.provenance["domain"]["unquantized_op_types"] == []  # kws int8: every output quantized
    spec = {"inputs": [{"name": "x", "shape": [1, 49, 10, 1]}],
            "layers": [{"op": "conv2d", "filters": 8, "kernel": 3}, {"op": "cast", "to": "float32"},
                       {"op": "quantize"}, {"op": "conv2d", "filters": 8, "kernel": 3}]}
    warnings = p.check(perfsage.load_tflite(perfsage.build_model(spec)))
    assert any(w.startswith("1 operator(s) of this quantized model (CAST; e.g. operator 1) have unquantized outputs")
               for w in warnings), warnings
    assert all("unquantized outputs" not in w for g in graphs[:5] for w in p.check(g))


def test_check_names_weights_per_tensor_training_never_had(small):
    p, graphs = small
    assert "per_tensor_weight_op_types" in p.provenance["domain"]
    assert "FULLY_CONNECTED" not in p.provenance["domain"]["per_tensor_weight_op_types"]  # kws: dense per channel
    item = perfsage.sample("kws", 1, seed=11)[0]
    spec = {**item["spec"], "weights": {"distribution": "student_t", "dense": "per_tensor"}}
    graph = perfsage.load_tflite(perfsage.build_model(spec, seed=item["seed"]))
    dense = graph.op_names.index("FULLY_CONNECTED")
    assert f"1 operator(s) (FULLY_CONNECTED; e.g. operator {dense}) have weights quantised with one scale per " \
           "tensor" in " ".join(p.check(graph))
    assert all("per tensor" not in w for g in graphs[:5] for w in p.check(g))
    # Trained on such a model too, it stays quiet; an older file without the field says nothing.
    q = perfsage.Predictor(["t/lat"], hidden=8, head_hidden=8, layers=1, validation_split=0.0)
    q.fit((graphs[:8] + [graph], np.ones(9)), epochs=1, progress=False)
    assert "FULLY_CONNECTED" in q.provenance["domain"]["per_tensor_weight_op_types"]
    assert all("per tensor" not in w for w in q.check(graph))
    del q.provenance["domain"]["per_tensor_weight_op_types"]
    assert all("per tensor" not in w for w in q.check(graph))


def test_check_names_operators_in_configurations_training_never_had(small):
    # Why: the same op type can cost another way in another configuration: Vela prices a MUL by a
    # per-channel constant on an image up to 60x a MUL by an activation of the same shape.
    p, graphs = small
    assert ["FULLY_CONNECTED", 2, True] in p.provenance["domain"]["operator_configurations"]
    spec = {"inputs": [{"name": "x", "shape": [1, 49, 10, 1]}],
            "layers": [{"op": "conv2d", "filters": 8, "kernel": 3}, {"op": "reshape", "shape": [1, 49, 80]},
                       {"op": "dense", "units": 12}]}
    warnings = p.check(perfsage.load_tflite(perfsage.build_model(spec)))
    assert any(w.startswith("1 operator(s) in a configuration no training operator of their type had: "
                            "FULLY_CONNECTED on rank-3 inputs with a constant input (e.g. operator 2)") for w in warnings), \
        warnings
    assert all("configuration" not in w for g in graphs[:5] for w in p.check(g))


def test_predict_cli_table_json_and_explain(small, tmp_path, capsys):
    p, _ = small
    path = tmp_path / "p.psage"
    p.save(path)
    model = tmp_path / "m.tflite"
    model.write_bytes(perfsage.build_model(perfsage.sample("kws", 1, seed=5)[0]["spec"]))
    assert cli.main(["predict", str(model), "--target", str(path)]) == 0
    out = capsys.readouterr().out
    assert "lat" in out and "mem" in out and " ms" in out and str(model) in out
    assert cli.main(["predict", str(model), "--target", str(path), "--json", "--explain", "--top", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["target"] == "t" and set(rows[0]["metrics"]) == {"lat", "mem"}
    assert len(rows[0]["explain"]) == 2 and rows[0]["metrics"]["lat"]["unit"] == "ms"
    value = p.predict([str(model)])[0, 0]
    assert rows[0]["metrics"]["lat"]["value"] == pytest.approx(float(value), rel=1e-5)
    assert cli.main(["predict", str(model), "--target", str(path), "--explain"]) == 0
    assert "share" in capsys.readouterr().out


def test_predict_cli_explain_lists_each_operators_cost_for_an_additive_predictor(small, tmp_path, capsys):
    _, graphs = small
    labels = np.array([[1e-6 * g.totals["macs"] + 0.05, 1e-3 * g.totals["param_bytes"] + 1.0] for g in graphs])
    p = perfsage.Predictor(["t/lat", "t/peak_mem"], units=["ms", "bytes"], hidden=16, head_hidden=16, layers=2,
                           readout="additive", family_dim=4)
    p.fit((graphs, labels), epochs=3, progress=False)
    path = tmp_path / "additive.psage"
    p.save(path)
    model = tmp_path / "m.tflite"
    model.write_bytes(perfsage.build_model(perfsage.sample("kws", 1, seed=5)[0]["spec"]))
    assert cli.main(["predict", str(model), "--target", str(path), "--json", "--explain"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    prediction, costs, constant = p.operator_costs(str(model))
    assert row["operator_costs"] and len(row["explain"]) == min(len(costs), 10)
    top = row["explain"][0]
    assert top["contribution"]["lat"] == pytest.approx(float(costs[:, 0].max()), rel=1e-6)
    assert float(costs[:, 0].sum() + constant[0]) == pytest.approx(row["metrics"]["lat"]["value"], rel=1e-5)
    assert cli.main(["predict", str(model), "--target", str(path), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "each operator's predicted cost" in out and "peak_mem" in out


def test_predict_cli_bad_inputs(small, tmp_path, capsys):
    p, _ = small
    path = tmp_path / "p.psage"
    p.save(path)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    good = tmp_path / "m.tflite"
    good.write_bytes(perfsage.build_model(perfsage.sample("kws", 1, seed=5)[0]["spec"]))
    assert cli.main(["predict", str(bad), str(good), "--target", str(path)]) == 1
    captured = capsys.readouterr()
    assert "bad.tflite" in captured.err and str(good) in captured.out  # the good model is still predicted
    assert cli.main(["predict", str(good), "--target", "no-such-target"]) == 1
    assert "shipped" in capsys.readouterr().err


def test_shipped_predictor_on_a_real_model(models_dir, capsys):
    kws = models_dir / "mlperftiny_kws_ref_model.tflite"
    assert cli.main(["predict", str(kws)]) == 0
    captured = capsys.readouterr()
    assert "latency_ms" in captured.out and "energy_mj" in captured.out and "peak_sram_bytes" in captured.out
    assert "warning" not in captured.err
    assert cli.main(["predict", str(models_dir / "mlperftiny_kws_ref_model_float32.tflite")]) == 0
    assert "float model" in capsys.readouterr().err


@pytest.mark.parametrize("target", [t for t in SHIPPED_TARGETS if t.startswith("ethos-u")])
def test_shipped_predictor_prices_the_shared_third_party_models_as_vela_does(models_dir, target):
    """The shared MLPerf Tiny and TFLite Micro int8 models: trained, converted by tools perfsage's
    writer does not imitate (every dense kernel per tensor), and never trained on. Vela labels them
    here with the shipped predictor's settings. Measured on the files shipped on 3 Dec 2026 (trained
    on the full world build, 126,512 models): latency MAPE 4.5% (ethos-u55-128), 5.5% (ethos-u55-256),
    6.4% (ethos-u65-256) and 4.7% (ethos-u65-512), the worst model (micro_speech) 18-28% off; the files
    before them scored 4.4-17.7% and up to 45%. The bounds leave room for retraining and catch the
    several-fold errors earlier files made on such models (a retraining without the flat-inputs data
    step priced micro_speech at 0.14x and 12.5x)."""
    pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install perfsage[label])")
    labeler = perfsage.labelers.get_labeler(target)
    predictor = perfsage.load_predictor(target)
    column = [name.split("/")[-1] for name in predictor.output_names].index("latency_ms")
    errors = {}
    for path in sorted(models_dir.glob("*.tflite")):
        data = path.read_bytes()
        true = labeler.label(data)["latency_ms"]
        if not true > 0:  # float models and the Vela-compiled one: nothing on the NPU
            continue
        predicted = predictor.predict([perfsage.load_tflite(data)])[0, column]
        errors[path.name] = abs(predicted - true) / true
    assert len(errors) >= 8, errors
    assert np.mean(list(errors.values())) <= 0.15, errors
    assert max(errors.values()) <= 0.5, errors
