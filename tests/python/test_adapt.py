"""Predictor.adapt: a new device from a handful of measurements (issue 15)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import perfsage
from perfsage import _adapt
from perfsage.cli import main
from perfsage.datasets import import_csv

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def kws():
    samples = perfsage.sample("kws", 48, seed=11)
    return samples, perfsage.spec_graphs(samples)


def _size_labels(graphs):
    return np.array([[1e-6 * g.totals["macs"] + 0.05, 1e-3 * g.totals["param_bytes"] + 1.0] for g in graphs])


@pytest.fixture(scope="module")
def lse_base(kws):
    _, graphs = kws
    p = perfsage.Predictor(["old/latency_ms", "old/size_kb"], hidden=16, head_hidden=16, layers=2,
                           validation_split=0.0)
    return p.fit((graphs, _size_labels(graphs)), epochs=15, progress=False)


@pytest.fixture(scope="module")
def additive_base(kws):
    _, graphs = kws
    p = perfsage.Predictor(["old/latency_ms", "old/peak_sram_bytes"], readout="additive", hidden=16,
                           head_hidden=16, layers=2, validation_split=0.0)
    return p.fit((graphs, _size_labels(graphs)), epochs=15, progress=False)


def test_the_ridge_fit_recovers_an_affine_map_in_log_space() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(12, 3))
    target = 0.4 + 1.7 * base[:, 1] - 0.3 * base[:, 2]
    fit = _adapt.fit_combination(base, target, [1, 2])
    assert fit.columns == [1, 2]
    np.testing.assert_allclose(fit.coefficients, [1.7, -0.3], atol=1e-3)
    assert abs(fit.intercept - 0.4) < 1e-3 and fit.loo_rmse < 1e-3


def test_the_ridge_fit_shrinks_towards_a_scale_of_the_base_on_noise() -> None:
    # Labels unrelated to the base: leave-one-out prefers the strongest shrinkage, towards equal
    # weights summing to one (the device as a scale of the base's).
    rng = np.random.default_rng(1)
    fit = _adapt.fit_combination(rng.normal(size=(8, 4)), rng.normal(size=8), [0, 1, 2, 3])
    assert fit.ridge >= 10
    np.testing.assert_allclose(fit.coefficients, 0.25, atol=0.05)


def test_the_additive_start_maps_one_column_the_one_leave_one_out_prefers() -> None:
    # Two base columns nearly alike, the target a power of the second: a mix of both would hold
    # per operator only, so the additive start takes the second alone, with its slope.
    rng = np.random.default_rng(2)
    second = rng.normal(size=10)
    base = np.stack([second + rng.normal(scale=0.3, size=10), second], axis=1)
    fit = _adapt.fit_one_column(base, 0.3 + 1.1 * second, [0, 1])
    assert fit.columns == [1] and fit.loo_rmse < 1e-3
    np.testing.assert_allclose(fit.coefficients, [1.1], atol=1e-3)
    assert abs(fit.intercept - 0.3) < 1e-3
    with pytest.raises(ValueError, match="no base column"):
        _adapt.fit_one_column(base, second, [])


def _operator_logs(rng, rows, columns):
    return [rng.normal(size=(int(rng.integers(2, 9)), columns)) for _ in range(rows)]


def test_the_additive_sum_start_fits_the_power_on_the_sums_the_head_carries() -> None:
    # A device whose every operator costs 2x the base's second column to the power 0.7: its graphs
    # cost 2·Σ c^0.7, not 2·(Σ c)^0.7, and the start finds the column, the power and the scale.
    rng = np.random.default_rng(3)
    ops = _operator_logs(rng, 12, 2)
    constant = np.array([-1.0, -2.0])

    def total(power, column):
        return np.array([np.log(2.0) + np.log(np.sum(np.exp(power * np.append(o[:, column], constant[column]))))
                         for o in ops])

    fit = _adapt.fit_operator_sum(ops, constant, total(0.7, 1), [0, 1])
    assert fit.columns == [1] and fit.loo_rmse < 1e-6
    np.testing.assert_allclose(fit.coefficients, [0.7])
    assert abs(fit.intercept - np.log(2.0)) < 1e-9
    # A pure scale of the first column is a scale, exactly.
    fit = _adapt.fit_operator_sum(ops, constant, total(1.0, 0) + 0.5, [0, 1])
    assert fit.columns == [0] and fit.coefficients.tolist() == [1.0]
    with pytest.raises(ValueError, match="no base column"):
        _adapt.fit_operator_sum(ops, constant, total(1.0, 0), [])


@pytest.mark.parametrize("seed", range(5))
def test_the_additive_sum_start_keeps_a_scale_through_measurement_noise(seed) -> None:
    # A scale of the base plus 5% noise on six rows: leave-one-out does not trade the scale for a
    # power fitted to the noise.
    rng = np.random.default_rng(seed)
    ops = _operator_logs(rng, 6, 1)
    target = np.array([np.log(np.sum(np.exp(np.append(o[:, 0], 0.0)))) for o in ops]) + 0.3
    fit = _adapt.fit_operator_sum(ops, np.zeros(1), target + rng.normal(scale=0.05, size=6), [0])
    assert fit.coefficients.tolist() == [1.0] and abs(fit.intercept - 0.3) < 0.1


def test_candidate_columns_prefer_the_same_metric_and_kind() -> None:
    base = ["a/latency_ms", "a/energy_mj", "a/peak_sram_bytes", "b/latency_ms"]
    peaks = [False, False, True, False]
    assert _adapt.candidate_columns(base, peaks, "new/latency_ms", False, True) == [0, 3]
    assert _adapt.candidate_columns(base, peaks, "new/cycles", False, True) == [0, 1, 3]
    assert _adapt.candidate_columns(base, peaks, "new/peak_sram_bytes", True, True) == [2]
    assert _adapt.candidate_columns(base, peaks, "new/cycles", False, False) == [0, 1, 2, 3]


@pytest.mark.parametrize("base_name", ["lse_base", "additive_base"])
def test_with_no_epochs_the_start_is_the_fitted_map_of_the_base(base_name, kws, request) -> None:
    # A device whose latency is 3x the base's to the power 1.2 (log-sum-exp) or 3x the base's (additive,
    # where a scale is exact per operator): the new head reproduces it on graphs it never saw.
    base = request.getfixturevalue(base_name)
    _, graphs = kws
    power = 1.2 if base_name == "lse_base" else 1.0
    truth = 3.0 * base.predict(graphs)[:, 0].astype(np.float64) ** power
    adapted = base.adapt((graphs[:6], truth[:6]), targets="board/latency_ms", epochs=0, progress=False)
    assert adapted.output_names == ["board/latency_ms"] and adapted.is_additive == base.is_additive
    np.testing.assert_allclose(adapted.predict(graphs[6:])[:, 0], truth[6:], rtol=2e-3)
    start = adapted.provenance["adapt"]["start"]["board/latency_ms"]
    assert start["base_columns"] == ["old/latency_ms"]
    np.testing.assert_allclose(start["coefficients"], [power], rtol=1e-3)


def test_the_additive_start_carries_a_per_operator_power_exactly(additive_base, kws) -> None:
    # Every operator (and the readout's constant) costs 3x the base's to the power 1.3: the graphs'
    # totals are no power of the base's totals, and the start still reproduces them.
    _, graphs = kws

    def truth(graph):
        _, costs, constant = additive_base.operator_costs(graph)
        return 3.0 * (np.sum(costs[:, 0].astype(np.float64) ** 1.3) + float(constant[0]) ** 1.3)

    labels = np.array([truth(g) for g in graphs])
    adapted = additive_base.adapt((graphs[:8], labels[:8]), targets="board/latency_ms", epochs=0, progress=False)
    np.testing.assert_allclose(adapted.predict(graphs[8:])[:, 0], labels[8:], rtol=3e-3)
    assert adapted.provenance["adapt"]["start"]["board/latency_ms"]["coefficients"] == [1.3]


def test_fine_tuning_fits_the_rows_and_leaves_the_base_alone(lse_base, kws, tmp_path) -> None:
    _, graphs = kws
    before = lse_base.parameters()
    truth = 0.02 + 2e-6 * np.array([g.totals["macs"] for g in graphs]) ** 1.1
    start = lse_base.adapt((graphs[:20], truth[:20]), targets="board/latency_ms", epochs=0, progress=False)
    tuned = lse_base.adapt((graphs[:20], truth[:20]), targets="board/latency_ms", epochs=60, progress=False)

    def error(p):
        return float(np.mean(np.abs(p.predict(graphs[:20])[:, 0] / truth[:20] - 1)))

    assert error(tuned) < error(start)
    assert len(tuned.history) == 60 and tuned.provenance["adapt"]["rows"] == 20
    assert tuned.provenance["adapt"]["lr"] == pytest.approx(0.1 * lse_base.hyperparameters["lr"])
    assert tuned.provenance["adapted_from"]["targets"] == lse_base.output_names
    for name, value in lse_base.parameters().items():
        assert np.array_equal(before[name], value), name
    path = tmp_path / "board.psage"
    tuned.save(path)
    back = perfsage.load_predictor(path)
    assert np.array_equal(back.predict(graphs), tuned.predict(graphs))
    assert back.provenance["adapt"]["start"]["board/latency_ms"]["base_columns"] == ["old/latency_ms"]


def test_the_adapted_domain_holds_the_base_and_the_rows(lse_base, kws) -> None:
    _, graphs = kws
    adapted = lse_base.adapt((graphs[:5], np.ones(5)), targets="b/latency_ms", epochs=0, progress=False)
    domain = adapted.provenance["domain"]
    assert domain["graphs"] == lse_base.provenance["domain"]["graphs"] + 5
    assert set(lse_base.provenance["domain"]["op_types"]) <= set(domain["op_types"])
    assert adapted.check(graphs[0]) == []


def test_several_targets_from_a_dict_of_labels(additive_base, kws) -> None:
    _, graphs = kws
    labels = {"b/latency_ms": np.linspace(1, 2, 8), "b/peak_sram_bytes": np.linspace(1e4, 2e4, 8)}
    adapted = additive_base.adapt((graphs[:8], labels), epochs=2, progress=False)
    assert adapted.output_names == ["b/latency_ms", "b/peak_sram_bytes"]
    assert adapted.provenance["adapt"]["start"]["b/peak_sram_bytes"]["base_columns"] == ["old/peak_sram_bytes"]
    assert adapted.predict(graphs).shape == (len(graphs), 2)


@pytest.fixture(scope="module")
def board_data(kws, tmp_path_factory) -> Path:
    """A dataset of 10 models measured on a made-up board, imported from a CSV as a user would."""
    samples, graphs = kws
    folder = tmp_path_factory.mktemp("board")
    table = folder / "board.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["spec", "seed", "latency_ms"])
        for s, g in zip(samples[:10], graphs[:10]):
            w.writerow([json.dumps(s["spec"]), s["seed"], 1e-6 * g.totals["macs"] + 0.1])
    return import_csv(table, "board", {"latency_ms": "ms"}, folder / "board.parquet", spec_column="spec",
                      seed_column="seed", progress=False)


def test_adapting_from_a_dataset_file_names_a_bare_target(lse_base, board_data) -> None:
    adapted = lse_base.adapt(board_data, targets="board", epochs=3, progress=False)
    assert adapted.output_names == ["board/latency_ms"] and adapted.units == ["ms"]
    assert adapted.provenance["train_data"] == str(board_data) and adapted.provenance["adapt"]["rows"] == 10
    with pytest.raises(ValueError, match="no column 'other' and no columns of target 'other'"):
        lse_base.adapt(board_data, targets="other", progress=False)


def test_the_adapt_command_writes_a_predictor_that_predict_reads(lse_base, board_data, kws, tmp_path,
                                                                capsys) -> None:
    _, graphs = kws
    lse_base.save(tmp_path / "base.psage")
    out = tmp_path / "board.psage"
    argv = ["adapt", "--base", str(tmp_path / "base.psage"), "--data", str(board_data), "--target", "board",
            "--out", str(out), "--epochs", "4", "--no-progress"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert f"{out}: board/latency_ms from 10 measured rows" in said and "log old/latency_ms" in said
    adapted = perfsage.load_predictor(out)
    assert adapted.provenance["epochs_run"] == 4 and adapted.provenance["adapt"]["epochs"] == 4
    expected = lse_base.adapt(board_data, targets="board", epochs=4, progress=False).predict(graphs)
    np.testing.assert_array_equal(adapted.predict(graphs), expected)
    model = tmp_path / "m.tflite"
    model.write_bytes(perfsage.build_model(kws[0][20]["spec"], seed=kws[0][20]["seed"]))
    assert main(["predict", str(model), "--target", str(out)]) == 0
    assert "board" in capsys.readouterr().out
    # Bad input: one error line, exit 1.
    assert main(argv[:-3] + ["--target", "nothing"]) == 1
    assert "no column 'nothing' and no columns of target 'nothing'" in capsys.readouterr().err
    assert main(["adapt", "--base", "no-such-board", "--data", str(board_data), "--target", "board",
                 "--out", str(out)]) == 1
    assert "no-such-board: neither a predictor file nor a shipped predictor" in capsys.readouterr().err


def test_the_shipped_multi_device_base_is_the_adapt_commands_default(board_data, kws, tmp_path, capsys) -> None:
    # One latency column per device perfsage has labels of, with an interval companion that the
    # adapted predictor inherits; a base to start from, not a target of its own.
    base = perfsage.load_predictor("multi-device")
    devices = {name.partition("/")[0] for name in base.output_names}
    assert {"ethos-u55-256", "ethos-u65-512", "host-cpu", "nb201-raspi4", "nb201-titan_rtx_1"} <= devices
    assert all(name.endswith("/latency_ms") for name in base.output_names)
    assert base.is_additive and base.has_intervals and base.provenance["base"]["held_out"] == []
    assert perfsage.shipped_bases() == ["multi-device"] and "multi-device" not in perfsage.shipped_predictors()
    assert "multi-device" not in {e["target"] for e in perfsage.targets()}
    out = tmp_path / "board.psage"
    assert main(["adapt", "--data", str(board_data), "--target", "board", "--out", str(out), "--epochs", "2",
                 "--no-progress"]) == 0
    assert "adapted from multi-device" in capsys.readouterr().out
    adapted = perfsage.load_predictor(out)
    assert adapted.provenance["adapted_from"]["targets"] == base.output_names and adapted.has_intervals
    prediction, lower, upper = adapted.predict(kws[1][10:], interval=0.9)
    assert np.all(lower <= prediction) and np.all(prediction <= upper)
    with pytest.raises(FileNotFoundError, match="shipped: .*multi-device"):
        perfsage.load_predictor("no-such-base")


def test_an_older_schema_base_adapts_and_reads_its_own_columns(kws) -> None:
    # The checkpoint reads schema 1's node columns; its adapted network must read the same ones.
    _, graphs = kws
    base = perfsage.load_predictor(HERE / "data" / "schema1-ethos-u55-256.psage")
    truth = 2.0 * base.predict(graphs)[:, 0].astype(np.float64)
    adapted = base.adapt((graphs[:5], truth[:5]), targets="b/latency_ms", epochs=0, progress=False)
    assert adapted._network.config["num_node_features"] == base._network.config["num_node_features"]
    np.testing.assert_allclose(adapted.predict(graphs[5:])[:, 0], truth[5:], rtol=2e-3)


@pytest.mark.parametrize("labels, message", [
    (np.array([1.0, 2.0]), r"2 measured row\(s\); adapting needs at least 3"),
    (np.array([1.0, np.nan, 2.0, 3.0]), r"label of row 1 for 'b/latency_ms' is nan"),
    (np.array([1.0, 2.0, 0.0, 3.0]), r"label of row 2 for 'b/latency_ms' is 0.0"),
    (np.array([1.0, 2.0, -1.0, np.inf]), r"label of row 2 .* \(2 do not\)"),
])
def test_bad_measurements_are_named(lse_base, kws, labels, message) -> None:
    _, graphs = kws
    with pytest.raises(ValueError, match=message):
        lse_base.adapt((graphs[:len(labels)], labels), targets="b/latency_ms", progress=False)


def test_spread_rows_take_one_row_from_each_stratum_of_the_proxy() -> None:
    proxy = np.random.default_rng(0).normal(size=1000)
    rows = _adapt.spread_rows(proxy, 10, seed=3)
    ranks = np.argsort(np.argsort(proxy))
    # One row in each tenth of the ranks, in increasing order of the proxy, seeded.
    assert sorted(ranks[rows] // 100) == list(range(10)) and np.all(np.diff(proxy[rows]) > 0)
    np.testing.assert_array_equal(rows, _adapt.spread_rows(proxy, 10, seed=3))
    assert not np.array_equal(rows, _adapt.spread_rows(proxy, 10, seed=4))
    # Random draws of 10 bunch up: the chosen rows always reach both ends of the range.
    assert ranks[rows].min() < 100 and ranks[rows].max() >= 900
    assert sorted(_adapt.spread_rows(proxy, 1000, seed=0)) == list(range(1000))
    with pytest.raises(ValueError, match="k must be between 1 and the number of candidates"):
        _adapt.spread_rows(proxy, 1001, seed=0)
    with pytest.raises(ValueError, match="must be finite"):
        _adapt.spread_rows(np.array([0.0, np.nan, 1.0]), 2, seed=0)


def test_choose_to_measure_spreads_over_the_predicted_latency(lse_base, kws) -> None:
    _, graphs = kws
    chosen = lse_base.choose_to_measure(graphs, 6, seed=1)
    assert len(set(chosen)) == 6 and all(0 <= i < len(graphs) for i in chosen)
    predicted = lse_base.predict(graphs)[:, 0]
    ranks = np.argsort(np.argsort(predicted))
    assert sorted(ranks[chosen] // 8) == list(range(6))  # 48 candidates: one in each sixth
    assert lse_base.choose_to_measure(graphs, 6, seed=1) == chosen
    # The chosen rows adapt like any others.
    labels = 2.0 * _size_labels(graphs)[:, 0]
    adapted = lse_base.adapt(([graphs[i] for i in chosen], labels[chosen]), targets="b/latency_ms", epochs=0,
                             progress=False)
    assert adapted.output_names == ["b/latency_ms"]
    with pytest.raises(ValueError, match="k must be an int of at least 3"):
        lse_base.choose_to_measure(graphs, 2)
    with pytest.raises(ValueError, match="k = 49 exceeds the 48 candidate graphs"):
        lse_base.choose_to_measure(graphs, 49)
    with pytest.raises(RuntimeError, match="choose_to_measure: the predictor is not trained yet"):
        perfsage.Predictor(["x"]).choose_to_measure(graphs, 5)


def test_the_adapt_command_chooses_which_models_to_measure(lse_base, kws, tmp_path, capsys) -> None:
    samples, graphs = kws
    folder = tmp_path / "candidates"
    folder.mkdir()
    for item in samples[:12]:
        (folder / f"{item['spec']['name']}.tflite").write_bytes(perfsage.build_model(item["spec"], seed=item["seed"]))
    lse_base.save(tmp_path / "base.psage")
    assert main(["adapt", "--base", str(tmp_path / "base.psage"), "--choose", "4", str(folder)]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    names = sorted(str(p) for p in folder.glob("*.tflite"))
    expected = lse_base.choose_to_measure([perfsage.load_tflite(p) for p in names], 4)
    assert listed == [names[i] for i in expected]
    assert main(["adapt", "--choose", "4", str(folder), "--out", "x.psage"]) == 1
    assert "leave out --data, --target and --out" in capsys.readouterr().err
    assert main(["adapt", "--choose", "13", str(folder)]) == 1
    assert "--choose 13: only 12 candidate model(s) could be read" in capsys.readouterr().err
    assert main(["adapt", "--data", "mine.parquet"]) == 1
    assert "adapt needs --target, --out" in capsys.readouterr().err
    assert main(["adapt", "--data", "mine.parquet", "--target", "b", "--out", "b.psage", names[0]]) == 1
    assert "model files are for --choose K" in capsys.readouterr().err


def test_bad_calls_are_named(lse_base, kws) -> None:
    _, graphs = kws
    with pytest.raises(ValueError, match="name the new predictor's targets"):
        lse_base.adapt((graphs[:4], np.ones(4)), progress=False)
    with pytest.raises(ValueError, match="adapt: lr must be a positive number, got -1.0"):
        lse_base.adapt((graphs[:4], np.ones(4)), targets="b/x", lr=-1.0)
    with pytest.raises(ValueError, match="epochs must be a non-negative int"):
        lse_base.adapt((graphs[:4], np.ones(4)), targets="b/x", epochs=-1)
    with pytest.raises(ValueError, match=r"expected labels of shape \(4, 1\)"):
        lse_base.adapt((graphs[:4], np.ones((4, 2))), targets="b/x", progress=False)
    with pytest.raises(RuntimeError, match="adapt: the predictor is not trained yet"):
        perfsage.Predictor(["x"]).adapt((graphs[:4], np.ones(4)), targets="b/x")
