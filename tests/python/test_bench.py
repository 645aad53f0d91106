"""Every benchmark script still runs: each at a tiny size, in a subprocess.

Benchmarks are not tests (bench/README.md), so nothing else runs them, and a change to the package
can leave one broken until someone wants its numbers: bench_reader.py was dead for a week after the
feature schema changed. Here each runs once at a size of seconds; what it measures is not checked.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[2]
HOST_CPU = "datasets/compact/paper-host-cpu.parquet"  # committed: 2,100 rows measured on host-cpu

# (script, arguments, modules it needs beyond perfsage's core, whether it reads the shared models)
CASES = [
    ("bench_generate.py", ["--n", "4"], [], False),
    ("bench_intervals.py", ["--n", "16", "--rounds", "1"], [], False),
    ("bench_readout.py", ["--n", "16", "--rounds", "1"], [], False),
    ("bench_shipped_speed.py", ["--n", "16", "--rounds", "1"], [], False),
    ("bench_spec_path.py", ["--n", "8", "--rounds", "1"], [], False),
    # The before/after comparison's machinery, with this interpreter on both sides.
    ("bench_spec_path.py", ["--n", "4", "--rounds", "2", "--before-python", sys.executable], [], False),
    ("bench_threads.py", ["--n", "16", "--rounds", "1"], [], False),
    ("bench_reader.py", ["--quick"], [], True),
    ("bench_predict_vs_label.py", ["--n", "4", "--cold-n", "1", "--rounds", "1"], ["ethosu.vela", "ai_edge_litert"],
     False),
    ("bench_labelers.py", ["--n", "1", "--noise-per-group", "1", "--host-budget-s", "0.2"],
     ["ethosu.vela", "ai_edge_litert"], False),
    ("train_smoke.py", [HOST_CPU, "--target", "host-cpu/latency_ms", "--epochs", "2", "--limit", "100"], ["pyarrow"],
     False),
    ("operator_prior.py", [HOST_CPU, "--target", "host-cpu", "--splits", "random", "--epochs", "2"], ["pyarrow"],
     False),
    ("bench_gnn.py", ["--quick", "--threads", "1"], ["torch", "torch_geometric"], False),
]
# Not run here: feature_check.py trains on a dataset with Vela's per-operator labels, which no
# committed file holds (it is run by hand on the world data); pyg_sage.py is bench_gnn's module.
NOT_RUN = {"feature_check.py", "pyg_sage.py"}


def test_every_script_in_bench_is_covered() -> None:
    scripts = {p.name for p in (REPO / "bench").glob("*.py")}
    assert scripts == {case[0] for case in CASES} | NOT_RUN


@pytest.mark.parametrize(("script", "args", "needs", "shared"), CASES,
                         ids=[case[0] + ("[before-after]" if "--before-python" in case[1] else "") for case in CASES])
def test_benchmark_runs_at_a_tiny_size(script: str, args: List[str], needs: List[str], shared: bool,
                                       request: pytest.FixtureRequest) -> None:
    for module in needs:
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            pytest.skip(f"{script} needs {module}, which is not installed")
    env = dict(os.environ)
    if shared:
        env["PERFSAGE_DATA"] = str(request.getfixturevalue("data_dir"))
    run = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.strip(), run.stderr[-2000:]
