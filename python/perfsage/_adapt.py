"""Few-shot transfer to a new device: the arithmetic behind ``Predictor.adapt`` (NumPy only).

A predictor's last head layer maps a hidden vector ``h`` (one per graph with the log-sum-exp
readout, one per operator with the additive readout) to standardised log outputs
``o_t = h·W_t + b_t``, worth ``exp(o_t·s_t + m_t)`` in target t's unit (``s``, ``m``: the target's
log standard deviation and mean). A new device's log cost starts as an affine combination of the
base's, ``log y' = a_0 + Σ_t a_t·log y_t``, with ``a`` fitted by ridge regression on its few
measured rows (shrunk towards equal weights summing to one: a scale of the base's devices).
That map is affine in ``o``, so it becomes the new head's last layer exactly:

.. math::

    W' = \\sum_t a_t s_t W_t / s', \\qquad b' = \\Big(a_0 + \\sum_t a_t (s_t b_t + m_t) - m'\\Big) / s'

and the same for the additive readout's per-graph constant. With the log-sum-exp readout the
start reproduces the fitted combination of the base's predictions; with the additive one it holds
per operator, which for a single base column (a scale) is the graph's combination too, and
otherwise approximates it: the additive start therefore combines one column (``fit_one_column``).
Fine-tuning starts from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

# Fewest measured rows adapt takes: the ridge fit picks its strength by leave-one-out, which
# needs three rows to say anything.
MIN_ROWS = 3
# Floor of a new target's log standard deviation (its parameterisation only: the head absorbs it).
_MIN_LOG_STD = 0.05
# Ridge strengths tried, per row, on the base's log outputs; the largest keeps the prior.
_RIDGE_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e4)


@dataclass
class Combination:
    """``log y' ≈ intercept + coefficients · log y[columns]`` and its leave-one-out RMSE in log units."""

    columns: List[int]
    intercept: float
    coefficients: np.ndarray
    loo_rmse: float
    ridge: float


def candidate_columns(base_targets: Sequence[str], base_peaks: Sequence[bool], target: str, peak: bool,
                      additive: bool) -> List[int]:
    """Base columns a new target's start combines: those of its metric name (``latency_ms`` for
    ``my-board/latency_ms``) if the base has any, else every column; with the additive readout
    only columns of the same kind (sums for a sum, peaks for a peak), since the head's value is a
    per-operator cost for one and a per-operator bound for the other."""
    kind = [i for i, p in enumerate(base_peaks) if not additive or p == peak] or list(range(len(base_targets)))
    metric = target.rpartition("/")[2]
    same = [i for i in kind if base_targets[i].rpartition("/")[2] == metric]
    return same or kind


def fit_combination(base_log: np.ndarray, target_log: np.ndarray, columns: Sequence[int]) -> Combination:
    """Ridge regression of ``target_log`` [n] on ``base_log[:, columns]`` [n, C] with an intercept,
    shrunk towards equal weights summing to one (the new device as a scale of the base's devices:
    what a strong penalty, or three rows, give) rather than towards a constant; the strength (per
    row) minimises the leave-one-out error, the strongest winning ties."""
    x = np.asarray(base_log, dtype=np.float64)[:, list(columns)]
    y = np.asarray(target_log, dtype=np.float64)
    n, width = x.shape
    prior = np.full(width, 1.0 / width)
    xc = x - x.mean(axis=0)
    rest = y - x @ prior
    rc = rest - rest.mean()
    best: Optional[tuple] = None
    for strength in sorted(_RIDGE_GRID, reverse=True):
        gram = xc.T @ xc + strength * n * np.eye(width)
        delta = np.linalg.solve(gram, xc.T @ rc)
        # Hat matrix diagonal of the centred fit plus the intercept's 1/n.
        leverage = np.einsum("ij,ji->i", xc, np.linalg.solve(gram, xc.T)) + 1.0 / n
        if np.any(leverage > 1 - 1e-9):
            continue
        rmse = float(np.sqrt(np.mean(((rc - xc @ delta) / (1 - leverage)) ** 2)))
        if best is None or rmse < best[0] * (1 - 1e-9):
            best = (rmse, strength, delta)
    if best is None:  # too few rows for leave-one-out: the prior alone
        best = (float("nan"), float("inf"), np.zeros(width))
    rmse, strength, delta = best
    coefficients = prior + delta
    return Combination(list(columns), float(y.mean() - x.mean(axis=0) @ coefficients), coefficients, rmse,
                       float(strength))


def fit_one_column(base_log: np.ndarray, target_log: np.ndarray, columns: Sequence[int]) -> Combination:
    """The additive readout's start: ``fit_combination`` on one base column (of ``columns``), the one
    whose fit has the smallest leave-one-out error. The map then holds per operator, which is what
    the head can carry: a mix of columns holds per operator too, but its sum over a graph's operators
    drifted far from the graph's fit where the rows chose large weights of opposite signs
    (NAS-Bench-201 from an additive base of the three other devices, 10 rows: 11-1,965% MAPE; stop 20)."""
    fits = [fit_combination(base_log, target_log, [column]) for column in columns]
    if not fits:
        raise ValueError("fit_one_column: no base column to fit")
    # A nan leave-one-out error (too few rows) ranks last; the first column wins ties.
    return min(fits, key=lambda fit: (np.isnan(fit.loo_rmse), fit.loo_rmse))


def target_statistics(target_log: np.ndarray) -> tuple:
    """A new target's log mean and standard deviation (floored) from its measured rows."""
    y = np.asarray(target_log, dtype=np.float64)
    return float(y.mean()), max(float(y.std()), _MIN_LOG_STD)


def transfer_head(weight: np.ndarray, bias: np.ndarray, constant: Optional[np.ndarray], mean: np.ndarray,
                  std: np.ndarray, combination: Combination, new_mean: float, new_std: float) -> Dict[str, np.ndarray]:
    """The new target's column of the last head layer (``weight`` [h], ``bias`` []) and of the
    additive readout's ``constant`` (when given) from the base's (``weight`` [h, T], ``bias`` [T],
    ``constant`` [T], target statistics ``mean``/``std`` [T]) and a fitted combination."""
    cols = combination.columns
    a = combination.coefficients * np.asarray(std, np.float64)[cols]
    offset = combination.intercept + float(combination.coefficients @ np.asarray(mean, np.float64)[cols]) - new_mean
    out = {
        "weight": (np.asarray(weight, np.float64)[:, cols] @ a) / new_std,
        "bias": np.asarray((offset + float(a @ np.asarray(bias, np.float64)[cols])) / new_std),
    }
    if constant is not None:
        out["constant"] = np.asarray((offset + float(a @ np.asarray(constant, np.float64)[cols])) / new_std)
    return out


def spread_rows(proxy: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` indices of ``proxy`` (a base predictor's log prediction per candidate model), one drawn
    at random (seeded) from each of ``k`` equal-count strata of its ranks, in proxy order: rows to
    measure that span the candidates' range, so that the start's fit in log space (a line through
    the base's predictions) is pinned at both ends and in between, where ``k`` random rows can
    bunch up in the middle of the distribution. Ties in the proxy go by index."""
    proxy = np.asarray(proxy, dtype=np.float64)
    n = len(proxy)
    if not 1 <= k <= n:
        raise ValueError(f"choose {k} of {n} candidates: k must be between 1 and the number of candidates")
    if not np.isfinite(proxy).all():
        raise ValueError("the base's predictions must be finite for every candidate")
    order = np.lexsort((np.arange(n), proxy))
    edges = np.linspace(0, n, k + 1).round().astype(np.int64)
    rng = np.random.default_rng([int(seed), 0x63686F])
    return np.array([order[rng.integers(lo, hi)] for lo, hi in zip(edges[:-1], edges[1:])], dtype=np.int64)
