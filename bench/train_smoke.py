"""Trains a predictor on a labelled dataset and reports its accuracy on held-out models.

The issue-4 smoke check ("training reaches below 5% MAPE on latency") and a quick way to try
hyperparameters: a seeded random 80/10/10 split of the dataset's labelled rows; the predictor trains
on 80%, stops early on 10% and is scored on the last 10%.

    .venv/bin/python bench/train_smoke.py datasets/paper-ethos-u.parquet \\
        --target ethos-u55-256/latency_ms --target ethos-u55-256/energy_mj --epochs 200
    .venv/bin/python bench/train_smoke.py DATASET --target T --set hidden=128 --set layer_norm=false
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import perfsage
from perfsage.datasets import open_dataset


def _value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--target", action="append", required=True, help="label column, repeatable")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--limit", type=int, default=0, help="use at most this many labelled rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a hyperparameter")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    dataset = open_dataset(args.dataset)
    labels = dataset.labels(args.target)
    keep = np.flatnonzero(~np.all(np.isnan(labels), axis=1))
    rng = np.random.default_rng(args.seed)
    keep = rng.permutation(keep)
    if args.limit:
        keep = keep[: args.limit]
    started = time.time()
    graphs = dataset.select(keep).graphs(threads=args.threads)
    y = labels[keep]
    n = len(keep)
    n_test = n_val = n // 10
    test, val, train = slice(0, n_test), slice(n_test, n_test + n_val), slice(n_test + n_val, n)
    print(f"{args.dataset}: {n} labelled rows ({n - 2 * n_test} train, {n_val} val, {n_test} test); "
          f"graphs ready in {time.time() - started:.1f} s")

    hyper = dict(item.split("=", 1) for item in args.set)
    predictor = perfsage.Predictor(args.target, units=[dataset.units.get(t, "") for t in args.target],
                                   seed=args.seed, **{k: _value(v) for k, v in hyper.items()})
    started = time.time()
    predictor.fit((graphs[n_test + n_val:], y[train]),
                  val=(graphs[n_test:n_test + n_val], y[val]), epochs=args.epochs, threads=args.threads)
    seconds = time.time() - started
    pred = predictor.predict(graphs[:n_test], threads=args.threads)
    ape = np.abs(pred - y[test]) / y[test]
    results = {"rows": n, "epochs_run": len(predictor.history), "train_seconds": round(seconds, 1),
               "seconds_per_epoch": round(seconds / max(1, len(predictor.history)), 2),
               "hyperparameters": predictor.hyperparameters, "targets": {}}
    print(f"trained {len(predictor.history)} epochs in {seconds:.0f} s "
          f"(best epoch {predictor.provenance['best_epoch']})")
    print(f"{'target':40s} {'MAPE':>8s} {'within 5%':>10s} {'within 10%':>11s}")
    for t, name in enumerate(args.target):
        a = ape[:, t][~np.isnan(ape[:, t])]
        row = {"mape": float(a.mean()), "within_5": float((a <= 0.05).mean()), "within_10": float((a <= 0.10).mean()),
               "test_rows": int(a.size)}
        results["targets"][name] = row
        print(f"{name:40s} {100 * row['mape']:7.2f}% {100 * row['within_5']:9.1f}% {100 * row['within_10']:10.1f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
