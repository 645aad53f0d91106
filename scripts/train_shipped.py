"""Trains the predictors shipped inside the package (python/perfsage/predictors/{target}.psage).

    .venv/bin/python scripts/train_shipped.py datasets/paper-ethos-u.parquet                # all shipped targets
    .venv/bin/python scripts/train_shipped.py datasets/paper-ethos-u.parquet --target ethos-u55-256 --seed 0

Each target trains from its recipe (perfsage/_recipes.py) on a seeded random 80/10/10 split of the
dataset's labelled rows: 80% to train, 10% to stop early, and 10% held out, on which the accuracy
is measured and stored in the predictor's provenance (`perfsage evaluate` uses the same split, so
its random-split numbers are those of the shipped files). A target whose file exists is skipped
unless --force. A target's training writes its state after every epoch to --state-dir (default
.cache/train_shipped/), so a run that is killed resumes inside the target it was training, at the
epoch after the last one it finished; a finished target's state file is deleted once its predictor
is saved.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from perfsage._recipes import SHIPPED_TARGETS, train_on_random_split
from perfsage.datasets import open_dataset

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "python" / "perfsage" / "predictors"


def _epoch_line(target: str):
    def line(stats: dict) -> None:
        mape = ", ".join(f"{v:.4f}" for v in stats["val_mape"])
        print(f"{target} epoch {stats['epoch']}: loss {stats['train_loss']:.4g}, val {stats['val_loss']:.4g} "
              f"(MAPE {mape}){' best' if stats['best'] else ''}, {stats['seconds']:.0f} s", file=sys.stderr, flush=True)
    return line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--target", action="append", help=f"default: {', '.join(SHIPPED_TARGETS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--force", action="store_true", help="retrain targets whose file exists")
    ap.add_argument("--state-dir", default=str(ROOT / ".cache" / "train_shipped"),
                    help="where a target's training state is kept while it trains (default: %(default)s)")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets = [t for t in (args.target or SHIPPED_TARGETS) if args.force or not (out / f"{t}.psage").exists()]
    if not targets:
        print("every predictor file exists (use --force to retrain)", file=sys.stderr)
        return 0
    dataset = open_dataset(args.dataset)
    started = time.time()
    graphs = dataset.graphs(threads=args.threads)
    print(f"{args.dataset}: {len(graphs)} graphs in {time.time() - started:.0f} s", file=sys.stderr)
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    for target in targets:
        state = state_dir / f"{target}-seed{args.seed}.npz"
        # A progress bar on a terminal; in a log file (a background run), one line per epoch.
        interactive = sys.stderr.isatty()
        p = train_on_random_split(dataset, graphs, target, seed=args.seed, threads=args.threads, checkpoint=state,
                                  progress=interactive, callback=None if interactive else _epoch_line(target))
        p.save(out / f"{target}.psage")
        state.unlink()
        print(json.dumps({"target": target, "seconds": p.provenance["seconds"], "test": p.provenance["test"]}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
