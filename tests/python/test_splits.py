"""The seeded splits draw exactly the rows they always drew: the shipped predictors' provenance
and resumed evaluations name rows by these draws. The pinned indices were computed with the code
that trained the shipped predictors; a change to any draw (generator, seed layout, order of the
cuts) fails here."""

from __future__ import annotations

import numpy as np
import pytest

from perfsage._split import Split, few_shot, leave_one_space_out, random_split, validation_split
from perfsage.evaluation._splits import SplitError, fewshot_splits, loso_space, loso_splits, split_seed
from perfsage.evaluation._splits import random_split as evaluation_random_split

ROWS = np.arange(3, 60, 2)  # 29 rows with gaps: splits return row values, not positions
SPACES = np.array(["a", "b", "c"] * 20)  # the space of dataset row i is SPACES[i]

RANDOM_SEED_7 = Split(
    train=np.array([3, 5, 7, 9, 13, 15, 17, 19, 21, 23, 25, 27, 33, 35, 37, 43, 45, 47, 49, 51, 53, 57, 59]),
    val=np.array([11, 29, 55]),
    test=np.array([31, 39, 41]),
)


def _same(split: Split, train, val, test) -> None:
    assert split.train.tolist() == list(train)
    assert split.val.tolist() == list(val)
    assert split.test.tolist() == list(test)


def test_random_split_pins_the_shipped_predictors_draw() -> None:
    expected = RANDOM_SEED_7
    _same(random_split(ROWS, seed=7), expected.train, expected.val, expected.test)
    split = evaluation_random_split(ROWS, 7, "dev")
    _same(split, expected.train, expected.val, expected.test)
    assert (split.name, split.label) == ("random", "random")


def test_fit_validation_hold_out_pins_its_draw() -> None:
    # Predictor.fit without val: validation_split of the graphs, seeded with the training seed.
    split = validation_split(np.arange(23), 0.1, 3)
    _same(split, [i for i in range(23) if i not in (9, 17)], [9, 17], [])


def test_leave_one_space_out_pins_its_draws() -> None:
    splits = loso_splits(ROWS, SPACES, 7, "dev")
    assert [s.label for s in splits] == ["loso[a]", "loso[b]", "loso[c]"]
    _same(splits[0], [5, 7, 11, 13, 17, 23, 25, 29, 31, 37, 41, 43, 47, 49, 53, 55, 59], [19, 35],
          [3, 9, 15, 21, 27, 33, 39, 45, 51, 57])
    _same(splits[1], [3, 9, 11, 15, 17, 23, 27, 29, 33, 35, 39, 41, 45, 47, 51, 53, 57, 59], [5, 21],
          [7, 13, 19, 25, 31, 37, 43, 49, 55])
    _same(splits[2], [3, 9, 13, 15, 19, 21, 25, 31, 33, 37, 39, 43, 45, 49, 51, 55, 57], [7, 27],
          [5, 11, 17, 23, 29, 35, 41, 47, 53, 59])
    direct = leave_one_space_out(ROWS, SPACES[ROWS], "b", 1, 7)
    _same(direct, splits[1].train, splits[1].val, splits[1].test)


def test_leave_one_space_out_at_several_seeds_repeats_each_space_with_another_draw() -> None:
    once = loso_splits(ROWS, SPACES, 7, "dev")
    thrice = loso_splits(ROWS, SPACES, 7, "dev", seeds=3)
    # The first seed's splits come first and are the one-seed run's, so its units are reused.
    assert [s.label for s in thrice] == ["loso[a]", "loso[b]", "loso[c]", "loso[a seed=8]", "loso[b seed=8]",
                                         "loso[c seed=8]", "loso[a seed=9]", "loso[b seed=9]", "loso[c seed=9]"]
    for a, b in zip(once, thrice):
        _same(b, a.train, a.val, a.test)
    assert [split_seed(s, 7) for s in thrice] == [7] * 3 + [8] * 3 + [9] * 3
    assert [loso_space(s.part) for s in thrice] == ["a", "b", "c"] * 3
    for first, again in zip(thrice[:3], thrice[3:6]):
        assert again.test.tolist() == first.test.tolist()  # the same held-out space
        assert sorted(again.train.tolist() + again.val.tolist()) == sorted(first.train.tolist() + first.val.tolist())
        _same(again, *(lambda d: (d.train, d.val, d.test))(leave_one_space_out(ROWS, SPACES[ROWS], again.part[0],
                                                                               "abc".index(again.part[0]), 8)))
    assert any(a.val.tolist() != b.val.tolist() for a, b in zip(thrice[:3], thrice[3:6]))
    # Other splits train at the evaluation's seed, whatever their part says.
    assert split_seed(Split(train=ROWS, val=ROWS, name="fewshot", part="k=10"), 7) == 7


def test_few_shot_pins_its_draw() -> None:
    (split,) = fewshot_splits(ROWS, evaluation_random_split(ROWS, 7, "dev"), [5], 7, "dev")
    assert split.label == "fewshot[k=5]"
    _same(split, [3, 7, 37, 43, 53], [5, 17, 19, 21, 23, 27, 33, 45, 47, 59],
          [9, 11, 13, 15, 25, 29, 31, 35, 39, 41, 49, 51, 55, 57])
    direct = few_shot(ROWS, RANDOM_SEED_7.train, 5, 10, 7)
    _same(direct, split.train, split.val, split.test)


def test_splits_refuse_too_few_rows() -> None:
    with pytest.raises(ValueError, match="only 9 rows; need at least 10"):
        random_split(np.arange(9))
    with pytest.raises(SplitError, match="at least 2 search spaces"):
        loso_splits(ROWS, np.array(["a"] * 60), 7, "dev")
