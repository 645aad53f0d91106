"""Ethos-U labels from Arm's Vela compiler (``ethos-u-vela``): its performance estimate, memory
use and traffic for an int8 TFLite model, plus modelled energy (see ``energy``).

Each label compiles the model in a private temporary directory (removed afterwards) and reads
Vela's own outputs: the per-network summary CSV it writes into its output directory
(``<network>_summary_<system config>.csv``: cycles, inference time in *seconds*, memory used in
*KiB*, bytes moved per memory area, MACs) and its stdout for the NPU/CPU operator counts, which
the CSV does not carry. Stdout's "Total cycles" and "Neural network macs" are cross-checked
against the CSV so that a change in either format fails loudly instead of mislabelling.

Where Vela runs (``isolation``):

* ``"worker"`` (default): Vela's Python entry point (``ethosu.vela.vela.main``) in a long-lived
  helper process. In-process speed (no interpreter start-up and Vela import per model, which cost
  many times a small model's compile) without exposing the caller to Vela's C++ core, which segfaults on some inputs.
* ``"subprocess"``: a new ``python -m ethosu.vela`` per model, the way the ``vela`` CLI is used.
* ``"none"``: ``ethosu.vela.vela.main`` in the caller's process. Fastest; a Vela crash takes the
  caller down, and the call briefly redirects the process's fd 1 (not thread-safe).

All three give identical numbers (checked by tests/python/test_labelers.py and
bench/bench_labelers.py); ``main`` keeps no state between calls that changes results.
"""

from __future__ import annotations

import configparser
import contextlib
import csv
import ctypes
import glob
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .._graphs import load_tflite
from .._io import package_version
from ._base import HelperProcessLabeler, LabelError
from ._checks import verify_tflite
from ._helper import WorkerError, describe_exit
from .energy import energy_table, ethos_u_energy_mj
from .vela_layers import (
    LAYER_METRICS,
    PLACEMENTS,
    DebugDatabaseError,
    OperatorCosts,
    check_totals,
    operator_costs,
    read_tables,
)

ACCELERATORS = ("ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512")

# Defaults from the vela.ini that ships inside the ethos-u-vela package (config_files/Arm/vela.ini).
# U55: "High-End Embedded: SRAM (4 GB/s) and Flash (0.5 GB/s)" with Shared_Sram (weights in flash,
# tensor arena in SRAM) -- also Vela's own built-in default for U55. U65: "High-End: SRAM (16 GB/s)
# and DRAM (3.75 GB/s)" with Dedicated_Sram_384KB (arena in DRAM, SRAM as a 384 KB cache; the
# memory mode Vela itself defaults to for U65). Plain "Dedicated_Sram" sets no cache size, so Vela
# would assume a cache as large as the 40-bit address space (it reports arena_cache_size 1 TiB),
# which no real part has.
DEFAULT_SYSTEM = {
    "ethos-u55-128": ("Ethos_U55_High_End_Embedded", "Shared_Sram"),
    "ethos-u55-256": ("Ethos_U55_High_End_Embedded", "Shared_Sram"),
    "ethos-u65-256": ("Ethos_U65_High_End", "Dedicated_Sram_384KB"),
    "ethos-u65-512": ("Ethos_U65_High_End", "Dedicated_Sram_384KB"),
}
DEFAULT_CONFIG = "Arm/vela.ini"
ISOLATIONS = ("worker", "subprocess", "none")

# Memory areas in Vela's summary CSV (column prefixes) and the label-name prefix for each.
_AREAS = {"sram": "sram", "dram": "dram", "off_chip_flash": "offchip_flash"}
# Energy-model memory levels -> per-operator byte metric prefix (vela_layers.LAYER_METRICS).
_ENERGY_AREAS = {**_AREAS, "on_chip_flash": "onchip_flash"}

METRICS: Dict[str, str] = {
    "latency_ms": "ms",
    "total_cycles": "cycles",
    "npu_cycles": "cycles",
    "npu_ops": "count",
    "cpu_ops": "count",
    "macs": "MACs",
    "peak_sram_bytes": "bytes",
    "peak_dram_bytes": "bytes",
    "offchip_flash_bytes": "bytes",
    "encoded_weight_bytes": "bytes",
    **{f"{name}_{kind}_bytes": "bytes" for name in _AREAS.values() for kind in ("read", "write", "total")},
    "energy_mj": "mJ",
}


# Per-operator labels (``per_operator=True``): Vela's costs per TFLite operator, the latency and
# modelled energy they make, and where Vela placed the operator (an index into PLACEMENTS).
NODE_METRICS: Dict[str, str] = {**LAYER_METRICS, "latency_ms": "ms", "energy_mj": "mJ", "placement": "code"}


def _import_vela():
    try:  # Vela is the optional extra 'label': imported when an Ethos-U target labels, never at import time
        from ethosu.vela import architecture_features, vela
    except ImportError as exc:
        raise ImportError(
            "the Ethos-U labellers need ethos-u-vela: pip install 'perfsage[label]' "
            f"(import failed: {exc})"
        ) from exc
    return vela, architecture_features


def vela_version() -> str:
    return package_version("ethos-u-vela")


def resolve_config_path(config: str) -> Path:
    """Where Vela will read ``config`` from: like Vela, a relative 'Vendor/file.ini' names a file in
    the package's config_files directory; anything else is a path."""
    _, architecture_features = _import_vela()
    parts = Path(config).parts
    if len(parts) == 2 and not Path(config).is_absolute() and not config.startswith((".", "~")):
        return Path(architecture_features.CONFIG_FILES_PATH) / config
    return Path(config).expanduser()


def sram_limit(ini: configparser.ConfigParser, memory_mode: str, arena_cache_size: Optional[int]) -> Optional[int]:
    """The most SRAM Vela's schedule may use, in bytes: ``--arena-cache-size`` if given, else the
    memory mode's ``arena_cache_size`` (following its ``inherit=`` sections), else None. The
    Dedicated_Sram modes set it (the U65's 384 KB): Vela keeps the arena in DRAM and the SRAM as a
    cache of that size, so no model's peak SRAM exceeds it. Where the arena lives in the SRAM
    (Shared_Sram, Sram_Only) nothing caps it."""
    if arena_cache_size is not None:
        return int(arena_cache_size)
    section, seen = f"Memory_Mode.{memory_mode}", set()
    while section and ini.has_section(section) and section not in seen:
        seen.add(section)
        if ini.has_option(section, "arena_cache_size"):
            return int(ini.get(section, "arena_cache_size"))
        section = ini.get(section, "inherit", fallback="")
    return None


def recorded_limits(settings: Dict[str, Any]) -> Dict[str, float]:
    """Upper bounds on a Vela labeller's metrics, from its recorded ``settings`` (a dataset's, as
    ``settings()`` wrote them): ``{"peak_sram_bytes": bytes}`` where the memory mode caps the SRAM,
    else {}; {} for another tool's settings. Read from the Vela config the settings name (Vela must
    be installed), which must be the file the labels were made with (its SHA-256): ValueError
    otherwise. Not a settings field itself, so that datasets labelled before it keep taking rows."""
    if settings.get("tool") != "ethos-u-vela":
        return {}
    path = resolve_config_path(settings["config_file"])
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != settings.get("config_sha256"):
        raise ValueError(f"the Vela config {path} is not the one these labels were made with "
                         f"(SHA-256 {settings.get('config_sha256')})")
    ini = configparser.ConfigParser()
    ini.read(path)
    limit = sram_limit(ini, settings["memory_mode"], settings.get("arena_cache_size"))
    return {} if limit is None else {"peak_sram_bytes": float(limit)}


@contextlib.contextmanager
def _captured_stdout():
    """Captures both Python's sys.stdout and the process's fd 1 (Vela's C++ core prints there).

    Yields a list that holds the captured text once the block exits.
    """
    result: List[str] = []
    sys.stdout.flush()
    saved_fd = os.dup(1)
    python_out = io.StringIO()
    with tempfile.TemporaryFile() as native_out:
        os.dup2(native_out.fileno(), 1)
        try:
            with contextlib.redirect_stdout(python_out):
                yield result
        finally:
            try:
                ctypes.CDLL(None).fflush(None)  # C stdio buffers, before fd 1 is restored
            except (OSError, AttributeError):
                pass
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
            native_out.seek(0)
            result.append(python_out.getvalue() + native_out.read().decode("utf-8", "replace"))


def _read_first(pattern: str) -> Tuple[Optional[str], Optional[str]]:
    paths = sorted(glob.glob(pattern))
    if not paths:
        return None, None
    with open(paths[0], encoding="utf-8", errors="replace") as f:
        return os.path.basename(paths[0]), f.read()


def _collect_output(out_dir: str) -> Dict[str, Optional[str]]:
    csv_name, csv_text = _read_first(os.path.join(out_dir, "*_summary_*.csv"))
    _, debug_db = _read_first(os.path.join(out_dir, "*_debug.xml"))  # only with --enable-debug-db
    return {"csv_name": csv_name, "csv_text": csv_text, "debug_db": debug_db}


def _write_model(model: bytes, workdir: str) -> Tuple[str, str]:
    path = os.path.join(workdir, "model.tflite")
    with open(path, "wb") as f:
        f.write(model)
    return path, os.path.join(workdir, "out")


def run_vela_here(model: bytes, vela_args: List[str], workdir: Optional[str] = None) -> Dict[str, Any]:
    """Runs Vela's entry point in this process on ``model``; returns its exit status, stdout,
    summary CSV and, when ``vela_args`` ask for it, debug database (plain data, so it can cross a
    process boundary).

    ``workdir`` is an empty directory to work in; the caller owns it (the helper process is
    given one by its parent, which removes it even if Vela crashes the helper). Without one, a
    temporary directory is made and removed here.
    """
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="perfsage-vela-") as tmp:
            return run_vela_here(model, vela_args, tmp)
    vela, _ = _import_vela()
    path, out_dir = _write_model(model, workdir)
    recursion_limit = sys.getrecursionlimit()  # vela.main resets it
    error = None
    returncode = 0
    try:
        with _captured_stdout() as captured:
            try:
                returncode = vela.main([path, "--output-dir", out_dir, *vela_args])
            except SystemExit as exc:  # argparse errors
                returncode = exc.code if isinstance(exc.code, int) else 1
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                returncode = 1
    finally:
        sys.setrecursionlimit(recursion_limit)
    return {"returncode": returncode, "stdout": captured[0], "error": error, **_collect_output(out_dir)}


def run_vela_subprocess(model: bytes, vela_args: List[str], timeout_s: float) -> Dict[str, Any]:
    """Runs ``python -m ethosu.vela`` (what the ``vela`` script does) as a new process."""
    with tempfile.TemporaryDirectory(prefix="perfsage-vela-") as tmp:
        path, out_dir = _write_model(model, tmp)
        try:
            run = subprocess.run(
                [sys.executable, "-m", "ethosu.vela", path, "--output-dir", out_dir, *vela_args],
                capture_output=True, text=True, timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return {"returncode": 1, "stdout": "", "error": f"vela timed out after {timeout_s:g} s",
                    "csv_name": None, "csv_text": None}
        error = None
        if run.returncode != 0:
            error = f"vela exited with {describe_exit(run.returncode)}: {run.stderr[-1500:].strip()}"
        return {"returncode": run.returncode, "stdout": run.stdout, "error": error, **_collect_output(out_dir)}


@dataclass
class VelaSummary:
    """What Vela said about one model: the summary CSV row (column -> text) and its stdout."""

    csv_name: str
    csv_row: Dict[str, str]
    stdout: str
    npu_ops: int
    cpu_ops: int
    debug_db: Optional[str] = None  # Vela's _debug.xml, when asked for (per-operator costs)

    def number(self, column: str) -> float:
        try:
            return float(self.csv_row[column])
        except KeyError:
            raise LabelError(f"Vela summary {self.csv_name} has no column {column!r}") from None
        except ValueError:
            raise LabelError(
                f"Vela summary {self.csv_name}, column {column!r}: {self.csv_row[column]!r} is not a number"
            ) from None


def _stdout_int(stdout: str, pattern: str) -> Optional[int]:
    match = re.search(pattern, stdout, re.MULTILINE)
    return int(match.group(1)) if match else None


def _failure_tail(run: Dict[str, Any], limit: int = 1500) -> str:
    parts = [run.get("stdout") or "", run.get("error") or ""]
    text = "\n".join(p.strip() for p in parts if p and p.strip())
    return text[-limit:] if text else "(Vela printed nothing)"


class VelaLabeler(HelperProcessLabeler):
    """Vela performance estimate for one Ethos-U configuration; see the module docstring.

    Options (``get_labeler("ethos-u55-256", **options)``): ``system_config``, ``memory_mode``
    (sections of the Vela config file; defaults in DEFAULT_SYSTEM), ``config`` (a Vela .ini,
    default the shipped "Arm/vela.ini"), ``optimise`` ("Performance", Vela's default, or "Size"),
    ``arena_cache_size`` (bytes, overrides the memory mode's), ``isolation`` ("worker",
    "subprocess", "none"), ``timeout_s`` per compile, ``static_power_mw`` for the energy model,
    ``per_operator`` to label each operator as well (``node_metrics``, :meth:`label_nodes`).
    """

    metrics = METRICS

    def __init__(
        self,
        accelerator: str,
        *,
        system_config: Optional[str] = None,
        memory_mode: Optional[str] = None,
        config: str = DEFAULT_CONFIG,
        optimise: str = "Performance",
        arena_cache_size: Optional[int] = None,
        isolation: str = "worker",
        timeout_s: float = 600.0,
        static_power_mw: float = 0.0,
        per_operator: bool = False,
    ) -> None:
        if accelerator not in ACCELERATORS:
            raise ValueError(f"accelerator {accelerator!r} is not one of {', '.join(ACCELERATORS)}")
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation {isolation!r} is not one of {', '.join(ISOLATIONS)}")
        if optimise not in ("Performance", "Size"):
            raise ValueError(f"optimise {optimise!r} is not 'Performance' or 'Size'")
        if arena_cache_size is not None and int(arena_cache_size) <= 0:
            raise ValueError(f"arena_cache_size must be a positive number of bytes, got {arena_cache_size}")
        if static_power_mw < 0:
            raise ValueError(f"static_power_mw must be >= 0, got {static_power_mw}")
        default_system, default_memory = DEFAULT_SYSTEM[accelerator]
        self.target = accelerator
        self.accelerator = accelerator
        self.system_config = system_config or default_system
        self.memory_mode = memory_mode or default_memory
        self.config = config
        self.optimise = optimise
        self.arena_cache_size = None if arena_cache_size is None else int(arena_cache_size)
        self.isolation = isolation
        self.timeout_s = float(timeout_s)
        self.static_power_mw = float(static_power_mw)
        self.per_operator = bool(per_operator)
        self.node_metrics = dict(NODE_METRICS) if self.per_operator else {}
        self._config_path = resolve_config_path(config)
        self._check_config()

    def _check_config(self) -> None:
        path = self._config_path
        if not path.is_file():
            raise ValueError(f"Vela config file {self.config!r} not found (looked at {path})")
        ini = configparser.ConfigParser()
        ini.read(path)
        for kind, name in (("System_Config", self.system_config), ("Memory_Mode", self.memory_mode)):
            if not ini.has_section(f"{kind}.{name}"):
                known = sorted(s.split(".", 1)[1] for s in ini.sections() if s.startswith(kind + "."))
                raise ValueError(f"{path} has no [{kind}.{name}]; it defines: {', '.join(known)}")
        self._core_clock_hz = float(ini.get(f"System_Config.{self.system_config}", "core_clock", fallback="nan"))
        self._config_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    def vela_args(self) -> List[str]:
        """The Vela command-line options every label uses (besides input and output paths)."""
        args = [
            "--accelerator-config", self.accelerator,
            "--config", self.config,
            "--system-config", self.system_config,
            "--memory-mode", self.memory_mode,
            "--optimise", self.optimise,
            "--verbose-cycle-estimate",  # stdout then carries total cycles to cross-check the CSV
        ]
        if self.arena_cache_size is not None:
            args += ["--arena-cache-size", str(self.arena_cache_size)]
        return args

    def settings(self) -> Dict[str, Any]:
        return {
            "tool": "ethos-u-vela",
            "tool_version": vela_version(),
            "accelerator_config": self.accelerator,
            "system_config": self.system_config,
            "memory_mode": self.memory_mode,
            "config_file": self.config,
            "config_sha256": self._config_sha256,
            "core_clock_hz": self._core_clock_hz,
            "optimise": self.optimise,
            "arena_cache_size": self.arena_cache_size,
            "vela_args": self.vela_args(),
            "isolation": self.isolation,
            "latency": "Vela's estimate for the NPU part (summary CSV inference_time); CPU-fallback "
                       "operators add nothing to it",
            "energy": "modelled, not measured (perfsage.labelers.energy)",
            "energy_constants": energy_table(),
            "static_power_mw": self.static_power_mw,
            **({"per_operator": "Vela's debug database summed per TFLite operator (perfsage.labelers."
                                "vela_layers); placement codes: " + ", ".join(
                                    f"{i} {p}" for i, p in enumerate(PLACEMENTS))} if self.per_operator else {}),
        }

    def _run(self, model: bytes, layers: bool = False) -> Dict[str, Any]:
        # The debug database carries the per-operator costs (see vela_layers).
        args = self.vela_args() + (["--enable-debug-db"] if layers else [])
        if self.isolation == "none":
            return run_vela_here(model, args)
        if self.isolation == "subprocess":
            return run_vela_subprocess(model, args, self.timeout_s)
        worker = self._helper(f"Vela ({self.target})")
        with tempfile.TemporaryDirectory(prefix="perfsage-vela-") as workdir:
            try:
                return worker.call("perfsage.labelers.vela:run_vela_here", (model, args, workdir), self.timeout_s)
            except WorkerError as exc:
                return {"returncode": 1, "stdout": "", "error": str(exc), "csv_name": None, "csv_text": None}

    def summary(self, model: bytes, verify: bool = True, layers: bool = False) -> VelaSummary:
        """Compiles ``model`` and returns Vela's summary CSV row and stdout, unconverted.

        ``verify=False`` hands the bytes to Vela without perfsage's flatbuffer check first; Vela's
        C++ core may then crash, which the default "worker" isolation turns into a LabelError.
        """
        if verify:
            verify_tflite(model)
        run = self._run(bytes(model), layers)
        if run["csv_text"] is None:
            raise LabelError(
                f"Vela ({self.target}) produced no summary CSV (exit status {run['returncode']}); "
                f"output ends with:\n{_failure_tail(run)}"
            )
        rows = list(csv.DictReader(io.StringIO(run["csv_text"])))
        if len(rows) != 1:
            raise LabelError(f"Vela summary {run['csv_name']} has {len(rows)} data rows, expected 1")
        stdout = run["stdout"]
        npu_ops = _stdout_int(stdout, r"^NPU operators = (\d+)")
        cpu_ops = _stdout_int(stdout, r"^CPU operators = (\d+)")
        if npu_ops is None or cpu_ops is None:
            raise LabelError(
                f"Vela ({self.target}) wrote {run['csv_name']} but its stdout has no "
                f"'NPU operators = ' / 'CPU operators = ' lines; output ends with:\n{_failure_tail(run)}"
            )
        summary = VelaSummary(run["csv_name"], rows[0], stdout, npu_ops, cpu_ops, run.get("debug_db"))
        for pattern, column in ((r"^Total cycles\s+(\d+) cycles/batch", "cycles_total"),
                                (r"^Neural network macs\s+(\d+) MACs/batch", "nn_macs")):
            printed = _stdout_int(stdout, pattern)
            if printed is not None and printed != int(summary.number(column)):
                raise LabelError(
                    f"Vela's stdout and {run['csv_name']} disagree on {column}: {printed} vs "
                    f"{summary.csv_row[column]}"
                )
        return summary

    def label(self, model: bytes) -> Dict[str, float]:
        return self._labels(self.summary(model))

    def label_nodes(self, model: bytes) -> Tuple[Dict[str, float], Optional[Dict[str, np.ndarray]]]:
        """:meth:`label_operators` as the dataset stores it: one array per ``NODE_METRICS`` entry,
        the placement as its index in ``vela_layers.PLACEMENTS``. A model with several subgraphs
        gets its labels and None: Vela numbers operators per subgraph, so they cannot be attributed,
        and the model's own labels are still worth keeping."""
        if load_tflite(model).num_subgraphs != 1:
            return self.label(model), None
        labels, costs = self.label_operators(model)
        nodes = {metric: costs.values[metric] for metric in NODE_METRICS if metric != "placement"}
        nodes["placement"] = np.array([PLACEMENTS.index(p) for p in costs.placement], dtype=np.float64)
        return labels, nodes

    def label_operators(self, model: bytes) -> Tuple[Dict[str, float], OperatorCosts]:
        """The model's labels (as :meth:`label`) and Vela's costs per TFLite operator.

        Besides Vela's per-operator cycles, MACs and bytes moved (``vela_layers.LAYER_METRICS``),
        each operator gets ``latency_ms`` (its cycles at the system's core clock) and ``energy_mj``
        (the energy model applied to its own MACs, traffic and latency). Both sum over operators to
        the model's labels: the summary's latency is its total cycles at the same clock, and the
        energy model is linear. The sums are checked against the summary. Models with more than one
        subgraph are refused, since Vela numbers operators per subgraph.
        """
        graph = load_tflite(model)  # verifies the flatbuffer too
        if graph.num_subgraphs != 1:
            raise LabelError(f"per-operator Vela labels need a model with one subgraph; this one has "
                             f"{graph.num_subgraphs}")
        s = self.summary(model, verify=False, layers=True)
        labels = self._labels(s)
        where = f"Vela ({self.target}) debug database"
        if s.debug_db is None:
            raise LabelError(f"{where}: Vela wrote none (was --enable-debug-db given?)")
        try:
            costs = operator_costs(read_tables(s.debug_db), graph.num_nodes)
            check_totals(costs, {"cycles": labels["total_cycles"], "npu_cycles": labels["npu_cycles"], "macs": labels["macs"],
                                 **{f"{name}_bytes": labels[f"{name}_total_bytes"] for name in _AREAS.values()},
                                 "onchip_flash_bytes": s.number("on_chip_flash_total_bytes")}, where)
        except DebugDatabaseError as exc:
            raise LabelError(str(exc)) from exc
        latency_ms = costs.values["cycles"] / self._core_clock_hz * 1e3
        costs.values["latency_ms"] = latency_ms
        costs.values["energy_mj"] = np.array([
            ethos_u_energy_mj(costs.values["macs"][i],
                              {area: costs.values[f"{name}_bytes"][i] for area, name in _ENERGY_AREAS.items()},
                              latency_ms[i], self.static_power_mw)
            for i in range(graph.num_nodes)], dtype=np.float64)
        return labels, costs

    def _labels(self, s: VelaSummary) -> Dict[str, float]:
        kib = 1024.0
        labels: Dict[str, float] = {
            "latency_ms": s.number("inference_time") * 1e3,  # the CSV gives seconds
            "total_cycles": s.number("cycles_total"),
            "npu_cycles": s.number("cycles_npu"),
            "npu_ops": float(s.npu_ops),
            "cpu_ops": float(s.cpu_ops),
            "macs": s.number("nn_macs"),
            "peak_sram_bytes": s.number("sram_memory_used") * kib,  # the CSV gives KiB
            "peak_dram_bytes": s.number("dram_memory_used") * kib,
            "offchip_flash_bytes": s.number("off_chip_flash_memory_used") * kib,
            "encoded_weight_bytes": s.number("total_npu_encoded_weights"),
        }
        moved: Dict[str, float] = {}
        for area, name in _AREAS.items():
            read = s.number(f"{area}_feature_map_read_bytes") + s.number(f"{area}_weight_read_bytes")
            write = s.number(f"{area}_feature_map_write_bytes") + s.number(f"{area}_weight_write_bytes")
            # The total also counts scale/bias and LUT traffic, which the CSV does not split
            # into reads and writes; so total >= read + write.
            total = s.number(f"{area}_total_bytes")
            labels[f"{name}_read_bytes"] = read
            labels[f"{name}_write_bytes"] = write
            labels[f"{name}_total_bytes"] = total
            moved[area] = total
        moved["on_chip_flash"] = s.number("on_chip_flash_total_bytes")
        try:
            labels["energy_mj"] = ethos_u_energy_mj(labels["macs"], moved, labels["latency_ms"], self.static_power_mw)
        except ValueError as exc:
            raise LabelError(f"energy model for {self.target}: {exc}") from exc
        return labels

