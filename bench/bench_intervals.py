"""What prediction intervals cost: predict(graphs) against predict(graphs, interval=0.9), one run.

    .venv/bin/python bench/bench_intervals.py [--n 1024] [--rounds 5] [--target ethos-u55-256] [--threads 1]
        [--json out.json]

The predictor has the shipped ``--target``'s hyperparameters and targets, fitted 1 epoch with
``intervals=True`` on ``--n`` seeded int8 models of the paper's four spaces (labels from their
MACs: the weights do not change the arithmetic, so the timing is the shipped network's with its
companion). Timed per round, alternating with and without intervals: batch 1 (one call per model)
and one batched call over all models. Printed: graphs/s (median over rounds) and the ratio with /
without, which issue 15 wants at least 0.5.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Dict, List, Optional

import numpy as np

import perfsage

SPACES = ("image_classification", "kws", "super_resolution", "detection")


def rates(p: perfsage.Predictor, graphs: List[perfsage.Graph], threads: int,
          interval: Optional[float]) -> Dict[str, float]:
    started = time.perf_counter()
    for g in graphs:
        p.predict([g], threads=threads, interval=interval)
    single = time.perf_counter() - started
    started = time.perf_counter()
    p.predict(graphs, threads=threads, interval=interval)
    batched = time.perf_counter() - started
    return {"batch1": len(graphs) / single, "batched": len(graphs) / batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target", default="ethos-u55-256")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    per_space = (args.n + len(SPACES) - 1) // len(SPACES)
    items = [item for space in SPACES for item in perfsage.sample(space, per_space, 0)][:args.n]
    graphs = perfsage.spec_graphs(items)
    shipped = perfsage.load_predictor(args.target)
    hyperparameters = {k: v for k, v in shipped.hyperparameters.items()}
    p = perfsage.Predictor(shipped.output_names, **hyperparameters)
    macs = np.array([max(g.totals["macs"], 1) for g in graphs], dtype=np.float64)
    labels = np.stack([1e-6 * macs * (t + 1) + 1e-3 for t in range(len(shipped.output_names))], axis=1)
    p.fit((graphs, labels), epochs=1, progress=False, intervals=True)
    runs: Dict[str, List[Dict[str, float]]] = {"without": [], "with": []}
    for r in range(args.rounds):
        for name in (("without", "with") if r % 2 == 0 else ("with", "without")):
            runs[name].append(rates(p, graphs, args.threads, 0.9 if name == "with" else None))
    result: Dict[str, Any] = {"n": len(graphs), "threads": args.threads, "target": args.target,
                              "nodes": sum(g.num_nodes for g in graphs) / len(graphs)}
    for name, rounds in runs.items():
        result[name] = {k: statistics.median(x[k] for x in rounds) for k in ("batch1", "batched")}
    result["ratio"] = {k: result["with"][k] / result["without"][k] for k in ("batch1", "batched")}
    for k in ("batch1", "batched"):
        print(f"{k:8s} without {result['without'][k]:9,.0f} graphs/s | with intervals {result['with'][k]:9,.0f} "
              f"graphs/s | ratio {result['ratio'][k]:.2f} (goal >= 0.5)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
