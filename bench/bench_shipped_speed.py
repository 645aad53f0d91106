"""Prediction speed of a shipped predictor against an earlier one: before and after in one run.

    .venv/bin/python bench/bench_shipped_speed.py [--n 1024] [--rounds 5] [--target ethos-u55-256]
        [--before FILE] [--before-python PYTHON] [--threads 1] [--json out.json]

After: the predictor this checkout ships for ``--target``, run by this interpreter. Before:
``--before`` (default: the earlier ``ethos-u55-256`` file kept for the tests,
tests/python/data/schema1-ethos-u55-256.psage, with the log-sum-exp readout), run by
``--before-python`` (default: this interpreter; give an older checkout's ``.venv/bin/python`` to
time that checkout's core as well). Each side runs in a worker process of its own, on the same
``--n`` seeded int8 models of the paper's four search spaces, written once to a temporary
directory and loaded by each worker (never timed). The workers take turns round by round, in
rotated order. Timed per round: batch 1 (one ``predict([graph])`` call per model) and one batched
``predict(graphs)`` call. Printed: graphs/s (median over rounds) of each and the after/before
ratios, which the goal "speed does not regress" reads.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

SPACES = ("image_classification", "kws", "super_resolution", "detection")
ROOT = Path(__file__).resolve().parent.parent
EARLIER = ROOT / "tests" / "python" / "data" / "schema1-ethos-u55-256.psage"


def write_models(directory: Path, n: int, seed: int) -> None:
    import perfsage

    per_space = (n + len(SPACES) - 1) // len(SPACES)
    items = [item for space in SPACES for item in perfsage.sample(space, per_space, seed)][:n]
    for i, item in enumerate(items):
        (directory / f"{i:05d}.tflite").write_bytes(perfsage.build_model(item["spec"], seed=item["seed"], dtype="int8"))


def worker(predictor: str, directory: str, threads: int) -> int:
    """Loads the models and the predictor, then times one round per "run" line on stdin."""
    import perfsage

    files = sorted(Path(directory).glob("*.tflite"))
    graphs = perfsage.load_many([f.read_bytes() for f in files], threads=0)
    p = perfsage.load_predictor(predictor)
    info = perfsage.build_info() if hasattr(perfsage, "build_info") else {}
    print(json.dumps({"ready": True, "module": perfsage.__file__, "isa": info.get("isa"),
                      "readout": p.hyperparameters.get("readout", "lse"),
                      "nodes": sum(g.num_nodes for g in graphs) / len(graphs)}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        started = time.perf_counter()
        for g in graphs:
            p.predict([g], threads=threads)
        batch1 = time.perf_counter() - started
        started = time.perf_counter()
        p.predict(graphs, threads=threads)
        batched = time.perf_counter() - started
        print(json.dumps({"batch 1": len(graphs) / batch1, "batched": len(graphs) / batched}), flush=True)
    return 0


def start(python: str, predictor: str, directory: str, threads: int) -> subprocess.Popen:
    return subprocess.Popen([python, __file__, "--worker", predictor, directory, "--threads", str(threads)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def ask(proc: subprocess.Popen, message: str) -> Dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(message + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"a worker stopped (exit code {proc.wait()})")
    return json.loads(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=2, metavar=("PREDICTOR", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=1024, help="models (default 1024: batch 1024)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target", default="ethos-u55-256", help="the shipped predictor timed as 'after'")
    parser.add_argument("--before", default=str(EARLIER), help="predictor file timed as 'before'")
    parser.add_argument("--before-python", default=sys.executable, help="interpreter that runs 'before'")
    parser.add_argument("--threads", type=int, default=1, help="prediction threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], args.worker[1], args.threads)

    with tempfile.TemporaryDirectory(prefix="perfsage-bench-") as directory:
        write_models(Path(directory), args.n, args.seed)
        sides = {"before": start(args.before_python, args.before, directory, args.threads),
                 "after": start(sys.executable, args.target, directory, args.threads)}
        try:
            # The first line of each worker says it has loaded everything.
            ready = {name: json.loads(proc.stdout.readline() or "{}")  # type: ignore[union-attr]
                     for name, proc in sides.items()}
            for name, info in ready.items():
                if not info.get("ready"):
                    raise SystemExit(f"the {name} worker did not start")
            rates: Dict[str, Dict[str, List[float]]] = {name: {"batch 1": [], "batched": []} for name in sides}
            names = list(sides)
            for r in range(args.rounds):
                for name in names[r % 2:] + names[:r % 2]:
                    for key, value in ask(sides[name], "run").items():
                        rates[name][key].append(value)
        finally:
            for proc in sides.values():
                if proc.poll() is None:
                    proc.stdin.close()  # type: ignore[union-attr]
                    proc.wait()
    median = {name: {k: statistics.median(v) for k, v in by.items()} for name, by in rates.items()}
    print(f"{platform.processor() or platform.machine()}, {args.n} graphs "
          f"({ready['after']['nodes']:.1f} nodes on average), {args.threads} thread(s), median of {args.rounds} rounds")
    for name in names:
        info = ready[name]
        print(f"  {name:6s} {info['readout']:8s} {info['isa'] or '?':10s} {info['module']}")
        for key, value in median[name].items():
            label = f"batch {args.n}" if key == "batched" else key
            print(f"    {label:12s} {value:10,.0f} graphs/s  ({1e6 / value:6.1f} us/graph)")
    ratios = {key: median["after"][key] / median["before"][key] for key in ("batch 1", "batched")}
    for key, value in ratios.items():
        label = f"batch {args.n}" if key == "batched" else key
        print(f"  after/before {label:12s} {value:6.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": args.n, "threads": args.threads, "workers": ready,
                                               "rates": rates, "median": median, "ratios": ratios}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
