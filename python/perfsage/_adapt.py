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
per operator, which for a single base column is the graph's combination too when it is a scale or
the target a peak, and otherwise is not: the additive start therefore maps one column, fitted for
a sum on the sums it carries (``fit_operator_sum``) and for a peak on the graph (``fit_one_column``).
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
# Powers the additive start tries on a base column's operator costs (one among them), and a small
# pull towards one that settles near-ties in favour of a scale.
_POWER_GRID = np.round(np.arange(0.2, 2.0001, 0.02), 2)
_POWER_PRIOR = 1e-4


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
    """The additive readout's start for a peak target: ``fit_combination`` on one base column (of
    ``columns``), the one whose fit has the smallest leave-one-out error. The map then holds per
    operator, and a positive power of the operators' largest cost is the largest of their powers,
    so the graph's fit is what the head carries. A mix of columns holds per operator too, but
    drifted far from the graph's fit where the rows chose large weights of opposite signs
    (NAS-Bench-201 from an additive base of the three other devices, 10 rows: 11-1,965% MAPE; stop 20)."""
    fits = [fit_combination(base_log, target_log, [column]) for column in columns]
    if not fits:
        raise ValueError("fit_one_column: no base column to fit")
    # A nan leave-one-out error (too few rows) ranks last; the first column wins ties.
    return min(fits, key=lambda fit: (np.isnan(fit.loo_rmse), fit.loo_rmse))


def _logsumexp(values: np.ndarray) -> np.ndarray:
    """``log(sum(exp(values)))`` along the last axis, without overflow."""
    top = np.max(values, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.log(np.sum(np.exp(values - top), axis=-1)) + top[..., 0]


def _centred_loo(residual: np.ndarray) -> np.ndarray:
    """Leave-one-out errors of an intercept-only fit to ``residual`` [n, ...] (along axis 0)."""
    n = residual.shape[0]
    return (residual - residual.mean(axis=0)) * n / (n - 1)


def _best_power(residual: np.ndarray) -> int:
    """The grid index of the power whose residuals [rows, grid] an intercept fits best (least
    squares, the pull towards one settling near-ties)."""
    return int(np.argmin(np.var(residual, axis=0) + _POWER_PRIOR * (_POWER_GRID - 1.0) ** 2))


def fit_operator_sum(operator_log: Sequence[np.ndarray], constant_log: np.ndarray, target_log: np.ndarray,
                     columns: Sequence[int]) -> Combination:
    """The additive readout's start for a sum target, fitted on what the head will carry.

    ``operator_log`` holds each row's graph's operator log costs [operators, base targets] and
    ``constant_log`` [base targets] the readout's per-graph constant. The start maps every operator's
    (and the constant's) log cost of one base column by ``intercept + power · log c``, so a graph
    costs ``exp(intercept) · Σ c^power``: for a power other than one that is not the power of the
    graph's predicted cost (a per-graph fit whose power was carried per operator priced the
    NAS-Bench-201 Titan 221% off from 20 rows, where a scale was 8% off; stop 26). For each
    column the power is chosen on a grid by least squares on these exact sums, the intercept is
    then the mean residual, and leave-one-out compares that procedure (the power chosen again
    without the row) with a pure scale (power one); the column and procedure with the smallest
    leave-one-out error win, the scale winning ties."""
    y = np.asarray(target_log, dtype=np.float64)
    n = len(y)
    if not columns:
        raise ValueError("fit_operator_sum: no base column to fit")
    if len(operator_log) != n:
        raise ValueError(f"fit_operator_sum: {len(operator_log)} graphs for {n} labels")
    one = int(np.argmin(np.abs(_POWER_GRID - 1.0)))
    best: Optional[tuple] = None
    for column in columns:
        carried = np.stack([_logsumexp(np.append(np.asarray(ops, np.float64)[:, column], constant_log[column])
                                       [None, :] * _POWER_GRID[:, None]) for ops in operator_log])  # [n, grid]
        residual = y[:, None] - carried
        if n < MIN_ROWS:
            candidates = [(float("nan"), 0, one)]
        else:
            scale_loo = float(np.sqrt(np.mean(_centred_loo(residual[:, one]) ** 2)))
            errors = []
            for j in range(n):
                rest = np.delete(residual, j, axis=0)
                k = _best_power(rest)
                errors.append(residual[j, k] - rest[:, k].mean())
            candidates = [(scale_loo, 0, one), (float(np.sqrt(np.mean(np.square(errors)))), 1, _best_power(residual))]
        for loo, rank, k in candidates:
            key = (np.isnan(loo), loo, rank)
            if best is None or key < best[0]:
                best = (key, column, k, float(residual[:, k].mean()), loo)
    _, column, k, intercept, loo = best
    return Combination([column], intercept, np.array([_POWER_GRID[k]]), loo, float("inf"))


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
