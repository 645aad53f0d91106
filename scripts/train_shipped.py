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

    .venv/bin/python scripts/train_shipped.py DATASET --out DIR --refresh-domain

trains nothing: for each target whose file is in DIR, it records the training domain (what
`Predictor.check` compares models with) again with this perfsage's summary, from the same rows,
for a file trained before a field was added to it (the operator-feature ranges), and the upper
bounds of its labels (`output_limits`: the U65's dedicated SRAM), scores it again on the test
rows and, for a file with intervals, calibrates them again on the validation rows with their
search spaces (the per-space scope, `Predictor.calibrate`). A file whose provenance names another
dataset or split, or whose recorded summary the rows do not reproduce, is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from perfsage._predictor import checkpoint_files
from perfsage._recipes import SHIPPED_TARGETS, refresh_domain, train_on_random_split
from perfsage import load_predictor
from perfsage.datasets import open_dataset

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "python" / "perfsage" / "predictors"


def _epoch_line(target: str):
    def line(stats: dict) -> None:
        mape = ", ".join(f"{v:.4f}" for v in stats["val_mape"])
        print(f"{target} epoch {stats['epoch']}: loss {stats['train_loss']:.4g}, val {stats['val_loss']:.4g} "
              f"(MAPE {mape}){' best' if stats['best'] else ''}, {stats['seconds']:.0f} s", file=sys.stderr, flush=True)
    return line


def _refresh(args: argparse.Namespace, out: Path) -> int:
    paths = [out / f"{t}.psage" for t in (args.target or SHIPPED_TARGETS)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"no predictor file {', '.join(missing)}", file=sys.stderr)
        return 1
    dataset = open_dataset(args.dataset)
    graphs = dataset.graphs(threads=args.threads)
    for path in paths:
        predictor = load_predictor(path)
        try:
            refresh_domain(predictor, dataset, graphs, path.stem)
        except ValueError as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 1
        predictor.save(path)
        limits = predictor.provenance["output_limits"]
        calibrated = predictor.provenance.get("intervals", {}).get("targets", {})
        spaces = {t: sorted(e.get("groups", {})) for t, e in calibrated.items()}
        print(f"{path}: training domain recorded again ({len(predictor.provenance['domain'])} fields); "
              f"output limits {limits or 'none'}; test {json.dumps(predictor.provenance['test'])}; "
              f"interval spaces {json.dumps(spaces)}", file=sys.stderr)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("--target", action="append", help=f"default: {', '.join(SHIPPED_TARGETS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--force", action="store_true", help="retrain targets whose file exists")
    ap.add_argument("--no-intervals", action="store_true",
                    help="skip the interval companion (by default each file carries one, calibrated on the "
                         "validation rows, so that `perfsage predict --interval` works on it)")
    ap.add_argument("--refresh-domain", action="store_true",
                    help="train nothing: record again, with this perfsage's summary, the training domain of each "
                         "target whose file exists in --out (from the same rows; what Predictor.check reads), "
                         "its labels' upper bounds, and its test scores")
    ap.add_argument("--state-dir", default=str(ROOT / ".cache" / "train_shipped"),
                    help="where a target's training state is kept while it trains (default: %(default)s)")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.refresh_domain:
        return _refresh(args, out)
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
                                  progress=interactive, callback=None if interactive else _epoch_line(target),
                                  intervals=not args.no_intervals)
        p.save(out / f"{target}.psage")
        for path in checkpoint_files(state):
            path.unlink(missing_ok=True)
        print(json.dumps({"target": target, "seconds": p.provenance["seconds"], "test": p.provenance["test"]}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
