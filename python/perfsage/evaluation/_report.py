"""The evaluation report: ``report.json`` (everything), ``report.md`` (tables, goals) and plots."""

from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._io import __version__, utc_timestamp
from ._gcn import GCN_DEFAULTS
from ._lodo import HELP_SPEARMAN_K10
from ._methods import AdaptMethod, method_class
from ._metrics import INTERVAL_LEVEL, INTERVAL_STATISTICS, SCOPED_INTERVAL_STATISTICS, STATISTICS, mape, within
from ._plots import make_plots, plots_unavailable
from ._records import load_predictions, write_json
from ._splits import loso_space

if TYPE_CHECKING:
    from ._evaluate import Runner

# Normal-noise constants for turning the relative interquartile range of repeats into an expected
# absolute deviation: IQR = 2·0.6745·σ, and E|X - median| = σ·sqrt(2/π) for a normal X.
_IQR_PER_SIGMA = 2 * 0.6744897501960817
_MEAN_ABS_PER_SIGMA = math.sqrt(2 / math.pi)
NOISE_PER_SPREAD = _MEAN_ABS_PER_SIGMA / _IQR_PER_SIGMA  # ≈ 0.5916

BASELINES = ("loglinear", "lookup", "lookup_ops", "gcn")


# ----------------------------------------------------------------------------------------------
# Derived numbers: LOSO means, measurement noise, goals


def loso_spaces(records: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, Dict[str, Dict[str, float]]]]]:
    """``{target: {method: {space: {metric: {statistic: mean over seeds, "mape_sd": standard
    deviation of the seeds' MAPE, "seeds": n}}}}}`` of the leave-one-space-out records (one seed
    each, unless ``perfsage evaluate --loso-seeds``)."""
    groups: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
    for r in records:
        if r["split"] == "loso":
            groups.setdefault((r["target"], r["method"], loso_space(r["part"])), []).append(r)
    out: Dict[str, Dict[str, Dict[str, Dict[str, Dict[str, float]]]]] = {}
    for (target, method, space), group in groups.items():
        out.setdefault(target, {}).setdefault(method, {})[space] = {
            m: {s: _mean([g["metrics"][m][s] for g in group]) for s in STATISTICS + SCOPED_INTERVAL_STATISTICS
                if s != "n" and all(s in g["metrics"][m] for g in group)}
            | {"mape_sd": float(np.std([_num(g["metrics"][m]["mape"]) for g in group])), "seeds": len(group)}
            for m in group[0]["metrics_order"]
        }
    return out


def loso_means(records: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, Dict[str, float]]]]:
    """``{target: {method: {metric: {statistic: mean over held-out spaces}}}}`` of each space's
    mean over seeds, with the number of spaces and of seeds, and the worst space's MAPE (its mean
    over seeds)."""
    out: Dict[str, Dict[str, Dict[str, Dict[str, float]]]] = {}
    for target, by_method in loso_spaces(records).items():
        for method, by_space in by_method.items():
            spaces = list(by_space.values())
            out.setdefault(target, {})[method] = {
                m: {s: _mean([space[m][s] for space in spaces]) for s in stats
                    if s not in ("mape_sd", "seeds") and all(s in space[m] for space in spaces)}
                | {"spaces": len(spaces), "seeds": min(space[m]["seeds"] for space in spaces),
                   "worst_mape": max(_num(space[m]["mape"]) for space in spaces)}
                for m, stats in spaces[0].items()
            }
    return out


# The leave-one-device-out statistics the report averages over the draws of each k.
LODO_STATISTICS = ("spearman", "kendall", "mape", "within_10")


def lodo_means(records: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, Dict[str, Dict[str, float]]]]]:
    """``{target: {method: {k: {metric: {statistic: mean over draws, statistic_sd: their standard
    deviation, "draws": n}}}}}`` of the leave-one-device-out records (k as a string, JSON keys)."""
    groups: Dict[Tuple[str, str, int], List[Dict[str, Any]]] = {}
    for r in records:
        if r["split"] == "lodo":
            k = int(r["part"].split()[0].split("=")[1])
            # Rows perfsage chose (--lodo-choose) are another row of the tables: "perfsage, chosen rows".
            method = f"{r['method']}, chosen rows" if " chosen " in r["part"] else r["method"]
            groups.setdefault((r["target"], method, k), []).append(r)
    out: Dict[str, Dict[str, Dict[str, Dict[str, Dict[str, float]]]]] = {}
    for (target, method, k), group in sorted(groups.items()):
        stats: Dict[str, Dict[str, float]] = {}
        for m in group[0]["metrics_order"]:
            values = {s: [_num(g["metrics"][m][s]) for g in group] for s in LODO_STATISTICS + INTERVAL_STATISTICS
                      if all(s in g["metrics"][m] for g in group)}
            stats[m] = {**{s: float(np.mean(v)) for s, v in values.items()},
                        **{f"{s}_sd": float(np.std(v)) for s, v in values.items()}, "draws": len(group)}
        out.setdefault(target, {}).setdefault(method, {})[str(k)] = stats
    return out


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _mean(values: Sequence[Any]) -> float:
    numbers = [_num(v) for v in values]
    return float(np.mean(numbers)) if numbers else float("nan")


def measurement_noise(runner: "Runner", records: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Repeat noise of measured targets (those with a ``{target}/latency_spread`` column, i.e. host-cpu)
    on the random split's test rows, as MAPE-comparable percentages."""
    out: Dict[str, Dict[str, Any]] = {}
    dataset = runner.data.dataset
    for r in records:
        target = r["target"]
        column, repeats_column = f"{target}/latency_spread", f"{target}/repeats"
        if r["split"] != "random" or target in out or column not in dataset.label_columns:
            continue
        rows = load_predictions(_record_path(runner, r))["rows"]
        spread = dataset.labels([column])[rows, 0]
        spread = spread[np.isfinite(spread)]
        if not spread.size:
            continue
        entry: Dict[str, Any] = {
            "column": column,
            "rows": int(spread.size),
            "median_spread_percent": float(np.median(spread) * 100),
            "repeat_noise_mape": float(np.mean(spread) * NOISE_PER_SPREAD * 100),
            "definition": (
                f"mean over the random split's test rows of {NOISE_PER_SPREAD:.4f} × latency_spread × 100, where "
                "latency_spread = (Q3 - Q1) / median of the timed repeats; for normal repeat noise IQR = 1.349 σ and "
                "E|x - median| = 0.798 σ, so this is the expected absolute percentage deviation of one timed "
                "invoke from the median label: the MAPE that timing a model once would score against the label"),
        }
        if repeats_column in dataset.label_columns:
            both = dataset.labels([column, repeats_column])[rows]
            both = both[np.all(np.isfinite(both), axis=1) & (both[:, 1] > 0)]
            # A median of R normal repeats has standard error 1.2533 σ / sqrt(R).
            floor = _MEAN_ABS_PER_SIGMA * 1.2533 * (both[:, 0] / _IQR_PER_SIGMA) / np.sqrt(both[:, 1])
            if floor.size:
                entry["median_label_noise_mape"] = float(np.mean(floor) * 100)
                entry["median_label_noise_definition"] = (
                    "mean of sqrt(2/π) × 1.2533 σ / sqrt(repeats) × 100 with σ = latency_spread / 1.349: the expected "
                    "absolute percentage error of the median label itself, a floor for any predictor if repeats "
                    "are independent (drift between runs comes on top)")
        out[target] = entry
    return out


def random_by_space(runner: "Runner", records: Sequence[Dict[str, Any]]
                    ) -> Dict[str, Dict[str, Dict[str, Dict[str, Dict[str, float]]]]]:
    """``{target: {method: {space: {metric: {"mape", "within_10", "n"}}}}}``: each method's
    random-split test rows scored per search space, for targets whose test rows span several
    spaces. One number over a mix of spaces hides which kind of model carries the error (on the
    world data, single operators of the op zoo against whole networks)."""
    out: Dict[str, Dict[str, Dict[str, Dict[str, Dict[str, float]]]]] = {}
    for r in records:
        if r["split"] != "random":
            continue
        stored = load_predictions(_record_path(runner, r))
        spaces = np.asarray(runner.data.spaces)[stored["rows"]]
        names = sorted(set(spaces.tolist()))
        if len(names) < 2:
            continue
        predicted = np.where(np.isfinite(stored["y_pred"]), stored["y_pred"], np.inf)  # as accuracy() scores them
        scores: Dict[str, Dict[str, Dict[str, float]]] = {}
        for space in names:
            mine = spaces == space
            scores[space] = {m: {"mape": mape(stored["y_true"][mine, j], predicted[mine, j]),
                                 "within_10": within(stored["y_true"][mine, j], predicted[mine, j], 0.10),
                                 "n": int(mine.sum())}
                             for j, m in enumerate(r["metrics_order"])}
        out.setdefault(r["target"], {})[r["method"]] = scores
    return out


def _record_path(runner: "Runner", record: Dict[str, Any]) -> Path:
    for unit in runner.plan:
        if (unit.target, unit.split.label, unit.method) == (record["target"], record["label"], record["method"]):
            return unit.record_path(runner.out)
    raise KeyError(f"no unit for record {record['target']} {record['label']} {record['method']}")


def _goal(goal: str, target: str, metric: str, value: Optional[float], threshold: float, higher_better: bool,
          detail: str = "") -> Dict[str, Any]:
    if value is None or not np.isfinite(value):
        met = None
    else:
        met = bool(value >= threshold) if higher_better else bool(value <= threshold)
    return {"goal": goal, "target": target, "metric": metric, "value": value, "threshold": threshold,
            "comparison": ">=" if higher_better else "<=", "met": met, "detail": detail}


def goals(records: Sequence[Dict[str, Any]], means: Dict[str, Any], noise: Dict[str, Dict[str, Any]],
          targets: Sequence[str], methods: Sequence[str],
          lodo: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """The project's accuracy goals that this run's results bear on, each met, missed or not evaluated."""
    by = {(r["target"], r["label"], r["method"]): r for r in records}
    lodo = lodo or {}
    out: List[Dict[str, Any]] = []
    for target in targets:
        metrics = next((r["metrics_order"] for r in records if r["target"] == target), [])

        def value(label: str, metric: str, stat: str) -> Optional[float]:
            r = by.get((target, label, "perfsage"))
            return None if r is None else r["metrics"][metric][stat]

        for metric in metrics:
            if target.startswith("ethos-u"):
                # Issue 14's goals for the per-operator network on the world data.
                if metric == "latency_ms":
                    out.append(_goal("Vela: random-split MAPE <= 1%", target, metric,
                                     value("random", metric, "mape"), 1.0, False))
                out.append(_goal("Vela: random split, >= 99.5% within ±10%", target, metric,
                                 value("random", metric, "within_10"), 99.5, True))
                mean = means.get(target, {}).get("perfsage", {}).get(metric)
                out.append(_goal("Vela: LOSO MAPE <= 8% (mean over held-out spaces)", target, metric,
                                 mean["mape"] if mean else None, 8.0, False,
                                 f"worst space {mean['worst_mape']:.2f}%" if mean else ""))
                out.append(_goal("Vela: LOSO MAPE <= 15% on every held-out space", target, metric,
                                 mean["worst_mape"] if mean else None, 15.0, False))
                if metric == "latency_ms":
                    out.append(_goal("real models: MAPE <= 10%", target, metric, value("real", metric, "mape"),
                                     10.0, False))
                    out.append(_goal("real models: >= 80% within ±10%", target, metric,
                                     value("real", metric, "within_10"), 80.0, True))
            elif any(r["target"] == target and r["split"] == "real" for r in records):
                out.append(_goal("real models: MAPE <= 10%", target, metric, value("real", metric, "mape"), 10.0, False))
            if target in noise and metric == "latency_ms":
                floor = noise[target].get("repeat_noise_mape")
                out.append(_goal("host-cpu: random-split MAPE <= 1.5 × repeat noise", target, metric,
                                 value("random", metric, "mape"), 1.5 * floor if floor else float("nan"), False,
                                 f"repeat noise {floor:.3f}% (see Measurement noise)" if floor else ""))
            if target.startswith("nb201-"):
                out.append(_goal("NB201: 900-shot MAPE <= 5%", target, metric, value("fewshot[k=900]", metric, "mape"),
                                 5.0, False))
                out.append(_goal("NB201: 900-shot Spearman >= 0.95", target, metric,
                                 value("fewshot[k=900]", metric, "spearman"), 0.95, True))
            adapted = lodo.get(target, {}).get("perfsage", {})
            for k, stat, threshold, higher, goal in (
                    ("10", "spearman", 0.95, True, "new device: Spearman >= 0.95 with 10 measurements"),
                    ("20", "mape", 10.0, False, "new device: MAPE <= 10% with 20 measurements")):
                if k in adapted:
                    s = adapted[k][metric]
                    out.append(_goal(goal, target, metric, s[stat], threshold, higher,
                                     f"mean of {s['draws']} draws, sd {s[stat + '_sd']:.3g}"))
            coverage = (by.get((target, "random", "perfsage")) or {}).get("metrics", {}).get(metric, {}).get("coverage")
            if coverage is not None:
                level = round(100 * INTERVAL_LEVEL)
                goal = _goal(f"intervals: {level}% intervals cover {level - 2}-{level + 2}% of the random split's "
                             "test models", target, metric, coverage, level - 2.0, True)
                goal.update(met=bool(level - 2 <= coverage <= level + 2), comparison="in", upper=level + 2.0)
                out.append(goal)
        out.append(_beats_goal(target, records, methods))
        if target in lodo:
            out.append(_lodo_beats_goal(target, lodo[target]))
    return out


def _lodo_beats_goal(target: str, lodo: Dict[str, Any]) -> Dict[str, Any]:
    """Adapted perfsage's MAPE (mean over draws) below every other method's on the same k rows, at every k."""
    goal = "new device: adapted perfsage beats every method on the same k rows (MAPE, mean over draws)"
    ours = lodo.get("perfsage", {})
    cases, missed = 0, []
    for k, stats in ours.items():
        for metric, s in stats.items():
            for method, theirs in lodo.items():
                if method == "perfsage" or k not in theirs:
                    continue
                cases += 1
                if not s["mape"] < theirs[k][metric]["mape"]:
                    missed.append(f"k={k} {metric}: {method} {theirs[k][metric]['mape']:.2f}% vs perfsage "
                                  f"{s['mape']:.2f}%")
    return _comparisons_goal(goal, target, cases, missed)


def _beats_goal(target: str, records: Sequence[Dict[str, Any]], methods: Sequence[str]) -> Dict[str, Any]:
    """perfsage's MAPE below every baseline's, on every split (each held-out space and size) and metric."""
    baselines = [m for m in methods if m != "perfsage"]
    goal = "perfsage beats every baseline on every split (MAPE)"
    if "perfsage" not in methods or not baselines:
        return _goal(goal, target, "all", None, 0, False, "needs perfsage and at least one baseline")
    by = {(r["label"], r["method"]): r for r in records if r["target"] == target and r["split"] != "lodo"}
    cases = 0
    missed: List[str] = []
    for (label, method), r in sorted(by.items()):
        if method != "perfsage":
            continue
        for metric, stats in r["metrics"].items():
            ours = _num(stats["mape"])
            for baseline in baselines:
                other = by.get((label, baseline))
                if other is None:
                    continue
                cases += 1
                theirs = _num(other["metrics"][metric]["mape"])
                if not ours < theirs:
                    missed.append(f"{label} {metric}: {baseline} {theirs:.2f}% vs perfsage {ours:.2f}%")
    return _comparisons_goal(goal, target, cases, missed)


def _comparisons_goal(goal: str, target: str, cases: int, missed: List[str]) -> Dict[str, Any]:
    """A goal over ``cases`` comparisons of which ``missed`` (described) were lost."""
    result = _goal(goal, target, "all", float(cases - len(missed)) if cases else None, float(cases), True,
                   ("missed: " + "; ".join(missed)) if missed else f"won all {cases} comparisons")
    result["value_meaning"] = "comparisons won (of threshold)"
    return result


# ----------------------------------------------------------------------------------------------
# Markdown


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _stats_rows(entries: Sequence[Tuple[str, str, Dict[str, Any]]]) -> List[List[str]]:
    return [[metric, method, _fmt(s["mape"]), _fmt(s["rmspe"]), _fmt(s["within_5"], 1), _fmt(s["within_10"], 1),
             _fmt(s["spearman"], 4), _fmt(s["kendall"], 4)] + ([_fmt(int(s["n"]))] if "n" in s else [])
            for metric, method, s in entries]


_STATS_HEADERS = ["metric", "method", "MAPE %", "RMSPE %", "±5 %", "±10 %", "Spearman", "Kendall"]


def _lodo_section(target: str, lodo: Dict[str, Any], methods: Sequence[str]) -> List[str]:
    """Leave one device out: per statistic, a table of methods by k (mean ± sd over the draws)."""
    sizes = sorted({int(k) for stats in lodo.values() for k in stats})
    any_stats = next(iter(next(iter(lodo.values())).values()))
    draws = any_stats[next(iter(any_stats))]["draws"]
    lines = ["### lodo: a new device from k measurements", "",
             f"Pretrained without {target}, adapted from k of its measured rows; mean ± standard deviation over "
             f"{draws} seeded draws of the rows per k; tested on the random split's test rows.", ""]
    names = {"spearman": ("Spearman", 3), "kendall": ("Kendall", 3), "mape": ("MAPE %", 2),
             "within_10": ("±10 %", 1), "coverage": (f"{round(100 * INTERVAL_LEVEL)}% intervals, coverage %", 1),
             "width": (f"{round(100 * INTERVAL_LEVEL)}% intervals, median width ×", 2)}
    for metric in any_stats:
        for stat, (title, digits) in names.items():
            rows = []
            # Each method, then the same on the rows perfsage chose (--lodo-choose), when scored.
            shown = [name for m in methods for name in (m, f"{m}, chosen rows")]
            for method in [m for m in shown if m in lodo and any(stat in by_k.get(metric, {})
                                                                for by_k in lodo[m].values())]:
                cells = []
                for k in sizes:
                    s = lodo[method].get(str(k), {}).get(metric)
                    cells.append(f"{_fmt(s[stat], digits)} ± {_fmt(s[stat + '_sd'], digits)}" if s and stat in s else "—")
                rows.append([method] + cells)
            if not rows:  # no method has this statistic (intervals not scored)
                continue
            if stat == "spearman" and target in HELP_SPEARMAN_K10 and 10 in sizes:
                rows.append(["HELP (published)"] + [_fmt(HELP_SPEARMAN_K10[target], 3) if k == 10 else "—"
                                                    for k in sizes])
            lines += [f"{metric}, {title}:", ""] + _table(["method"] + [f"k={k}" for k in sizes], rows) + [""]
    return lines


def _target_section(target: str, records: Sequence[Dict[str, Any]], means: Dict[str, Any],
                    methods: Sequence[str], lodo: Optional[Dict[str, Any]] = None,
                    by_space: Optional[Dict[str, Any]] = None) -> List[str]:
    mine = [r for r in records if r["target"] == target and r["split"] != "lodo"]
    lodo_lines = _lodo_section(target, lodo[target], methods) if lodo and target in lodo else []
    if not mine:
        return [f"## {target}", ""] + (lodo_lines or ["No results.", ""])
    metrics = mine[0]["metrics_order"]
    labels: List[str] = []
    # The overview has one column per held-out space, its mean ± sd over seeds when repeated.
    overview_labels: List[str] = []
    for r in mine:
        if r["label"] not in labels:
            labels.append(r["label"])
        overview = f"loso[{loso_space(r['part'])}]" if r["split"] == "loso" else r["label"]
        if overview not in overview_labels:
            overview_labels.append(overview)
    by = {(r["label"], r["method"]): r for r in mine}
    spaces = loso_spaces(mine).get(target, {})
    lines = [f"## {target}", "", "### MAPE (%) by split", ""]
    overview_labels += ["loso mean"] if target in means else []
    rows = []
    for metric in metrics:
        for method in methods:
            cells = []
            for label in overview_labels:
                space = (spaces.get(method, {}).get(label[len("loso["):-1], {}).get(metric)
                         if label.startswith("loso[") else None)
                if label == "loso mean":
                    cells.append(_fmt(means[target].get(method, {}).get(metric, {}).get("mape")))
                elif space and space["seeds"] > 1:
                    cells.append(f"{_fmt(space['mape'])} ± {_fmt(space['mape_sd'])}")
                else:
                    r = by.get((label, method))
                    cells.append(_fmt(r["metrics"][metric]["mape"]) if r else "—")
            rows.append([metric, method] + cells)
    lines += _table(["metric", "method"] + overview_labels, rows) + [""]
    seeds = max((s[metrics[0]]["seeds"] for by_space in spaces.values() for s in by_space.values()), default=1)
    if seeds > 1:
        lines += [f"Held-out spaces: mean ± standard deviation over {seeds} seeds (each another validation draw and "
                  "training seed; the sections below give every seed's split); the loso mean averages the spaces' "
                  "means.", ""]
    for label in labels:
        first = next(r for r in mine if r["label"] == label)
        times = ", ".join(f"{m} {by[(label, m)]['train_seconds']:.1f} s" for m in methods if (label, m) in by)
        what = "scored with the models trained on the random split" if first["split"] == "real" else (
            f"training {times}")
        lines += [f"### {label}", "",
                  f"Rows: train {first['n_train']:,}, val {first['n_val']:,}, test {first['n_test']:,}; {what}.", ""]
        entries = [(m, meth, by[(label, meth)]["metrics"][m]) for m in metrics for meth in methods if (label, meth) in by]
        lines += _table(_STATS_HEADERS + ["n test"], _stats_rows(entries)) + [""]
        if label == "random" and by_space:
            lines += _space_table(by_space, metrics, methods)
        operator_rows = [[m, meth, _fmt(s["share_mae"], 2), _fmt(s["top_match"], 1), _fmt(int(s["n"]))]
                         for meth in methods if (label, meth) in by
                         for m, s in (by[(label, meth)].get("operators") or {}).items()]
        if operator_rows:
            lines += ["Per-operator costs against the per-operator labels (Vela's per-layer estimates): mean "
                      "absolute error of each operator's share of its model's total, in percentage points, and "
                      "the share of models whose 3 costliest operators are the same.", ""]
            lines += _table(["metric", "method", "share MAE pp", "top-3 match %", "models"], operator_rows) + [""]
    scored = [(label, m, meth, s) for label in labels for meth in methods if (label, meth) in by
              for m, s in by[(label, meth)]["metrics"].items()]
    scored += [("loso mean", m, meth, s) for meth, stats in means.get(target, {}).items() for m, s in stats.items()]
    interval_rows = [[label, m, meth + scope, _fmt(s["coverage" + suffix], 1), _fmt(s["width" + suffix], 2),
                      _fmt(s["width_error_spearman" + suffix], 3)]
                     for label, m, meth, s in scored for suffix, scope in (("", ""), ("_per_space", ", per-space"))
                     if "coverage" + suffix in s]
    if interval_rows:
        lines += [f"### intervals at {round(100 * INTERVAL_LEVEL)}%", "",
                  "Coverage: percent of the test models whose true value is inside their interval; width: the "
                  "median of upper / lower; Spearman: between each interval's log width and its prediction's "
                  "absolute log error (positive: wider where the error is larger). perfsage's intervals are "
                  "calibrated on the validation rows pooled, and, with \", per-space\", at each level on the "
                  "validation rows' hardest search space (perfsage._intervals).", ""]
        lines += _table(["split", "metric", "method", "coverage %", "width ×", "Spearman(width, error)"],
                        interval_rows) + [""]
    if target in means:
        first = next(iter(means[target].values()))[metrics[0]]
        over = f", each first averaged over its {first['seeds']} seeds" if first["seeds"] > 1 else ""
        lines += ["### loso mean", "", f"Each statistic averaged over the {first['spaces']} held-out spaces{over}.", ""]
        entries = [(m, meth, means[target][meth][m]) for m in metrics for meth in methods if meth in means[target]]
        lines += _table(_STATS_HEADERS, _stats_rows(entries)) + [""]
    return lines + lodo_lines


def _space_table(by_space: Dict[str, Dict[str, Dict[str, Dict[str, float]]]], metrics: Sequence[str],
                 methods: Sequence[str]) -> List[str]:
    """The random split's test rows by search space: each method's MAPE (within ±10%)."""
    shown = [m for m in methods if m in by_space]
    spaces = sorted({space for scores in by_space.values() for space in scores})
    rows = []
    for metric in metrics:
        for space in spaces:
            cells = [by_space[m].get(space, {}).get(metric) for m in shown]
            n = next(c["n"] for c in cells if c)
            rows.append([metric, space, _fmt(n)] + [f"{_fmt(c['mape'])} ({_fmt(c['within_10'], 1)})" if c else "—"
                                                    for c in cells])
    return (["By search space: MAPE % (in brackets, % of models within ±10 %) on the same test rows.", ""]
            + _table(["metric", "space", "n test"] + shown, rows) + [""])


def _goal_lines(goal_list: Sequence[Dict[str, Any]]) -> List[str]:
    rows = []
    for g in goal_list:
        status = {True: "**met**", False: "**missed**", None: "not evaluated"}[g["met"]]
        if g["metric"] == "all":
            value = f"{_fmt(g['value'], 0)} of {_fmt(g['threshold'], 0)} won" if g["value"] is not None else "n/a"
        elif g["comparison"] == "in":
            value = f"{_fmt(g['value'], 3)} in [{_fmt(g['threshold'], 1)}, {_fmt(g['upper'], 1)}]"
        else:
            value = f"{_fmt(g['value'], 3)} {g['comparison']} {_fmt(g['threshold'], 3)}"
        rows.append([g["goal"], g["target"], g["metric"], value, status, g["detail"] or ""])
    return _table(["goal", "target", "metric", "value", "status", "detail"], rows)


def markdown(data: Dict[str, Any], records: Sequence[Dict[str, Any]]) -> str:
    options = data["options"]
    methods = options["methods"]
    ds = data["dataset"]
    lines = [
        "# perfsage evaluation", "",
        f"- command: `{data['command']}`",
        f"- perfsage {data['perfsage_version']}, report written {data['generated_at']} on {data['host']}",
        f"- seed {options['seed']}; splits {', '.join(options['splits'])}; methods {', '.join(methods)}"
        + (f"; few-shot sizes {', '.join(map(str, options['fewshot_sizes']))}" if "fewshot" in options["splits"] else ""),
        f"- this run took {data['seconds_this_run']:.0f} s (units finished before were reused)", "",
        "## Dataset", "",
        f"`{ds['path']}`: {ds['rows']:,} rows" + (f", {ds['rows_used']:,} used (--limit, seeded)" if ds['rows_used'] != ds['rows'] else "")
        + f"; spaces {', '.join(f'{k} {v:,}' for k, v in ds['spaces'].items())}; dtypes "
        + ", ".join(f"{k} {v:,}" for k, v in ds["dtypes"].items()) + ".",
        "",
    ]
    for target, n in ds["usable_rows"].items():
        source = ds["label_sources"].get(target, {})
        lines.append(f"- {target}: {n:,} labelled rows used; labels from "
                     + (", ".join(f"{k} {v}" for k, v in source.items()) or "(no source recorded)"))
    if data.get("real_dataset"):
        real = data["real_dataset"]
        lines += ["", f"Real models: `{real['path']}`, {real['rows']:,} rows; labelled rows per target: "
                  + ", ".join(f"{t} {n:,}" for t, n in real["usable_rows"].items()) + "."]
    lines += ["", "## Methods", ""]
    for name in methods:
        lines.append(f"- **{name}**: {data['methods'][name]}")
    if "lodo" in options["splits"]:
        lines.append(f"- **perfsage on lodo**: {AdaptMethod.summary}"
                     + (f" Base: {options['lodo_base']}." if options.get("lodo_base") else ""))
    for target, recipe in data["recipes"].items():
        lines.append(f"- perfsage recipe for {target}: metrics {', '.join(recipe['metrics'])}; epochs "
                     f"{recipe['epochs']}; hyperparameters {recipe['hyperparameters'] or 'library defaults'}")
    if options.get("perfsage"):
        lines.append(f"- perfsage hyperparameters set over the recipes (--perfsage): {options['perfsage']}")
    if "gcn" in methods:
        lines.append(f"- gcn settings: {data['gcn_settings']}")
    lines += ["", "Statistics: MAPE and RMSPE in percent of the true value; ±5 % / ±10 %: share of test models "
              "predicted within 5 % / 10 %; Spearman (average ranks for ties) and Kendall tau-b between true and "
              "predicted values. Splits: random 80/10/10; loso: train (90/10) on all other search spaces, test on "
              "every row of the held-out one; fewshot k: k training rows + max(10, k/10) validation rows from the "
              "random split's training part, test on all other rows; real: the random split's models on the real-"
              "model dataset; ophold OP: train (90/10) on the models without operator type OP, test on those with "
              "it; lodo k: a network pretrained without the device (never on the random split's test rows) and k "
              "of its measured rows from the random split's training part, no validation rows, test on the random "
              "split's test rows, several seeded draws per k.", "", "## Goals", ""]
    lines += _goal_lines(data["goals"]) + [""]
    if data["noise"]:
        lines += ["## Measurement noise", ""]
        for target, n in data["noise"].items():
            lines.append(f"- {target}: repeat noise {_fmt(n['repeat_noise_mape'], 3)}% over {n['rows']:,} test rows "
                         f"(median latency_spread {_fmt(n['median_spread_percent'], 2)}%): {n['definition']}.")
            if n.get("median_label_noise_mape") is not None:
                lines.append(f"  Noise of the median label itself: {_fmt(n['median_label_noise_mape'], 3)}% "
                             f"({n['median_label_noise_definition']}).")
        lines.append("")
    lines += ["# Results", ""]
    for target in options["targets"]:
        lines += _target_section(target, records, data["loso_mean"], methods, data.get("lodo"),
                                 data.get("random_by_space", {}).get(target))
    lines += ["## Timings", "", "Seconds per unit (training; prediction of the test rows).", ""]
    rows = [[r["target"], r["label"], r["method"], _fmt(r["train_seconds"], 1), _fmt(r["predict_seconds"], 2),
             _fit_summary(r)] for r in records]
    lines += _table(["target", "split", "method", "train s", "predict s", "training"], rows) + [""]
    if data["plots"]:
        lines += ["## Plots", ""]
        for plot in data["plots"]:
            lines += [f"![{plot}]({plot})", ""]
    if data["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in data["notes"]] + [""]
    return "\n".join(lines)


def _fit_summary(record: Dict[str, Any]) -> str:
    fit = record.get("fit") or {}
    if "adapt" in fit:
        return f"adapted from {fit['adapt']['rows']} rows, {fit['adapt']['epochs']} epochs"
    if "epochs_run" in fit:
        text = f"{fit['epochs_run']} epochs" + (f", best {fit['best_epoch']}" if fit.get("best_epoch") else "")
        if fit.get("median_epoch_seconds") is not None:
            text += f", {fit['median_epoch_seconds']:.1f} s per epoch"
        return text
    if "kernel_keys" in fit:
        return f"{fit['kernel_keys']} kernels, {fit['op_type_keys']} op types"
    used = (record.get("prediction") or {}).get("nodes_by_table")
    if used:
        return "nodes per table: " + ", ".join(f"{k} {v}" for k, v in used.items())
    return ""


# ----------------------------------------------------------------------------------------------
# Writing


def write_report(runner: "Runner", records: List[Dict[str, Any]], seconds: float) -> Dict[str, Any]:
    options = runner.options
    out = runner.out
    means = loso_means(records)
    lodo = lodo_means(records)
    noise = measurement_noise(runner, records)
    notes = list(runner.notes)
    plots: List[str] = []
    missing = plots_unavailable()
    if missing is not None:
        notes.append(f"plots skipped: {missing} (pip install matplotlib)")
        print(notes[-1], file=runner.log)
    else:
        plots = make_plots(runner, records)
    data: Dict[str, Any] = {
        "perfsage_version": __version__,
        "command": options.command,
        "generated_at": utc_timestamp("seconds"),
        "host": platform.node(),
        "seconds_this_run": round(seconds, 1),
        "options": {"dataset": options.dataset, "targets": options.targets, "splits": options.splits,
                    "methods": options.methods, "real": options.real, "epochs": options.epochs, "seed": options.seed,
                    "fewshot_sizes": options.fewshot_sizes, "holdout_ops": options.holdout_ops,
                    "loso_seeds": options.loso_seeds,
                    "lodo_sizes": options.lodo_sizes, "lodo_draws": options.lodo_draws,
                    "lodo_choose": options.lodo_choose, "lodo_base": options.lodo_base,
                    "lodo_base_epochs": options.lodo_base_epochs, "adapt_epochs": options.adapt_epochs,
                    "intervals": options.intervals,
                    "limit": options.limit, "threads": options.threads,
                    "gcn": options.gcn, "perfsage": options.perfsage},
        "dataset": runner.data.describe(),
        "real_dataset": runner.real.describe() if runner.real is not None else None,
        "methods": {m: method_class(m).summary for m in options.methods},
        "recipes": {t: {"metrics": list(r.metrics), "epochs": options.epochs or r.epochs,
                        "hyperparameters": r.hyperparameters} for t, r in runner.recipes.items()},
        "gcn_settings": {**GCN_DEFAULTS, **options.gcn},
        "notes": notes,
        "loso_mean": means,
        "random_by_space": random_by_space(runner, records),
        "lodo": lodo,
        "noise": noise,
        "goals": goals(records, means, noise, options.targets, options.methods, lodo),
        "plots": plots,
        "units": records,
    }
    write_json(out / "report.json", data)
    text = markdown(data, records)
    (out / "report.md").write_text(text + "\n")
    print(f"wrote {out / 'report.md'}, {out / 'report.json'} and {len(plots)} plots", file=runner.log, flush=True)
    return data
