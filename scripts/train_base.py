"""Trains one predictor on the latency of every device in several datasets: a base to adapt from.

    .venv/bin/python scripts/train_base.py --data datasets/nb201.parquet \
        --data datasets/compact/paper-host-cpu.parquet --data datasets/compact/world-ethos-u.parquet:20000 \
        --hold-out nb201-raspi4 --out bases/without-nb201-raspi4.psage

One network (the per-operator one, its trunk shared by every device, one output column per device)
learns ``<device>/latency_ms`` of each device of each dataset, with per-operator labels where the
dataset has them; a row is labelled for its own dataset's devices only (NaN elsewhere: masked). The
loss is log-MSE, since the devices' latencies span six orders of magnitude. ``--hold-out`` leaves a
device's labels out, so that ``perfsage evaluate DATASET --target DEVICE --splits lodo --lodo-base
FILE`` measures adapting to a device the base never saw. Whatever is held out, every dataset's rows
that ``perfsage evaluate``'s random split tests on (seed ``--seed``) for any of its devices are left
out, so that no such row is ever seen, under any device's label. ``PATH:N`` takes a seeded sample of
N of a dataset's remaining rows. A killed run resumes from ``--checkpoint`` (default: OUT + ".ckpt").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from perfsage import Predictor
from perfsage._predictor import dataset_operator_labels
from perfsage._recipes import ADDITIVE, _seeded_split, recipe_for
from perfsage.datasets import open_dataset

# The base's network: the shipped predictors' per-operator network, on log-MSE (host-cpu's loss).
BASE_HYPERPARAMETERS: Dict[str, Any] = {**ADDITIVE, "patience": 0, "loss": "log_mse"}


def _source(text: str) -> Tuple[str, Optional[int]]:
    path, sep, n = text.rpartition(":")
    if sep and n.isdigit() and path:
        return path, int(n)
    return text, None


def tested_rows(dataset: Any, seed: int) -> np.ndarray:
    """The rows ``perfsage evaluate``'s random split (``seed``) tests on, for any device of ``dataset``."""
    out = [np.zeros(0, np.int64)]
    for target in dataset.targets:
        try:
            out.append(_seeded_split(dataset, recipe_for(target), seed)[1].test)
        except ValueError:  # fewer than 10 usable rows: the evaluation cannot split them either
            continue
    return np.unique(np.concatenate(out))


def load_part(path: str, n: Optional[int], held_out: List[str], seed: int, threads: int,
              ) -> Tuple[List[Any], Dict[str, np.ndarray], Dict[str, List[Optional[np.ndarray]]], Dict[str, str]]:
    """One dataset's rows: graphs, latency labels and per-operator latencies by column, units."""
    dataset = open_dataset(path)
    columns = [f"{t}/latency_ms" for t in dataset.targets if t not in held_out
               and "latency_ms" in dataset.targets[t].get("metrics", {"latency_ms": None})]
    labels = dataset.labels(columns).astype(np.float64) if columns else np.zeros((len(dataset), 0))
    labels[~(np.isfinite(labels) & (labels > 0))] = np.nan
    rows = np.setdiff1d(np.flatnonzero(~np.all(np.isnan(labels), axis=1)), tested_rows(dataset, seed))
    if n is not None and n < len(rows):
        rows = np.sort(np.random.default_rng([seed, 0x62617365]).choice(rows, n, replace=False))
    part = dataset.select(rows)
    graphs = part.graphs(threads=threads)
    keep = [i for i, g in enumerate(graphs) if g is not None]
    ops = dataset_operator_labels(part, columns, [None if g is None else g.op_names for g in graphs])
    print(f"{path}: {len(keep):,} rows ({', '.join(columns) or 'no device'}"
          f"{', per-operator labels' if ops is not None else ''})", file=sys.stderr, flush=True)
    by_column = {c: labels[rows][keep, j] for j, c in enumerate(columns)}
    node = {c: [None if ops is None or ops[i] is None else ops[i][:, j] for i in keep] for j, c in enumerate(columns)}
    units = {c: dataset.units.get(c, "ms") for c in columns}
    return [graphs[i] for i in keep], by_column, node, units


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", action="append", required=True, metavar="PATH[:N]",
                    help="a dataset (repeatable); PATH:N takes a seeded sample of N rows")
    ap.add_argument("--hold-out", action="append", default=[], metavar="DEVICE",
                    help="a device whose labels the base does not learn (repeatable)")
    ap.add_argument("--out", required=True, help="the .psage file to write")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--intervals", action="store_true",
                    help="also train the interval companion, which adapted predictors inherit (about twice the time)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--checkpoint", help="state file for resuming (default: OUT.ckpt)")
    args = ap.parse_args(argv)
    started = time.time()
    graphs: List[Any] = []
    parts = []
    rows_used: Dict[str, int] = {}
    for text in args.data:
        path, n = _source(text)
        part = load_part(path, n, args.hold_out, args.seed, args.threads)
        parts.append((len(graphs), *part))
        graphs += part[0]
        rows_used[text] = len(part[0])
    columns = sorted({c for _, _, by_column, _, _ in parts for c in by_column})
    if not columns:
        print("no device left to learn: every dataset's devices are held out", file=sys.stderr)
        return 1
    labels = np.full((len(graphs), len(columns)), np.nan, np.float32)
    node: List[Optional[np.ndarray]] = [None] * len(graphs)
    units: Dict[str, str] = {}
    for start, part_graphs, by_column, node_by_column, part_units in parts:
        units.update(part_units)
        for c, values in by_column.items():
            labels[start:start + len(part_graphs), columns.index(c)] = values
        for i, g in enumerate(part_graphs):
            if any(node_by_column[c][i] is not None for c in by_column):
                block = np.full((g.num_nodes, len(columns)), np.nan, np.float32)
                for c in by_column:
                    if node_by_column[c][i] is not None:
                        block[:, columns.index(c)] = node_by_column[c][i]
                node[start + i] = block
    print(f"base: {len(graphs):,} graphs, {len(columns)} devices ({', '.join(columns)}); "
          f"held out: {', '.join(args.hold_out) or 'none'}", file=sys.stderr, flush=True)
    predictor = Predictor(columns, units=[units[c] for c in columns], seed=args.seed, **BASE_HYPERPARAMETERS)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    predictor.fit((graphs, labels, node), epochs=args.epochs, threads=args.threads,
                  checkpoint=args.checkpoint or args.out + ".ckpt", intervals=args.intervals)
    predictor.provenance["base"] = {"data": args.data, "rows": rows_used, "held_out": args.hold_out, "seed": args.seed,
                                    "tested_rows_left_out": "every dataset's random-split test rows, seed "
                                                            f"{args.seed}", "epochs": args.epochs}
    predictor.save(args.out)
    mape = predictor.provenance.get("best_val_mape", {})
    print(f"wrote {args.out} in {time.time() - started:.0f} s; validation MAPE "
          + ", ".join(f"{c} {100 * v:.1f}%" for c, v in mape.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
