"""The labelling runner with stand-in labellers that crash, hang or fail on chosen models.

The stand-ins live in this module so that worker processes can unpickle them: the runner gives
its workers the parent's sys.path, which under pytest holds this folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="datasets need pyarrow (pip install perfsage[label])")

import perfsage  # noqa: E402
from perfsage.datasets import RunnerError, build_dataset, open_dataset, plan, run_local  # noqa: E402


def _sha(model: bytes) -> str:
    return hashlib.sha256(model).hexdigest()


class ScriptedLabeler:
    """Labels a model with its size, unless ``behaviour[sha256(model)]`` says to misbehave."""

    target = "scripted"
    metrics = {"size_bytes": "bytes", "half_size": "bytes"}

    def __init__(self, behaviour: Dict[str, str], pid_dir: str = "") -> None:
        self.behaviour = behaviour
        self.pid_dir = pid_dir

    def settings(self) -> Dict[str, Any]:
        return {"tool": "scripted", "behaviour": sorted(self.behaviour.values())}

    def label(self, model: bytes) -> Dict[str, float]:
        action = self.behaviour.get(_sha(model))
        if action == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif action == "hang":
            # Hang in a child process, as a stuck compiler would; the runner must kill both.
            child = subprocess.Popen(["sleep", "600"])
            Path(self.pid_dir, f"{os.getpid()}-{child.pid}").write_text("")
            child.wait()
        elif action == "raise":
            raise RuntimeError("scripted failure")
        elif action == "bad-value":
            return {"size_bytes": float(len(model))}
        return {"size_bytes": float(len(model)), "half_size": len(model) / 2}


class PerOperatorLabeler:
    """Prices each operator at its node index + 1; gives no per-operator labels for the models whose
    sha256 is in ``unpriced`` (as Vela for a model with several subgraphs), and the wrong number of
    values for those in ``short``."""

    target = "perop"
    metrics = {"num_ops": "count"}
    node_metrics = {"cost": "units"}

    def __init__(self, unpriced: List[str], short: List[str]) -> None:
        self.unpriced, self.short = unpriced, short

    def settings(self) -> Dict[str, Any]:
        return {"tool": "per-operator stand-in"}

    def label(self, model: bytes) -> Dict[str, float]:
        return {"num_ops": float(perfsage.load_tflite(model).num_nodes)}

    def label_nodes(self, model: bytes):
        labels = self.label(model)
        if _sha(model) in self.unpriced:
            return labels, None
        n = int(labels["num_ops"]) - (1 if _sha(model) in self.short else 0)
        return labels, {"cost": np.arange(1, n + 1, dtype=np.float64)}


class UnpicklableInWorker:
    """Pickles fine here but fails to load in the worker (a labeller whose tool is missing there)."""

    target = "broken"
    metrics = {"x": "1"}

    def settings(self) -> Dict[str, Any]:
        return {}

    def label(self, model: bytes) -> Dict[str, float]:
        return {"x": 0.0}

    def __reduce__(self):
        return (_fail_to_load, ())


def _fail_to_load() -> None:
    raise ImportError("the tool is not installed on this worker")


def _models(items: List[Dict[str, Any]]) -> List[bytes]:
    return [perfsage.build_model(i["spec"], seed=i["seed"], dtype=i["dtype"]) for i in items]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not reaped it yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_crashes_hangs_and_errors_become_rows_and_the_job_goes_on(tmp_path: Path) -> None:
    items = plan(["super_resolution"], 8, seed=3)
    models = _models(items)
    behaviour = {
        _sha(models[1]): "segfault", _sha(models[3]): "hang", _sha(models[4]): "raise", _sha(models[6]): "bad-value"
    }
    labeler = ScriptedLabeler(behaviour, str(tmp_path))
    tasks = [{k: i[k] for k in ("id", "spec", "seed", "dtype")} for i in items]
    start = time.monotonic()
    results = [r for r in run_local(tasks, [labeler], workers=2, timeout=4.0) if r is not None]
    elapsed = time.monotonic() - start
    by_id = {r["id"]: r for r in results}
    assert sorted(by_id) == sorted(t["id"] for t in tasks) and len(results) == len(tasks)
    kinds = [by_id[i["id"]]["error_kind"] for i in items]
    assert kinds == [None, "crash", None, "timeout", "label", None, "label", None]
    crash = by_id[items[1]["id"]]["error"]
    assert "the worker process was killed by SIGSEGV while labelling on scripted" in crash
    timeout = "no result within 4 s (it was labelling on scripted); the worker was killed"
    assert by_id[items[3]["id"]]["error"] == timeout
    assert by_id[items[4]["id"]]["error"] == "scripted: RuntimeError: scripted failure"
    assert "label() returned no value for half_size" in by_id[items[6]["id"]]["error"]
    for item, model in zip(items, models):
        result = by_id[item["id"]]
        # Every row keeps its weight-free model, even when its worker died after building it.
        assert result["tflite"] == perfsage.strip_weights(model)
        if result["error_kind"] is None:
            assert result["values"] == {"scripted/size_bytes": len(model), "scripted/half_size": len(model) / 2}
    assert elapsed < 60
    # The hung labeller's own child died with its worker (the whole process group is killed).
    (marker,) = list(tmp_path.iterdir())
    worker_pid, child_pid = map(int, marker.name.split("-"))
    deadline = time.monotonic() + 5
    while (_alive(worker_pid) or _alive(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker_pid) and not _alive(child_pid)


def test_a_labeller_that_cannot_load_stops_the_job_with_its_reason() -> None:
    tasks = [{k: i[k] for k in ("id", "spec", "seed", "dtype")} for i in plan(["kws"], 2)]
    reason = "could not load the labellers:(.|\n)*the tool is not installed on this worker"
    with pytest.raises(RunnerError, match=reason):
        list(run_local(tasks, [UnpicklableInWorker()], workers=1, timeout=30))


def test_build_resumes_and_retries_errors_with_a_labeller_object(tmp_path: Path) -> None:
    items = plan(["kws", "super_resolution"], 4, seed=4)
    models = _models(items)
    flaky = ScriptedLabeler({_sha(models[2]): "raise"})
    out = tmp_path / "d"
    log = tmp_path / "log.txt"

    def build(n: int, **options: Any):
        with open(log, "a") as f:
            return build_dataset(out, ["kws", "super_resolution"], n, [flaky], seed=4, workers=2, progress=False,
                                 log=f, **options)

    first = build(3)
    assert (first.planned, first.labelled, first.errors) == (6, 6, {"label": 1})
    ds = open_dataset(out)
    assert sorted(ds.ids) == sorted(i["id"] for i in items[:6])
    before = dict(zip(ds.ids, ds.provenance))
    again = build(3)  # the same command again: nothing to do
    assert (again.already_stored, again.labelled) == (6, 0)
    more = build(4)  # a larger n labels only the new models
    assert (more.already_stored, more.labelled) == (6, 2)
    retry = build(4, retry_errors=True)  # labels the error row again (it fails again: same labeller)
    assert (retry.already_stored, retry.labelled, retry.errors) == (7, 1, {"label": 1})
    ds = open_dataset(out)
    assert sorted(ds.ids) == sorted(i["id"] for i in items)
    after = dict(zip(ds.ids, ds.provenance))
    for row_id, provenance in before.items():
        if row_id == items[2]["id"]:
            assert provenance["labelled_at"] != after[row_id]["labelled_at"]
        else:
            assert provenance == after[row_id]  # never relabelled
    y = ds.labels("scripted/size_bytes")[:, 0]
    expected = {i["id"]: len(m) for i, m in zip(items, models)}
    assert ds.ok.tolist() == [row_id != items[2]["id"] for row_id in ds.ids]
    assert [v for v, ok in zip(y, ds.ok) if ok] == [expected[i] for i, ok in zip(ds.ids, ds.ok) if ok]
    assert np.isnan(y[~ds.ok]).all()
    text = log.read_text()
    assert "6 models planned (kws, super_resolution; n=3 each, seed 4, int8); 0 already stored; labelling 6" in text
    assert "labelled 6 models" in text and "1 label errors" in text
    assert (
        "8 models planned (kws, super_resolution; n=4 each, seed 4, int8); 7 already stored; "
        "labelling 1 (1 retried after errors)"
    ) in text


def test_per_operator_labels_are_stored_kept_null_or_refused(tmp_path: Path) -> None:
    # Why: a model whose operators cannot be priced keeps its labels (null per-operator columns);
    # per-operator values that do not match each other are a labeller bug stored as an error row.
    items = perfsage.sample("kws", 3, seed=0)
    models = [perfsage.build_model(i["spec"], seed=i["seed"]) for i in items]
    labeler = PerOperatorLabeler(unpriced=[_sha(models[1])], short=[_sha(models[2])])
    build_dataset(tmp_path / "ops", "kws", 3, [labeler], workers=1, progress=False, log=io.StringIO())
    dataset = open_dataset(tmp_path / "ops")
    row = {i["seed"]: r for r, i in enumerate(items)}
    order = [row[s] for s in dataset.seeds]
    costs = [dataset.node_labels("perop", "cost")[order.index(k)] for k in range(3)]
    counts = [dataset.labels("perop/num_ops")[order.index(k), 0] for k in range(3)]
    kinds = [dataset.error_kinds[order.index(k)] for k in range(3)]
    assert costs[0].tolist() == list(range(1, int(counts[0]) + 1)) and kinds[0] is None
    assert costs[1] is None and np.isfinite(counts[1]) and kinds[1] is None
    assert costs[2] is None and kinds[2] == "label"
    assert "operators" in dataset.errors[order.index(2)] and "label_nodes() returned" in dataset.errors[order.index(2)]
    assert dataset.targets["perop"]["node_metrics"] == {"cost": "units"}
