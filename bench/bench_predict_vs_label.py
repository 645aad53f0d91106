"""What a prediction saves: perfsage predictions per second against the labels they replace (Vela
compiles, LiteRT measurements), on the same seeded int8 models of the paper's four search spaces.

    .venv/bin/python bench/bench_predict_vs_label.py [--n 200] [--cold-n 20] [--json out.json]

Measured in one run, on the same ``--n`` models (an equal share of image_classification, kws,
super_resolution and detection, sampled with ``--seed``, int8 with weights):

(a) perfsage with the shipped ethos-u55-256 predictor (or ``--predictor FILE``), on ``--threads``
    threads (default 1, like the labellers): batch 1 (one ``predict([graph])`` call per model,
    graphs already loaded) and batched (one ``predict(graphs)`` call); both again from TFLite bytes,
    so that parsing and features are counted. ``--rounds`` rounds, in rotated order, before and
    after the labels; per model the median over rounds.
(b) Vela compiles: perfsage's ethos-u55-256 labeller (Vela in a warm helper process, its start-up
    not counted), and for every ``n / cold-n``-th model a cold ``vela`` CLI run (a new process per
    model with the labeller's options, which is what a user without perfsage runs); the cold run's
    latency must equal the labeller's.
(c) host-cpu: perfsage's LiteRT labeller (XNNPACK, one thread, its default repeat rule).

The labels run model by model, interleaved (Vela, host-cpu, cold Vela), so load changes on the shared
machine hit them alike. Rates are models / total seconds over the same models; the per-model
ratios are medians over models of (label seconds / prediction seconds) for the same model.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

import perfsage
from perfsage.labelers import get_labeler

SPACES = ("image_classification", "kws", "super_resolution", "detection")
TARGET = "ethos-u55-256"
GOAL = 10_000  # prediction vs a Vela compile


def make_models(n: int, seed: int) -> List[Dict[str, Any]]:
    """``n`` int8 models, an equal share from each paper space (spaces interleaved)."""
    per_space = [perfsage.sample(space, -(-n // len(SPACES)), seed=seed) for space in SPACES]
    items = [samples[i] for i in range(len(per_space[0])) for samples in per_space][:n]
    return [{"space": it["space"], "bytes": perfsage.build_model(it["spec"], seed=it["seed"])} for it in items]


def time_each(fn: Callable[[Any], Any], items: Sequence[Any]) -> List[float]:
    """Seconds of ``fn(item)`` for each item."""
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return out


def time_once(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def prediction_rounds(predictor: perfsage.Predictor, graphs: List[Any], blobs: List[bytes], rounds: int,
                      threads: int) -> Dict[str, Dict[str, Any]]:
    """Per-model seconds (batch 1) and whole-batch seconds (batched), each over ``rounds`` rounds."""
    methods: Dict[str, Callable[[], Any]] = {
        "batch 1, graphs loaded": lambda: time_each(lambda g: predictor.predict([g], threads=threads), graphs),
        "batched, graphs loaded": lambda: time_once(lambda: predictor.predict(graphs, threads=threads)),
        "batch 1, from TFLite bytes": lambda: time_each(lambda b: predictor.predict(b, threads=threads), blobs),
        "batched, from TFLite bytes": lambda: time_once(lambda: predictor.predict(blobs, threads=threads)),
    }
    for run in methods.values():  # warm-up
        run()
    results: Dict[str, List[Any]] = {name: [] for name in methods}
    names = list(methods)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            results[name].append(methods[name]())
    out: Dict[str, Dict[str, Any]] = {}
    for name, runs in results.items():
        if isinstance(runs[0], list):  # per model: median over rounds
            per_model = np.median(np.asarray(runs), axis=0)
            out[name] = {"per_model_s": per_model.tolist(), "total_s": float(per_model.sum())}
        else:
            out[name] = {"total_s": float(statistics.median(runs)), "rounds_s": runs}
    return out


def vela_cli() -> List[str]:
    """The ``vela`` console script next to this Python, else ``python -m ethosu.vela`` (the same program)."""
    script = os.path.join(os.path.dirname(sys.executable), "vela")
    if os.path.isfile(script):
        return [script]
    found = shutil.which("vela")
    return [found] if found else [sys.executable, "-m", "ethosu.vela"]


def cold_vela(model: bytes, args: List[str]) -> Dict[str, float]:
    """One ``vela`` process on ``model``; returns its wall time and the latency from its summary CSV."""
    with tempfile.TemporaryDirectory(prefix="bench-vela-") as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(model)
        start = time.perf_counter()
        run = subprocess.run([*vela_cli(), path, "--output-dir", os.path.join(tmp, "out"), *args],
                             capture_output=True, text=True)
        seconds = time.perf_counter() - start
        summaries = glob.glob(os.path.join(tmp, "out", "*_summary_*.csv"))
        if run.returncode != 0 or not summaries:
            raise RuntimeError(f"vela CLI failed (exit {run.returncode}): {run.stderr[-800:]}")
        with open(summaries[0], encoding="utf-8") as f:
            row = next(csv.DictReader(f))
    return {"seconds": seconds, "latency_ms": float(row["inference_time"]) * 1e3}


def label_all(models: List[Dict[str, Any]], cold_every: int) -> Dict[str, Any]:
    """Vela (warm), host-cpu and, for every ``cold_every``-th model, a cold vela CLI run, per model."""
    vela = get_labeler(TARGET)
    host = get_labeler("host-cpu")
    startup = {"vela_s": time_once(lambda: vela.label(models[0]["bytes"])),
               "host_cpu_s": time_once(lambda: host.label(models[0]["bytes"]))}
    vela_s, host_s, cold = [], [], []
    for i, model in enumerate(models):
        start = time.perf_counter()
        warm = vela.label(model["bytes"])
        vela_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        host.label(model["bytes"])
        host_s.append(time.perf_counter() - start)
        if cold_every and i % cold_every == 0:
            run = cold_vela(model["bytes"], vela.vela_args())
            if abs(run["latency_ms"] - warm["latency_ms"]) > 1e-9 * max(1.0, warm["latency_ms"]):
                raise RuntimeError(f"model {i}: vela CLI says {run['latency_ms']} ms, the labeller "
                                   f"{warm['latency_ms']} ms")
            cold.append({"index": i, "seconds": run["seconds"]})
    settings = {"vela": vela.settings(), "host_cpu": host.settings()}
    vela.close()
    host.close()
    return {"vela_s": vela_s, "host_cpu_s": host_s, "cold": cold, "startup": startup, "settings": settings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="models, shared equally by the four paper spaces")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--cold-n", type=int, default=20, help="models also compiled by a cold vela CLI (0: none)")
    parser.add_argument("--rounds", type=int, default=7, help="prediction rounds, before and after the labels each")
    parser.add_argument("--threads", type=int, default=1, help="perfsage predict threads (0: all cores)")
    parser.add_argument("--predictor", default=TARGET, help="shipped predictor name or .psage file")
    parser.add_argument("--json", help="write every measurement here")
    args = parser.parse_args()
    if args.n < len(SPACES):
        parser.error(f"--n must be at least {len(SPACES)} (one model per space)")

    predictor = perfsage.load_predictor(args.predictor)
    models = make_models(args.n, args.seed)
    blobs = [m["bytes"] for m in models]
    graphs = perfsage.load_many(blobs)
    nodes = np.array([g.num_nodes for g in graphs])
    print("perfsage prediction vs labelling benchmark")
    print(f"  perfsage {perfsage.__version__}, predictor {args.predictor} ({', '.join(predictor.output_names)}), "
          f"predict threads={args.threads}; Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"  models: {args.n} int8 ({', '.join(SPACES)}; seed {args.seed}), {nodes.min()}..{nodes.max()} operators "
          f"(median {np.median(nodes):.0f}), {min(map(len, blobs)) / 1024:.0f}..{max(map(len, blobs)) / 1024:.0f} KB")

    load_before = os.getloadavg()[0]
    before = prediction_rounds(predictor, graphs, blobs, args.rounds, args.threads)
    cold_every = max(1, args.n // args.cold_n) if args.cold_n > 0 else 0
    labels = label_all(models, cold_every)
    after = prediction_rounds(predictor, graphs, blobs, args.rounds, args.threads)
    load_after = os.getloadavg()[0]

    # Both prediction blocks together: per model the median of all rounds.
    predictions: Dict[str, Dict[str, Any]] = {}
    for name in before:
        if "per_model_s" in before[name]:
            per_model = np.median([before[name]["per_model_s"], after[name]["per_model_s"]], axis=0)
            predictions[name] = {"per_model_s": per_model.tolist(), "total_s": float(per_model.sum()),
                                 "total_s_before_after": [before[name]["total_s"], after[name]["total_s"]]}
        else:
            runs = before[name]["rounds_s"] + after[name]["rounds_s"]
            predictions[name] = {"total_s": float(statistics.median(runs)), "rounds_s": runs}

    cold_idx = [c["index"] for c in labels["cold"]]
    rows: List[Dict[str, Any]] = []
    for name, p in predictions.items():
        rows.append({"what": f"perfsage predict, {name}", "models": args.n, "total_s": p["total_s"],
                     "median_s": float(np.median(p["per_model_s"])) if "per_model_s" in p else None})
    for what, seconds in (("Vela compile, perfsage labeller (warm helper)", labels["vela_s"]),
                          ("host-cpu LiteRT measurement, perfsage labeller", labels["host_cpu_s"])):
        rows.append({"what": what, "models": args.n, "total_s": float(sum(seconds)),
                     "median_s": float(np.median(seconds))})
    if labels["cold"]:
        cold_s = [c["seconds"] for c in labels["cold"]]
        rows.append({"what": f"Vela compile, cold `vela` CLI ({len(cold_s)} of the models)", "models": len(cold_s),
                     "total_s": float(sum(cold_s)), "median_s": float(np.median(cold_s))})
    for row in rows:
        row["per_second"] = row["models"] / row["total_s"]

    print(f"\n{'':48s} {'per second':>12s} {'median ms/model':>16s} {'models':>7s}")
    for row in rows:
        median = f"{row['median_s'] * 1e3:.3f}" if row["median_s"] is not None else "-"
        print(f"{row['what']:48s} {row['per_second']:12,.1f} {median:>16s} {row['models']:7d}")

    # Ratios: throughput on the same models; for the batch-1 rows also the median per-model ratio.
    labels_by_name = {"Vela (warm labeller)": (labels["vela_s"], list(range(args.n))),
                      "host-cpu": (labels["host_cpu_s"], list(range(args.n)))}
    if labels["cold"]:
        labels_by_name["Vela (cold CLI)"] = ([c["seconds"] for c in labels["cold"]], cold_idx)
    ratios: Dict[str, Dict[str, Any]] = {}
    print("\nprediction speed-up over each label (throughput on the same models; batch 1: also median of per-model ratios)")
    print(f"{'':34s}" + "".join(f"{n:>24s}" for n in labels_by_name))
    for name, p in predictions.items():
        cells = []
        for label_name, (seconds, idx) in labels_by_name.items():
            if "per_model_s" in p:
                pred = np.asarray(p["per_model_s"])[idx]
                throughput = float(np.sum(seconds) / pred.sum())
                paired = float(np.median(np.asarray(seconds) / pred))
            else:
                throughput = float(np.sum(seconds) / (p["total_s"] * len(idx) / args.n))
                paired = None
            ratios.setdefault(name, {})[label_name] = {"throughput": throughput, "median_per_model": paired}
            cells.append(f"{throughput:,.0f}x" + (f" ({paired:,.0f}x)" if paired is not None else ""))
        print(f"{name:34s}" + "".join(f"{c:>24s}" for c in cells))

    print(f"\ngoal: predictions >= {GOAL:,}x faster than a Vela compile (throughput, same models)")
    for name in predictions:
        for label_name in ("Vela (warm labeller)", "Vela (cold CLI)"):
            if label_name in ratios[name]:
                r = ratios[name][label_name]["throughput"]
                print(f"  {name:28s} vs {label_name:22s} {r:10,.0f}x  {'met' if r >= GOAL else 'NOT met'}")
    print(f"\nload average {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} CPUs"
          + (" -- the machine was busy: absolute rates are low and move from run to run" if
             max(load_before, load_after) > (os.cpu_count() or 1) else ""))
    print(f"helper start-up (once, not counted): Vela {labels['startup']['vela_s']:.2f} s, "
          f"host-cpu {labels['startup']['host_cpu_s']:.2f} s")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "spaces": [m["space"] for m in models], "nodes": nodes.tolist(),
                       "predictions": predictions, "labels": labels, "rows": rows, "ratios": ratios,
                       "load": [load_before, load_after]}, f, indent=2, default=str)


if __name__ == "__main__":
    main()
