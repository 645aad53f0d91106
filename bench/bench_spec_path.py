"""The spec path: architecture spec -> graph -> prediction without weights or TFLite bytes.

A NAS loop starts from specs. Before the spec path, each candidate was written (``build_model``,
with seeded weights) and read back (``load_tflite``) before the network saw it; ``spec_graph``
builds the same graph directly. For KWS-sized, CIFAR-sized (32x32 image classification) and
224x224 specs (cnn_families, mobile_v3 at 224) this times, on one thread:

* spec -> graph: ``spec_graphs(items, threads=1)`` against ``load_tflite(build_model(...))``;
* spec -> prediction (candidates/s): ``Predictor.predict(items, threads=1)`` on specs against
  the same on models built from them, and the network alone on graphs already made.

Each method runs in every round, in rotating order; figures are medians over rounds and each
speedup is the ratio of medians in this run. Issue 16's goals: >= 10,000 candidates/s for KWS- and
CIFAR-sized specs, >= 2,000 for 224x224 ones.

    .venv/bin/python bench/bench_spec_path.py [--n 200] [--rounds 5] [--json out.json]

With ``--isa both`` it compares the two builds of the core (baseline x86-64 and x86-64-v3, see
perfsage/_native.py) instead: one process can load only one build, so each round runs the whole
benchmark once per build, one subprocess each with PERFSAGE_ISA set, in rotating order, and the
table gives each method's time under both builds and their ratio.

    .venv/bin/python bench/bench_spec_path.py --isa both [--n 200] [--rounds 5] [--json out.json]

With ``--before-python PYTHON`` it compares an earlier core (or checkout) with this one in the same
way: each round runs the whole benchmark once in a process of ``PYTHON`` ("before": an older
checkout's ``.venv/bin/python``, or a wrapper that puts an older package first on the path) and once
in one of this interpreter ("after"), in rotating order, so that the two sides of a round are
measured minutes apart at most.

    .venv/bin/python bench/bench_spec_path.py --before-python ../old/.venv/bin/python [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

import perfsage

# Each group: (name, space, keep a sample?) and the goal in candidates/s, spec -> prediction.
GROUPS = [
    ("kws", "kws", lambda spec: True, 10_000),
    ("cifar 32x32", "image_classification", lambda spec: spec["inputs"][0]["shape"][1] <= 32, 10_000),
    ("224x224", "cnn_families+mobile_v3", lambda spec: spec["inputs"][0]["shape"][1] == 224, 2_000),
]
PREDICTOR = "ethos-u55-256"
ISAS = ("baseline", "x86-64-v3")


def draw(spaces: str, keep: Callable[[Dict[str, Any]], bool], n: int) -> List[Dict[str, Any]]:
    """``n`` samples of the spaces (taken in turn) that ``keep`` accepts."""
    items: List[Dict[str, Any]] = []
    names = spaces.split("+")
    seed = 0
    while len(items) < n:
        for name in names:
            items += [it for it in perfsage.sample(name, 50, seed=seed) if keep(it["spec"])]
        seed += 1
    return items[:n]


def rounds_of(methods: Dict[str, Callable[[], Any]], rounds: int
              ) -> Tuple[Dict[str, List[float]], Dict[str, float]]:
    """Seconds per run of each method over `rounds` rounds, the order rotating each round, and each
    method's process CPU time over its wall time (below 1.0: other work on the machine took part of
    the core). Results are dropped and garbage collected outside the timed region."""
    times: Dict[str, List[float]] = {name: [] for name in methods}
    cpu: Dict[str, float] = {name: 0.0 for name in methods}
    names = list(methods)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            result = methods[name]()
            times[name].append(time.perf_counter() - start)
            cpu[name] += time.process_time() - start_cpu
            del result
    return times, {name: cpu[name] / sum(times[name]) for name in methods}


def environment() -> str:
    return (f"perfsage {perfsage.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, predictor {PREDICTOR}")


def measure(n: int, rounds: int, warmup: bool = False) -> List[Dict[str, Any]]:
    """Times every method on every group in this process (so on the build of the core it loaded),
    prints the tables and returns the measurements, one dict per group. ``warmup`` runs each method
    once untimed first, for runs of one round in a fresh process."""
    predictor = perfsage.load_predictor(PREDICTOR)
    isa = perfsage.build_info()["isa"]
    print(f"perfsage spec-path benchmark (one thread, int8, core built for {isa})")
    print(f"  {environment()}")
    results = []
    for group, spaces, keep, goal in GROUPS:
        count = n if goal > 2_000 else max(n // 4, 1)
        items = draw(spaces, keep, count)
        models = [perfsage.build_model(it["spec"], seed=it["seed"]) for it in items]
        graphs = perfsage.spec_graphs(items, threads=1)
        # The two paths must give the same graphs before either is timed: the same operators and
        # edges, and features equal but for the two weight-value columns, which the spec path
        # takes from the weights' expected summary (spec_graph.h; held to tolerances by
        # tests/python/test_spec_graph.py). The predictions then differ by what those columns move.
        for item, model, graph in zip(items, models, graphs):
            built = perfsage.load_tflite(model)
            assert built.op_names == graph.op_names and np.array_equal(built.edge_index, graph.edge_index), item
        from_specs, from_models = predictor.predict(items, threads=1), predictor.predict(models, threads=1)
        spread = float(np.max(np.abs(from_specs / from_models - 1)))
        print(f"  {group}: predictions from specs and from the written models differ by at most {spread:.2%}")

        def written() -> List[perfsage.Graph]:
            return [perfsage.load_tflite(perfsage.build_model(it["spec"], seed=it["seed"])) for it in items]

        methods = {
            "build_model + load_tflite": written,
            "spec_graphs": lambda: perfsage.spec_graphs(items, threads=1),
            "spec_graph loop": lambda: [perfsage.spec_graph(it["spec"], seed=it["seed"]) for it in items],
            "predict(built models)": lambda: predictor.predict(
                [perfsage.build_model(it["spec"], seed=it["seed"]) for it in items], threads=1),
            "predict(specs)": lambda: predictor.predict(items, threads=1),
            "predict(graphs) only": lambda: predictor.predict(graphs, threads=1),
        }
        if warmup:
            rounds_of(methods, 1)
        times, cpu_share = rounds_of(methods, rounds)
        median = {name: statistics.median(t) for name, t in times.items()}
        nodes = statistics.median(g.num_nodes for g in graphs)
        print(f"\n  {group}: {len(items)} specs from {spaces}, median {nodes:.0f} operators, "
              f"MACs {min(g.totals['macs'] for g in graphs):.3g}..{max(g.totals['macs'] for g in graphs):.3g}")
        print(f"    {'method':28s} {'per s':>9s} {'µs/spec':>9s} {'min..max µs/spec':>20s} {'cpu/wall':>8s}")
        for name, t in times.items():
            lo, hi = min(t) / len(items) * 1e6, max(t) / len(items) * 1e6
            print(f"    {name:28s} {len(items) / median[name]:9.0f} {median[name] / len(items) * 1e6:9.1f} "
                  f"{lo:9.1f}..{hi:<9.1f} {cpu_share[name]:8.2f}")
        graph_speedup = median["build_model + load_tflite"] / median["spec_graphs"]
        predict_speedup = median["predict(built models)"] / median["predict(specs)"]
        candidates = len(items) / median["predict(specs)"]
        print(f"    spec -> graph: spec_graphs {graph_speedup:.1f}x build_model + load_tflite")
        print(f"    spec -> prediction: {candidates:.0f} candidates/s, {predict_speedup:.1f}x predicting built "
              f"models; goal >= {goal:,}/s -> {'MET' if candidates >= goal else 'MISSED'}")
        results.append({"group": group, "spaces": spaces, "specs": len(items), "median_operators": nodes, "isa": isa,
                        "seconds": times, "cpu_per_wall": cpu_share, "graph_speedup": graph_speedup, "predict_speedup": predict_speedup,
                        "candidates_per_second": candidates, "goal": goal})
    return results


# One side of a comparison: its label, the interpreter that runs it, extra environment, and the
# build of the core it must load (None: whichever it loads).
Side = Tuple[str, str, Dict[str, str], Optional[str]]


def run_side(side: Side, n: int, workdir: str) -> List[Dict[str, Any]]:
    """One round of the whole benchmark in a subprocess of ``side``: its results."""
    label, python, env, isa = side
    out = os.path.join(workdir, f"{label}.json")
    command = [python, os.path.abspath(__file__), "--n", str(n), "--rounds", "1", "--warmup", "--json", out]
    subprocess.run(command, env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        results = json.load(f)
    for group in results:
        if isa is not None and group["isa"] != isa:
            raise SystemExit(f"bench_spec_path: PERFSAGE_ISA={isa} ran on the {group['isa']} build")
    return results


def compare(sides: Tuple[Side, Side], n: int, rounds: int, title: str) -> List[Dict[str, Any]]:
    """Each method's seconds per round on each side, rounds alternating the sides' order, and the
    speedup of the second side over the first: ratio of median wall times, median of per-round
    ratios and ratio of median CPU times (the runs are one thread, so CPU time is the work done,
    which other jobs on the machine move less than wall time)."""
    labels = [side[0] for side in sides]
    print(f"perfsage spec-path benchmark: {title} (one thread, int8)")
    print(f"  {environment()}, {rounds} rounds, each side in its own process per round")
    seconds: Dict[str, Dict[str, Dict[str, List[float]]]] = {}  # group -> method -> side -> per round
    cpu_seconds: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    groups: Dict[str, Dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as workdir:
        for r in range(rounds):
            for side in sides[r % 2:] + sides[:r % 2]:
                for group in run_side(side, n, workdir):
                    groups.setdefault(group["group"], group)
                    for method, (t,) in group["seconds"].items():
                        seconds.setdefault(group["group"], {}).setdefault(method, {}).setdefault(side[0], []).append(t)
                        cpu_seconds.setdefault(group["group"], {}).setdefault(method, {}).setdefault(
                            side[0], []).append(t * group["cpu_per_wall"][method])
    results = []
    for name, methods in seconds.items():
        specs = groups[name]["specs"]
        print(f"\n  {name}: {specs} specs, median {groups[name]['median_operators']:.0f} operators")
        print(f"    {'method':28s} {labels[0] + ' µs/spec':>18s} {labels[1] + ' µs/spec':>18s} {'speedup':>8s} "
              f"{'per-round':>10s} {'cpu speedup':>12s} {'cpu/wall':>10s}")
        for method, by_side in methods.items():
            first, second = (statistics.median(by_side[label]) for label in labels)
            paired = statistics.median(a / b for a, b in zip(*(by_side[label] for label in labels)))
            cpu_first, cpu_second = (statistics.median(cpu_seconds[name][method][label]) for label in labels)
            share = "/".join(f"{sum(cpu_seconds[name][method][label]) / sum(by_side[label]):.2f}" for label in labels)
            print(f"    {method:28s} {first / specs * 1e6:18.1f} {second / specs * 1e6:18.1f} {first / second:7.2f}x "
                  f"{paired:9.2f}x {cpu_first / cpu_second:11.2f}x {share:>10s}")
            results.append({"group": name, "method": method, "specs": specs, "seconds": by_side,
                            "cpu_seconds": cpu_seconds[name][method], "speedup": first / second,
                            "median_round_speedup": paired, "cpu_speedup": cpu_first / cpu_second})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="specs per group (224x224: a quarter)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--isa", choices=["current", "both"], default="current",
                        help="current: the build this process loaded; both: baseline against x86-64-v3")
    parser.add_argument("--before-python", help="compare with an earlier core: the interpreter that runs it")
    parser.add_argument("--warmup", action="store_true", help="run each method once untimed first")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.isa == "both" and args.before_python:
        parser.error("--isa both and --before-python are two different comparisons; give one")
    if args.isa == "both":
        builds = tuple((isa, sys.executable, {"PERFSAGE_ISA": isa}, isa) for isa in ISAS)
        results = compare(builds, args.n, args.rounds, "x86-64-v3 build against the baseline build")
    elif args.before_python:
        sides = (("before", args.before_python, {}, None), ("after", sys.executable, {}, None))
        results = compare(sides, args.n, args.rounds, f"this core against {args.before_python}'s")
    else:
        results = measure(args.n, args.rounds, args.warmup)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
