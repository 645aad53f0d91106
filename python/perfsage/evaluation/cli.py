"""``perfsage evaluate``: the command-line front of :func:`perfsage.evaluation.evaluate`.

``add_parser(subparsers)`` adds the subcommand to perfsage's argparse parser; ``run(args)`` carries
it out and returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any, List

from ._evaluate import EvaluationOptions, evaluate
from ._gcn import GCN_DEFAULTS
from ._lodo import DEFAULT_BASE_EPOCHS
from ._methods import method_names
from ._splits import DEFAULT_SPLITS, SPLIT_NAMES


def _names(text: str) -> List[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _sizes(text: str) -> List[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _setting(text: str) -> tuple:
    """KEY=VALUE, the value read as JSON where it parses (3, 0.5, true) and as a string otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``evaluate`` to an argparse subparsers object; returns its parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="accuracy of perfsage against baselines on the protocol's splits (report, JSON, plots)",
        description="Trains perfsage (from the target's recipe) and the baselines (log-linear MACs/params "
        "regression, nn-Meter-style kernel lookup table fitted on model labels (lookup) or on per-operator labels "
        "(lookup_ops), BRP-NAS-style GCN) on the same rows of each split, "
        "scores them (MAPE, RMSPE, within ±5%/±10%, Spearman, Kendall) and writes OUT/report.md, "
        "OUT/report.json and plots. Every finished unit is saved under OUT/units at once: run the same "
        "command again to resume after a kill.",
    )
    parser.add_argument("dataset", metavar="DATASET", help="labelled dataset (directory of shards or .parquet)")
    parser.add_argument("--target", action="append", required=True, help="target to evaluate (repeat for several)")
    parser.add_argument("--out", required=True, help="output directory (created; resumed when it holds units)")
    parser.add_argument("--splits", type=_names, default=list(DEFAULT_SPLITS),
                        help=f"comma-separated, of {','.join(SPLIT_NAMES)} (default: {','.join(DEFAULT_SPLITS)})")
    parser.add_argument("--real", help="dataset of real models labelled on the same target(s), for the real split")
    parser.add_argument("--methods", type=_names, default=method_names(),
                        help=f"comma-separated, of {','.join(method_names())} (default: all)")
    parser.add_argument("--epochs", type=int, help="perfsage training epochs (default: the target's recipe)")
    parser.add_argument("--loso-epochs", type=int,
                        help="perfsage epochs on the leave-one-space-out splits (default: as --epochs)")
    parser.add_argument("--loso-seeds", type=int, default=1, metavar="N",
                        help="leave-one-space-out: hold out each space at N seeds (each another validation draw and "
                             "training seed), reported as mean ± sd (default 1)")
    parser.add_argument("--predictors", metavar="DIR",
                        help="score DIR/{target}.psage on the random split instead of training perfsage there "
                             "(e.g. python/perfsage/predictors: the shipped files, trained on that split)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits and of every method (default 0)")
    parser.add_argument("--fewshot-sizes", type=_sizes, default=[100, 900],
                        help="training-set sizes of the few-shot split (default 100,900)")
    parser.add_argument("--holdout-ops", type=_names, metavar="OP,OP,...",
                        help="operator types the ophold split holds out, one split each (e.g. TRANSPOSE_CONV,"
                             "DEPTH_TO_SPACE; default: the 6 rarest of those in 2-50%% of the models)")
    parser.add_argument("--lodo-sizes", type=_sizes, default=[5, 10, 20, 50, 100],
                        help="leave-one-device-out: the new device's numbers of measured rows (default 5,10,20,50,100)")
    parser.add_argument("--lodo-draws", type=int, default=3,
                        help="leave-one-device-out: seeded draws of the rows per size (default 3)")
    parser.add_argument("--lodo-choose", action="store_true",
                        help="leave-one-device-out: also score the rows perfsage chooses to measure "
                             "(Predictor.choose_to_measure: one per stratum of the base's predicted latency), "
                             "per size and draw, beside the random draws")
    parser.add_argument("--lodo-base", metavar="NAME_OR_FILE",
                        help="leave-one-device-out: adapt from this predictor (shipped name or .psage file) instead "
                             "of one pretrained on the other --target's labels")
    parser.add_argument("--lodo-base-epochs", type=int,
                        help=f"leave-one-device-out: epochs of the pretrained base (default {DEFAULT_BASE_EPOCHS})")
    parser.add_argument("--adapt-epochs", type=int,
                        help="leave-one-device-out: Predictor.adapt's fine-tuning epochs (default: adapt's)")
    parser.add_argument("--intervals", action="store_true",
                        help="fit perfsage with intervals=True (a companion network, calibrated on the validation "
                             "rows) and score its 90%% intervals: coverage, width and their correlation with the error")
    parser.add_argument("--perfsage", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="perfsage hyperparameter over the target's recipe, e.g. readout=additive (repeat for "
                             "several; see perfsage.NETWORK_DEFAULTS and TRAINING_DEFAULTS)")
    parser.add_argument("--limit", type=int, help="use only LIMIT rows of the dataset (a seeded random subset)")
    parser.add_argument("--threads", type=int, default=0, help="threads for graphs and perfsage (default 0: every core)")
    parser.add_argument("--gcn-hidden", type=int, default=GCN_DEFAULTS["hidden"],
                        help=f"GCN hidden width (default {GCN_DEFAULTS['hidden']})")
    parser.add_argument("--gcn-epochs", type=int, default=GCN_DEFAULTS["epochs"],
                        help=f"GCN epochs (default {GCN_DEFAULTS['epochs']})")
    parser.add_argument("--no-progress", action="store_true", help="no training progress bars")
    parser.set_defaults(run=run)
    return parser


def command_line(args: argparse.Namespace) -> str:
    """The command, spelt out with every option's value (as it was given or defaulted)."""
    words = ["perfsage", "evaluate", args.dataset]
    for target in args.target:
        words += ["--target", target]
    words += ["--out", str(args.out), "--splits", ",".join(args.splits), "--methods", ",".join(args.methods),
              "--seed", str(args.seed), "--threads", str(args.threads)]
    if args.real:
        words += ["--real", args.real]
    if args.epochs is not None:
        words += ["--epochs", str(args.epochs)]
    if args.loso_epochs is not None:
        words += ["--loso-epochs", str(args.loso_epochs)]
    if args.loso_seeds != 1 and "loso" in args.splits:
        words += ["--loso-seeds", str(args.loso_seeds)]
    if args.predictors:
        words += ["--predictors", args.predictors]
    if "fewshot" in args.splits:
        words += ["--fewshot-sizes", ",".join(map(str, args.fewshot_sizes))]
    for key, value in args.perfsage:
        words += ["--perfsage", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    if "lodo" in args.splits:
        words += ["--lodo-sizes", ",".join(map(str, args.lodo_sizes)), "--lodo-draws", str(args.lodo_draws)]
        if args.lodo_choose:
            words += ["--lodo-choose"]
        for flag, value in (("--lodo-base", args.lodo_base), ("--lodo-base-epochs", args.lodo_base_epochs),
                            ("--adapt-epochs", args.adapt_epochs)):
            if value is not None:
                words += [flag, str(value)]
    if args.intervals:
        words += ["--intervals"]
    if args.holdout_ops and "ophold" in args.splits:
        words += ["--holdout-ops", ",".join(args.holdout_ops)]
    if args.limit is not None:
        words += ["--limit", str(args.limit)]
    if "gcn" in args.methods:
        words += ["--gcn-hidden", str(args.gcn_hidden), "--gcn-epochs", str(args.gcn_epochs)]
    return " ".join(shlex.quote(w) for w in words)


def run(args: argparse.Namespace) -> int:
    """Carries out ``perfsage evaluate``; 0 on success, 130 when interrupted (finished units are kept)."""
    if args.gcn_hidden < 1 or args.gcn_epochs < 1:
        raise ValueError(f"--gcn-hidden and --gcn-epochs must be >= 1, got {args.gcn_hidden} and {args.gcn_epochs}")
    gcn = {k: v for k, v in (("hidden", args.gcn_hidden), ("epochs", args.gcn_epochs)) if v != GCN_DEFAULTS[k]}
    options = EvaluationOptions(
        dataset=args.dataset, targets=list(args.target), out=Path(args.out), splits=list(args.splits),
        methods=list(args.methods), real=args.real, epochs=args.epochs, loso_epochs=args.loso_epochs,
        loso_seeds=args.loso_seeds,
        predictors=Path(args.predictors) if args.predictors else None, seed=args.seed,
        fewshot_sizes=list(args.fewshot_sizes), holdout_ops=list(args.holdout_ops) if args.holdout_ops else None,
        lodo_sizes=list(args.lodo_sizes), lodo_draws=args.lodo_draws, lodo_choose=args.lodo_choose,
        lodo_base=args.lodo_base,
        lodo_base_epochs=args.lodo_base_epochs, adapt_epochs=args.adapt_epochs, intervals=args.intervals,
        limit=args.limit, threads=args.threads, gcn=gcn, perfsage=dict(args.perfsage),
        progress=not args.no_progress,
    )
    options.command = command_line(args)
    try:
        evaluate(options)
    except KeyboardInterrupt:
        print(f"perfsage: interrupted; finished units are in {Path(args.out) / 'units'}: run the same command "
              "to resume", file=sys.stderr)
        return 130
    return 0
