"""Threads and a training network: reads during fit, calls from inside its callback, many predicting
threads, and Ctrl-C.

A deadlock takes the whole interpreter with it (every thread waits for the GIL), so each scenario
runs in a child process (this file run as a script) that the test kills after a timeout: a
regression fails with "did not finish" instead of hanging CI.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

import perfsage

TIMEOUT_SECONDS = 180  # generous: the machines that run CI are shared


def _run(scenario: str) -> None:
    try:
        done = subprocess.run([sys.executable, __file__, scenario], capture_output=True, text=True,
                              timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{scenario} did not finish in {TIMEOUT_SECONDS} s (a deadlock?)\n"
                    f"stdout: {e.stdout}\nstderr: {e.stderr}")
    assert done.returncode == 0, f"{scenario} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip().endswith("ok"), done.stdout


def test_reads_from_another_thread_during_fit():
    _run("reads_during_fit")


def test_predict_parameters_and_save_inside_the_callback():
    _run("calls_inside_callback")


def test_sixteen_threads_predict_while_one_trains():
    _run("sixteen_predict_while_training")


def test_keyboard_interrupt_from_the_callback_stops_fit_and_leaves_the_network_usable():
    _run("keyboard_interrupt_from_callback")


def test_ctrl_c_during_fit_stops_it():
    # The SIGINT comes from this process once the child says it trains (a timer thread in the child
    # needed the GIL to send it, and on a loaded machine the training thread's brief callbacks could
    # keep it waiting until all 100,000 epochs had run).
    child = subprocess.Popen([sys.executable, __file__, "sigint_during_fit"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "training", child.stderr.read()
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail(f"sigint_during_fit did not finish in {TIMEOUT_SECONDS} s after SIGINT (a deadlock?)")
    assert child.returncode == 0, f"sigint_during_fit failed:\n{stdout}\n{stderr}"
    assert stdout.strip().endswith("ok"), stdout


def test_a_second_fit_or_a_weight_write_during_fit_is_refused():
    _run("writes_during_fit_refused")


# -- scenarios, run in a child process ----------------------------------------------------------

def _data(n: int = 40):
    samples = perfsage.sample("kws", n, seed=4)
    graphs = [perfsage.load_tflite(perfsage.build_model(s["spec"], seed=s["seed"])) for s in samples]
    labels = np.array([1e-6 * g.totals["macs"] + 0.05 for g in graphs])
    return graphs, labels


def _predictor(**extra) -> perfsage.Predictor:
    return perfsage.Predictor(["lat"], hidden=8, head_hidden=8, layers=2, **extra)


def _join(thread: threading.Thread) -> None:
    thread.join(TIMEOUT_SECONDS)
    assert not thread.is_alive(), f"{thread.name} did not finish"


def reads_during_fit() -> None:
    # Each read must return while the trainer runs in C++ with the GIL released (the bug: reads
    # waited for a lock the trainer held while it waited for the GIL they held).
    graphs, labels = _data()
    p = _predictor(validation_split=0)
    p.initialize(graphs, labels)
    expected_names = set(p.parameters())
    training = threading.Event()
    finished = threading.Event()
    reads_while_training = [0]
    errors = []

    def fit() -> None:
        try:
            p.fit((graphs, labels), epochs=40, progress=False, callback=lambda stats: training.set())
        except BaseException as e:  # noqa: B036 - reported below
            errors.append(e)
        finally:
            finished.set()

    def read() -> None:
        training.wait(TIMEOUT_SECONDS)
        with tempfile.TemporaryDirectory() as tmp:
            while not finished.is_set():
                params = p.parameters()
                norm = p.normalization()
                prediction = p.predict(graphs[:5], threads=1)
                p.save(Path(tmp) / "during.psage")
                if not finished.is_set():  # fit had started (training is set) and not returned
                    reads_while_training[0] += 1
                assert set(params) == expected_names
                assert all(np.all(np.isfinite(v)) for v in params.values())
                assert norm["target_std"].shape == (1,)
                assert prediction.shape == (5, 1) and np.all(np.isfinite(prediction))
                loaded = perfsage.load_predictor(Path(tmp) / "during.psage")
                assert set(loaded.parameters()) == expected_names

    threads = [threading.Thread(target=fit, name="fit"), threading.Thread(target=read, name="read")]
    for t in threads:
        t.start()
    for t in threads:
        _join(t)
    assert not errors, errors
    assert reads_while_training[0] > 0, "no read overlapped training"


def calls_inside_callback() -> None:
    # The callback sees the weights of the epoch that just ended; without validation data the
    # last epoch's weights are the result, so the last callback's answers equal the final ones.
    graphs, labels = _data()
    p = _predictor(validation_split=0)
    seen = []
    with tempfile.TemporaryDirectory() as tmp:
        def callback(stats):
            path = Path(tmp) / f"epoch{stats['epoch']}.psage"
            p.save(path)
            seen.append((p.predict(graphs, threads=1), p.parameters(), p.normalization(),
                         perfsage.load_predictor(path).predict(graphs, threads=1)))
            with pytest.raises(perfsage.PerfSageError, match="training"):
                p.set_parameters(p.parameters())

        p.fit((graphs, labels), epochs=3, progress=False, callback=callback)
        assert len(seen) == 3
        final = p.predict(graphs, threads=1)
        prediction, params, norm, from_file = seen[-1]
        assert np.array_equal(prediction, final)
        assert np.array_equal(from_file, final)
        for name, value in p.parameters().items():
            assert np.array_equal(params[name], value), name
        for name, value in p.normalization().items():
            assert np.array_equal(norm[name], value), name
        # Each epoch's callback saw that epoch's weights, not the first ones.
        assert not np.array_equal(seen[0][0], seen[1][0])
        for prediction, _, _, from_file in seen:
            assert np.array_equal(prediction, from_file)


def sixteen_predict_while_training() -> None:
    graphs, labels = _data()
    p = _predictor(validation_split=0)
    p.initialize(graphs, labels)
    finished = threading.Event()
    errors = []
    calls = [0] * 16
    # At epoch 2 the callback predicts serially, then lets the 16 threads predict once each while it
    # waits: every one of those must equal the serial answer (the weights cannot move meanwhile).
    go = threading.Barrier(17)
    answered = threading.Barrier(17)
    at_epoch = {}

    def callback(stats):
        if stats["epoch"] == 2:
            at_epoch["serial"] = p.predict(graphs, threads=1)
            go.wait(TIMEOUT_SECONDS)
            answered.wait(TIMEOUT_SECONDS)

    def fit() -> None:
        try:
            p.fit((graphs, labels), epochs=30, progress=False, callback=callback)
        except BaseException as e:  # noqa: B036 - reported below
            errors.append(e)
        finally:
            finished.set()

    def predict(i: int) -> None:
        try:
            prediction = p.predict(graphs, threads=1 + i % 2)
            assert prediction.shape == (len(graphs), 1) and np.all(np.isfinite(prediction))
            go.wait(TIMEOUT_SECONDS)
            at_epoch[i] = p.predict(graphs, threads=1 + i % 2)
            answered.wait(TIMEOUT_SECONDS)
            while not finished.is_set():
                prediction = p.predict(graphs, threads=1 + i % 2)
                assert np.all(np.isfinite(prediction))
                calls[i] += 1
        except BaseException as e:  # noqa: B036 - reported below
            errors.append(e)

    threads = [threading.Thread(target=fit, name="fit")]
    threads += [threading.Thread(target=predict, args=(i,), name=f"predict{i}") for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        _join(t)
    assert not errors, errors
    for i in range(16):
        assert np.array_equal(at_epoch[i], at_epoch["serial"]), i
    # After fit: 16 threads at once give the serial answer.
    serial = p.predict(graphs, threads=1)
    results = [None] * 16

    def again(i: int) -> None:
        results[i] = p.predict(graphs, threads=1 + i % 2)

    threads = [threading.Thread(target=again, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        _join(t)
    for r in results:
        assert np.array_equal(r, serial)


def keyboard_interrupt_from_callback() -> None:
    graphs, labels = _data()
    p = _predictor(validation_split=0)

    def callback(stats):
        if stats["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        p.fit((graphs, labels), epochs=1000, progress=False, callback=callback)
    p.set_parameters(p.parameters())  # raises while the network counts as training
    # The network keeps the weights training reached and can train again.
    before = p.predict(graphs, threads=1)
    p.fit((graphs, labels), epochs=1, progress=False)
    assert not np.array_equal(before, p.predict(graphs, threads=1))


def sigint_during_fit() -> None:
    graphs, labels = _data()
    p = _predictor(validation_split=0)
    epochs = []

    def callback(stats):
        epochs.append(stats["epoch"])
        if stats["epoch"] == 2:
            # The test sends SIGINT when it reads this; the next batch checks for it.
            print("training", flush=True)

    with pytest.raises(KeyboardInterrupt):
        p.fit((graphs, labels), epochs=100000, progress=False, callback=callback)
    assert len(epochs) < 100000
    p.set_parameters(p.parameters())  # raises while the network counts as training


def writes_during_fit_refused() -> None:
    graphs, labels = _data()
    p = _predictor(validation_split=0)
    p.initialize(graphs, labels)
    training = threading.Event()
    release = threading.Event()
    errors = []

    def callback(stats):
        training.set()
        release.wait(TIMEOUT_SECONDS)
        return False

    def fit() -> None:
        try:
            p.fit((graphs, labels), epochs=5, progress=False, callback=callback)
        except BaseException as e:  # noqa: B036 - reported below
            errors.append(e)

    t = threading.Thread(target=fit, name="fit")
    t.start()
    try:
        assert training.wait(TIMEOUT_SECONDS)
        with pytest.raises(perfsage.PerfSageError, match="already training"):
            p.fit((graphs, labels), epochs=1, progress=False)
        for write in (lambda: p.set_parameters(p.parameters()), lambda: p.set_normalization(p.normalization()),
                      lambda: p.initialize(graphs, labels)):
            with pytest.raises(perfsage.PerfSageError, match="training"):
                write()
    finally:
        release.set()
        _join(t)
    assert not errors, errors
    p.set_parameters(p.parameters())  # allowed again once fit has returned


if __name__ == "__main__":
    globals()[sys.argv[1]]()
    print("ok")
