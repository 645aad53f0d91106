"""The Predictor API: training, prediction, checkpoints, threads, and clear errors."""

from __future__ import annotations

import concurrent.futures
import json

import numpy as np
import pytest

import perfsage


@pytest.fixture(scope="module")
def kws_graphs():
    samples = perfsage.sample("kws", 60, seed=4)
    models = [perfsage.build_model(s["spec"], seed=s["seed"]) for s in samples]
    return models, [perfsage.load_tflite(m) for m in models]


def _labels(graphs):
    # Two deterministic targets the network can learn: a MAC-driven and a size-driven one.
    return np.array([[1e-6 * g.totals["macs"] + 0.05, 1e-3 * g.totals["param_bytes"] + 1.0] for g in graphs])


@pytest.fixture(scope="module")
def trained(kws_graphs):
    _, graphs = kws_graphs
    p = perfsage.Predictor(["lat", "mem"], units=["ms", "kB"], hidden=16, head_hidden=16, layers=2)
    p.fit((graphs, _labels(graphs)), epochs=6, progress=False)
    return p


def test_fit_predict_shapes_names_and_history(trained, kws_graphs):
    _, graphs = kws_graphs
    out = trained.predict(graphs)
    assert out.dtype == np.float32 and out.shape == (len(graphs), 2)
    assert np.all(out > 0) and np.all(np.isfinite(out))
    assert trained.output_names == ["lat", "mem"] and trained.units == ["ms", "kB"]
    assert len(trained.history) == 6 and all(h["epoch"] == i + 1 for i, h in enumerate(trained.history))
    assert trained.provenance["train_graphs"] + trained.provenance["val_graphs"] == len(graphs)
    assert trained.provenance["val_graphs"] == 6  # validation_split 0.1


def test_training_reduces_the_loss(kws_graphs):
    _, graphs = kws_graphs
    p = perfsage.Predictor(["lat"], hidden=16, head_hidden=16, lr=1e-2, validation_split=0.0)
    p.fit((graphs, _labels(graphs)[:, 0]), epochs=30, progress=False)
    losses = [h["train_loss"] for h in p.history]
    assert losses[-1] < 0.5 * losses[0]


def test_predict_accepts_graphs_paths_and_bytes_alike(trained, kws_graphs, tmp_path):
    models, graphs = kws_graphs
    path = tmp_path / "m.tflite"
    path.write_bytes(models[3])
    mixed = trained.predict([graphs[3], str(path), models[3], path])
    assert np.array_equal(mixed, np.repeat(mixed[:1], 4, axis=0))
    assert trained.predict(models[3]).shape == (1, 2)


def test_checkpoint_round_trip_is_exact(trained, kws_graphs, tmp_path):
    _, graphs = kws_graphs
    path = tmp_path / "p.psage"
    trained.save(path)
    back = perfsage.load_predictor(path)
    assert back.output_names == trained.output_names and back.units == trained.units
    assert back.hyperparameters == trained.hyperparameters
    for name, value in trained.parameters().items():
        assert np.array_equal(back.parameters()[name], value), name
    assert np.array_equal(back.predict(graphs), trained.predict(graphs))
    assert back.to_bytes() == path.read_bytes()
    assert back.provenance["train_graphs"] == trained.provenance["train_graphs"]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:200] + bytes([b[200] ^ 1]) + b[201:], "checksum"),
        (lambda b: b[:8] + (99).to_bytes(4, "little") + b[12:], "newer than this perfsage reads"),
        (lambda b: b"TFL3" + b[4:], "not a perfsage checkpoint"),
        (lambda b: b"", "not a perfsage checkpoint"),
    ],
)
def test_bad_checkpoints_get_clear_errors(trained, tmp_path, damage, message):
    path = tmp_path / "bad.psage"
    path.write_bytes(damage(trained.to_bytes()))
    with pytest.raises(perfsage.PerfSageError, match=message) as info:
        perfsage.load_predictor(path)
    assert str(path) in str(info.value)


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such predictor"):
        perfsage.load_predictor(tmp_path / "nope.psage")


def test_predicting_from_many_python_threads_gives_the_same_answers(trained, kws_graphs):
    _, graphs = kws_graphs
    expected = trained.predict(graphs, threads=1)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: trained.predict(graphs, threads=1 + i % 2), range(16)))
    for r in results:
        assert np.array_equal(r, expected)


def test_same_seed_same_weights_whatever_the_thread_count(kws_graphs):
    _, graphs = kws_graphs
    y = _labels(graphs)
    runs = []
    for threads in (1, 2):
        p = perfsage.Predictor(["lat", "mem"], hidden=8, head_hidden=8, layers=2, seed=5)
        p.fit((graphs, y), epochs=3, threads=threads, progress=False)
        runs.append(p.parameters())
    for name in runs[0]:
        assert np.array_equal(runs[0][name], runs[1][name]), name


def test_callback_sees_every_epoch_and_can_stop(kws_graphs):
    _, graphs = kws_graphs
    seen = []
    p = perfsage.Predictor(["lat"], hidden=8, head_hidden=8)
    p.fit((graphs, _labels(graphs)[:, 0]), epochs=10, progress=False,
          callback=lambda stats: seen.append(stats) or stats["epoch"] < 3)
    assert [s["epoch"] for s in seen] == [1, 2, 3]
    assert set(seen[0]) >= {"train_loss", "val_loss", "val_mape", "lr", "seconds"}
    assert p.provenance["interrupted"] is True


def test_callback_exceptions_propagate(kws_graphs):
    _, graphs = kws_graphs
    p = perfsage.Predictor(["lat"], hidden=8, head_hidden=8)

    def boom(stats):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        p.fit((graphs, _labels(graphs)[:, 0]), epochs=3, progress=False, callback=boom)


def test_missing_labels_are_masked(kws_graphs):
    _, graphs = kws_graphs
    y = _labels(graphs)
    y[::2, 0] = np.nan  # half the graphs have no "lat" label
    y[1::2, 1] = np.nan
    p = perfsage.Predictor(["lat", "mem"], hidden=8, head_hidden=8, validation_split=0.0)
    p.fit((graphs, y), epochs=2, progress=False)
    assert np.all(np.isfinite(p.predict(graphs)))


def test_bad_inputs_are_named(trained, kws_graphs):
    _, graphs = kws_graphs
    with pytest.raises(TypeError, match="unknown hyperparameter.*'hiden'"):
        perfsage.Predictor(["lat"], hiden=3)
    with pytest.raises(perfsage.PerfSageError, match="aggregator: 'median'"):
        perfsage.Predictor(["lat"], aggregator="median")
    with pytest.raises(ValueError, match="distinct"):
        perfsage.Predictor(["a", "a"])
    with pytest.raises(RuntimeError, match="not trained"):
        perfsage.Predictor(["lat"]).predict(graphs[:1])
    p = perfsage.Predictor(["lat", "mem"], hidden=8)
    with pytest.raises(ValueError, match=r"expected labels of shape \(60, 2\).*got \(60,\)"):
        p.fit((graphs, np.ones(60)), epochs=1, progress=False)
    y = _labels(graphs)
    y[7, 1] = -2.0
    with pytest.raises(perfsage.PerfSageError, match="graph 7, target 1 is -2"):
        p.fit((graphs, y), epochs=1, progress=False)
    params = trained.parameters()
    params["sage0.w_self"] = params["sage0.w_self"][:, :3]
    with pytest.raises(ValueError, match=r"parameters\['sage0.w_self'\]: expected shape"):
        trained.set_parameters(params)
    with pytest.raises(TypeError, match=r"graphs\[1\]: expected perfsage.Graph"):
        trained._network.predict([graphs[0], "not a graph"], 1)
    with pytest.raises(perfsage.PerfSageError):
        trained.predict([b"not a tflite model"])


def test_provenance_is_json(trained):
    json.dumps(trained.provenance)
    assert trained.provenance["perfsage_version"] == perfsage.__version__


def test_a_predictor_trained_without_validation_data_saves(kws_graphs, tmp_path):
    # Its best validation MAPE is NaN, which strict JSON has no word for: the file says null.
    _, graphs = kws_graphs
    p = perfsage.Predictor(["lat"], hidden=8, head_hidden=8, validation_split=0.0)
    p.fit((graphs[:8], _labels(graphs[:8])[:, 0]), epochs=2, progress=False)
    assert np.isnan(p.provenance["best_val_mape"]["lat"])
    p.save(tmp_path / "p.psage")
    assert perfsage.load_predictor(tmp_path / "p.psage").provenance["best_val_mape"] == {"lat": None}


class _OperatorLabelled:
    """A dataset's per-operator interface: two rows of ``dev`` latency with operator labels."""

    def __init__(self, totals, node_labels, placement=None):
        self._totals, self._nodes, self._placement = np.asarray(totals, dtype=np.float64), node_labels, placement
        metrics = {"latency_ms": "ms", **({"placement": ""} if placement is not None else {})}
        self.targets = {"dev": {"node_metrics": metrics}}

    def __len__(self):
        return len(self._totals)

    def labels(self, columns):
        assert columns == ["dev/latency_ms"]
        return self._totals[:, None]

    def node_labels(self, target, metric):
        assert target == "dev" and metric in ("latency_ms", "placement")
        return self._nodes if metric == "latency_ms" else self._placement


def test_operator_labels_that_miss_the_model_label_train_on_the_model_label_alone() -> None:
    # Why: Vela's operations without a source operator (an NPU ARG_MAX's lowering) are in the
    # model's label and in no operator's; a per-operator loss would price that operator at 0.
    rows = [np.array([1.0, 2.0], np.float32), np.array([0.0], np.float32), np.array([0.5, 0.5], np.float32), None]
    dataset = _OperatorLabelled([3.0, 0.01387, 1.004, 2.0], rows)
    labels = perfsage._predictor.dataset_operator_labels(dataset, ["dev/latency_ms", "other/latency_ms"])
    np.testing.assert_array_equal(labels[0][:, 0], [1.0, 2.0])
    assert np.isnan(labels[1][:, 0]).all()  # 0 of 0.01387 ms attributed
    np.testing.assert_array_equal(labels[2][:, 0], [0.5, 0.5])  # within 1%
    assert labels[3] is None
    assert np.isnan(labels[0][:, 1]).all()  # a target without operator labels


def test_what_vela_lowered_without_a_source_goes_to_the_operator_it_placed_nowhere() -> None:
    # Why: an NPU ARG_MAX has no Vela row of its own (placement "none"); its cost is the model's
    # label minus its operators'. A CPU ARG_MAX (placement "cpu") or a RESHAPE Vela removed
    # ("none", not a lowering op) takes nothing; a gap no such operator explains stays NaN.
    npu, cpu, none = 0.0, 1.0, 2.0
    rows = [np.array([1.0, 0.0, 0.0], np.float32), np.array([1.0, 0.0], np.float32),
            np.array([1.0, 0.0], np.float32), np.array([1.0, 0.0, 0.0], np.float32)]
    placement = [np.array([npu, none, none]), np.array([npu, cpu]), np.array([npu, none]),
                 np.array([npu, none, none])]
    names = [["CONV_2D", "ARG_MAX", "RESHAPE"], ["CONV_2D", "ARG_MAX"], ["CONV_2D", "RESHAPE"],
             ["CONV_2D", "ARG_MAX", "ARG_MAX"]]
    dataset = _OperatorLabelled([1.5, 1.0, 1.5, 1.5], rows, placement)
    labels = perfsage._predictor.dataset_operator_labels(dataset, ["dev/latency_ms"], names)
    np.testing.assert_allclose(labels[0][:, 0], [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(labels[1][:, 0], [1.0, 0.0])
    assert np.isnan(labels[2][:, 0]).all()
    np.testing.assert_allclose(labels[3][:, 0], [1.0, 0.25, 0.25])
    # Without the operator types, the first row cannot be attributed and trains on its model label.
    assert np.isnan(perfsage._predictor.dataset_operator_labels(dataset, ["dev/latency_ms"])[0]).all()


def test_peak_dram_is_a_sum_over_operators_and_other_peaks_a_maximum() -> None:
    # On the Ethos-U65 with dedicated SRAM every weight lives in DRAM: its peak is a sum.
    from perfsage._predictor import max_targets_mask

    targets = ["ethos-u65-256/latency_ms", "ethos-u65-256/peak_sram_bytes", "ethos-u65-256/peak_dram_bytes"]
    assert max_targets_mask(targets) == 0b010
    graphs = perfsage.load_many([perfsage.build_model(item["spec"], seed=item["seed"])
                                 for item in perfsage.sample("kws", 8, 0)])
    labels = np.array([[1.0 + g.num_nodes, 1e4, 1e5 + g.num_nodes] for g in graphs], dtype=np.float32)
    p = perfsage.Predictor(targets, readout="additive", family_dim=4, seed=0).initialize(graphs, labels)
    p.set_parameters({k: v + 0.05 * np.random.default_rng(0).standard_normal(v.shape)
                      for k, v in p.parameters().items()})
    prediction, costs, constant = p.operator_costs(graphs[0])
    np.testing.assert_allclose(prediction[1], max(costs[:, 1].max(), constant[1]), rtol=1e-5)
    np.testing.assert_allclose(prediction[2], costs[:, 2].sum() + constant[2], rtol=1e-4)


def _prior_predictor(**extra):
    return perfsage.Predictor(["dev/latency_ms", "dev/peak_sram_bytes"], units=["ms", "B"], readout="additive",
                              hidden=16, head_hidden=16, layers=2, seed=0, operator_prior="auto", **extra)


def test_the_operator_prior_keeps_the_network_validation_prefers(kws_graphs, tmp_path) -> None:
    # Why: a device measured by whole models may train on the kernel table's attribution of its
    # labels, which steadies unseen spaces where the table is good and hurts where it is poor; fit
    # trains both and must keep, and report, the one with the lower validation MAPE.
    _, graphs = kws_graphs
    labels = _labels(graphs)
    train, val = (graphs[:48], labels[:48]), (graphs[48:], labels[48:])
    p = _prior_predictor()
    p.fit(train, val=val, epochs=4, progress=False, checkpoint=tmp_path / "run.ckpt")
    choice = p.provenance["operator_prior_choice"]
    assert choice["columns"] == ["dev/latency_ms"]  # a peak is a maximum, no sum to attribute
    scores = choice["val_mape"]
    assert choice["chosen"] == ("lookup" if scores["lookup"] < scores["none"] else "none")
    # The predictor is the chosen network: its validation MAPE is the one recorded for it.
    ape = np.abs(p.predict(val[0]).astype(np.float64) - val[1]) / val[1]
    np.testing.assert_allclose(ape.mean(), scores[choice["chosen"]], rtol=1e-3)
    assert p.hyperparameters["node_graph_context"] is (choice["chosen"] == "none")
    assert p.hyperparameters["operator_prior"] == "auto" and p.provenance["operator_prior"] == "auto"
    assert (tmp_path / "run.ckpt").is_file() and (tmp_path / "run.ckpt.prior").is_file()
    # Either way round the file keeps the setting and the network.
    p.save(tmp_path / "p.psage")
    back = perfsage.load_predictor(tmp_path / "p.psage")
    assert back.hyperparameters == p.hyperparameters
    assert np.array_equal(back.predict(val[0]), p.predict(val[0]))
    # A stopped run resumes both networks from their files and chooses the same.
    again = _prior_predictor()
    again.fit(train, val=val, epochs=4, progress=False, checkpoint=tmp_path / "run.ckpt")
    assert again.provenance["operator_prior_choice"] == choice
    assert np.array_equal(again.predict(val[0]), p.predict(val[0]))


def test_a_chosen_rival_becomes_the_predictor(kws_graphs, monkeypatch) -> None:
    # The swap itself, with the rival's validation score forced below the plain network's: the
    # predictor then holds the rival's weights (no graph context), which trained on the table's
    # attribution of each summed target's model labels to its operators.
    _, graphs = kws_graphs
    labels = _labels(graphs)
    seen = {}
    real_attribution, real_train = perfsage._kernel_table.attribution, perfsage.Predictor._train

    def attribution(g, y, columns, seed):
        seen["attributed"] = real_attribution(g, y, columns, seed)
        return seen["attributed"]

    def train(self, *args, **kwargs):
        real_train(self, *args, **kwargs)
        if not self.hyperparameters["node_graph_context"]:
            seen["rival"] = self
            self.provenance["best_val_mape"] = {k: 0.0 for k in self.provenance["best_val_mape"]}

    monkeypatch.setattr(perfsage._kernel_table, "attribution", attribution)
    monkeypatch.setattr(perfsage.Predictor, "_train", train)
    p = _prior_predictor()
    p.fit((graphs[:48], labels[:48]), val=(graphs[48:], labels[48:]), epochs=2, progress=False)
    assert p.provenance["operator_prior_choice"]["chosen"] == "lookup"
    assert p.provenance["train_graphs_with_operator_labels"] == 48 and len(p.history) == 2
    assert not p.hyperparameters["node_graph_context"] and p.hyperparameters["operator_prior"] == "auto"
    rival = seen["rival"].parameters()
    assert all(np.array_equal(v, rival[k]) for k, v in p.parameters().items())
    attributed = seen["attributed"]
    assert [a.shape for a in attributed] == [(g.num_nodes, 2) for g in graphs[:48]]
    np.testing.assert_allclose([a[:, 0].sum() for a in attributed], labels[:48, 0], rtol=1e-4)
    assert all(np.isnan(a[:, 1]).all() for a in attributed)  # the peak target


def test_the_operator_prior_stands_aside(kws_graphs) -> None:
    # Per-operator labels of any row, no validation rows, or a network without operator costs:
    # nothing to choose between, one network as asked.
    _, graphs = kws_graphs
    labels = _labels(graphs)
    ops = [np.full((g.num_nodes, 2), np.nan, np.float32) for g in graphs[:48]]
    ops[0][:, 0] = labels[0, 0] / graphs[0].num_nodes
    p = _prior_predictor()
    p.fit((graphs[:48], labels[:48], ops), val=(graphs[48:], labels[48:]), epochs=1, progress=False)
    assert "operator_prior_choice" not in p.provenance and p.hyperparameters["node_graph_context"]
    p = _prior_predictor(validation_split=0.0)
    p.fit((graphs[:48], labels[:48]), epochs=1, progress=False)
    assert "operator_prior_choice" not in p.provenance
    p = perfsage.Predictor(["dev/latency_ms"], hidden=16, head_hidden=16, layers=2, operator_prior="auto")
    p.fit((graphs, labels[:, 0]), epochs=1, progress=False)
    assert "operator_prior_choice" not in p.provenance
    with pytest.raises(ValueError, match="operator_prior must be one of off, auto, got 'lookup'"):
        perfsage.Predictor(["dev/latency_ms"], operator_prior="lookup")


def test_min_steps_trains_more_epochs_when_the_rows_fill_few_batches(kws_graphs, tmp_path) -> None:
    # Why: with 100 rows an epoch is 2 optimiser steps, and a recipe's epochs count leaves such a
    # network undertrained; min_steps counts steps. 48 rows in batches of 16: 3 steps an epoch.
    _, graphs = kws_graphs
    labels = _labels(graphs)[:, 0]
    p = perfsage.Predictor(["lat"], hidden=16, head_hidden=16, layers=2, batch_size=16, patience=0, min_steps=20)
    p.fit((graphs[:48], labels[:48]), val=(graphs[48:], labels[48:]), epochs=2, progress=False)
    assert p.provenance["epochs_run"] == 7 and len(p.history) == 7  # ceil(20 / 3)
    p = perfsage.Predictor(["lat"], hidden=16, head_hidden=16, layers=2, batch_size=16, patience=0, min_steps=3)
    p.fit((graphs[:48], labels[:48]), val=(graphs[48:], labels[48:]), epochs=2, progress=False)
    assert p.provenance["epochs_run"] == 2  # the epochs asked take more steps already
    p.save(tmp_path / "p.psage")
    assert perfsage.load_predictor(tmp_path / "p.psage").hyperparameters["min_steps"] == 3
    # Adapting fine-tunes the epochs it is asked for, whatever its base's min_steps.
    adapted = p.adapt((graphs[:6], labels[:6]), targets="board/lat", epochs=3, progress=False)
    assert len(adapted.history) == 3 and adapted.hyperparameters["min_steps"] == 0
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="min_steps must be a non-negative int"):
            perfsage.Predictor(["lat"], min_steps=bad)
