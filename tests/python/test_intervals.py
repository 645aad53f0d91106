"""Prediction intervals (issue 15): the companion network, conformal calibration, checkpoints, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import perfsage
from perfsage import _intervals
from perfsage._split import validation_split
from perfsage.cli import main


@pytest.fixture(scope="module")
def data():
    samples = perfsage.sample("kws", 120, seed=21)
    graphs = perfsage.spec_graphs(samples)
    y = np.array([[1e-6 * g.totals["macs"] + 0.05, 1e-3 * g.totals["param_bytes"] + 1.0] for g in graphs])
    return samples, graphs, y


@pytest.fixture(scope="module")
def with_intervals(data):
    _, graphs, y = data
    p = perfsage.Predictor(["a/latency_ms", "a/size_kb"], hidden=16, head_hidden=16, layers=2,
                           validation_split=0.25)
    return p.fit((graphs[:100], y[:100]), epochs=8, progress=False, intervals=True)


def test_the_conformal_quantile_is_the_ceil_n_plus_1_alpha_th_score() -> None:
    # Ten rows, the companion agreeing everywhere by the same amount: scores are the errors / 2m.
    truth = np.exp(np.arange(1, 11, dtype=float))[:, None]
    main = truth * np.exp(np.linspace(0.01, 0.10, 10))[:, None]
    companion = main * np.exp(0.5)
    cal = _intervals.calibrate(main, companion, truth, ["t"])["targets"]["t"]
    scores = np.linspace(0.01, 0.10, 10) / (0.5 + 0.5)
    assert cal["rows"] == 10 and cal["median_disagreement"] == pytest.approx(0.5)
    expected = [scores[min(10, int(np.ceil(11 * level))) - 1] for level in _intervals.LEVELS]
    np.testing.assert_allclose(cal["quantiles"], expected)


def test_intervals_cover_what_they_promise_on_exchangeable_rows() -> None:
    # Synthetic log errors proportional to the disagreement (plus the floor): 90% intervals cover
    # about 90% of fresh rows drawn the same way, and are wider where the companion disagrees.
    rng = np.random.default_rng(0)

    def draw(n):
        truth = np.exp(rng.normal(size=(n, 1)))
        spread = rng.uniform(0.01, 0.5, size=(n, 1))
        main = truth * np.exp(spread * rng.normal(size=(n, 1)))
        return main, main * np.exp(spread), truth

    cal = _intervals.calibrate(*draw(2000), ["t"])
    main, companion, truth = draw(20000)
    lower, upper = _intervals.bounds(main, companion, cal, ["t"], 0.9)
    inside = (truth >= lower) & (truth <= upper)
    assert 0.88 <= inside.mean() <= 0.92
    width = np.log(upper / lower)[:, 0]
    assert np.corrcoef(width, np.abs(np.log(companion / main))[:, 0])[0, 1] > 0.99


def test_the_per_space_scope_covers_every_space_the_pooled_one_only_their_mix() -> None:
    # Two spaces under the same disagreement, one ten times noisier: the pooled 90% interval covers
    # the mix, and little of the hard space; the per-space one covers each space's fresh rows at 90%
    # or more. A space of fewer than MIN_GROUP_ROWS rows gets no quantiles of its own.
    rng = np.random.default_rng(1)

    def draw(n, noise):
        truth = np.exp(rng.normal(size=(n, 1)))
        main = truth * np.exp(noise * rng.normal(size=(n, 1)))
        return main, main * np.exp(0.1), truth

    small = _intervals.MIN_GROUP_ROWS - 1
    parts = [draw(1800, 0.02), draw(200, 0.2), draw(small, 5.0)]
    groups = ["easy"] * 1800 + ["hard"] * 200 + ["small"] * small
    cal = _intervals.calibrate(*(np.vstack([part[i] for part in parts]) for i in range(3)), ["t"], groups=groups)
    entry = cal["targets"]["t"]
    assert {g: e["rows"] for g, e in entry["groups"].items()} == {"easy": 1800, "hard": 200}
    np.testing.assert_allclose(_intervals.scope_quantiles(entry, "per-space"),
                               np.maximum(entry["groups"]["easy"]["quantiles"], entry["groups"]["hard"]["quantiles"]))
    assert _intervals.has_scope(cal, "per-space")
    for noise, pooled_at_most, per_space_at_least in ((0.02, 1.0, 0.99), (0.2, 0.5, 0.88)):
        main, companion, truth = draw(20000, noise)
        covered = {}
        for scope in _intervals.SCOPES:
            lower, upper = _intervals.bounds(main, companion, cal, ["t"], 0.9, scope)
            covered[scope] = float(np.mean((truth >= lower) & (truth <= upper)))
        assert covered["pooled"] <= pooled_at_most and covered["per-space"] >= per_space_at_least, covered
    without = _intervals.calibrate(*parts[0], ["t"])
    assert not _intervals.has_scope(without, "per-space")
    with pytest.raises(ValueError, match="no per-space calibration"):
        _intervals.bounds(*parts[0][:2], without, ["t"], 0.9, "per-space")
    with pytest.raises(ValueError, match="interval scope must be one of pooled, per-space, got 'space'"):
        _intervals.bounds(*parts[0][:2], cal, ["t"], 0.9, "space")
    with pytest.raises(ValueError, match="3 groups for 1800 calibration rows"):
        _intervals.calibrate(*parts[0], ["t"], groups=["a", "b", "c"])


def test_calibrate_again_by_space_makes_per_space_the_default(with_intervals, data, tmp_path, capsys) -> None:
    _, graphs, y = data
    p = perfsage.Predictor.from_bytes(with_intervals.to_bytes())
    assert p.default_interval_scope == "pooled"
    with pytest.raises(ValueError, match="no per-space calibration"):
        p.predict(graphs[:2], interval=0.9, interval_scope="per-space")
    pooled = p.provenance["intervals"]["targets"]["a/latency_ms"]["quantiles"]
    groups = ["odd" if i % 2 else "even" for i in range(len(graphs))]
    assert p.calibrate((graphs, y), groups=groups) is p
    cal = p.provenance["intervals"]
    assert sorted(cal["targets"]["a/latency_ms"]["groups"]) == ["even", "odd"]
    assert cal["calibration"] == "120 held-out rows (in memory), by group" and cal["companion"]["hidden"] == 8
    assert cal["targets"]["a/latency_ms"]["quantiles"] != pooled  # other rows than fit's 25
    assert p.default_interval_scope == "per-space"
    main_, lower, upper = p.predict(graphs[:5], interval=0.9)
    for a, b in zip((main_, lower, upper), p.predict(graphs[:5], interval=0.9, interval_scope="per-space")):
        np.testing.assert_array_equal(a, b)
    path = tmp_path / "p.psage"
    p.save(path)
    assert perfsage.load_predictor(path).default_interval_scope == "per-space"
    model = tmp_path / "m.tflite"
    model.write_bytes(perfsage.build_model(data[0][110]["spec"], seed=data[0][110]["seed"]))
    one = {}
    for scope in ("per-space", "pooled"):
        assert main(["predict", str(model), "--target", str(path), "--interval", "0.9", "--json",
                     "--interval-scope", scope]) == 0
        row = json.loads(capsys.readouterr().out)[0]
        assert row["interval"] == {"level": 0.9, "scope": scope}
        one[scope] = row["metrics"]["latency_ms"]
        expected = p.predict(str(model), interval=0.9, interval_scope=scope)
        assert one[scope]["upper"] == pytest.approx(float(expected[2][0, 0]))
    assert main(["predict", str(model), "--target", str(path), "--interval-scope", "pooled"]) == 1
    assert "add --interval LEVEL" in capsys.readouterr().err
    # Bad calls are named.
    with pytest.raises(ValueError, match="interval_scope comes with interval=LEVEL"):
        p.predict(graphs[:2], interval_scope="pooled")
    with pytest.raises(ValueError, match="2 groups for 120 rows"):
        p.calibrate((graphs, y), groups=["a", "b"])
    with pytest.raises(ValueError, match="'space' with a dataset path"):
        p.calibrate((graphs, y), groups="space")
    plain = perfsage.Predictor(["t"], hidden=8, head_hidden=8, validation_split=0.0)
    plain.fit((graphs[:20], y[:20, 0]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="no interval companion"):
        plain.calibrate((graphs[:20], y[:20, 0]))


def test_fit_with_intervals_trains_a_companion_and_calibrates(with_intervals, data) -> None:
    _, graphs, y = data
    p = with_intervals
    assert p.has_intervals
    cal = p.provenance["intervals"]
    assert cal["targets"]["a/latency_ms"]["rows"] == 25 and cal["companion"]["hidden"] == 8
    assert cal["companion"]["layers"] == 1
    prediction, lower, upper = p.predict(graphs[100:], interval=0.9)
    np.testing.assert_array_equal(prediction, p.predict(graphs[100:]))
    assert prediction.shape == lower.shape == upper.shape == (20, 2) and lower.dtype == np.float32
    assert np.all(lower <= prediction) and np.all(prediction <= upper)
    # The calibration rows themselves: at least 90% inside, by construction.
    val = validation_split(np.arange(100), 0.25, 0).val
    _, low_val, high_val = p.predict([graphs[i] for i in val], interval=0.9)
    inside = (y[val] >= low_val) & (y[val] <= high_val)
    assert inside.mean(axis=0).min() >= 0.9
    wider = p.predict(graphs[100:], interval=0.99)
    assert np.all(wider[2] >= upper) and np.all(wider[1] <= lower)


def test_specs_and_graphs_give_the_same_intervals(with_intervals, data) -> None:
    samples, graphs, _ = data
    by_spec = with_intervals.predict(samples[100:104], interval=0.8)
    by_graph = with_intervals.predict(graphs[100:104], interval=0.8)
    for a, b in zip(by_spec, by_graph):
        np.testing.assert_array_equal(a, b)


def test_the_companion_survives_a_checkpoint(with_intervals, data, tmp_path) -> None:
    _, graphs, _ = data
    path = tmp_path / "p.psage"
    with_intervals.save(path)
    back = perfsage.load_predictor(path)
    assert back.has_intervals and back.to_bytes() == path.read_bytes()
    for a, b in zip(back.predict(graphs, interval=0.9), with_intervals.predict(graphs, interval=0.9)):
        np.testing.assert_array_equal(a, b)


def test_fitting_again_without_intervals_drops_the_companion(data) -> None:
    _, graphs, y = data
    p = perfsage.Predictor(["t"], hidden=8, head_hidden=8, validation_split=0.25)
    p.fit((graphs[:40], y[:40, 0]), epochs=2, progress=False, intervals=True)
    assert p.has_intervals
    p.fit((graphs[:40], y[:40, 0]), epochs=1, progress=False)
    assert not p.has_intervals
    with pytest.raises(ValueError, match="has no intervals; fit it with intervals=True"):
        p.predict(graphs[:2], interval=0.9)
    # Weights set by hand are not the ones the intervals were calibrated for either.
    p.fit((graphs[:40], y[:40, 0]), epochs=1, progress=False, intervals=True)
    p.set_parameters(p.parameters())
    assert not p.has_intervals and "intervals" not in p.provenance


def test_bad_interval_requests_are_named(with_intervals, data) -> None:
    _, graphs, y = data
    with pytest.raises(ValueError, match=r"interval must be a level between 0.5 and 0.99, got 0.999"):
        with_intervals.predict(graphs[:2], interval=0.999)
    with pytest.raises(ValueError, match="intervals=True calibrates on validation rows and there are none"):
        perfsage.Predictor(["t"], validation_split=0.0).fit((graphs[:20], y[:20, 0]), epochs=1, progress=False,
                                                            intervals=True)


def test_the_predict_command_shows_intervals(with_intervals, data, tmp_path, capsys) -> None:
    samples, _, _ = data
    path = tmp_path / "p.psage"
    with_intervals.save(path)
    model = tmp_path / "m.tflite"
    model.write_bytes(perfsage.build_model(samples[110]["spec"], seed=samples[110]["seed"]))
    expected = with_intervals.predict(str(model), interval=0.9)
    assert main(["predict", str(model), "--target", str(path), "--interval", "0.9", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["interval"] == {"level": 0.9, "scope": "pooled"}  # fit's calibration has no spaces
    assert row["metrics"]["latency_ms"]["lower"] == pytest.approx(float(expected[1][0, 0]))
    assert row["metrics"]["size_kb"]["upper"] == pytest.approx(float(expected[2][0, 1]))
    assert main(["predict", str(model), "--target", str(path), "--interval", "0.9", "--csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert header[2:8] == ["latency_ms", "latency_ms lower", "latency_ms upper", "size_kb", "size_kb lower",
                           "size_kb upper"]
    assert main(["predict", str(model), "--target", str(path), "--interval", "0.9"]) == 0
    assert "[" in capsys.readouterr().out
    # The shipped predictors carry companions; a predictor fitted without one says so.
    assert main(["predict", str(model), "--interval", "0.9"]) == 0
    assert "[" in capsys.readouterr().out
    _, graphs, y = data
    plain = tmp_path / "plain.psage"
    perfsage.Predictor(["a/latency_ms", "a/size_kb"], hidden=8, head_hidden=8, validation_split=0.0).fit(
        (graphs[:20], y[:20]), epochs=1, progress=False).save(plain)
    assert main(["predict", str(model), "--target", str(plain), "--interval", "0.9"]) == 1
    assert "has no intervals" in capsys.readouterr().err
    assert main(["predict", str(model), "--target", str(path), "--interval", "0.9", "--explain"]) == 1
    assert "leave out --explain" in capsys.readouterr().err


@pytest.mark.parametrize("epochs", [0, 5])
def test_an_adapted_predictor_keeps_intervals(with_intervals, data, tmp_path, epochs) -> None:
    # Its companion is adapted too, and the intervals are calibrated by cross-fitting on the
    # measured rows: each row's error from a predictor adapted without its fold.
    _, graphs, y = data
    truth = 2.0 * y[100:115, 0] ** 1.1
    adapted = with_intervals.adapt((graphs[100:115], truth), targets="b/latency_ms", epochs=epochs, progress=False)
    assert adapted.has_intervals
    cal = adapted.provenance["intervals"]
    assert cal["targets"]["b/latency_ms"]["rows"] == 15 and cal["companion"]["hidden"] == 8
    assert cal["calibration"] == "5-fold cross-fitting on the 15 measured rows"
    prediction, lower, upper = adapted.predict(graphs[:100], interval=0.9)
    assert np.all(lower <= prediction) and np.all(prediction <= upper)
    path = tmp_path / "b.psage"
    adapted.save(path)
    back = perfsage.load_predictor(path)
    for a, b in zip(back.predict(graphs[:5], interval=0.9), adapted.predict(graphs[:5], interval=0.9)):
        np.testing.assert_array_equal(a, b)
    # Three rows adapt but cannot calibrate (no fold leaves three to adapt from): said, and none.
    with pytest.warns(UserWarning, match="3 measured rows are too few to calibrate intervals"):
        few = with_intervals.adapt((graphs[100:103], truth[:3]), targets="b/latency_ms", epochs=0)
    assert not few.has_intervals
    # Without a companion in the base there are none.
    plain = perfsage.Predictor(["a/latency_ms"], hidden=8, head_hidden=8, validation_split=0.0)
    plain.fit((graphs[:20], y[:20, 0]), epochs=1, progress=False)
    assert not plain.adapt((graphs[100:105], truth[:5]), targets="b/latency_ms", epochs=0).has_intervals
