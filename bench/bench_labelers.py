"""What a label costs: Vela (four Ethos-U configs) and host-cpu (LiteRT + XNNPACK) labels per
second on a fixed seeded set of int8 models, Vela in-process vs helper process vs a new process per
model, and the host-cpu measurement's own repeat noise.

    .venv/bin/python bench/bench_labelers.py [--n 6] [--noise-per-group 5] [--json out.json]

Sections:

1. Vela cost per model on ethos-u55-256, by isolation: "none" (``ethosu.vela.vela.main`` in this
   process), "worker" (the same call in perfsage's long-lived helper process; helper start-up timed
   separately) and "subprocess" (``python -m ethosu.vela`` per model, how the CLI is used). The
   three run round-robin per model so that load changes hit them alike; their labels must be
   identical.
2. Labels per second for each labeller (Vela in its default "worker" isolation), then every Vela
   config again in reverse model order in one process ("none"): labels must match the first pass
   (Vela keeps no state between calls).
3. host-cpu repeat noise: ``--noise-per-group`` models from each of kws/int8, kws/float32,
   image_classification/int8, image_classification/float32 (seeded), all labelled once, then all
   again. Per model: relative difference of the two medians, |a - b| / ((a + b) / 2); its median
   and 90th percentile over models, for wall time (``latency_ms``) and thread CPU time
   (``cpu_time_ms``). Within-run spread: the label ``latency_spread`` ((Q3 - Q1) / median of one
   run's repeats), median and 90th percentile over models and runs. The machine's load average
   is printed with it: on a shared machine wall time mostly measures the other users.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Dict, List, Tuple

import numpy as np

import perfsage
from perfsage.labelers import get_labeler, labeler_names

VELA_TARGETS = [n for n in labeler_names() if n.startswith("ethos-")]


def models_for(space: str, n: int, seed: int, dtype: str = "int8") -> List[bytes]:
    return [perfsage.build_model(it["spec"], seed=it["seed"], dtype=dtype) for it in perfsage.sample(space, n, seed=seed)]


def timed(fn) -> Tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def pct(values: List[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def vela_isolation_costs(models: List[bytes], spaces: List[str]) -> Dict[str, object]:
    labelers = {iso: get_labeler("ethos-u55-256", isolation=iso) for iso in ("none", "worker", "subprocess")}
    startup_s, _ = timed(lambda: labelers["worker"].label(models[0]))  # starts the helper
    labelers["none"].label(models[0])  # imports Vela in this process, outside the timing
    seconds: Dict[str, List[float]] = {iso: [] for iso in labelers}
    identical = True
    order = list(labelers)
    for i, model in enumerate(models):
        results = {}
        for iso in order[i % 3:] + order[:i % 3]:
            dt, results[iso] = timed(lambda: labelers[iso].label(model))
            seconds[iso].append(dt)
        identical &= results["none"] == results["worker"] == results["subprocess"]
    for labeler in labelers.values():
        labeler.close()
    by_space = {
        space: {iso: statistics.median(t for t, sp in zip(s, spaces) if sp == space) for iso, s in seconds.items()}
        for space in dict.fromkeys(spaces)
    }
    return {"seconds_per_model_median": {iso: statistics.median(s) for iso, s in seconds.items()},
            "seconds_per_model_median_by_space": by_space,
            "seconds_per_model_min_max": {iso: (min(s), max(s)) for iso, s in seconds.items()},
            "worker_startup_s": startup_s, "identical_labels": identical}


def labels_per_second(models: List[bytes], host_budget_s: float) -> Dict[str, object]:
    rows = {}
    first_pass: Dict[Tuple[str, int], Dict[str, float]] = {}
    for name in VELA_TARGETS + ["host-cpu"]:
        options = {"budget_s": host_budget_s} if name == "host-cpu" else {}
        with get_labeler(name, **options) as labeler:
            labeler.label(models[0])  # helper start-up is a one-off; not a per-label cost
            per_model = []
            start = time.perf_counter()
            for i, model in enumerate(models):
                dt, labels = timed(lambda: labeler.label(model))
                per_model.append(dt)
                first_pass[(name, i)] = labels
            total = time.perf_counter() - start
        rows[name] = {"labels_per_second": len(models) / total, "median_s_per_label": statistics.median(per_model),
                      "max_s_per_label": max(per_model)}
    # Vela again, configs interleaved and models reversed, all in this process.
    in_process = {name: get_labeler(name, isolation="none") for name in VELA_TARGETS}
    stateless = True
    for i in reversed(range(len(models))):
        for name in reversed(VELA_TARGETS):
            stateless &= in_process[name].label(models[i]) == first_pass[(name, i)]
    return {"rows": rows, "vela_repeat_identical": stateless}


def host_cpu_noise(per_group: int, budget_s: float) -> Dict[str, object]:
    groups = []
    for space, seed in (("kws", 11), ("image_classification", 12)):
        for dtype in ("int8", "float32"):
            groups += [(f"{space}/{dtype}", m) for m in models_for(space, per_group, seed, dtype)]
    with get_labeler("host-cpu", budget_s=budget_s) as labeler:
        runs = [[labeler.label(model) for _, model in groups] for _ in range(2)]
    def rel_diff(metric: str) -> List[float]:
        return [abs(a[metric] - b[metric]) / ((a[metric] + b[metric]) / 2) for a, b in zip(*runs)]

    result: Dict[str, object] = {"models": len(groups)}
    for metric in ("latency_ms", "cpu_time_ms"):
        diffs = rel_diff(metric)
        by_group: Dict[str, List[float]] = {}
        for (group, _), d in zip(groups, diffs):
            by_group.setdefault(group, []).append(d)
        result[metric] = {"median": pct(diffs, 50), "p90": pct(diffs, 90), "max": max(diffs),
                          "median_by_group": {g: pct(v, 50) for g, v in by_group.items()}}
    spreads = [r["latency_spread"] for run in runs for r in run]
    repeats = [r["repeats"] for run in runs for r in run]
    wall_over_cpu = [r["latency_ms"] / r["cpu_time_ms"] for run in runs for r in run]
    loads = [r["load_avg_1min"] for run in runs for r in run]
    latencies = [r["latency_ms"] for r in runs[0]]
    result.update({
        "within_run_spread": {"median": pct(spreads, 50), "p90": pct(spreads, 90)},
        "repeats": {"median": pct(repeats, 50), "min": min(repeats), "max": max(repeats)},
        "wall_over_cpu": {"median": pct(wall_over_cpu, 50), "max": max(wall_over_cpu)},
        "load_avg_1min": (min(loads), max(loads)),
        "latency_ms_range": (min(latencies), max(latencies)),
    })
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6, help="int8 models per space (kws, image_classification)")
    parser.add_argument("--noise-per-group", type=int, default=5, help="host-cpu noise models per space/dtype group")
    parser.add_argument("--host-budget-s", type=float, default=2.0, help="host-cpu RepeatRule.budget_s")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    vela_labeler = get_labeler("ethos-u55-256")
    host = get_labeler("host-cpu")
    print("perfsage labeller benchmark")
    print(f"  {vela_labeler.settings()['tool']} {vela_labeler.settings()['tool_version']}, "
          f"{host.settings()['tool']} {host.settings()['tool_version']}, Python {platform.python_version()}, "
          f"CPU {host.settings()['cpu_model']} x{os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    models = models_for("kws", args.n, 0) + models_for("image_classification", args.n, 0)
    sizes = sorted(len(m) for m in models)
    print(f"  models: {args.n} kws + {args.n} image_classification int8 (sample seed 0), "
          f"{sizes[0] / 1024:.0f}..{sizes[-1] / 1024:.0f} KB")

    spaces = ["kws"] * args.n + ["image_classification"] * args.n
    iso = vela_isolation_costs(models, spaces)
    by_space = iso["seconds_per_model_median_by_space"]
    print("\n1. Vela cost per model, ethos-u55-256 (median s: all, kws, image_classification; min..max)")
    for name, s in iso["seconds_per_model_median"].items():
        lo, hi = iso["seconds_per_model_min_max"][name]
        print(f"  {name:11s} {s:8.4f} {by_space['kws'][name]:8.4f} {by_space['image_classification'][name]:8.4f}"
              f"   {lo:.4f}..{hi:.4f}")
    med = iso["seconds_per_model_median"]
    print(f"  subprocess / worker = {med['subprocess'] / med['worker']:.1f}x, subprocess / none = "
          f"{med['subprocess'] / med['none']:.1f}x; helper start-up {iso['worker_startup_s']:.2f} s (once); "
          f"identical labels in all three: {iso['identical_labels']}")

    lps = labels_per_second(models, args.host_budget_s)
    print("\n2. Labels per second (one thread; Vela in its helper process)")
    print(f"  {'labeller':15s} {'labels/s':>9s} {'median s':>9s} {'max s':>8s}")
    for name, row in lps["rows"].items():
        print(f"  {name:15s} {row['labels_per_second']:9.2f} {row['median_s_per_label']:9.4f} {row['max_s_per_label']:8.3f}")
    print(f"  Vela re-run in this process, configs interleaved, reverse order: identical = {lps['vela_repeat_identical']}")

    noise = host_cpu_noise(args.noise_per_group, args.host_budget_s)
    s, r = noise["within_run_spread"], noise["repeats"]
    print(f"\n3. host-cpu repeat noise, {noise['models']} models ({noise['latency_ms_range'][0]:.3f}.."
          f"{noise['latency_ms_range'][1]:.3f} ms), each labelled twice; load "
          f"{noise['load_avg_1min'][0]:.1f}..{noise['load_avg_1min'][1]:.1f} on {os.cpu_count()} CPUs")
    for metric in ("latency_ms", "cpu_time_ms"):
        d = noise[metric]
        print(f"  {metric:11s} between runs |a-b|/mean: median {d['median']:.2%}, p90 {d['p90']:.2%}, "
              f"max {d['max']:.2%}; by group (median): "
              + ", ".join(f"{g} {v:.2%}" for g, v in d["median_by_group"].items()))
    print(f"  within run (Q3-Q1)/median of wall times: median {s['median']:.2%}, p90 {s['p90']:.2%}; repeats median "
          f"{r['median']:.0f} ({r['min']:.0f}..{r['max']:.0f}); wall/CPU time median "
          f"{noise['wall_over_cpu']['median']:.2f}, max {noise['wall_over_cpu']['max']:.2f}")
    vela_labeler.close()
    host.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"isolation": iso, "labels_per_second": lps, "host_cpu_noise": noise,
                       "load_1min": os.getloadavg()[0]}, f, indent=2)


if __name__ == "__main__":
    main()
