"""``perfsage predict``: metrics per model from shipped or saved predictors, with --explain."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Tuple

from ._core import PerfSageError
from ._graphs import load_tflite
from ._predictor import Predictor, load_predictor, shipped_predictors
from .examples import EXAMPLE_NAME, example_model

DEFAULT_TARGET = "ethos-u55-256"


def _format(value: float, unit: str) -> str:
    if unit == "bytes":
        for suffix, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value >= scale:
                return f"{value / scale:.1f} {suffix}"
        return f"{value:.0f} B"
    return f"{value:.4g} {unit}".rstrip()


def _split(name: str) -> Tuple[str, str]:
    """``"ethos-u55-256/latency_ms"`` -> ("ethos-u55-256", "latency_ms"); a bare name has no target."""
    target, _, metric = name.rpartition("/")
    return target, metric


def _target_name(predictor: Predictor, given: str) -> str:
    targets = {_split(n)[0] for n in predictor.output_names}
    return targets.pop() if len(targets) == 1 and "" not in targets else given


def _print_table(rows: List[Dict[str, Any]], out) -> None:
    metrics: List[str] = []
    for r in rows:
        metrics += [m for m in r["metrics"] if m not in metrics]
    headers = ["model", "target"] + metrics
    table = [[r["model"], r["target"]] + [
        _format(r["metrics"][m]["value"], r["metrics"][m]["unit"]) if m in r["metrics"] else "-" for m in metrics
    ] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]

    def line(cells: List[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(headers), file=out)
    print(line(["-" * w for w in widths]), file=out)
    for t in table:
        print(line(t), file=out)


def _print_explanation(row: Dict[str, Any], out) -> None:
    metrics = list(row["metrics"])
    first = metrics[0]
    print(f"\n{row['model']} on {row['target']}: operators by share of {first} "
          f"(from the readout; shares of all operators sum to 100%)", file=out)
    headers = ["#", "op", "MACs"] + [f"{m} share" for m in metrics] + [first]
    table = [[str(o["index"]), o["op"], f"{o['macs']:,}"] + [f"{100 * o['share'][m]:.1f}%" for m in metrics]
             + [_format(o["contribution"][first], row["metrics"][first]["unit"])] for o in row["explain"]]
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(headers)]
    for cells in [headers] + table:
        print("  ".join(c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))), file=out)


def run(args: argparse.Namespace) -> int:
    if not args.models and not args.example:
        raise SystemExit("perfsage predict: give one or more MODEL.tflite files, or --example "
                         "to predict a built-in model")
    # The example is shown on every shipped target: it is there to show what perfsage predicts.
    targets = args.target or (shipped_predictors() if args.example else [DEFAULT_TARGET])
    predictors = []
    for t in targets:
        p = load_predictor(t)
        predictors.append((_target_name(p, t), p))
    sources = ([(f"{EXAMPLE_NAME} (example)", example_model())] if args.example else []) + [
        (path, path) for path in args.models]
    loaded = []
    for name, source in sources:
        try:
            loaded.append((name, load_tflite(source)))
        except (PerfSageError, OSError) as e:
            print(f"perfsage: error: {e}", file=sys.stderr)
    failed = len(sources) - len(loaded)
    graphs = [g for _, g in loaded]
    # One batched call per predictor (explain works graph by graph).
    batch = [p.predict(graphs) if graphs and not args.explain else None for _, p in predictors]
    rows: List[Dict[str, Any]] = []
    for i, (path, graph) in enumerate(loaded):
        for (name, p), predicted in zip(predictors, batch):
            if args.explain:
                ex = p.explain(graph, top=args.top)
                values, explain, warnings = ex.prediction, ex.operators, ex.warnings
            else:
                values, explain, warnings = dict(zip(p.output_names, predicted[i].tolist())), None, p.check(graph)
            row: Dict[str, Any] = {
                "model": str(path),
                "target": name,
                "metrics": {_split(n)[1]: {"value": float(v), "unit": u}
                            for (n, v), u in zip(values.items(), p.units)},
                "warnings": warnings,
            }
            if explain is not None:
                row["explain"] = [{**o, "share": {_split(k)[1]: v for k, v in o["share"].items()},
                                   "contribution": {_split(k)[1]: v for k, v in o["contribution"].items()}}
                                  for o in explain]
            rows.append(row)
            for w in warnings:
                print(f"perfsage: warning: {path} ({name}): {w}", file=sys.stderr)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif rows:
        _print_table(rows, sys.stdout)
        for r in rows if args.explain else []:
            _print_explanation(r, sys.stdout)
        if args.example:
            print(f"\n{EXAMPLE_NAME}: MLPerf Tiny's keyword-spotting DS-CNN (int8, 49x10 MFCC input), "
                  "written by perfsage. Add --explain to see which operators cost the most.\n"
                  "Your own model: perfsage predict model.tflite [--target NAME] "
                  f"(shipped targets: {', '.join(shipped_predictors())})", file=sys.stdout)
    return 1 if failed else 0


def add_parser(sub: Any) -> None:
    predict = sub.add_parser(
        "predict", help="predict latency, energy and memory of models on a target (no compile, no device)",
        description="Predicts each model's metrics with a shipped predictor (by target name) or a saved one "
                    f"(a .psage file). Shipped: {', '.join(shipped_predictors()) or 'none'}. Models unlike "
                    "the predictor's training data get a warning on stderr.")
    predict.add_argument("models", nargs="*", metavar="MODEL.tflite", help="models to predict")
    predict.add_argument("--example", action="store_true",
                         help=f"also predict a built-in model ({EXAMPLE_NAME}: MLPerf Tiny's keyword-spotting "
                              "DS-CNN, int8, written by perfsage), on every shipped target unless --target is given")
    predict.add_argument("--target", action="append", metavar="NAME_OR_FILE",
                         help=f"shipped target name or predictor file; repeatable (default {DEFAULT_TARGET})")
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.add_argument("--explain", action="store_true",
                         help="also list the operators that account for most of each prediction")
    predict.add_argument("--top", type=int, default=10, help="operators listed by --explain (default 10)")
    predict.set_defaults(run=run)
