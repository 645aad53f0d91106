"""Non-negative least squares, Lawson–Hanson active-set method on the normal equations.

Working on the Gram matrix ``AᵀA`` (the "fast NNLS" arrangement of Bro and de Jong, 1997) makes each
step cost O(p³) in the number of passive variables, independent of the number of rows: the lookup
baseline has tens of thousands of rows (models) and a few hundred columns (kernel cost terms).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def _solve_passive(gram: np.ndarray, rhs: np.ndarray, passive: np.ndarray) -> np.ndarray:
    """Least-squares solution restricted to the passive set (other variables held at zero)."""
    z = np.zeros_like(rhs)
    index = np.flatnonzero(passive)
    if index.size:
        sub = gram[np.ix_(index, index)]
        try:
            z[index] = np.linalg.solve(sub, rhs[index])
        except np.linalg.LinAlgError:  # collinear columns: any least-squares solution will do
            z[index] = np.linalg.lstsq(sub, rhs[index], rcond=None)[0]
    return z


def nnls_gram(gram: np.ndarray, rhs: np.ndarray, max_iterations: Optional[int] = None,
              tolerance: Optional[float] = None) -> np.ndarray:
    """argmin_{x >= 0} ½xᵀGx - rᵀx for a symmetric positive semi-definite G (= AᵀA, r = Aᵀb).

    Lawson and Hanson (1974), ch. 23: move the variable with the largest positive gradient of the
    objective's negative into the passive set, solve the unconstrained problem on the passive set,
    and step back along the segment to the last feasible point whenever that solution has
    negative entries, dropping the variables that reached zero.
    """
    gram = np.asarray(gram, dtype=np.float64)
    rhs = np.asarray(rhs, dtype=np.float64).ravel()
    p = rhs.size
    if gram.shape != (p, p):
        raise ValueError(f"nnls: gram matrix of shape {gram.shape} for {p} variables")
    if not (np.all(np.isfinite(gram)) and np.all(np.isfinite(rhs))):
        raise ValueError("nnls: the system has non-finite entries")
    if tolerance is None:
        scale = max(float(np.max(np.abs(np.diag(gram)), initial=0.0)), float(np.max(np.abs(rhs), initial=0.0)), 1e-300)
        tolerance = 1e-12 * scale * max(p, 1)
    max_iterations = max_iterations if max_iterations is not None else 3 * p + 10
    x = np.zeros(p)
    passive = np.zeros(p, dtype=bool)
    blocked = np.zeros(p, dtype=bool)  # variables whose addition made no progress since x last changed
    for _ in range(max_iterations if p else 0):
        gradient = rhs - gram @ x  # the negative gradient: positive where raising x helps
        candidates = np.where(passive | blocked, -np.inf, gradient)
        j = int(np.argmax(candidates))
        if candidates[j] <= tolerance:
            break
        passive[j] = True
        z = _solve_passive(gram, rhs, passive)
        if z[j] <= 0:  # rounding: the direction that looked downhill is not; try the others
            passive[j] = False
            blocked[j] = True
            continue
        blocked[:] = False
        while True:
            negative = np.flatnonzero(passive & (z <= 0))
            if negative.size == 0:
                break
            # The largest step from x towards z that keeps every passive variable non-negative;
            # the variable that limits it reaches zero and leaves the passive set.
            gap = x[negative] - z[negative]
            ratio = np.where(gap > 0, x[negative] / np.where(gap > 0, gap, 1.0), 0.0)
            k = int(np.argmin(ratio))
            x = x + ratio[k] * (z - x)
            x[negative[k]] = 0.0
            passive &= x > 0
            x[~passive] = 0.0
            z = _solve_passive(gram, rhs, passive)
        x = z
    return x


def nnls(a: np.ndarray, b: np.ndarray, ridge: float = 0.0) -> Tuple[np.ndarray, float]:
    """argmin_{x >= 0} ||Ax - b||² + ridge·||x||²; returns (x, residual norm ||Ax - b||).

    Columns are scaled to unit norm first (what the tolerance and the ridge refer to), so that cost
    terms of very different magnitudes (MACs next to an operator count) are solved as accurately.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.ndim != 2 or a.shape[0] != b.size:
        raise ValueError(f"nnls: A of shape {a.shape} does not match b of {b.size} values")
    norms = np.sqrt(np.sum(a * a, axis=0))
    used = norms > 0  # all-zero columns cannot be determined: leave them at 0
    scaled = a[:, used] / norms[used]
    gram = scaled.T @ scaled
    if ridge:
        gram = gram + ridge * np.eye(gram.shape[0])
    x = np.zeros(a.shape[1])
    x[used] = nnls_gram(gram, scaled.T @ b) / norms[used]
    return x, float(np.linalg.norm(a @ x - b))
