"""Accuracy metrics of the evaluation protocol, in NumPy (no SciPy): percentage errors and rank
correlations with ties handled (average ranks for Spearman, tau-b for Kendall)."""

from __future__ import annotations

import math
from typing import Dict

import numpy as np

# Names of the statistics ``accuracy`` returns, in report order.
STATISTICS = ("mape", "rmspe", "within_5", "within_10", "spearman", "kendall", "n")


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple:
    """Both arrays as float64 vectors of one length; raises ValueError naming what is wrong."""
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values but y_pred has {p.size}")
    return t, p


def relative_errors(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(pred - true) / true per row; true values must be non-zero (MAPE is undefined otherwise)."""
    t, p = _pair(y_true, y_pred)
    if np.any(t == 0):
        raise ValueError(f"relative errors need non-zero true values; {int(np.sum(t == 0))} are zero")
    return (p - t) / np.abs(t)


def mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    return float(np.mean(np.abs(relative_errors(y_true, y_pred))) * 100.0)


def rmspe(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared percentage error, in percent."""
    return float(math.sqrt(np.mean(relative_errors(y_true, y_pred) ** 2)) * 100.0)


def within(y_true: np.ndarray, y_pred: np.ndarray, tolerance: float) -> float:
    """Percentage of predictions within ``tolerance`` (0.05 = ±5%) of the true value."""
    return float(np.mean(np.abs(relative_errors(y_true, y_pred)) <= tolerance + 1e-12) * 100.0)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``; tied values share the mean of the ranks they span."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # Start index of each run of equal values in sorted order, and the run each position is in.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], n]
    run_rank = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's r of average ranks. NaN when either side is constant."""
    a, b = _pair(a, b)
    if a.size < 2:
        return float("nan")
    ra, rb = average_ranks(a), average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = math.sqrt(float(np.dot(ra, ra)) * float(np.dot(rb, rb)))
    return float(np.dot(ra, rb) / denominator) if denominator > 0 else float("nan")


def _tied_pairs(sorted_values: np.ndarray) -> int:
    """Number of pairs of equal values in an array whose equal values are adjacent."""
    n = sorted_values.size
    if n == 0:
        return 0
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    runs = np.diff(np.r_[starts, n]).astype(np.int64)
    return int(np.sum(runs * (runs - 1) // 2))


def count_inversions(values: np.ndarray) -> int:
    """Pairs i < j with values[i] > values[j] (strictly), by a bottom-up merge sort: O(n log² n).

    Each level merges neighbouring sorted blocks; for every element of a right block, the
    elements of its left block greater than it are found with one global ``searchsorted``, the
    blocks being kept apart by adding ``block * span`` to the values (dense integer ranks).
    """
    v = np.asarray(values)
    n = v.size
    if n < 2:
        return 0
    ranks = np.unique(v, return_inverse=True)[1].astype(np.int64).ravel()
    span = int(ranks.max()) + 1
    position = np.arange(n, dtype=np.int64)
    inversions = 0
    width = 1
    while width < n:
        block = position // width  # blocks of ``width`` in the current order, each sorted
        pair = block // 2
        is_left = block % 2 == 0
        keys = pair * span + ranks
        left_keys = keys[is_left]  # sorted: blocks sorted within, offset by pair
        right_keys = keys[~is_left]
        right_pair = pair[~is_left]
        # Elements of the same pair's left block that are <= each right element ...
        not_greater = np.searchsorted(left_keys, right_keys, side="right") - np.searchsorted(
            left_keys, right_pair * span, side="left")
        left_size = np.bincount(pair[is_left], minlength=int(pair.max()) + 1)[right_pair]
        inversions += int(np.sum(left_size - not_greater))
        ranks = ranks[np.argsort(keys, kind="stable")]  # merge each pair into one sorted block
        width *= 2
    return inversions


def kendall_tau_b(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (ties corrected), O(n log² n) by Knight's method. NaN when a side is constant.

    tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)) with n0 = n(n-1)/2, n1 / n2 the pairs tied in a / b;
    C - D = n0 - n1 - n2 + n3 - 2D where n3 counts pairs tied in both and D (discordant pairs) is
    the number of inversions of b once rows are sorted by (a, b).
    """
    a, b = _pair(a, b)
    n = a.size
    if n < 2:
        return float("nan")
    order = np.lexsort((b, a))
    a_sorted, b_sorted = a[order], b[order]
    n0 = n * (n - 1) // 2
    n1 = _tied_pairs(a_sorted)
    n2 = _tied_pairs(np.sort(b))
    # Pairs tied in both: runs of equal (a, b) are adjacent after the lexsort.
    same = np.r_[False, (a_sorted[1:] == a_sorted[:-1]) & (b_sorted[1:] == b_sorted[:-1])]
    starts = np.flatnonzero(~same)
    runs = np.diff(np.r_[starts, n]).astype(np.int64)
    n3 = int(np.sum(runs * (runs - 1) // 2))
    discordant = count_inversions(b_sorted)
    denominator = math.sqrt(float(n0 - n1) * float(n0 - n2))
    if denominator == 0:
        return float("nan")
    return float((n0 - n1 - n2 + n3 - 2 * discordant) / denominator)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> Dict[str, float]:
    """Every statistic of the protocol for one metric: MAPE, RMSPE, % within ±5% and ±10% (all in
    percent), Spearman and Kendall tau-b, and the number of rows ``n``.

    Non-finite predictions count as infinitely wrong (a method that blows up is not excused).
    """
    t, p = _pair(y_true, y_pred)
    if t.size == 0:
        raise ValueError("accuracy: no rows to score")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"accuracy: {int(np.sum(~np.isfinite(t)))} true values are not finite")
    p = np.where(np.isfinite(p), p, np.inf)
    return {
        "mape": mape(t, p),
        "rmspe": rmspe(t, p),
        "within_5": within(t, p, 0.05),
        "within_10": within(t, p, 0.10),
        "spearman": spearman(t, np.where(np.isfinite(p), p, np.finfo(np.float64).max)),
        "kendall": kendall_tau_b(t, np.where(np.isfinite(p), p, np.finfo(np.float64).max)),
        "n": int(t.size),
    }


# The level perfsage evaluate scores intervals at, and the statistics it reports for them.
INTERVAL_LEVEL = 0.9
INTERVAL_STATISTICS = ("coverage", "width", "width_error_spearman")
# The same of perfsage's per-space calibration (perfsage._intervals), when a unit has it.
SCOPED_INTERVAL_STATISTICS = INTERVAL_STATISTICS + tuple(s + "_per_space" for s in INTERVAL_STATISTICS)


def interval_accuracy(y_true: np.ndarray, y_pred: np.ndarray, lower: np.ndarray, upper: np.ndarray
                      ) -> Dict[str, float]:
    """How intervals did: ``coverage`` (percent of true values inside), ``width`` (median of
    upper / lower, a factor) and ``width_error_spearman`` (rank correlation of each interval's log
    width with its prediction's absolute log error: positive when wider intervals go with larger
    errors)."""
    t, p = _pair(y_true, y_pred)
    lo, hi = _pair(lower, upper)
    if lo.shape != t.shape:
        raise ValueError(f"y_true has {t.size} values but the intervals {lo.size}")
    log_width = np.log(hi / lo)
    return {"coverage": float(np.mean((t >= lo) & (t <= hi)) * 100.0),
            "width": float(np.exp(np.median(log_width))),
            "width_error_spearman": spearman(log_width, np.abs(np.log(p / t)))}


def operator_accuracy(predicted: "list[np.ndarray]", measured: "list[np.ndarray]", top: int = 3) -> Dict[str, float]:
    """How well predicted per-operator costs match measured ones (e.g. Vela's per-layer cycles),
    over models given as pairs of ``[num_nodes]`` cost vectors (models whose measured total is not
    positive are skipped): ``share_mae``, the mean over every operator of every model of the
    absolute difference between its predicted and its measured share of the model's total, in
    percentage points; ``top_match``, the percentage of models whose ``top`` costliest operators
    (all of them in smaller models) are the same set in both; ``n``, the models scored."""
    errors, matches = [], []
    for p, m in zip(predicted, measured):
        p, m = np.asarray(p, dtype=np.float64), np.asarray(m, dtype=np.float64)
        if p.shape != m.shape:
            raise ValueError(f"operator costs of {p.size} and {m.size} operators")
        if not (m.sum() > 0 and p.sum() > 0):
            continue
        errors.append(np.abs(p / p.sum() - m / m.sum()))
        k = min(top, m.size)
        matches.append(set(np.argsort(-p, kind="stable")[:k].tolist()) == set(np.argsort(-m, kind="stable")[:k].tolist()))
    if not errors:
        return {"share_mae": math.nan, "top_match": math.nan, "n": 0}
    return {"share_mae": float(np.mean(np.concatenate(errors)) * 100.0),
            "top_match": float(np.mean(matches) * 100.0), "n": len(errors)}
