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

The quantile above is pooled over the calibration rows, so it holds on average over them: on the
shipped ``ethos-u55-256``'s random test split the whole-network spaces were covered at 96-100%
and ``op_zoo`` (single operators) at 82%, and 146 real models, whole networks unlike any space,
at 70%. Calibration rows given with groups (their search spaces) also keep each group's quantiles
(groups of at least ``MIN_GROUP_ROWS`` rows), and the ``"per-space"`` scope takes at each level
the largest of them: at least ``alpha`` of every space the predictor was calibrated on falls inside
(split conformal within each space, Mondrian style), and a model from a family it never saw gets
the interval of the hardest one it knows.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

# Levels whose quantiles a calibration stores; an interval at a level between two of them
# interpolates their quantiles.
LEVELS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99)
METHOD = "split conformal on |log error| / (|log predictor - log companion| + median disagreement)"
# Scopes of an interval: "pooled", the quantiles of all calibration rows together; "per-space", at
# each level the largest quantile of any group (search space) of the calibration rows.
SCOPES = ("pooled", "per-space")
# Rows a group needs for its own quantiles (fewer give a conformal quantile that is the group's
# largest score at every level from 0.98 on).
MIN_GROUP_ROWS = 50


def _logs(values: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(a) & (a > 0)):
        raise ValueError(f"intervals: {what} must be finite and positive")
    return np.log(a)


def calibrate(main: np.ndarray, companion: np.ndarray, truth: np.ndarray, targets: Sequence[str],
              groups: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The calibration (JSON-able) from predictions and labels ``[n, targets]`` of held-out rows
    (and their groups, see ``calibration``); rows whose label is missing (NaN) for a target are
    left out of that target's."""
    lp, lc = _logs(main, "predictions"), _logs(companion, "companion predictions")
    y = np.asarray(truth, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        errors = np.where(np.isfinite(y) & (y > 0), np.abs(lp - np.log(np.where(y > 0, y, 1.0))), np.nan)
    return calibration(errors, np.abs(lp - lc), targets, groups)


def calibration(errors: np.ndarray, disagreement: np.ndarray, targets: Sequence[str],
                groups: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The calibration from absolute log errors (NaN: no label) and the companion's absolute log
    disagreement, ``[n, targets]`` each, of rows the predictor did not learn from; with ``groups``
    (one name per row, e.g. its search space), also each group's quantiles."""
    out: Dict[str, Any] = {"method": METHOD, "levels": list(LEVELS), "targets": {}}
    if groups is not None:
        groups = np.asarray([str(g) for g in groups])
        if groups.shape != (errors.shape[0],):
            raise ValueError(f"intervals: {groups.size} groups for {errors.shape[0]} calibration rows")
    for t, name in enumerate(targets):
        keep = np.isfinite(errors[:, t])
        if not keep.any():
            continue
        floor = max(float(np.median(disagreement[keep, t])), 1e-6)
        scores = errors[:, t] / (disagreement[:, t] + floor)
        entry: Dict[str, Any] = {"rows": int(keep.sum()), "median_disagreement": floor,
                                 "quantiles": _quantiles(scores[keep])}
        if groups is not None:
            entry["groups"] = {str(g): {"rows": int(n), "quantiles": _quantiles(scores[keep & (groups == g)])}
                               for g, n in zip(*np.unique(groups[keep], return_counts=True)) if n >= MIN_GROUP_ROWS}
        out["targets"][name] = entry
    return out


def _quantiles(scores: np.ndarray) -> List[float]:
    """The conformal quantile of ``scores`` at each level; with too few rows for a level, the
    largest score (the level is then not guaranteed, and "rows" says how many there were)."""
    scores = np.sort(scores)
    n = scores.size
    return [float(scores[min(n, int(np.ceil((n + 1) * level))) - 1]) for level in LEVELS]


def scope_quantiles(entry: Dict[str, Any], scope: str) -> List[float]:
    """A target's calibration quantiles (one per level) in ``scope``."""
    if scope == "pooled":
        return entry["quantiles"]
    if scope != "per-space":
        raise ValueError(f"interval scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    groups = entry.get("groups")
    if not groups:
        raise ValueError(f"intervals: no per-space calibration (it takes calibration rows with their search spaces, "
                         f"at least {MIN_GROUP_ROWS} in a space: Predictor.calibrate(..., groups=...)); "
                         "use interval_scope='pooled'")
    return np.max([g["quantiles"] for g in groups.values()], axis=0).tolist()


def has_scope(calibration: Dict[str, Any], scope: str) -> bool:
    """Whether every target of ``calibration`` has quantiles in ``scope``."""
    return scope == "pooled" or all(e.get("groups") for e in calibration["targets"].values())


def bounds(main: np.ndarray, companion: np.ndarray, calibration: Dict[str, Any], targets: Sequence[str],
           level: float, scope: str = "pooled") -> Tuple[np.ndarray, np.ndarray]:
    """(lower, upper) float32 ``[n, targets]`` at ``level`` (within the stored levels), from the
    quantiles of ``scope`` (``SCOPES``)."""
    levels = calibration["levels"]
    if not (isinstance(level, (int, float)) and levels[0] <= level <= levels[-1]):
        raise ValueError(f"interval must be a level between {levels[0]} and {levels[-1]}, got {level!r}")
    missing = [t for t in targets if t not in calibration["targets"]]
    if missing:
        raise ValueError(f"intervals: no calibration for target(s) {missing} (no calibration row had their label)")
    lp, lc = _logs(main, "predictions"), _logs(companion, "companion predictions")
    entries = [calibration["targets"][t] for t in targets]
    q = np.array([np.interp(level, levels, scope_quantiles(e, scope)) for e in entries])
    floor = np.array([e["median_disagreement"] for e in entries])
    half = q * (np.abs(lp - lc) + floor)
    return np.exp(lp - half).astype(np.float32), np.exp(lp + half).astype(np.float32)
