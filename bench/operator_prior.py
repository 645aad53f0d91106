"""Whether the lookup table's attribution, given as per-operator labels, steadies the per-operator network.

A device measured by whole models (host-cpu, NAS-Bench-201, a user's CSV) gives the per-operator
network model totals only, so it may split a model's cost among operator types in many ways, and a
held-out space with another mix of types shows a wrong split as a bias. This script fits the
``lookup`` baseline (per-kernel costs linear in MACs and bytes, NNLS on the model labels) on each
split's training rows, scales its per-operator costs to sum to each model's label, and trains the
target's recipe network with those as per-operator labels (validation on model labels only). It
prints, per split, perfsage without them, with them, and the lookup table (latency MAPE on the
split's test rows). Splits: random, each leave-one-space-out, few-shot k (as ``perfsage evaluate``
draws them). The recipes of such devices train both and keep the one their validation rows prefer
(``operator_prior="auto"``, Predictor.fit); this script scores each alone (``operator_prior="off"``),
which is how the choice was justified: on NAS-Bench-201, where the table is a poor model, the prior
hurt (see bench/README.md).

    .venv/bin/python bench/operator_prior.py datasets/compact/paper-host-cpu.parquet --target host-cpu \\
        --splits random,loso
    .venv/bin/python bench/operator_prior.py datasets/nb201.parquet --target nb201-raspi4 --splits fewshot:100
"""

from __future__ import annotations

import argparse
import time
from typing import List

import numpy as np

import perfsage
from perfsage._kernel_table import attribution
from perfsage._recipes import recipe_for, usable_rows
from perfsage._split import Split
from perfsage.datasets import open_dataset
from perfsage.evaluation import LookupMethod, mape
from perfsage.evaluation._splits import fewshot_splits, loso_splits, random_split

# The per-operator loss of the ethos-u recipes (perfsage._recipes.ADDITIVE), not tuned here.
PRIOR = {"node_loss_weight": 4.0, "node_log_weight": 1.0, "node_graph_context": False}


def _splits(spec: str, rows: np.ndarray, spaces: np.ndarray, seed: int, target: str) -> List[Split]:
    """The splits ``perfsage evaluate`` draws, by the same functions."""
    random = random_split(rows, seed, target)
    out: List[Split] = []
    for name in spec.split(","):
        if name == "random":
            out.append(random)
        elif name == "loso":
            out += loso_splits(rows, spaces, seed, target)
        elif name.startswith("fewshot:"):
            out += fewshot_splits(rows, random, [int(name.partition(":")[2])], seed, target)
        else:
            raise SystemExit(f"operator_prior.py: unknown split {name!r} (random, loso, fewshot:K)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--target", required=True, help="a target whose recipe has latency_ms")
    parser.add_argument("--splits", default="random,loso", help="comma-separated: random, loso, fewshot:K")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    recipe = recipe_for(args.target)
    column = f"{args.target}/latency_ms"
    epochs = args.epochs or recipe.epochs
    data = open_dataset(args.dataset)
    labels = data.labels(column).astype(np.float64).reshape(-1)
    graphs = data.graphs()
    rows = np.intersect1d(usable_rows(labels), np.flatnonzero([g is not None for g in graphs]))
    print(f"{args.dataset}: {len(rows):,} labelled rows of {column}; recipe {recipe.hyperparameters}, "
          f"{epochs} epochs, seed {args.seed}; with the prior: {PRIOR}")
    print(f"{'split':34s} {'perfsage':>9s} {'+prior':>9s} {'lookup':>9s}  median log(pred/true) without / with")
    for split in _splits(args.splits, rows, data.spaces, args.seed, args.target):
        train, val, test = ([graphs[i] for i in part] for part in (split.train, split.val, split.test))
        y_train, y_val, y_test = (labels[part] for part in (split.train, split.val, split.test))
        started = time.perf_counter()
        table = LookupMethod([column], ["ms"], seed=args.seed)
        table.fit((train, y_train[:, None]), (val, y_val[:, None]))
        attributed = attribution(train, y_train[:, None], [0], args.seed)  # the same table's, scaled to the labels
        predictions = []
        for extra, operator_labels in (({}, None), (PRIOR, attributed)):
            p = perfsage.Predictor([column], units=["ms"], **{**recipe.hyperparameters, **extra, "operator_prior": "off",
                                                                  "seed": args.seed})
            p.fit((train, y_train[:, None].astype(np.float32), operator_labels),
                  val=(val, y_val[:, None].astype(np.float32)), epochs=epochs, threads=args.threads, progress=False)
            predictions.append(p.predict(test, threads=args.threads)[:, 0].astype(np.float64))
        biases = " / ".join(f"{np.median(np.log(p / y_test)):+.2f}" for p in predictions)
        print(f"{split.label:34s} {mape(y_test, predictions[0]):8.2f}% {mape(y_test, predictions[1]):8.2f}% "
              f"{mape(y_test, table.predict(test)[:, 0]):8.2f}%  {biases}  ({time.perf_counter() - started:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
