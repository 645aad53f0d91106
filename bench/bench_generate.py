"""Models generated per second per core, per search space: spec -> TFLite bytes.

Sampling specs (Python) and writing models (C++) are timed separately, on one thread, for both
dtypes. The goal (issue 3) is at least 200 KWS- or CIFAR-sized models per second on one core.

    .venv/bin/python bench/bench_generate.py [--n 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import perfsage


def timed(fn, repeats: int = 3) -> float:
    """Best of `repeats` wall times of fn(), in seconds (the machine is shared: the minimum is the
    least disturbed run)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="models per space")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    print("perfsage generation benchmark (one thread)")
    print(f"  perfsage {perfsage.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    header = f"  {'space':22s} {'dtype':7s} {'models/s':>9s} {'ms/model':>9s} {'sample ms':>9s} " \
             f"{'MACs min..max':>21s} {'KB median':>9s}"
    print(header)
    results = []
    for name in perfsage.spaces.spaces():
        t0 = time.perf_counter()
        items = perfsage.sample(name, args.n, seed=0)
        sample_ms = (time.perf_counter() - t0) / args.n * 1e3
        for dtype in ("int8", "float32"):
            models = [perfsage.build_model(it["spec"], seed=it["seed"], dtype=dtype) for it in items]
            seconds = timed(lambda: [perfsage.build_model(it["spec"], seed=it["seed"], dtype=dtype) for it in items])
            macs = [g.totals["macs"] for g in perfsage.load_many(models)]
            row = {
                "space": name, "dtype": dtype, "models_per_second": args.n / seconds,
                "ms_per_model": seconds / args.n * 1e3, "sample_ms_per_spec": sample_ms,
                "macs_min": min(macs), "macs_max": max(macs),
                "kb_median": statistics.median(len(m) for m in models) / 1024,
            }
            results.append(row)
            print(f"  {name:22s} {dtype:7s} {row['models_per_second']:9.0f} {row['ms_per_model']:9.2f} "
                  f"{sample_ms:9.2f} {row['macs_min']:10.3g}..{row['macs_max']:<10.3g} {row['kb_median']:9.0f}")
    kws = [r for r in results if r["space"] == "kws"]
    print(f"goal: >= 200 KWS-sized models/s on one core -> "
          f"{'MET' if min(r['models_per_second'] for r in kws) >= 200 else 'MISSED'} "
          "(" + ", ".join(f"{r['dtype']} {r['models_per_second']:.0f}/s" for r in kws) + ")")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
