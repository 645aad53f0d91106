"""Prediction intervals: split-conformal calibration scaled by a companion network's disagreement.

A predictor fitted with ``intervals=True`` carries a companion: a smaller network trained on the
same rows from another seed. Where the two agree a model is like their training data; where they
disagree at least one of them extrapolates. For each target, on held-out calibration rows i,

.. math::

    a_i = \\frac{|\\log p_i - \\log y_i|}{|\\log p_i - \\log c_i| + m}

(p: the predictor, c: the companion, y: the label, m: the median disagreement on those rows, which
keeps the interval of a model both agree on from collapsing to a point). The interval at level
alpha is ``p·exp(±q·(|log p - log c| + m))`` with q the ceil((n+1)·alpha)-th smallest a_i: split
conformal, so at least alpha of new models exchangeable with the calibration rows fall inside;
on unfamiliar models the disagreement widens it. (A distance of the graph features to the
training data did not: on host-cpu with a search space held out, its rank correlation with the
error was -0.18 to 0.36 and the intervals covered 1-83% at 90%; the companion's disagreement
covered 72-91%.)
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import numpy as np

# Levels whose quantiles a calibration stores; an interval at a level between two of them
# interpolates their quantiles.
LEVELS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99)
METHOD = "split conformal on |log error| / (|log predictor - log companion| + median disagreement)"


def _logs(values: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(f"intervals: {what} must be finite and positive")
    return np.log(a)


def calibrate(main: np.ndarray, companion: np.ndarray, truth: np.ndarray, targets: Sequence[str]) -> Dict[str, Any]:
    """The calibration (JSON-able) from predictions and labels ``[n, targets]`` of held-out rows;
    rows whose label is missing (NaN) for a target are left out of that target's."""
    lp, lc = _logs(main, "predictions"), _logs(companion, "companion predictions")
    y = np.asarray(truth, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        errors = np.where(np.isfinite(y) & (y > 0), np.abs(lp - np.log(np.where(y > 0, y, 1.0))), np.nan)
    return calibration(errors, np.abs(lp - lc), targets)


def calibration(errors: np.ndarray, disagreement: np.ndarray, targets: Sequence[str]) -> Dict[str, Any]:
    """The calibration from absolute log errors (NaN: no label) and the companion's absolute log
    disagreement, ``[n, targets]`` each, of rows the predictor did not learn from."""
    out: Dict[str, Any] = {"method": METHOD, "levels": list(LEVELS), "targets": {}}
    for t, name in enumerate(targets):
        keep = np.isfinite(errors[:, t])
        n = int(keep.sum())
        if n == 0:
            continue
        floor = max(float(np.median(disagreement[keep, t])), 1e-6)
        scores = np.sort(errors[keep, t] / (disagreement[keep, t] + floor))
        # The conformal quantile; with too few rows for a level, the largest score (the level is
        # then not guaranteed, and "rows" says how many there were).
        ranks = [min(n, int(np.ceil((n + 1) * level))) for level in LEVELS]
        out["targets"][name] = {"rows": n, "median_disagreement": floor,
                                "quantiles": [float(scores[r - 1]) for r in ranks]}
    return out


def bounds(main: np.ndarray, companion: np.ndarray, calibration: Dict[str, Any], targets: Sequence[str],
           level: float) -> Tuple[np.ndarray, np.ndarray]:
    """(lower, upper) float32 ``[n, targets]`` at ``level`` (within the stored levels)."""
    levels = calibration["levels"]
    if not (isinstance(level, (int, float)) and levels[0] <= level <= levels[-1]):
        raise ValueError(f"interval must be a level between {levels[0]} and {levels[-1]}, got {level!r}")
    missing = [t for t in targets if t not in calibration["targets"]]
    if missing:
        raise ValueError(f"intervals: no calibration for target(s) {missing} (no calibration row had their label)")
    lp, lc = _logs(main, "predictions"), _logs(companion, "companion predictions")
    q = np.array([np.interp(level, levels, calibration["targets"][t]["quantiles"]) for t in targets])
    floor = np.array([calibration["targets"][t]["median_disagreement"] for t in targets])
    half = q * (np.abs(lp - lc) + floor)
    return np.exp(lp - half).astype(np.float32), np.exp(lp + half).astype(np.float32)
