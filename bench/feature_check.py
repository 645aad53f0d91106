"""Where a feature or normalisation change moves the random-split error of the additive recipe.

Trains the additive recipe (perfsage._recipes.ADDITIVE) for one metric on a seeded sample of a
dataset's int8 rows with per-operator labels, on a seeded random 80/10/10 split, and prints the
held-out error by search space and by graph size, each operator's error against Vela's per-layer
label on the held-out ``op_zoo`` models (by op type, channels aligned to 8 or not), and, with
--real, the error on a real-model dataset (evaluation only: never use it to choose). Run it on the
build before a change and on the build after it; the split and sample do not depend on the build.

    .venv/bin/python bench/feature_check.py datasets/world-ethos-u.parquet \\
        --target ethos-u55-256/latency_ms --epochs 12 --limit 40000 --real datasets/real-models.parquet
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

import perfsage
from perfsage import _core
from perfsage._predictor import dataset_operator_labels
from perfsage._recipes import ADDITIVE
from perfsage._split import random_split
from perfsage.datasets import open_dataset

NODE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "PAD", "MAX_POOL_2D")


def _ape(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    return np.abs(pred - true) / true


def _line(name: str, ape: np.ndarray) -> str:
    return f"   {name:22s} n={len(ape):6d} MAPE {ape.mean():7.2%} median {np.median(ape):6.2%} " \
           f"within10 {np.mean(ape < 0.1):6.1%}"


def _node_errors(predictor, graphs, labels, rows) -> dict:
    """log(predicted / Vela) per operator of `rows`, keyed by (op type, output channels % 8 == 0)."""
    out_c = _core.node_feature_names().index("out_c")
    vocab = _core.op_vocabulary()
    errors = collections.defaultdict(list)
    for k in rows:
        if labels[k] is None:
            continue
        _, costs, _ = predictor.operator_costs(graphs[k])
        vela = np.asarray(labels[k])[:, 0]
        x = graphs[k].node_features
        for n, code in enumerate(graphs[k].op_types):
            if vela[n] > 0:
                errors[(vocab[int(code)], bool(x[n, out_c] % 8 == 0))].append(np.log(costs[n, 0] / vela[n]))
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--target", default="ethos-u55-256/latency_ms")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--limit", type=int, default=40000, help="rows sampled (seed 0) from the int8 rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--real", help="real-model dataset, scored for information only")
    args = parser.parse_args()

    print(f"perfsage {perfsage.__version__}, feature schema {perfsage.FEATURE_SCHEMA_VERSION}, "
          f"{len(_core.node_feature_names())} node columns", flush=True)
    ds = open_dataset(args.dataset)
    ds = ds.select(np.flatnonzero(np.asarray(ds.dtypes) == "int8"))
    y = np.asarray(ds.labels([args.target]), dtype=np.float32)
    keep = np.flatnonzero(np.isfinite(y[:, 0]) & (y[:, 0] > 0))
    keep = np.sort(np.random.default_rng(0).permutation(keep)[:args.limit])
    used, y = ds.select(keep), y[keep]
    spaces = np.asarray(used.spaces)
    graphs = used.graphs(threads=args.threads)
    labels = dataset_operator_labels(used, [args.target])
    split = random_split(np.arange(len(y)), 0)

    def part(rows):
        return [graphs[i] for i in rows], y[rows], [labels[i] for i in rows]

    start = time.perf_counter()
    predictor = perfsage.Predictor([args.target], seed=0, **ADDITIVE)
    predictor.fit(part(split.train), val=part(split.val), epochs=args.epochs, progress=False, threads=args.threads)
    test = split.test
    ape = _ape(predictor.predict([graphs[i] for i in test])[:, 0], y[test, 0])
    print(f"{args.epochs} epochs on {len(split.train)} rows, {time.perf_counter() - start:.0f} s")
    print(_line("random split, all", ape))
    for space in sorted(set(spaces[test])):
        print(_line(space, ape[spaces[test] == space]))
    nodes = np.array([graphs[i].num_nodes for i in test])
    for lo, hi in ((1, 2), (2, 5), (5, 20), (20, None)):
        mask = (nodes >= lo) & (nodes < hi if hi else True)
        print(_line(f"{lo}-{hi - 1} operators" if hi else f"{lo}+ operators", ape[mask]))

    errors = _node_errors(predictor, graphs, labels, [k for k in test if spaces[k] == "op_zoo"])
    print("   op_zoo operators, log(predicted / Vela):")
    for op in NODE_OPS:
        parts = [f"{'aligned' if aligned else 'other'} n={len(errors[(op, aligned)])} "
                 f"mean|log| {np.abs(errors[(op, aligned)]).mean():.3f} bias {np.mean(errors[(op, aligned)]):+.3f}"
                 for aligned in (True, False) if errors[(op, aligned)]]
        print(f"      {op:18s} " + "  ".join(parts))
    every = np.concatenate([np.asarray(v) for v in errors.values()])
    print(f"      all {len(every)} operators: mean|log| {np.abs(every).mean():.3f}")

    if args.real:
        real = open_dataset(args.real)
        true = np.asarray(real.labels([args.target]), dtype=np.float64)[:, 0]
        real_graphs = real.graphs(threads=args.threads)
        rows = [i for i, g in enumerate(real_graphs) if g is not None and np.isfinite(true[i]) and true[i] > 0]
        pred = predictor.predict([real_graphs[i] for i in rows])[:, 0]
        print(_line("real models (info only)", _ape(pred, true[rows])))


if __name__ == "__main__":
    main()
