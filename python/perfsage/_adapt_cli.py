"""``perfsage adapt``: a predictor for a new device from a handful of its measurements."""

from __future__ import annotations

import inspect
import sys
import time
from typing import Any

from ._adapt import MIN_ROWS
from ._core import PerfSageError
from ._graphs import load_tflite
from ._predictor import DEFAULT_BASE, Predictor, load_predictor, shipped_bases, shipped_predictors
from ._predict_cli import model_paths, whole_number

DEFAULT_EPOCHS = inspect.signature(Predictor.adapt).parameters["epochs"].default


def choose(args: Any) -> int:
    """``perfsage adapt --choose K MODELS...``: which K of the candidate models to measure."""
    base = load_predictor(args.base)
    paths, errors = model_paths(args.choose_from)
    loaded = []
    for path in paths:
        try:
            loaded.append((path, load_tflite(path)))
        except (PerfSageError, OSError) as e:
            errors.append(str(e))
    for e in errors:
        print(f"perfsage: error: {e}", file=sys.stderr)
    if len(loaded) < args.choose:
        raise ValueError(f"--choose {args.choose}: only {len(loaded)} candidate model(s) could be read")
    chosen = base.choose_to_measure([g for _, g in loaded], args.choose, seed=args.seed or 0, threads=args.threads)
    print(f"# measure these {args.choose} of {len(loaded)} candidates on the new device (one from each of "
          f"{args.choose} equal parts of {args.base}'s predicted latency, lowest first), then import the "
          "measurements (perfsage dataset import-csv) and adapt (perfsage adapt --data ...)", file=sys.stdout)
    for i in chosen:
        print(loaded[i][0], file=sys.stdout)
    return 1 if errors else 0


def run(args: Any) -> int:
    if args.choose is not None:
        if args.data or args.out or args.target:
            raise ValueError("--choose lists the models to measure: leave out --data, --target and --out")
        return choose(args)
    if args.choose_from:
        raise ValueError("model files are for --choose K; adapt reads the measurements from --data")
    missing = [flag for flag, value in (("--data", args.data), ("--target", args.target), ("--out", args.out))
               if not value]
    if missing:
        raise ValueError(f"adapt needs {', '.join(missing)} (or --choose K MODELS... to pick what to measure)")
    base = load_predictor(args.base)
    started = time.time()
    adapted = base.adapt(args.data, targets=args.target, epochs=args.epochs, lr=args.lr, threads=args.threads,
                         progress=not args.no_progress, seed=args.seed)
    adapted.save(args.out)
    record = adapted.provenance["adapt"]
    print(f"{args.out}: {', '.join(adapted.output_names)} from {record['rows']} measured rows of {args.data}, "
          f"adapted from {args.base} in {time.time() - started:.1f} s", file=sys.stdout)
    for name, start in record["start"].items():
        terms = " + ".join(f"{c:.3g}·log {column}" for c, column in zip(start["coefficients"], start["base_columns"]))
        print(f"  {name}: start log y = {start['intercept']:.3g} + {terms}; leave-one-out error of that start "
              f"{start['loo_rmse_log']:.3g} (log units)", file=sys.stdout)
    if adapted.has_intervals:
        print(f"  with prediction intervals ({adapted.provenance['intervals']['calibration']}): "
              "perfsage predict ... --interval 0.9", file=sys.stdout)
    print(f"Predict with: perfsage predict MODEL.tflite --target {args.out}", file=sys.stdout)
    return 0


def add_parser(sub: Any) -> None:
    adapt = sub.add_parser(
        "adapt", help="fit a predictor for a new device from a few of its measurements (10-20 models)",
        description="Makes a predictor for a device no predictor has seen from a handful of measured models "
                    f"(at least {MIN_ROWS}; `perfsage dataset import-csv` turns a CSV of measurements into the "
                    "dataset this reads). It starts from a base predictor: the new device's log cost starts as "
                    "the combination of the base's outputs that best fits the rows (ridge regression), then "
                    "every weight is fine-tuned on them (--epochs; 0 keeps that start alone).")
    adapt.add_argument("--base", default=DEFAULT_BASE, metavar="NAME_OR_FILE",
                       help=f"shipped base or predictor, or a .psage file, to start from (default {DEFAULT_BASE}: "
                            "one network trained on the latency of every device perfsage has labels of; shipped: "
                            f"{', '.join(shipped_bases() + shipped_predictors()) or 'none'})")
    adapt.add_argument("--data", metavar="DATASET",
                       help="dataset (.parquet file or directory) with the new device's measurements")
    adapt.add_argument("--target", action="append", metavar="NAME",
                       help="the new device's target (all its columns, e.g. my-board) or one column "
                            "(my-board/latency_ms); repeatable")
    adapt.add_argument("--out", metavar="FILE", help="where to write the new predictor (.psage)")
    adapt.add_argument("--choose", type=whole_number(MIN_ROWS), metavar="K",
                       help="adapt nothing: list which K of the candidate models given after it to measure first "
                            "(one from each of K equal parts of the base's predicted latency; "
                            "Predictor.choose_to_measure)")
    adapt.add_argument("choose_from", nargs="*", metavar="MODEL", help="with --choose: candidate .tflite files or "
                       "directories of them")
    adapt.add_argument("--epochs", type=whole_number(0), default=DEFAULT_EPOCHS,
                       help=f"fine-tuning epochs on the measured rows (default {DEFAULT_EPOCHS})")
    adapt.add_argument("--lr", type=float, help="fine-tuning learning rate (default: a tenth of the base's)")
    adapt.add_argument("--seed", type=int, default=None, help="seed of the fine-tuning's shuffles (default: the base's)")
    adapt.add_argument("--threads", type=int, default=0, help="threads (default: every core)")
    adapt.add_argument("--no-progress", action="store_true", help="no progress bar")
    adapt.set_defaults(run=run)
