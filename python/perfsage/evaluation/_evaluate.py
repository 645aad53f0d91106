"""``perfsage evaluate``: train perfsage and the baselines on the protocol's splits and score them.

The work is cut into units, one per (target, split[, held-out space or few-shot size], method).
Each finished unit is written at once to ``OUT/units/`` (a JSON record, written last, and the test
predictions as ``.npz``), so a killed run loses at most the unit in progress and the same command
run again skips every unit whose record was made with the same rows and settings. The report is
rebuilt from the records at the end of every run.
"""

from __future__ import annotations

import json
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TextIO

import numpy as np

from .._core import Graph
from .._io import json_safe, utc_timestamp
from .._predictor import NETWORK_DEFAULTS, TRAINING_DEFAULTS, dataset_operator_labels, load_predictor, output_limits
from .._recipes import Recipe, recipe_for, split_record
from ..datasets import open_dataset
from ._lodo import LodoBases
from ._method import Method, graph_size_features
from ._methods import LODO_METHODS, SCRATCH_SPLITS, AdaptMethod, method_class, method_names
from ._metrics import INTERVAL_LEVEL, accuracy, interval_accuracy, operator_accuracy
from ._records import file_sha256, rows_digest, safe_name, save_predictions, write_json
from ._report import write_report
from .._adapt import spread_rows
from .._split import Split, chosen_device
from ._splits import (DEFAULT_SPLITS, SPLIT_NAMES, EvaluationError, default_holdout_ops, fewshot_splits, lodo_splits,
                      loso_splits, ophold_splits, random_split, split_seed)


@dataclass
class EvaluationOptions:
    """Everything ``evaluate`` is asked to do (the CLI's arguments)."""

    dataset: str
    targets: List[str]
    out: Path
    splits: List[str] = field(default_factory=lambda: list(DEFAULT_SPLITS))
    methods: List[str] = field(default_factory=method_names)
    real: Optional[str] = None
    epochs: Optional[int] = None  # perfsage epochs; None: the recipe's
    loso_epochs: Optional[int] = None  # perfsage epochs on the leave-one-space-out splits; None: as epochs
    loso_seeds: int = 1  # seeds of the leave-one-space-out splits (each a validation draw and training seed)
    predictors: Optional[Path] = None  # perfsage predictors trained on the random split already (shipped ones)
    seed: int = 0
    fewshot_sizes: List[int] = field(default_factory=lambda: [100, 900])
    holdout_ops: Optional[List[str]] = None  # op-holdout split's operator types; None: default_holdout_ops
    lodo_sizes: List[int] = field(default_factory=lambda: [5, 10, 20, 50, 100])  # a new device's measured rows
    lodo_draws: int = 3  # seeded draws of the rows per size
    lodo_choose: bool = False  # also the rows perfsage chooses (Predictor.choose_to_measure), per size and draw
    lodo_base: Optional[str] = None  # predictor to adapt from; None: pretrain on the other targets
    lodo_base_epochs: Optional[int] = None  # epochs of a pretrained base; None: _lodo.DEFAULT_BASE_EPOCHS
    adapt_epochs: Optional[int] = None  # Predictor.adapt's fine-tuning epochs; None: its default
    intervals: bool = False  # perfsage fitted with intervals=True, its intervals scored
    limit: Optional[int] = None
    threads: int = 0
    gcn: Dict[str, Any] = field(default_factory=dict)  # overrides of GCN_DEFAULTS
    perfsage: Dict[str, Any] = field(default_factory=dict)  # overrides of the recipes' hyperparameters
    progress: bool = True
    command: str = ""

    def validate(self) -> None:
        unknown = [s for s in self.splits if s not in SPLIT_NAMES]
        if unknown or not self.splits:
            raise EvaluationError(f"unknown split(s) {unknown or '(none given)'}; known: {', '.join(SPLIT_NAMES)}")
        unknown = [m for m in self.methods if m not in method_names()]
        if unknown or not self.methods:
            raise EvaluationError(f"unknown method(s) {unknown or '(none given)'}; known: {', '.join(method_names())}")
        if not self.targets:
            raise EvaluationError("no target given (--target)")
        for name, values in (("splits", self.splits), ("methods", self.methods), ("targets", self.targets),
                             ("few-shot sizes", self.fewshot_sizes)):
            if len(set(values)) != len(values):
                raise EvaluationError(f"{name}: a value is given twice in {values}")
        for name, value in (("--epochs", self.epochs), ("--loso-epochs", self.loso_epochs)):
            if value is not None and value < 1:
                raise EvaluationError(f"{name} must be >= 1, got {value}")
        if self.loso_seeds < 1:
            raise EvaluationError(f"--loso-seeds must be >= 1, got {self.loso_seeds}")
        if self.predictors is not None and not Path(self.predictors).is_dir():
            raise EvaluationError(f"--predictors {self.predictors}: no such directory")
        if self.limit is not None and self.limit < 10:
            raise EvaluationError(f"--limit must be >= 10, got {self.limit}")
        if "fewshot" in self.splits and (not self.fewshot_sizes or min(self.fewshot_sizes) < 2):
            raise EvaluationError(f"--fewshot-sizes must be integers >= 2, got {self.fewshot_sizes}")
        if self.threads < 0:
            raise EvaluationError(f"--threads must be >= 0 (0: every core), got {self.threads}")
        if "lodo" in self.splits:
            if not self.lodo_sizes or len(set(self.lodo_sizes)) != len(self.lodo_sizes):
                raise EvaluationError(f"--lodo-sizes must be distinct integers, got {self.lodo_sizes}")
            for name, value, low in (("--lodo-draws", self.lodo_draws, 1), ("--lodo-base-epochs", self.lodo_base_epochs, 1),
                                     ("--adapt-epochs", self.adapt_epochs, 0)):
                if value is not None and value < low:
                    raise EvaluationError(f"{name} must be >= {low}, got {value}")
        unknown = sorted(set(self.perfsage) - set(NETWORK_DEFAULTS) - set(TRAINING_DEFAULTS) - {"validation_split"})
        if unknown:
            raise EvaluationError(f"--perfsage: unknown hyperparameter(s) {', '.join(unknown)}; known: "
                                  f"{', '.join(sorted(NETWORK_DEFAULTS) + sorted(TRAINING_DEFAULTS))}")


@dataclass
class Unit:
    """One training and scoring of one method on one split of one target."""

    target: str
    split: Split
    method: str

    @property
    def name(self) -> str:
        return f"{self.target} {self.split.label} {self.method}"

    def record_path(self, out: Path) -> Path:
        part = re.sub(r"[^A-Za-z0-9_.=-]+", "_", self.split.part)
        folder = self.split.name + (f"-{part}" if part else "")
        return out / "units" / safe_name(self.target) / folder / f"{self.method}.json"


# ----------------------------------------------------------------------------------------------
# Data: one dataset's rows, labels and (lazily) graphs


class LabelledRows:
    """A dataset (or its ``--limit`` subset) with each target's usable rows, and its graphs loaded
    once, on first need, for every row that some target uses."""

    def __init__(self, path: str, threads: int, limit: Optional[int] = None, seed: int = 0) -> None:
        self.path = str(Path(path).resolve())
        self.dataset = open_dataset(path)
        self.threads = threads
        n = self.dataset.num_rows
        if limit is not None and limit < n:
            self.rows = np.sort(np.random.default_rng([seed, 3]).choice(n, size=limit, replace=False))
        else:
            self.rows = np.arange(n)
        self.spaces = self.dataset.spaces
        self.usable: Dict[str, np.ndarray] = {}
        self.labels: Dict[str, np.ndarray] = {}
        # Per target, each row's per-operator labels [num_nodes, metrics] (None: none), or None;
        # read on first need (only methods that price operators use them) from the recipe's columns.
        self.operator_labels: Dict[str, Optional[List[Optional[np.ndarray]]]] = {}
        self._columns: Dict[str, List[str]] = {}
        self._graphs: Optional[List[Optional[Graph]]] = None
        self.load_seconds = 0.0

    def has_target(self, recipe: Recipe) -> List[str]:
        """The recipe's label columns this dataset lacks."""
        return [c for c in recipe.columns if c not in self.dataset.label_columns]

    def add_target(self, recipe: Recipe) -> np.ndarray:
        """Labels ``[rows, metrics]`` of the recipe's columns; records the usable rows: no error, every
        metric finite and positive (MAPE and the log-space baselines need positive labels)."""
        labels = self.dataset.labels(recipe.columns)
        good = np.all(np.isfinite(labels) & (labels > 0), axis=1)
        self.labels[recipe.target] = labels
        self.usable[recipe.target] = self.rows[good[self.rows]]
        self._columns[recipe.target] = recipe.columns
        return self.usable[recipe.target]

    def operator_rows(self, target: str, rows: np.ndarray) -> Optional[List[Optional[np.ndarray]]]:
        """The per-operator labels of ``rows`` for ``target``, or None if the dataset has none."""
        if target not in self.operator_labels:
            self.graphs(np.empty(0, np.int64))  # loads them: their operator types place Vela's source-less costs
            self.operator_labels[target] = dataset_operator_labels(
                self.dataset, self._columns[target], [None if g is None else g.op_names for g in self._graphs])
        labels = self.operator_labels[target]
        return None if labels is None else [labels[r] for r in np.asarray(rows).tolist()]

    def op_sets(self, rows: np.ndarray) -> List[frozenset]:
        """The operator types of each row's model."""
        return [frozenset(g.op_names) for g in self.graphs(rows)]

    def graphs(self, rows: np.ndarray) -> List[Graph]:
        if self._graphs is None:
            needed = np.unique(np.concatenate(list(self.usable.values()) or [np.empty(0, np.int64)]))
            started = time.perf_counter()
            print(f"loading {len(needed):,} graphs of {self.path} ...", file=sys.stderr, flush=True)
            loaded = self.dataset.select(needed).graphs(threads=self.threads)
            self._graphs = [None] * self.dataset.num_rows
            for row, graph in zip(needed.tolist(), loaded):
                self._graphs[row] = graph
            self.load_seconds = time.perf_counter() - started
            print(f"loaded in {self.load_seconds:.1f} s", file=sys.stderr, flush=True)
        out = []
        for row in np.asarray(rows).tolist():
            graph = self._graphs[row]
            if graph is None:
                raise EvaluationError(f"{self.path}: row {row} (id {self.dataset.ids[row]}) has labels but no graph: "
                                      "neither stored TFLite nor a spec that builds")
            out.append(graph)
        return out

    def describe(self) -> Dict[str, Any]:
        spaces, counts = np.unique(self.spaces[self.rows], return_counts=True)
        dtypes, dtype_counts = np.unique(self.dataset.dtypes[self.rows], return_counts=True)
        targets = {t: {k: info.get("settings", {}).get(k) for k in ("tool", "tool_version", "source", "description")
                       if info.get("settings", {}).get(k) is not None}
                   for t, info in self.dataset.targets.items()}
        return {
            "path": self.path,
            "rows": int(self.dataset.num_rows),
            "rows_used": int(len(self.rows)),
            "spaces": dict(zip(spaces.tolist(), counts.tolist())),
            "dtypes": dict(zip(dtypes.tolist(), dtype_counts.tolist())),
            "usable_rows": {t: int(len(r)) for t, r in self.usable.items()},
            "label_sources": targets,
            "graph_load_seconds": round(self.load_seconds, 1),
        }


# ----------------------------------------------------------------------------------------------
# Running units


def _make_method(name: str, recipe: Recipe, units: Sequence[str], options: EvaluationOptions,
                 split: str = "random", seed: Optional[int] = None,
                 limits: Optional[Dict[str, float]] = None) -> Method:
    """Method ``name`` as ``options`` ask for it on a split of kind ``split``, seeded with ``seed``
    (default: the evaluation's); perfsage's predictor holds its outputs under ``limits`` (the
    labels' upper bounds, as a shipped predictor records them)."""
    cls = method_class(name)
    seed = options.seed if seed is None else seed
    if name == "scratch":
        return cls(recipe.columns, units, seed, options.threads,
                   hyperparameters={**recipe.hyperparameters, **options.perfsage})
    if name == "perfsage":
        epochs = (options.loso_epochs if split == "loso" else None) or options.epochs or recipe.epochs
        return cls(recipe.columns, units, seed, options.threads,
                   hyperparameters={**recipe.hyperparameters, **options.perfsage}, epochs=epochs,
                   intervals=options.intervals, limits=limits)
    if name == "gcn":
        return cls(recipe.columns, units, seed, options.threads, **options.gcn)
    return cls(recipe.columns, units, seed, options.threads)


def model_path(out: Path, target: str, method: Method) -> Path:
    """Where the model trained on the random split is kept (perfsage's is shipped by the lead)."""
    if method.name == "perfsage":
        return out / "predictors" / f"{safe_name(target)}.psage"
    return out / "models" / safe_name(target) / f"{method.name}{method.file_suffix}"


def _format_mapes(metrics: Dict[str, Dict[str, Any]]) -> str:
    return ", ".join(f"{m} {s['mape']:.2f}%" for m, s in metrics.items())


class Runner:
    """Plans the units of one evaluation, runs those not done yet, and collects every record."""

    def __init__(self, options: EvaluationOptions, log: Optional[TextIO] = None) -> None:
        options.validate()
        self.options = options
        self.out = Path(options.out)
        self.log = log if log is not None else sys.stderr
        self.data = LabelledRows(options.dataset, options.threads, options.limit, options.seed)
        self.recipes: Dict[str, Recipe] = {}
        self.units_of: Dict[str, List[str]] = {}
        self.limits_of: Dict[str, Dict[str, float]] = {}
        self.notes: List[str] = []
        self.real: Optional[LabelledRows] = None
        self.real_targets: List[str] = []
        self.random_of: Dict[str, Any] = {}  # each target's random split (the lodo bases train on its rows)
        self.lodo = LodoBases(self, options.lodo_base, options.lodo_base_epochs, self.log)
        self._check_targets()
        self._open_real()
        self.plan: List[Unit] = self._plan()

    def _check_targets(self) -> None:
        known = list(self.data.dataset.targets)
        for target in self.options.targets:
            if target not in known:
                raise EvaluationError(f"{self.data.path}: no target {target!r}; its targets are {', '.join(known)}")
            recipe = recipe_for(target)
            missing = self.data.has_target(recipe)
            if missing:
                raise EvaluationError(f"{self.data.path}: target {target}'s recipe predicts {', '.join(recipe.columns)} "
                                      f"but the dataset has no column(s) {', '.join(missing)}")
            self.recipes[target] = recipe
            self.units_of[target] = [self.data.dataset.units.get(c, "") for c in recipe.columns]
            self.limits_of[target] = output_limits(recipe.columns, {
                target: self.data.dataset.targets.get(target, {}).get("settings", {})})
            usable = self.data.add_target(recipe)
            dropped = len(self.data.rows) - len(usable)
            if dropped:
                self.notes.append(f"{target}: {dropped} of {len(self.data.rows)} rows left out (error, or a metric "
                                  "missing, zero or negative)")

    def _open_real(self) -> None:
        if "real" not in self.options.splits:
            return
        if not self.options.real:
            self._note("split 'real' skipped: no --real dataset given")
            return
        self.real = LabelledRows(self.options.real, self.options.threads)
        for target, recipe in self.recipes.items():
            missing = self.real.has_target(recipe)
            if missing:
                self._note(f"split 'real' skipped for {target}: {self.real.path} has no column(s) {', '.join(missing)}")
                continue
            if len(self.real.add_target(recipe)) == 0:
                self._note(f"split 'real' skipped for {target}: {self.real.path} has no labelled rows for it")
                continue
            self.real_targets.append(target)

    def _note(self, text: str) -> None:
        self.notes.append(text)
        print(text, file=self.log, flush=True)

    def splits_of(self, target: str) -> List[Split]:
        rows, seed = self.data.usable[target], self.options.seed
        wanted = self.options.splits
        needs_random = "random" in wanted or "fewshot" in wanted or "lodo" in wanted or target in self.real_targets
        random = random_split(rows, seed, target) if needs_random else None
        self.random_of[target] = random
        out: List[Split] = []
        if random is not None and ("random" in wanted or target in self.real_targets):
            out.append(random)
        if "loso" in wanted:
            out.extend(loso_splits(rows, self.data.spaces, seed, target, self.options.loso_seeds))
        if random is not None and "fewshot" in wanted:
            out.extend(fewshot_splits(rows, random, self.options.fewshot_sizes, seed, target))
        if random is not None and self.real is not None and target in self.real_targets:
            out.append(Split(train=random.train, val=random.val, test=self.real.usable[target], name="real"))
        if "ophold" in wanted:
            op_sets = self.data.op_sets(rows)
            ops = self.options.holdout_ops or default_holdout_ops(op_sets)
            held = ophold_splits(rows, op_sets, ops, seed, target)
            for op, split in zip(ops, held):
                self._note_unpriced(target, op, split.test)
            out.extend(held)
        if random is not None and "lodo" in wanted:
            self.lodo.check(target)
            out.extend(lodo_splits(random, self.options.lodo_sizes, self.options.lodo_draws, seed, target))
            if self.options.lodo_choose:
                out.extend(self._chosen_lodo_splits(target, random, seed))
        return out

    def _chosen_lodo_splits(self, target: str, random: Split, seed: int) -> List[Split]:
        """The leave-one-device-out splits whose k rows the base chooses (``choose_to_measure``) from
        the same pool the random draws take theirs from, one per size and draw (the draw seeds the
        choice within each stratum); the base is pretrained (or loaded) here for that."""
        base = load_predictor(self.lodo.base(target, random)[0])
        # The base prices the pool once; each size and draw stratifies those prices (as
        # choose_to_measure does, which would price the pool again for every split).
        proxy = base.log_latency(self.data.graphs(random.train), threads=self.options.threads)
        out = []
        for k in self.options.lodo_sizes:
            for draw in range(self.options.lodo_draws):
                choice_seed = int(np.random.SeedSequence([seed, 6, k, draw]).generate_state(1)[0])
                out.append(chosen_device(random, spread_rows(proxy, k, choice_seed), k, draw))
        return out

    def _note_unpriced(self, target: str, op: str, rows: np.ndarray) -> None:
        """A note when the per-operator labels of the first metric put the held-out op type's
        operators at 0 (the device runs it elsewhere, e.g. Vela leaves it to the CPU): a predictor
        that never saw the type prices it from its features and family, which cannot know that."""
        labels = self.data.operator_rows(target, rows)
        if labels is None:
            return
        zero = total = 0
        for graph, values in zip(self.data.graphs(rows), labels):
            if values is None:
                continue
            mine = np.asarray(graph.op_names) == op
            total += int(mine.sum())
            zero += int(np.sum(np.asarray(values)[mine, 0] == 0))
        if total and zero / total >= 0.5:
            metric = self.recipes[target].columns[0].split("/")[-1]
            self._note(f"{target}: ophold[{op}]: the per-operator labels put {zero:,} of the {total:,} {op} operators "
                       f"of its test models at 0 {metric} (the device does not run them, e.g. Vela leaves them to the "
                       "CPU); a predictor that never saw the type prices it from its features and its family, which "
                       "cannot know that")

    def _plan(self) -> List[Unit]:
        units = []
        for target in self.options.targets:
            splits = self.splits_of(target)
            if "random" not in self.options.splits and any(s.name == "real" for s in splits):
                self._note(f"{target}: the real split scores the models trained on the random split, so that split "
                           "runs too")
            for split in splits:
                for method in self.options.methods:
                    if (split.name == "lodo" and method not in LODO_METHODS) or (
                            method == "scratch" and split.name not in SCRATCH_SPLITS):
                        continue
                    units.append(Unit(target, split, method))
        return units

    def test_data(self, split: Split) -> LabelledRows:
        """The rows a split's test indices refer to: the real-model dataset's for the real split."""
        if split.name != "real":
            return self.data
        if self.real is None:
            raise RuntimeError("a real split was planned without a real-model dataset")
        return self.real

    def unit_config(self, unit: Unit, method: Method, reused: Optional[Path] = None) -> Dict[str, Any]:
        """What makes a record reusable: same data, rows, split and method settings."""
        split = unit.split
        config: Dict[str, Any] = {
            "dataset": self.data.path, "dataset_rows": int(self.data.dataset.num_rows), "limit": self.options.limit,
            "seed": split_seed(split, self.options.seed), "target": unit.target,
            "columns": self.recipes[unit.target].columns,
            "split": split.label, "rows": rows_digest(split.train, split.val, split.test), "method": unit.method,
            "settings": method.config(),
        }
        if split.name == "real":
            real = self.test_data(split)
            config.update(real_dataset=real.path, real_rows=int(real.dataset.num_rows))
            # The real split scores the random split's model: a new model (retrained, or another
            # --predictors file) makes its record stale.
            model = model_path(self.out, unit.target, method)
            if model.exists():
                config["model_sha256"] = file_sha256(model)
        if reused is not None:
            config["predictor_sha256"] = file_sha256(reused)
        return json.loads(json.dumps(json_safe(config)))

    def reused_predictor(self, unit: Unit) -> Optional[Path]:
        """The predictor file (--predictors) scored as is for this unit, instead of training one:
        perfsage on the random split, when the file exists. It must have been trained on this split
        with this recipe (scripts/train_shipped.py records both); otherwise the numbers would not be
        the file's, so that is an error."""
        if self.options.predictors is None or unit.method != "perfsage" or unit.split.name != "random":
            return None
        path = Path(self.options.predictors) / f"{safe_name(unit.target)}.psage"
        if not path.is_file():
            return None
        prov = load_predictor(path).provenance
        expected = split_record(self.recipes[unit.target], unit.split, self.options.seed, Path(self.data.path).name)
        wrong = [k for k, v in expected.items() if json_safe(prov.get(k)) != json_safe(v)]
        if wrong:
            raise EvaluationError(
                f"{path}: trained with other {', '.join(wrong)} than this evaluation's random split of "
                f"{unit.target} ({', '.join(f'{k}: {prov.get(k)!r} vs {expected[k]!r}' for k in wrong)}); "
                "retrain it (scripts/train_shipped.py) or leave out --predictors")
        return path

    def existing(self, unit: Unit, config: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The unit's record if it was made with ``config``; None if missing or made otherwise."""
        path = unit.record_path(self.out)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            print(f"{path}: unreadable record; recomputing {unit.name}", file=self.log, flush=True)
            return None
        if record.get("config") != config:
            old = record.get("config") or {}
            changed = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            print(f"{unit.name}: the stored result was made with other {', '.join(changed)}; recomputing",
                  file=self.log, flush=True)
            return None
        if not path.with_suffix(".npz").exists():
            return None
        return record

    def kept_model_matches(self, unit: Unit, method: Method, record: Dict[str, Any]) -> bool:
        """Whether the model a random unit saved for the real split is still there, unchanged: a unit
        record copied from another output folder, or a model file replaced since, would otherwise
        have the real split score a model that is not the one the record describes. Records made
        before the model's sha256 was kept are trusted when the file exists."""
        model = model_path(self.out, unit.target, method)
        if not model.exists():
            return False
        kept = (record.get("fit") or {}).get("model_sha256")
        if kept is not None and kept != file_sha256(model):
            print(f"{unit.name}: {model} is not the model this unit saved; recomputing", file=self.log, flush=True)
            return False
        return True

    def run(self) -> List[Dict[str, Any]]:
        records = []
        total = len(self.plan)
        for index, unit in enumerate(self.plan, 1):
            recipe = self.recipes[unit.target]
            if unit.split.name == "lodo" and unit.method == "perfsage":
                base, base_sha256 = self.lodo.base(unit.target, self.random_of[unit.target])
                method: Method = AdaptMethod(recipe.columns, self.units_of[unit.target], self.options.seed,
                                             self.options.threads, base, base_sha256, self.options.adapt_epochs)
            else:
                method = _make_method(unit.method, recipe, self.units_of[unit.target], self.options, unit.split.name,
                                      split_seed(unit.split, self.options.seed), self.limits_of[unit.target])
            reused = self.reused_predictor(unit)
            config = self.unit_config(unit, method, reused)
            record = self.existing(unit, config)
            if record is not None and unit.split.name == "random" and not self.kept_model_matches(unit, method, record):
                record = None  # the real split needs this unit's model: train (or load) it again
            prefix = f"[{index}/{total}] {unit.name}"
            if record is not None:
                print(f"{prefix}: done before ({_format_mapes(record['metrics'])})", file=self.log, flush=True)
            else:
                record = self.run_unit(unit, method, config, prefix, reused)
            records.append(record)
        return records

    def run_unit(self, unit: Unit, method: Method, config: Dict[str, Any], prefix: str,
                 reused: Optional[Path] = None) -> Dict[str, Any]:
        """Trains (or loads: the real split's model, a ``reused`` predictor file) and scores one unit."""
        split, target = unit.split, unit.target
        recipe = self.recipes[target]
        print(f"{prefix}: started (train {len(split.train)}, val {len(split.val)}, test {len(split.test)})",
              file=self.log, flush=True)
        started = time.perf_counter()
        labels = self.data.labels[target]
        train_seconds = 0.0
        fit_info: Dict[str, Any] = {}
        if split.name == "real":
            source = model_path(self.out, target, method)
            method = type(method).load(source, threads=self.options.threads)
            fit_info = {"model": str(source)}
        elif reused is not None:
            method = type(method).load(reused, threads=self.options.threads)
            prov = method.predictor.provenance
            train_seconds = float(prov.get("seconds", 0.0))
            fit_info = {"reused": str(reused), "epochs_run": prov.get("epochs_run"),
                        "best_epoch": prov.get("best_epoch"), "stopped_early": prov.get("stopped_early"),
                        "hyperparameters": method.predictor.hyperparameters}
        else:
            train = (self.data.graphs(split.train), labels[split.train])
            val = (self.data.graphs(split.val), labels[split.val])
            extra: Dict[str, Any] = {}
            if method.uses_operator_labels:
                extra["operator_labels"] = (self.data.operator_rows(target, split.train),
                                            self.data.operator_rows(target, split.val))
            if method.uses_groups:
                extra["val_groups"] = np.asarray(self.data.spaces)[split.val]
            fit_started = time.perf_counter()
            fit_info = method.fit(train, val, progress=self.options.progress, **extra)
            train_seconds = time.perf_counter() - fit_started
        test_data = self.test_data(split)
        test_graphs = test_data.graphs(split.test)
        y_true = test_data.labels[target][split.test]
        predict_started = time.perf_counter()
        y_pred = method.predict(test_graphs)
        predict_seconds = time.perf_counter() - predict_started
        metrics = {m: accuracy(y_true[:, j], y_pred[:, j]) for j, m in enumerate(recipe.metrics)}
        bounds = method.interval(test_graphs, INTERVAL_LEVEL)
        per_space = method.interval(test_graphs, INTERVAL_LEVEL, "per-space") if bounds is not None else None
        for suffix, scoped in (("", bounds), ("_per_space", per_space)):
            if scoped is not None:
                for j, m in enumerate(recipe.metrics):
                    scores = interval_accuracy(y_true[:, j], y_pred[:, j], scoped[0][:, j], scoped[1][:, j])
                    metrics[m].update({k + suffix: v for k, v in scores.items()})
        path = unit.record_path(self.out)
        sizes = graph_size_features(test_graphs)
        arrays = {"rows": split.test, "y_true": y_true, "y_pred": y_pred, "macs": sizes[:, 0], "params": sizes[:, 1],
                  **({"lower": bounds[0], "upper": bounds[1]} if bounds is not None else {}),
                  **({"lower_per_space": per_space[0], "upper_per_space": per_space[1]}
                     if per_space is not None else {})}
        save_predictions(path, arrays)
        if split.name == "random":
            model_file = model_path(self.out, target, method)
            model_file.parent.mkdir(parents=True, exist_ok=True)
            method.save(model_file)
            fit_info["model"] = str(model_file)
            fit_info["model_sha256"] = file_sha256(model_file)
        record = {
            "target": target, "split": split.name, "part": split.part, "label": split.label, "method": unit.method,
            "metrics_order": list(recipe.metrics), "columns": recipe.columns, "units": self.units_of[target],
            **{f"n_{k}": v for k, v in split.sizes().items()},
            "train_seconds": round(train_seconds, 3), "predict_seconds": round(predict_seconds, 3),
            "fit": fit_info, "prediction": getattr(method, "last_prediction", {}),
            "metrics": metrics, "operators": self.operator_scores(unit, method, test_data, test_graphs),
            "config": config,
            "finished_at": utc_timestamp("seconds"),
            "host": platform.node(),
        }
        write_json(path, record)  # last: its presence marks the unit done
        print(f"{prefix}: finished in {time.perf_counter() - started:.1f} s (training {train_seconds:.1f} s): "
              f"{_format_mapes(metrics)}", file=self.log, flush=True)
        return json.loads(path.read_text())


    def operator_scores(self, unit: Unit, method: Method, test_data: LabelledRows,
                        test_graphs: List[Graph]) -> Dict[str, Dict[str, float]]:
        """Per metric, the method's per-operator costs against the test rows' per-operator labels
        (``operator_accuracy``), for a method that prices operators; {} otherwise."""
        if not method.uses_operator_labels:
            return {}
        measured = test_data.operator_rows(unit.target, unit.split.test)
        if measured is None:
            return {}
        kept = [(g, m) for g, m in zip(test_graphs, measured) if m is not None]
        if not kept:
            return {}
        predicted = [method.graph_operator_costs(g) for g, _ in kept]
        out = {}
        for j, metric in enumerate(self.recipes[unit.target].metrics):
            pairs = [(p[:, j], m[:, j]) for p, (_, m) in zip(predicted, kept) if np.all(np.isfinite(m[:, j]))]
            if pairs:
                out[metric] = operator_accuracy([p for p, _ in pairs], [m for _, m in pairs])
        return out


def evaluate(options: EvaluationOptions, log: Optional[TextIO] = None) -> Dict[str, Any]:
    """Runs (or resumes) an evaluation and writes ``report.md``, ``report.json`` and the plots to
    ``options.out``; returns the report's data."""
    started = time.perf_counter()
    runner = Runner(options, log)
    records = runner.run()
    return write_report(runner, records, time.perf_counter() - started)

