"""``perfsage adapt``: a predictor for a new device from a handful of its measurements."""

from __future__ import annotations

import inspect
import sys
import time
from typing import Any

from ._adapt import MIN_ROWS
from ._predictor import Predictor, load_predictor, shipped_predictors
from ._predict_cli import DEFAULT_TARGET, whole_number

DEFAULT_EPOCHS = inspect.signature(Predictor.adapt).parameters["epochs"].default


def run(args: Any) -> int:
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
    adapt.add_argument("--base", default=DEFAULT_TARGET, metavar="NAME_OR_FILE",
                       help=f"shipped predictor or .psage file to start from (default {DEFAULT_TARGET}; shipped: "
                            f"{', '.join(shipped_predictors()) or 'none'})")
    adapt.add_argument("--data", required=True, metavar="DATASET",
                       help="dataset (.parquet file or directory) with the new device's measurements")
    adapt.add_argument("--target", required=True, action="append", metavar="NAME",
                       help="the new device's target (all its columns, e.g. my-board) or one column "
                            "(my-board/latency_ms); repeatable")
    adapt.add_argument("--out", required=True, metavar="FILE", help="where to write the new predictor (.psage)")
    adapt.add_argument("--epochs", type=whole_number(0), default=DEFAULT_EPOCHS,
                       help=f"fine-tuning epochs on the measured rows (default {DEFAULT_EPOCHS})")
    adapt.add_argument("--lr", type=float, help="fine-tuning learning rate (default: a tenth of the base's)")
    adapt.add_argument("--seed", type=int, default=None, help="seed of the fine-tuning's shuffles (default: the base's)")
    adapt.add_argument("--threads", type=int, default=0, help="threads (default: every core)")
    adapt.add_argument("--no-progress", action="store_true", help="no progress bar")
    adapt.set_defaults(run=run)
