"""Leave one device out: the base predictors ``perfsage evaluate --splits lodo`` adapts from, and
the published numbers its report sets beside them.

A held-out target's base is either a given predictor (``--lodo-base``: a shipped one or a file,
which must not predict the held-out target) or a perfsage network pretrained here on the other
evaluated targets' labels of the held-out target's random-split training and validation rows: its
test rows, which every lodo split scores, are never seen, under any device's label. A pretrained
base is kept in ``OUT/lodo-bases/`` with the settings it was made with, and reused while they hold.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, TextIO, Tuple

import numpy as np

from .._io import atomic_write_bytes, json_safe
from .._predictor import (NETWORK_DEFAULTS, TRAINING_DEFAULTS, Predictor, load_predictor, shipped_bases,
                          shipped_file, shipped_predictors)
from .._split import Split
from ._records import file_sha256, rows_digest, safe_name
from ._splits import EvaluationError

# HELP (H. Lee et al., "HELP: Hardware-Adaptive Efficient Latency Prediction for NAS via
# Meta-Learning", NeurIPS 2021): Spearman's rho on NAS-Bench-201 with 10 measurements of the new
# device, for the devices of ours it reports (as quoted in issue 15; it reports pixel2, not pixel3).
HELP_SPEARMAN_K10 = {"nb201-raspi4": 0.890, "nb201-gold_6226": 0.989, "nb201-titan_rtx_1": 0.987}
# Epochs of a base pretrained here when --lodo-base-epochs is not given.
DEFAULT_BASE_EPOCHS = 30


class LodoBases:
    """The base predictor of each held-out target, made (or found) on first need."""

    def __init__(self, runner: Any, given: Optional[str], epochs: Optional[int], log: Optional[TextIO] = None) -> None:
        self.runner = runner
        self.given = given
        self.epochs = int(epochs or DEFAULT_BASE_EPOCHS)
        self.log = log if log is not None else sys.stderr
        self._bases: Dict[str, Tuple[Path, str]] = {}

    def columns(self, target: str) -> List[str]:
        """The label columns a pretrained base of ``target`` learns: every other evaluated target's."""
        return [c for t, recipe in self.runner.recipes.items() if t != target for c in recipe.columns]

    def check(self, target: str) -> None:
        """Raises EvaluationError when ``target`` has nothing to adapt from."""
        if self.given is not None:
            path = self._given_path()
            own = [c for c in load_predictor(path).output_names if c in self.runner.recipes[target].columns]
            if own:
                raise EvaluationError(f"--lodo-base {self.given} predicts {', '.join(own)}: it has seen the device "
                                      f"{target} that leave-one-device-out holds out")
        elif not self.columns(target):
            raise EvaluationError(f"{target}: leave-one-device-out pretrains on the other evaluated targets, and "
                                  "there are none: give another --target of the dataset, or --lodo-base")

    def _given_path(self) -> Path:
        path = Path(self.given)
        if path.is_file():
            return path
        shipped = shipped_file(self.given)
        if shipped is not None:
            return shipped
        raise EvaluationError(f"--lodo-base {self.given}: neither a predictor file nor a shipped predictor "
                              f"({', '.join(shipped_predictors() + shipped_bases())})")

    def base(self, target: str, random: Split) -> Tuple[Path, str]:
        """(path, sha256 prefix) of ``target``'s base, pretraining it if needed."""
        if target not in self._bases:
            path = self._given_path() if self.given is not None else self._pretrained(target, random)
            self._bases[target] = (path, file_sha256(path))
        return self._bases[target]

    def _pretrained(self, target: str, random: Split) -> Path:
        runner = self.runner
        data = runner.data
        columns = self.columns(target)
        rows = np.union1d(random.train, random.val)
        labels = np.asarray(data.dataset.labels(columns), dtype=np.float64)[rows]
        labels[~(np.isfinite(labels) & (labels > 0))] = np.nan
        keep = ~np.all(np.isnan(labels), axis=1)
        rows, labels = rows[keep], labels[keep]
        hyperparameters = {**runner.options.perfsage, "seed": runner.options.seed}
        config = json_safe({"dataset": data.path, "dataset_rows": int(data.dataset.num_rows), "held_out": target,
                            "columns": columns, "rows": rows_digest(rows),
                            "epochs": self.epochs, "intervals": runner.options.intervals,
                            "hyperparameters": {**NETWORK_DEFAULTS, **TRAINING_DEFAULTS, **hyperparameters}})
        path = runner.out / "lodo-bases" / f"{safe_name(target)}.psage"
        record = path.with_suffix(".json")
        if path.exists() and record.exists():
            try:
                if json.loads(record.read_text()).get("config") == json.loads(json.dumps(config)):
                    print(f"{target}: leave-one-device-out base {path} made before", file=self.log, flush=True)
                    return path
            except (OSError, json.JSONDecodeError):
                pass
        print(f"{target}: pretraining the leave-one-device-out base on {', '.join(columns)} ({len(rows):,} rows, "
              f"{self.epochs} epochs) ...", file=self.log, flush=True)
        started = time.perf_counter()
        units = [data.dataset.units.get(c, "") for c in columns]
        predictor = Predictor(columns, units=units, **hyperparameters)
        predictor.fit((data.graphs(rows), labels.astype(np.float32)), epochs=self.epochs,
                      threads=runner.options.threads, progress=runner.options.progress,
                      intervals=runner.options.intervals)
        path.parent.mkdir(parents=True, exist_ok=True)
        predictor.save(path)
        seconds = time.perf_counter() - started
        atomic_write_bytes(record, json.dumps({"config": config, "seconds": round(seconds, 1),
                                               "best_val_mape": predictor.provenance.get("best_val_mape")},
                                              indent=1).encode())
        print(f"{target}: base pretrained in {seconds:.0f} s", file=self.log, flush=True)
        return path
