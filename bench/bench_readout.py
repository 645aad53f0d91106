"""Prediction speed of the two readouts, measured in the same run: the log-sum-exp readout (the
library's default, and the ethos-u predictors shipped before the world data) against the additive
readout (a per-node head pricing every operator).

    .venv/bin/python bench/bench_readout.py [--n 1024] [--rounds 5] [--threads 1] [--json out.json]

Both networks have the library's default sizes, the additive one with the settings of the ethos-u
recipes (perfsage._recipes.ADDITIVE: ``family_dim`` 8, a head of 3 layers 128 wide). They are
initialised on the same ``--n`` seeded int8 models of the paper's four search spaces (graphs loaded
once, never timed). Timed, in rotated order for ``--rounds`` rounds: batch 1
(one ``predict([graph])`` call per model) and one batched ``predict(graphs)`` call. Printed: graphs
per second of each (median over rounds) and the additive/lse ratio of each, which the issue's goal
("prediction speed does not regress") reads.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Callable, Dict, List

import numpy as np

import perfsage
from perfsage._recipes import ADDITIVE

SPACES = ("image_classification", "kws", "super_resolution", "detection")
READOUTS = {"lse": {}, "additive": ADDITIVE}


def _graphs(n: int, seed: int) -> List[perfsage.Graph]:
    items = [item for space in SPACES for item in perfsage.sample(space, (n + len(SPACES) - 1) // len(SPACES), seed)]
    models = [perfsage.build_model(item["spec"], seed=item["seed"], dtype="int8") for item in items[:n]]
    return perfsage.load_many(models, threads=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="models (default 1024: the batch-1024 benchmark)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="prediction threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the measurements here")
    args = parser.parse_args()
    graphs = _graphs(args.n, args.seed)
    labels = np.array([[1.0 + g.num_nodes] for g in graphs], dtype=np.float32)
    predictors = {name: perfsage.Predictor(["latency_ms"], **kw).initialize(graphs, labels)
                  for name, kw in READOUTS.items()}
    runs: Dict[str, Callable[[], None]] = {}
    for name, p in predictors.items():
        runs[f"{name} batch 1"] = lambda p=p: [p.predict([g], threads=args.threads) for g in graphs]
        runs[f"{name} batch {len(graphs)}"] = lambda p=p: p.predict(graphs, threads=args.threads)
    times: Dict[str, List[float]] = {k: [] for k in runs}
    keys = list(runs)
    for r in range(args.rounds):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            started = time.perf_counter()
            runs[key]()
            times[key].append(time.perf_counter() - started)
    rates = {k: len(graphs) / statistics.median(v) for k, v in times.items()}
    nodes = sum(g.num_nodes for g in graphs)
    print(f"{platform.processor() or platform.machine()}, {len(graphs)} graphs ({nodes / len(graphs):.1f} nodes on "
          f"average), {args.threads} thread(s), median of {args.rounds} rounds")
    for key, rate in rates.items():
        print(f"  {key:24s} {rate:12,.0f} graphs/s")
    ratios = {f"additive/lse {mode}": rates[f"additive {mode}"] / rates[f"lse {mode}"]
              for mode in ("batch 1", f"batch {len(graphs)}")}
    for key, value in ratios.items():
        print(f"  {key:24s} {value:12.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"graphs": len(graphs), "threads": args.threads, "rates": rates, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
