"""``perfsage predict``: metrics per model from shipped or saved predictors, with --explain."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

from ._core import PerfSageError
from ._domain import npu_command_stream
from ._graphs import load_tflite
from ._intervals import SCOPES
from ._predictor import Predictor, load_predictor, shipped_predictors
from ._targets import SUMMARY_KEYS, predictor_settings
from .examples import EXAMPLE_NAME, example_model

DEFAULT_TARGET = "ethos-u55-256"
DEFAULT_TOP = 10


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


def _cell(metric: Dict[str, Any]) -> str:
    """A value with its unit, and its interval when there is one: ``1.2 ms [0.98 ms, 1.5 ms]``."""
    text = _format(metric["value"], metric["unit"])
    if "lower" in metric:
        text += f" [{_format(metric['lower'], metric['unit'])}, {_format(metric['upper'], metric['unit'])}]"
    return text


def _print_table(rows: List[Dict[str, Any]], out) -> None:
    metrics: List[str] = []
    for r in rows:
        metrics += [m for m in r["metrics"] if m not in metrics]
    headers = ["model", "target"] + metrics
    table = [[r["model"], r["target"]] + [_cell(r["metrics"][m]) if m in r["metrics"] else "-" for m in metrics]
             for r in rows]
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
    if row.get("operator_costs"):
        # The additive readout prices each operator: its predicted cost of every metric.
        print(f"\n{row['model']} on {row['target']}: each operator's predicted cost, by {first} (a model's "
              "latency, energy and traffic are its operators' sum plus a small constant; a peak is their maximum)",
              file=out)
        headers = ["#", "op", "MACs", f"{first} share"] + metrics
        table = [[str(o["index"]), o["op"], f"{o['macs']:,}", f"{100 * o['share'][first]:.1f}%"]
                 + [_format(o["contribution"][m], row["metrics"][m]["unit"]) for m in metrics] for o in row["explain"]]
    else:
        print(f"\n{row['model']} on {row['target']}: operators by share of {first} "
              f"(from the readout; shares of all operators sum to 100%)", file=out)
        headers = ["#", "op", "MACs"] + [f"{m} share" for m in metrics] + [first]
        table = [[str(o["index"]), o["op"], f"{o['macs']:,}"] + [f"{100 * o['share'][m]:.1f}%" for m in metrics]
                 + [_format(o["contribution"][first], row["metrics"][first]["unit"])] for o in row["explain"]]
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(headers)]
    for cells in [headers] + table:
        print("  ".join(c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))), file=out)


def model_paths(arguments: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Files as given, and each directory's ``*.tflite`` files (not recursive, sorted by name, as
    ``perfsage dataset label`` reads directories); plus an error for each directory without any."""
    paths: List[str] = []
    errors: List[str] = []
    for argument in arguments:
        folder = Path(argument)
        if folder.is_dir():
            found = sorted(str(p) for p in folder.glob("*.tflite") if p.is_file())
            paths += found
            if not found:
                errors.append(f"{argument}: a directory without .tflite files (subdirectories are not searched)")
        else:
            paths.append(argument)
    return paths, errors


def _warn_once_per_model(path: str, by_target: Dict[str, List[str]], out) -> None:
    """Each distinct warning about one model once, naming the targets only when not all have it."""
    targets: Dict[str, List[str]] = {}
    for target, warnings in by_target.items():
        for w in warnings:
            targets.setdefault(w, []).append(target)
    for w, which in targets.items():
        scope = "" if len(which) == len(by_target) else f" ({', '.join(which)})"
        print(f"perfsage: warning: {path}{scope}: {w}", file=out)


def _csv_rows(rows: List[Dict[str, Any]]) -> Tuple[List[str], List[List[Any]]]:
    """One row per model and target: values in their units (named in the header), the target's
    settings, and its warnings."""
    metrics: Dict[str, str] = {}
    for r in rows:
        for m, v in r["metrics"].items():
            metrics.setdefault(m, v["unit"])
    bounds = any("lower" in v for r in rows for v in r["metrics"].values())
    keys = ("value", "lower", "upper") if bounds else ("value",)
    header = ["model", "target"] + [f"{m}{'' if k == 'value' else ' ' + k}" + (f" [{u}]" if u else "")
                                    for m, u in metrics.items() for k in keys]
    header += list(SUMMARY_KEYS) + ["warnings"]
    table = [[r["model"], r["target"]] + [r["metrics"][m].get(k, "") if m in r["metrics"] else ""
                                          for m in metrics for k in keys]
             + [r["settings"].get(k, "") for k in SUMMARY_KEYS] + ["; ".join(r["warnings"])] for r in rows]
    return header, table


def run(args: argparse.Namespace) -> int:
    if not args.models and not args.example:
        raise ValueError("give one or more MODEL.tflite files or directories, or --example to predict a built-in "
                         "model")
    if args.top is not None and not args.explain:
        raise ValueError("--top sets how many operators --explain lists: add --explain")
    if args.explain and args.csv:
        raise ValueError("--explain lists operators in the table or in --json; CSV has one row per model and target")
    if args.interval_scope is not None and args.interval is None:
        raise ValueError("--interval-scope says which calibration --interval takes: add --interval LEVEL")
    if args.explain and args.interval is not None:
        raise ValueError("--interval comes with the predictions of the table, --json or --csv; leave out --explain")
    top = DEFAULT_TOP if args.top is None else args.top
    # The example is shown on every shipped target: it is there to show what perfsage predicts.
    targets = args.target or (shipped_predictors() if args.example else [DEFAULT_TARGET])
    predictors = []
    for t in targets:
        p = load_predictor(t)
        name = _target_name(p, t)
        if args.interval is not None and not p.has_intervals:
            raise ValueError(f"--interval: predictor {t} has no intervals (fit it with intervals=True)")
        predictors.append((name, p, predictor_settings(p, name)))
    paths, errors = model_paths(args.models)
    sources = ([(f"{EXAMPLE_NAME} (example)", example_model())] if args.example else []) + [(p, p) for p in paths]
    loaded = []
    for path, source in sources:
        try:
            graph = load_tflite(source)
        except (PerfSageError, OSError) as e:
            errors.append(str(e))
            continue
        compiled = npu_command_stream(graph)
        if compiled is not None:
            errors.append(f"{path}: {compiled}; predict the model given to Vela instead")
            continue
        loaded.append((path, graph))
    for e in errors:
        print(f"perfsage: error: {e}", file=sys.stderr)
    graphs = [g for _, g in loaded]
    # One batched call per predictor (explain works graph by graph).
    batch: List[Any] = []
    bounds: List[Any] = []
    for _, p, _ in predictors:
        if not graphs or args.explain:
            batch.append(None)
            bounds.append(None)
        elif args.interval is not None:
            predicted, lower, upper = p.predict(graphs, interval=args.interval, interval_scope=args.interval_scope)
            batch.append(predicted)
            bounds.append((lower, upper))
        else:
            batch.append(p.predict(graphs))
            bounds.append(None)
    rows: List[Dict[str, Any]] = []
    for i, (path, graph) in enumerate(loaded):
        by_target: Dict[str, List[str]] = {}
        for (name, p, settings), predicted, interval in zip(predictors, batch, bounds):
            if args.explain:
                ex = p.explain(graph, top=top)
                values, explain, warnings = ex.prediction, ex.operators, ex.warnings
            else:
                values, explain, warnings = dict(zip(p.output_names, predicted[i].tolist())), None, p.check(graph)
            row: Dict[str, Any] = {
                "model": str(path),
                "target": name,
                "metrics": {_split(n)[1]: {"value": float(v), "unit": u,
                                           **({"lower": float(interval[0][i, j]), "upper": float(interval[1][i, j])}
                                              if interval is not None else {})}
                            for j, ((n, v), u) in enumerate(zip(values.items(), p.units))},
                "settings": settings,
                "warnings": warnings,
            }
            if interval is not None:  # which calibration the bounds are of
                row["interval"] = {"level": args.interval, "scope": args.interval_scope or p.default_interval_scope}
            if explain is not None:
                row["operator_costs"] = p.is_additive
                row["explain"] = [{**o, "share": {_split(k)[1]: v for k, v in o["share"].items()},
                                   "contribution": {_split(k)[1]: v for k, v in o["contribution"].items()}}
                                  for o in explain]
            rows.append(row)
            by_target[name] = warnings
        if not args.quiet:
            _warn_once_per_model(str(path), by_target, sys.stderr)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif args.csv:
        header, table = _csv_rows(rows)
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(table)
    elif rows:
        _print_table(rows, sys.stdout)
        for r in rows if args.explain else []:
            _print_explanation(r, sys.stdout)
        if args.example:
            print(f"\n{EXAMPLE_NAME}: MLPerf Tiny's keyword-spotting DS-CNN (int8, 49x10 MFCC input), "
                  "written by perfsage. Add --explain to see which operators cost the most.\n"
                  "Your own model: perfsage predict model.tflite [--target NAME] "
                  f"(shipped targets: {', '.join(shipped_predictors())})", file=sys.stdout)
    return 1 if errors else 0


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum`` (0: non-negative, 1: positive)."""
    kind = {0: "a non-negative whole number", 1: "a positive whole number"}.get(minimum,
                                                                            f"a whole number >= {minimum}")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {value}")
        return value

    return parse


def add_parser(sub: Any) -> None:
    predict = sub.add_parser(
        "predict", help="predict latency, energy and memory of models on a target (no compile, no device)",
        description="Predicts each model's metrics with a shipped predictor (by target name) or a saved one "
                    f"(a .psage file). Shipped: {', '.join(shipped_predictors()) or 'none'}. Models unlike "
                    "the predictor's training data get a warning on stderr.")
    predict.add_argument("models", nargs="*", metavar="MODEL_OR_DIR",
                         help=".tflite files, or directories: each directory's *.tflite files, sorted by name "
                              "(not its subdirectories)")
    predict.add_argument("--example", action="store_true",
                         help=f"also predict a built-in model ({EXAMPLE_NAME}: MLPerf Tiny's keyword-spotting "
                              "DS-CNN, int8, written by perfsage), on every shipped target unless --target is given")
    predict.add_argument("--target", action="append", metavar="NAME_OR_FILE",
                         help=f"shipped target name or predictor file; repeatable (default {DEFAULT_TARGET})")
    output = predict.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true",
                        help="print JSON instead of a table: per model and target, the metrics with units, "
                             "the target's settings (accelerator, system config, ...) and warnings")
    output.add_argument("--csv", action="store_true",
                        help="print CSV instead of a table: one row per model and target, values in the units "
                             "named in the header, the target's settings and warnings")
    predict.add_argument("--explain", action="store_true",
                         help="also list the operators that account for most of each prediction")
    predict.add_argument("--top", type=whole_number(1), metavar="N",
                         help=f"operators listed by --explain (default {DEFAULT_TOP})")
    predict.add_argument("--interval", type=float, metavar="LEVEL",
                         help="also a calibrated interval per value at LEVEL (0.5-0.99, e.g. 0.9) from a predictor "
                              "fitted with intervals=True")
    predict.add_argument("--interval-scope", choices=SCOPES,
                         help="the calibration of --interval: per-space, at least LEVEL on every search space the "
                              "predictor was calibrated on and the hardest one's width for other models (the default "
                              "when it has it: the shipped ones do), or pooled, LEVEL on average over its "
                              "calibration rows")
    predict.add_argument("--quiet", "-q", action="store_true",
                         help="no warnings on stderr about models unlike the training data (--json and --csv "
                              "still carry them)")
    predict.set_defaults(run=run)
