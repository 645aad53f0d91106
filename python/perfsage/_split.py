"""Train/validation/test splits of dataset rows: the one ``Split`` type and the seeded draws.

The shipped predictors (``_recipes.train_on_random_split``), ``Predictor.fit``'s own validation
hold-out and ``perfsage evaluate`` (random, leave-one-space-out, few-shot, real) all draw here, so
a split is the same rows wherever it is made. Every draw is a function of the rows and the seed
alone; the shipped predictors' provenance and resumed evaluations depend on that, so the draws
must not change (tests/python/test_splits.py pins some indices).

A bottom module: it imports nothing of perfsage's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Sequence

import numpy as np

_NO_ROWS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Split:
    """Row indices (sorted) to train on, to stop early on (validation), and to score (test).

    ``name`` says how it was drawn (random, validation, loso, fewshot, real) and ``part`` which
    one of a family it is (the held-out space for loso, ``"k=900"`` for few-shot, else "").
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray = field(default_factory=lambda: _NO_ROWS)
    name: str = "random"
    part: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}[{self.part}]" if self.part else self.name

    def sizes(self) -> Dict[str, int]:
        """``{"train": n, "val": n, "test": n}``."""
        return {"train": int(len(self.train)), "val": int(len(self.val)), "test": int(len(self.test))}


def _shuffled(rows: np.ndarray, seed: Any) -> np.ndarray:
    """``rows`` in the order of ``numpy.random.default_rng(seed).permutation``."""
    return rows[np.random.default_rng(seed).permutation(len(rows))]


def random_split(rows: Sequence[int], seed: int = 0, test: float = 0.1, val: float = 0.1) -> Split:
    """Seeded random split of ``rows`` (80/10/10 by default): the test rows come first in the
    shuffled order, then the validation rows, the rest trains."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size < 10:
        raise ValueError(f"random split: only {rows.size} rows; need at least 10")
    order = _shuffled(rows, seed)
    n_test, n_val = int(round(rows.size * test)), int(round(rows.size * val))
    return Split(train=np.sort(order[n_test + n_val:]), val=np.sort(order[n_test:n_test + n_val]),
                 test=np.sort(order[:n_test]))


def validation_split(rows: Sequence[int], fraction: float, seed: Any, name: str = "validation",
                     part: str = "") -> Split:
    """Holds out ``fraction`` of ``rows`` (at least one) for validation, the first rows of the
    seeded shuffle; the rest trains; no test rows. ``seed`` is anything ``default_rng`` takes."""
    rows = np.asarray(rows, dtype=np.int64)
    order = _shuffled(rows, seed)
    n_val = max(1, int(round(len(rows) * fraction)))
    return Split(train=np.sort(order[n_val:]), val=np.sort(order[:n_val]), name=name, part=part)


def leave_one_space_out(rows: Sequence[int], row_spaces: np.ndarray, space: str, index: int, seed: int) -> Split:
    """Tests on every row of search space ``space`` (the ``index``-th in sorted order), trains on
    the others with 10% of them held out for validation. ``row_spaces[i]`` is ``rows[i]``'s space."""
    rows = np.asarray(rows, dtype=np.int64)
    row_spaces = np.asarray(row_spaces)
    held_out = validation_split(rows[row_spaces != space], 0.1, [seed, 1, index])
    return Split(train=held_out.train, val=held_out.val, test=np.sort(rows[row_spaces == space]),
                 name="loso", part=space)


def op_holdout(rows: Sequence[int], has_op: np.ndarray, op: str, index: int, seed: int) -> Split:
    """Tests on every row whose model contains operator type ``op`` (``has_op[i]`` for ``rows[i]``),
    trains on the others with 10% of them held out for validation: how the predictor prices an
    operator it never saw."""
    rows = np.asarray(rows, dtype=np.int64)
    has_op = np.asarray(has_op, dtype=bool)
    held_out = validation_split(rows[~has_op], 0.1, [seed, 4, index])
    return Split(train=held_out.train, val=held_out.val, test=np.sort(rows[has_op]), name="ophold", part=op)


def few_shot(rows: Sequence[int], pool: np.ndarray, k: int, n_val: int, seed: int) -> Split:
    """``k`` training and ``n_val`` validation rows drawn from ``pool`` (a random split's training
    rows); the test rows are all other ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    order = _shuffled(np.asarray(pool), [seed, 2, k])
    train, val = np.sort(order[:k]), np.sort(order[k:k + n_val])
    return Split(train=train, val=val, test=np.setdiff1d(rows, np.concatenate([train, val])),
                 name="fewshot", part=f"k={k}")


def new_device(random: Split, k: int, draw: int, seed: int) -> Split:
    """A new device's ``k`` measured rows (the ``draw``-th seeded draw) from ``random``'s training
    rows, no validation rows (a user who measured k models has no others), and ``random``'s test
    rows to score: leave-one-device-out, where the predictor pretrained without the device sees
    none of its labels but these k."""
    order = _shuffled(np.asarray(random.train, dtype=np.int64), [seed, 5, k, draw])
    return Split(train=np.sort(order[:k]), val=_NO_ROWS, test=random.test, name="lodo", part=f"k={k} s={draw}")


def chosen_device(random: Split, chosen: np.ndarray, k: int, draw: int) -> Split:
    """:func:`new_device`'s split with the ``k`` rows ``chosen`` (positions in ``random``'s training
    rows, e.g. by ``Predictor.choose_to_measure``) instead of a seeded draw."""
    pool = np.asarray(random.train, dtype=np.int64)
    return Split(train=np.sort(pool[chosen]), val=_NO_ROWS, test=random.test, name="lodo",
                 part=f"k={k} chosen s={draw}")
