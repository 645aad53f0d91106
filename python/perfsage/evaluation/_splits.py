"""The splits of the evaluation protocol, as row indices into a target's usable rows.

All are deterministic functions of the seed and the rows: the same command always trains every
method on the same rows, and a resumed run finds the same splits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import List, Sequence

import numpy as np

from .._adapt import MIN_ROWS as MIN_ADAPT_ROWS
from .._split import Split, few_shot, leave_one_space_out, new_device, op_holdout
from .._split import random_split as _random_split

SPLIT_NAMES = ("random", "loso", "fewshot", "real", "ophold", "lodo")
# What runs without --splits: the op-holdout split trains one model per held-out operator, and
# leave-one-device-out pretrains a network per device and adapts it many times, so they are asked
# for by name.
DEFAULT_SPLITS = ("random", "loso", "fewshot", "real")
# The op-holdout split's default operators: those in at least this share of the rows (and at most
# OPHOLD_MAX_SHARE, so that enough rows train), the OPHOLD_DEFAULT_COUNT rarest of them.
OPHOLD_MIN_SHARE = 0.02
OPHOLD_MAX_SHARE = 0.5
OPHOLD_DEFAULT_COUNT = 6
# Fewest rows a method is trained on; below it a split is refused rather than scored on noise.
MIN_TRAIN_ROWS = 2
MIN_VAL_ROWS = 1
# A leave-one-space-out split drawn at another seed than the evaluation's names it in its part:
# "kws seed=1".
_SEED_MARK = " seed="


class EvaluationError(ValueError):
    """A request ``perfsage evaluate`` cannot carry out; the message says what to change."""


class SplitError(EvaluationError):
    """A split that the rows cannot provide (too few rows, one search space only, ...)."""


def _check(split: Split, target: str) -> Split:
    if len(split.train) < MIN_TRAIN_ROWS or len(split.val) < MIN_VAL_ROWS or len(split.test) < 1:
        raise SplitError(
            f"{target}: split {split.label} has {len(split.train)} training, {len(split.val)} validation and "
            f"{len(split.test)} test rows; it needs at least {MIN_TRAIN_ROWS}, {MIN_VAL_ROWS} and 1")
    return split


def random_split(rows: np.ndarray, seed: int, target: str) -> Split:
    """80/10/10 (train/val/test) of ``rows``, shuffled with ``seed``: the shipped predictors' split
    (scripts/train_shipped.py)."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) < 10:
        raise SplitError(f"{target}: {len(rows)} labelled rows; the random 80/10/10 split needs at least 10")
    return _check(_random_split(rows, seed), target)


def loso_splits(rows: np.ndarray, spaces: np.ndarray, seed: int, target: str, seeds: int = 1) -> List[Split]:
    """One split per search space: test on all its rows, train (90/10 train/val) on the others;
    with ``seeds`` > 1, each space again for every seed ``seed + 1``, ... (another validation draw;
    the methods train with that seed too, see ``split_seed``): every space at the first seed comes
    first, as one run with ``seeds`` = 1 draws it, so a report of one seed is reused as it is.

    ``spaces`` holds the space of every dataset row (indexed by ``rows``' values).
    """
    rows = np.asarray(rows, dtype=np.int64)
    row_spaces = np.asarray(spaces)[rows]
    names = sorted(set(row_spaces.tolist()))
    if len(names) < 2:
        raise SplitError(f"{target}: leave-one-space-out needs rows of at least 2 search spaces; the labelled rows "
                         f"are all of space {names[0] if names else '(none)'!r} (leave loso out of --splits)")
    out = []
    for repeat in range(seeds):
        for index, name in enumerate(names):
            split = leave_one_space_out(rows, row_spaces, name, index, seed + repeat)
            if repeat:
                split = replace(split, part=f"{name}{_SEED_MARK}{seed + repeat}")
            out.append(_check(split, target))
    return out


def split_seed(split: Split, seed: int) -> int:
    """The seed the methods train with on ``split``: the evaluation's ``seed``, or the one a
    repeated leave-one-space-out split names (``loso_splits`` with ``seeds`` > 1)."""
    _, mark, value = split.part.partition(_SEED_MARK)
    return int(value) if split.name == "loso" and mark else seed


def loso_space(part: str) -> str:
    """The held-out space of a leave-one-space-out split's part ("kws" of "kws seed=1")."""
    return part.partition(_SEED_MARK)[0]


def default_holdout_ops(op_sets: Sequence[frozenset]) -> List[str]:
    """The operators the op-holdout split holds out when none are named: of those that occur in
    between OPHOLD_MIN_SHARE and OPHOLD_MAX_SHARE of the models, the OPHOLD_DEFAULT_COUNT rarest
    (ties by name)."""
    counts: dict = {}
    for ops in op_sets:
        for op in ops:
            counts[op] = counts.get(op, 0) + 1
    n = max(1, len(op_sets))
    eligible = [op for op, c in counts.items() if OPHOLD_MIN_SHARE <= c / n <= OPHOLD_MAX_SHARE]
    return sorted(eligible, key=lambda op: (counts[op], op))[:OPHOLD_DEFAULT_COUNT]


def ophold_splits(rows: np.ndarray, op_sets: Sequence[frozenset], ops: Sequence[str], seed: int,
                  target: str) -> List[Split]:
    """One split per operator type in ``ops``: test on the rows whose model contains it, train
    (90/10 train/val) on the others. ``op_sets[i]`` holds the op types of ``rows[i]``'s model."""
    rows = np.asarray(rows, dtype=np.int64)
    present = set().union(*op_sets) if len(op_sets) else set()
    missing = [op for op in ops if op not in present]
    if missing:
        raise SplitError(f"{target}: op-holdout: no labelled model contains {', '.join(missing)}; the models hold "
                         f"{', '.join(sorted(present))}")
    return [_check(op_holdout(rows, np.array([op in s for s in op_sets]), op, index, seed), target)
            for index, op in enumerate(ops)]


def fewshot_val_size(k: int) -> int:
    """Validation rows for a k-shot split: ~10% of k, at least 10."""
    return max(10, int(round(0.1 * k)))


def fewshot_splits(rows: np.ndarray, random: Split, sizes: Sequence[int], seed: int, target: str) -> List[Split]:
    """For each k: k training rows and ``fewshot_val_size(k)`` validation rows drawn from the random
    split's training part; the test rows are all other labelled rows."""
    splits = []
    for k in sizes:
        n_val = fewshot_val_size(k)
        if k < MIN_TRAIN_ROWS:
            raise SplitError(f"{target}: few-shot size {k} is too small (at least {MIN_TRAIN_ROWS})")
        if k + n_val > len(random.train):
            raise SplitError(f"{target}: few-shot size {k} needs {k} + {n_val} rows from the random split's "
                             f"{len(random.train)} training rows")
        splits.append(_check(few_shot(rows, random.train, k, n_val, seed), target))
    return splits


def lodo_splits(random: Split, sizes: Sequence[int], draws: int, seed: int, target: str) -> List[Split]:
    """Leave one device out: for each k, ``draws`` seeded draws of k measured rows from the random
    split's training part, no validation rows, tested on the random split's test rows."""
    splits = []
    for k in sizes:
        if k < MIN_ADAPT_ROWS:
            raise SplitError(f"{target}: leave-one-device-out size {k} is too small (adapting needs at least "
                             f"{MIN_ADAPT_ROWS} rows)")
        if k > len(random.train):
            raise SplitError(f"{target}: leave-one-device-out size {k} exceeds the random split's "
                             f"{len(random.train)} training rows")
        splits += [new_device(random, k, draw, seed) for draw in range(draws)]
    return splits
