"""Plots of the random split (matplotlib, small PNGs): predicted vs true, error CDF, and error vs
model size, three files per target.

Figures are made with matplotlib's object API (``Figure``, rendered to files), not pyplot, so that
plotting never touches the global backend of a notebook that runs an evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._records import load_predictions, safe_name

if TYPE_CHECKING:
    from ._evaluate import Runner

DPI = 100
# Font sizes in points, large enough to read when the PNG is shown at its pixel size.
TITLE_SIZE = 11
LABEL_SIZE = 10
TICK_SIZE = 9
SUPTITLE_SIZE = 13
COLORS = {"perfsage": "#1f77b4", "loglinear": "#ff7f0e", "lookup": "#2ca02c", "gcn": "#d62728"}

Series = Dict[str, Dict[str, np.ndarray]]  # method -> {"y_true", "y_pred", "macs"}


def _random_split_predictions(runner: "Runner", records: Sequence[Dict[str, Any]], target: str) -> Series:
    out: Series = {}
    for unit in runner.plan:
        if unit.target == target and unit.split.name == "random":
            if any(r["target"] == target and r["label"] == "random" and r["method"] == unit.method for r in records):
                out[unit.method] = load_predictions(unit.record_path(runner.out))
    return out


def _figure(**options: Any) -> Any:
    """A new matplotlib Figure. matplotlib is imported here, when the first plot is drawn, and not
    with this module: it is heavy, every ``perfsage`` command imports perfsage.evaluation to build
    its parser, and the report goes on without plots when it is missing."""
    from matplotlib.figure import Figure  # heavy, optional for the report: see the docstring

    return Figure(**options)


def plots_unavailable() -> Optional[str]:
    """Why plots cannot be drawn (matplotlib does not import), or None when they can."""
    try:
        _figure()
    except ImportError as e:
        return str(e)
    return None


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def predicted_vs_true(path: Path, target: str, metrics: Sequence[str], series: Series) -> None:
    """Grid of log-log scatter plots: rows = metrics, columns = methods, with the y = x line.

    Every panel carries its own axis labels: each row has its own metric, and a panel read alone
    (as in a slide) must still say what it shows."""
    methods = list(series)
    fig = _figure(figsize=(3.4 * len(methods), 3.2 * len(metrics)))
    axes = fig.subplots(len(metrics), len(methods), squeeze=False)
    for i, metric in enumerate(metrics):
        for j, method in enumerate(methods):
            ax = axes[i][j]
            t, p = series[method]["y_true"][:, i], series[method]["y_pred"][:, i]
            shown = np.isfinite(p) & (p > 0)
            ax.scatter(t[shown], p[shown], s=3, alpha=0.4, color=COLORS.get(method, "k"), linewidths=0, rasterized=True)
            low, high = float(np.min(t)), float(np.max(t))
            ax.plot([low, high], [low, high], color="k", linewidth=0.7)
            ax.set_xscale("log")
            ax.set_yscale("log")
            mape = float(np.mean(np.abs(p / t - 1))) * 100
            ax.set_title(f"{method}: MAPE {mape:.2f}%", fontsize=TITLE_SIZE)
            ax.tick_params(labelsize=TICK_SIZE)
            ax.set_ylabel(f"predicted {metric}", fontsize=LABEL_SIZE)
            ax.set_xlabel(f"true {metric}", fontsize=LABEL_SIZE)
    fig.suptitle(f"{target}, random split: predicted vs true", fontsize=SUPTITLE_SIZE)
    _save(fig, path)


def _abs_errors(s: Dict[str, np.ndarray], metric: int) -> np.ndarray:
    return np.abs(s["y_pred"][:, metric] / s["y_true"][:, metric] - 1) * 100


def _metric_panels(path: Path, title: str, metrics: Sequence[str], series: Series, xlabel: str, ylabel: str,
                   draw: Any, log_y: bool) -> None:
    """One panel per metric, one line per method (``draw(ax, s, metric_index, **style)``), log x axis."""
    fig = _figure(figsize=(4.0 * len(metrics), 3.6))
    axes = fig.subplots(1, len(metrics), squeeze=False)
    for i, metric in enumerate(metrics):
        ax = axes[0][i]
        for method, s in series.items():
            draw(ax, s, i, label=method, color=COLORS.get(method), linewidth=1)
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
        ax.set_title(metric, fontsize=TITLE_SIZE)
        ax.tick_params(labelsize=TICK_SIZE)
        ax.legend(fontsize=TICK_SIZE)
    fig.suptitle(title, fontsize=SUPTITLE_SIZE)
    _save(fig, path)


def error_cdf(path: Path, target: str, metrics: Sequence[str], series: Series) -> None:
    """Per metric: share of test models whose |relative error| is at most x, one line per method."""

    def draw(ax: Any, s: Dict[str, np.ndarray], i: int, **style: Any) -> None:
        error = np.sort(_abs_errors(s, i))
        ax.plot(np.maximum(error, 1e-3), np.arange(1, error.size + 1) / error.size * 100, **style)
        for x in (5, 10):
            ax.axvline(x, color="grey", linewidth=0.5, linestyle=":")

    _metric_panels(path, f"{target}, random split: error CDF", metrics, series, "|error| %", "% of test models",
                   draw, log_y=False)


def _binned_median(x: np.ndarray, y: np.ndarray, bins: int = 12) -> Tuple[np.ndarray, np.ndarray]:
    """Median of y in equal-count bins of x (centres at the bins' median x)."""
    order = np.argsort(x)
    groups = [g for g in np.array_split(order, min(bins, max(1, x.size // 5))) if g.size]
    return np.array([np.median(x[g]) for g in groups]), np.array([np.median(y[g]) for g in groups])


def error_vs_size(path: Path, target: str, metrics: Sequence[str], series: Series) -> None:
    """Per metric: median |relative error| in MAC-count bins, one line per method (log axes)."""

    def draw(ax: Any, s: Dict[str, np.ndarray], i: int, **style: Any) -> None:
        x, y = _binned_median(np.maximum(s["macs"], 1), _abs_errors(s, i))
        ax.plot(x, np.maximum(y, 1e-3), marker="o", markersize=2.5, **style)

    _metric_panels(path, f"{target}, random split: error vs model size", metrics, series, "model MACs",
                   "median |error| %", draw, log_y=True)


def make_plots(runner: "Runner", records: Sequence[Dict[str, Any]]) -> List[str]:
    """Writes the plots of every target with random-split results; returns their names (relative to OUT)."""
    names: List[str] = []
    for target in runner.options.targets:
        series = _random_split_predictions(runner, records, target)
        if not series:
            continue
        metrics = list(runner.recipes[target].metrics)
        for kind, draw in (("predicted_vs_true", predicted_vs_true), ("error_cdf", error_cdf),
                           ("error_vs_size", error_vs_size)):
            name = f"{kind}_{safe_name(target)}.png"
            draw(runner.out / name, target, metrics, series)
            names.append(name)
    return names
