"""Labelling jobs with the real Vela labeller on tiny KWS models: kill and restart, Dask, the CLI."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Set

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="datasets need pyarrow (pip install perfsage[label])")
pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install perfsage[label])")

import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from perfsage.datasets import build_dataset, open_dataset, plan  # noqa: E402

TARGET = "ethos-u55-256"


def _processes() -> List[tuple]:
    """(pid, parent pid, command line) of every process we may inspect."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError, ValueError):
            continue
        if state != "Z":
            found.append((int(entry.name), ppid, [c.decode("utf-8", "replace") for c in cmdline]))
    return found


def _workers_of(runner: int) -> Set[int]:
    """The runner's worker processes and every process they started (the labeller's helpers)."""
    table = _processes()
    ours = {pid for pid, _, cmd in table if "perfsage.datasets._worker" in cmd and str(runner) in cmd}
    grew = True
    while grew:
        more = {pid for pid, ppid, _ in table if ppid in ours} - ours
        ours |= more
        grew = bool(more)
    return ours


def _raw_ids(path: Path) -> List[str]:
    ids: List[str] = []
    for shard in sorted(path.glob("part-*.parquet")):
        ids += pq.read_table(shard, columns=["id"]).column("id").to_pylist()
    return ids


def _start_and_kill(command: List[str], log_path: Path, ready, what: str) -> Set[int]:
    """Starts ``command``, SIGKILLs it once ``ready()`` holds; returns the pids of its workers."""
    with open(log_path, "w") as log:
        job = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        workers: Set[int] = set()
        while not ready():
            assert job.poll() is None, f"the job ended before {what}:\n" + log_path.read_text()
            assert time.monotonic() < deadline, f"no {what} within 120 s"
            workers |= _workers_of(job.pid)
            time.sleep(0.01)
        workers |= _workers_of(job.pid)
        job.send_signal(signal.SIGKILL)  # no chance to flush or clean up
        job.wait()
    # The workers (and the labeller helpers they started) die with their runner.
    deadline = time.monotonic() + 10
    alive = {pid for pid, _, _ in _processes()} & workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = {pid for pid, _, _ in _processes()} & workers
    assert not alive, f"processes of the killed job still running: {alive}"
    return workers


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="inspects worker processes through /proc (Linux)")
def test_kill_and_restart_loses_nothing_and_relabels_nothing(tmp_path: Path) -> None:
    n = 60
    out = tmp_path / "kws.parquet"
    command = [
        sys.executable, "-m", "perfsage", "dataset", "build", "--space", "kws", "--n", str(n), "--target", TARGET,
        "--out", str(out), "--workers", "2", "--flush-rows", "2", "--flush-seconds", "0.2", "--no-progress",
    ]
    # First kill: right after the second shard appears.
    workers = _start_and_kill(command, tmp_path / "first.log", lambda: len(list(out.glob("part-*.parquet"))) >= 2,
                              "a second shard")
    assert workers, "found no worker processes of the killed job"
    killed = open_dataset(out)  # whatever the kill left is readable
    assert 2 <= killed.num_rows < n, "the job finished before it was killed; the test proves nothing"
    before = dict(zip(killed.ids, killed.provenance))

    # Second kill: at an arbitrary moment, 0.3 s after the resumed job has planned its work.
    second_log = tmp_path / "second.log"
    planned_at: List[float] = []

    def a_moment_after_planning() -> bool:
        if not planned_at and second_log.exists() and "already stored" in second_log.read_text():
            planned_at.append(time.monotonic())
        return bool(planned_at) and time.monotonic() - planned_at[0] > 0.3

    _start_and_kill(command, second_log, a_moment_after_planning, "planning")
    assert f"{killed.num_rows} already stored; labelling {n - killed.num_rows}" in second_log.read_text()
    killed = open_dataset(out)
    assert killed.num_rows < n, "the resumed job finished before it was killed; the test proves nothing"
    assert killed.ok.all()
    before.update(zip(killed.ids, killed.provenance))

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{n} models planned" in again.stderr
    assert f"{killed.num_rows} already stored; labelling {n - killed.num_rows} on {TARGET}" in again.stderr

    final = open_dataset(out)
    expected = sorted(item["id"] for item in plan(["kws"], n))
    assert sorted(final.ids) == expected
    assert sorted(_raw_ids(out)) == expected  # each id stored exactly once, not just read once
    after = dict(zip(final.ids, final.provenance))
    assert all(after[row_id] == provenance for row_id, provenance in before.items())  # not relabelled
    assert final.ok.all() and (final.labels(f"{TARGET}/latency_ms") > 0).all()
    assert not list(out.glob(".*.tmp"))


def test_dask_executor_gives_the_rows_of_the_local_one(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed", reason="the Dask executor needs distributed")
    with open(tmp_path / "log.txt", "w") as log:
        local = build_dataset(tmp_path / "local", "kws", 5, TARGET, workers=2, progress=False, log=log)
        # The dashboard on a free port: with 8787 taken (another cluster on this machine) Dask warns,
        # and warnings are errors here.
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster:
            remote = build_dataset(
                tmp_path / "dask", "kws", 5, TARGET, executor="dask", scheduler=cluster.scheduler_address,
                chunk_size=2, progress=False, log=log,
            )
            dask_workers = set(cluster.scheduler_info["workers"])
    assert local.labelled == remote.labelled == 5 and not local.errors and not remote.errors
    tables = []
    for path in (local.path, remote.path):
        table = open_dataset(path).table()
        table = table.take(pc.sort_indices(table, [("id", "ascending")]))
        tables.append(table)
    assert tables[0].drop_columns(["provenance"]).equals(tables[1].drop_columns(["provenance"]))
    local_rows, dask_rows = (open_dataset(p).provenance for p in (local.path, remote.path))
    assert {p["executor"] for p in local_rows} == {"local"} and {p["executor"] for p in dask_rows} == {"dask"}
    assert [p["labelers"] for p in local_rows] == [p["labelers"] for p in dask_rows]
    assert {p["dask_worker"] for p in dask_rows} <= dask_workers  # labelled on the cluster's workers


def test_a_truncated_shard_is_named_set_aside_by_repair_and_relabelled(tmp_path: Path) -> None:
    # Issue 12: the reader refused a damaged shard by name but told nobody how to go on.
    out = tmp_path / "kws.parquet"

    def build(n: int) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "perfsage", "dataset", "build", "--space", "kws", "--n", str(n), "--target",
             TARGET, "--out", str(out), "--workers", "1", "--no-progress"],
            capture_output=True, text=True, timeout=600)

    def repair() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "perfsage", "dataset", "repair", str(out)],
                              capture_output=True, text=True, timeout=120)

    assert build(2).returncode == 0 and build(4).returncode == 0  # two shards: the plan only grows
    first, second = sorted(out.glob("part-*.parquet"))
    kept = set(pq.read_table(first, columns=["id"]).column("id").to_pylist())
    lost = set(pq.read_table(second, columns=["id"]).column("id").to_pylist())
    assert len(kept) == len(lost) == 2
    original = open_dataset(out).labels(f"{TARGET}/latency_ms")
    data = second.read_bytes()
    second.write_bytes(data[: len(data) // 2])  # a copy cut short

    for command in (build(4), subprocess.run([sys.executable, "-m", "perfsage", "dataset", "info", str(out)],
                                             capture_output=True, text=True, timeout=120)):
        assert command.returncode == 1
        assert command.stderr.startswith(f"perfsage: error: {second}: not a readable Parquet file")
        assert (f"to recover, `perfsage dataset repair {out}` sets damaged shards aside, then the same build or "
                "label command labels their rows again") in command.stderr
        assert "Traceback" not in command.stderr

    fixed = repair()
    assert fixed.returncode == 0, fixed.stderr
    assert f"set aside {second} as {second.name}.damaged: {second}: not a readable Parquet file" in fixed.stderr
    assert (out / f"{second.name}.damaged").read_bytes() == data[: len(data) // 2]  # kept for a post-mortem
    assert set(open_dataset(out).ids) == kept
    assert "every shard reads; nothing to repair" in repair().stderr

    resumed = build(4)
    assert resumed.returncode == 0, resumed.stderr
    assert f"2 already stored; labelling 2 on {TARGET}" in resumed.stderr
    final = open_dataset(out)
    assert set(final.ids) == kept | lost and final.ok.all()
    np.testing.assert_array_equal(np.sort(final.labels(f"{TARGET}/latency_ms"), axis=0), np.sort(original, axis=0))


def test_repair_refuses_what_is_not_a_dataset_directory(tmp_path: Path) -> None:
    from perfsage.datasets import DatasetError, repair_dataset

    (tmp_path / "one.parquet").write_bytes(b"PAR1")
    with pytest.raises(DatasetError, match="one.parquet: not a dataset directory"):
        repair_dataset(tmp_path / "one.parquet")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DatasetError, match="_perfsage_dataset.json: unreadable dataset manifest"):
        repair_dataset(tmp_path / "folder")
