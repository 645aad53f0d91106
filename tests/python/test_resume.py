"""Predictor.fit(checkpoint=...): a stopped run goes on where it stopped and ends where an
uninterrupted one does, bit for bit; another run's file is refused with a reason."""

from __future__ import annotations

import numpy as np
import pytest

import perfsage


@pytest.fixture(scope="module")
def data():
    samples = perfsage.sample("kws", 40, seed=11)
    graphs = [perfsage.load_tflite(perfsage.build_model(s["spec"], seed=s["seed"])) for s in samples]
    labels = np.array([[1e-6 * g.totals["macs"] + 0.05, 1e-3 * g.totals["param_bytes"] + 1.0] for g in graphs])
    return graphs, labels


def _predictor(**extra):
    return perfsage.Predictor(["lat", "mem"], hidden=16, head_hidden=16, layers=2, seed=3, **extra)


def _stop_after(epoch):
    return lambda stats: stats["epoch"] < epoch


@pytest.mark.parametrize("readout", ["lse", "additive"])
def test_a_stopped_run_resumes_to_the_uninterrupted_weights(data, tmp_path, readout):
    graphs, labels = data
    whole = _predictor(readout=readout).fit((graphs, labels), epochs=7, progress=False)

    path = tmp_path / "run.npz"
    first = _predictor(readout=readout).fit((graphs, labels), epochs=7, progress=False, checkpoint=path,
                                            callback=_stop_after(3))
    assert first.provenance["interrupted"] and len(first.history) == 3 and path.exists()
    # A new process would start from a fresh Predictor with the same arguments.
    second = _predictor(readout=readout).fit((graphs, labels), epochs=7, progress=False, checkpoint=path)
    assert second.provenance["resumed_after_epoch"] == 3
    assert [h["epoch"] for h in second.history] == list(range(1, 8))
    assert [h["train_loss"] for h in second.history] == [h["train_loss"] for h in whole.history]
    assert second.provenance["best_epoch"] == whole.provenance["best_epoch"]
    for name, value in whole.parameters().items():
        assert np.array_equal(second.parameters()[name], value), name
    assert np.array_equal(second.predict(graphs), whole.predict(graphs))

    # A finished run's file stays; fitting again does no epoch and keeps the same weights.
    again = _predictor(readout=readout).fit((graphs, labels), epochs=7, progress=False, checkpoint=path)
    assert np.array_equal(again.predict(graphs), whole.predict(graphs))


def test_another_runs_checkpoint_is_refused_with_what_differs(data, tmp_path):
    graphs, labels = data
    path = tmp_path / "run.npz"
    _predictor().fit((graphs, labels), epochs=2, progress=False, checkpoint=path)
    with pytest.raises(ValueError, match=r"run\.npz is another run's \(epochs 2 vs 3\)"):
        _predictor().fit((graphs, labels), epochs=3, progress=False, checkpoint=path)
    with pytest.raises(ValueError, match=r"hyperparameters lr=0\.003 vs 0\.01"):
        _predictor(lr=0.01).fit((graphs, labels), epochs=2, progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="training or validation data differ"):
        _predictor().fit((graphs, labels * 2), epochs=2, progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="targets"):
        perfsage.Predictor(["a", "b"], hidden=16, head_hidden=16, layers=2, seed=3).fit(
            (graphs, labels), epochs=2, progress=False, checkpoint=path)


def test_a_damaged_checkpoint_is_named_not_crashed_on(data, tmp_path):
    graphs, labels = data
    path = tmp_path / "run.npz"
    _predictor().fit((graphs, labels), epochs=2, progress=False, checkpoint=path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"run\.npz is not a training state perfsage can read"):
        _predictor().fit((graphs, labels), epochs=2, progress=False, checkpoint=path)


def test_a_state_from_another_network_is_refused_by_the_core(data):
    graphs, labels = data
    p = _predictor().fit((graphs, labels), epochs=1, progress=False)
    state = perfsage._core.TrainState({
        "epochs_done": 1, "step": 1, "best_loss": 1.0, "best_epoch": 1, "stopped_early": False,
        "history": [p.history[0]], "m": np.zeros(5, np.float32), "v": np.zeros(5, np.float32),
        "best_params": np.zeros(0, np.float32)})
    train_set = perfsage._predictor._graph_set(graphs)
    with pytest.raises(perfsage.PerfSageError, match=r"training state: m has 5 values"):
        p._network.train(train_set, labels.astype(np.float32), None, None, p._options, None, None, state)
