"""How perfsage trains a predictor for each known target: which metrics, which network, how long.

The shipped predictors (``perfsage.load_predictor("ethos-u55-256")``) and ``perfsage evaluate`` both
train from these recipes, so the evaluation report describes exactly the networks users get.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import numpy as np


@dataclass(frozen=True)
class Recipe:
    """Training recipe for one target: its label columns and the predictor's hyperparameters."""

    target: str
    metrics: Tuple[str, ...]
    epochs: int = 250
    hyperparameters: Dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> List[str]:
        """Dataset label columns, ``"{target}/{metric}"``, in output order."""
        return [f"{self.target}/{m}" for m in self.metrics]


# No early stopping: with a cosine schedule, the validation loss keeps falling until the last epochs
# (patience 20 stopped a 250-epoch run at epoch 126, at 2.0% latency MAPE against 1.5% after 150
# full epochs); the best validation epoch is still the one kept.
_ETHOS_HYPER: Dict[str, Any] = {"patience": 0}

_U55_METRICS = ("latency_ms", "energy_mj", "peak_sram_bytes", "offchip_flash_bytes")
# Ethos-U65 with Dedicated_Sram keeps weights (and what spills from the 384 KiB SRAM) in DRAM and
# reads nothing from off-chip flash, so its off-chip memory metric is peak DRAM.
_U65_METRICS = ("latency_ms", "energy_mj", "peak_sram_bytes", "peak_dram_bytes")

RECIPES: Dict[str, Recipe] = {
    **{t: Recipe(t, _U55_METRICS, hyperparameters=_ETHOS_HYPER) for t in ("ethos-u55-128", "ethos-u55-256")},
    **{t: Recipe(t, _U65_METRICS, hyperparameters=_ETHOS_HYPER) for t in ("ethos-u65-256", "ethos-u65-512")},
    # Host-CPU latencies span four orders of magnitude (0.009 to 144 ms) over few models: the MAPE
    # loss collapsed to predicting zero on a 900-model training set (best epoch 1, 100% MAPE), so
    # this recipe trains on log-MSE (10.5% MAPE on the random split against 9.5% with MAPE).
    "host-cpu": Recipe("host-cpu", ("latency_ms",), hyperparameters={"patience": 0, "loss": "log_mse"}),
}

# Targets with a predictor file inside the package (python/perfsage/predictors/{target}.psage).
SHIPPED_TARGETS: Tuple[str, ...] = ("ethos-u55-256", "ethos-u65-512")


def recipe_for(target: str) -> Recipe:
    """The recipe for ``target``; targets without one (e.g. imported ``nb201-*`` devices) get latency only."""
    if target in RECIPES:
        return RECIPES[target]
    return Recipe(target, ("latency_ms",))


@dataclass(frozen=True)
class Split:
    """Row indices (sorted) into a dataset: train, validation (early stopping) and test."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_rows(rows: np.ndarray, seed: int = 0, test: float = 0.1, val: float = 0.1) -> Split:
    """Seeded random split of ``rows`` (80/10/10 by default): the test rows come first in the
    shuffled order, then the validation rows. The shipped predictors and ``perfsage evaluate``'s
    random split both come from this function, so the evaluation's numbers are those of the
    shipped files."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size < 10:
        raise ValueError(f"random split: only {rows.size} rows; need at least 10")
    order = rows[np.random.default_rng(seed).permutation(rows.size)]
    n_test, n_val = int(round(rows.size * test)), int(round(rows.size * val))
    return Split(train=np.sort(order[n_test + n_val:]), val=np.sort(order[n_test:n_test + n_val]),
                 test=np.sort(order[:n_test]))


def usable_rows(labels: np.ndarray) -> np.ndarray:
    """Rows whose labels ``[n, k]`` are all finite and positive (MAPE and log-space fits need them)."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim == 1:
        labels = labels[:, None]
    return np.flatnonzero(np.all(np.isfinite(labels) & (labels > 0), axis=1))


def random_split(labels: np.ndarray, seed: int = 0) -> Split:
    """The seeded 80/10/10 split of the rows of ``labels`` that are usable."""
    return split_rows(usable_rows(labels), seed)


def split_record(recipe: Recipe, split: Any, seed: int, dataset_name: str) -> Dict[str, Any]:
    """What a predictor trained on the random split records of how it was made (provenance keys
    ``train_data``, ``split``, ``recipe``); ``perfsage evaluate --predictors`` compares it with its own."""
    return {
        "train_data": dataset_name,
        "split": {"kind": "random 80/10/10", "seed": seed, "train": len(split.train), "val": len(split.val),
                  "test": len(split.test)},
        "recipe": {"epochs": recipe.epochs, "hyperparameters": recipe.hyperparameters},
    }


def train_on_random_split(dataset: Any, graphs: List[Any], target: str, seed: int = 0, threads: int = 0,
                          progress: bool = True) -> Any:
    """Trains ``target``'s recipe on the seeded random split of ``dataset`` (its ``graphs`` loaded
    in row order), scores it on the split's test rows and records split, recipe and scores in the
    predictor's provenance, which ``perfsage evaluate --predictors`` checks before reusing it.
    How the shipped predictors are made (scripts/train_shipped.py)."""
    from pathlib import Path

    from ._predictor import Predictor

    recipe = recipe_for(target)
    labels = dataset.labels(recipe.columns)
    split = random_split(labels, seed)
    p = Predictor(recipe.columns, units=[dataset.units.get(c, "") for c in recipe.columns], seed=seed,
                  **recipe.hyperparameters)
    p.fit(([graphs[i] for i in split.train], labels[split.train]),
          val=([graphs[i] for i in split.val], labels[split.val]), epochs=recipe.epochs, threads=threads,
          progress=progress)
    y = labels[split.test]
    ape = np.abs(p.predict([graphs[i] for i in split.test], threads=threads) - y) / y
    p.provenance.update({
        **split_record(recipe, split, seed, Path(dataset.path).name),
        "labeler_settings": {target: dataset.targets[target].get("settings", {})} if target in dataset.targets else {},
        "test": {c: {"mape": float(ape[:, j].mean()), "within_10": float(np.mean(ape[:, j] <= 0.10)),
                     "rows": int(len(split.test))} for j, c in enumerate(recipe.columns)},
    })
    return p
