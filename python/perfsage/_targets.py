"""What each target assumes: the hardware and tool behind its labels, and its predictor's accuracy.

``targets()`` lists every shipped predictor and every labeller. Settings come from the predictor's
provenance when it recorded the settings of the labels it learned (``labeler_settings``, written
by ``Predictor.fit`` on a dataset and by the shipped recipe); otherwise from the labeller's
configuration in ``perfsage.labelers``, read without importing the tool, so that the list works
without Vela or LiteRT installed (the tool's version is then the installed one, or None).
"""

from __future__ import annotations

import configparser
import importlib.util
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional

from ._predictor import Predictor, load_predictor, shipped_predictors
from .labelers import labeler_names
from .labelers.hostcpu import METRICS as HOST_CPU_METRICS, cpu_model
from .labelers.vela import ACCELERATORS, DEFAULT_CONFIG, DEFAULT_SYSTEM, METRICS as VELA_METRICS

# The settings a table shows, in order (keys of a labeller's settings()).
SUMMARY_KEYS = ("accelerator_config", "system_config", "memory_mode", "core_clock_hz", "tool", "tool_version")


def _installed_version(distribution: str) -> Optional[str]:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _vela_core_clock_hz(system_config: str) -> Optional[float]:
    """The core clock of ``system_config`` in the vela.ini that ships with ethos-u-vela, found
    without importing Vela (None when Vela is not installed)."""
    try:
        spec = importlib.util.find_spec("ethosu")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        ini_path = Path(location) / "config_files" / DEFAULT_CONFIG
        if ini_path.is_file():
            ini = configparser.ConfigParser()
            ini.read(ini_path)
            return ini.getfloat(f"System_Config.{system_config}", "core_clock", fallback=None)
    return None


def labeler_settings(name: str) -> Dict[str, Any]:
    """The settings that make ``name``'s labels, as far as they are known without running its tool:
    a subset of ``get_labeler(name).settings()`` with its default options."""
    if name in ACCELERATORS:
        system_config, memory_mode = DEFAULT_SYSTEM[name]
        return {
            "tool": "ethos-u-vela",
            "tool_version": _installed_version("ethos-u-vela"),
            "accelerator_config": name,
            "system_config": system_config,
            "memory_mode": memory_mode,
            "config_file": DEFAULT_CONFIG,
            "core_clock_hz": _vela_core_clock_hz(system_config),
        }
    if name == "host-cpu":
        return {
            "tool": "ai-edge-litert",
            "tool_version": _installed_version("ai-edge-litert"),
            "delegate": "XNNPACK (LiteRT's default CPU delegate)",
            "threads": 1,
            "cpu_model": cpu_model(),
        }
    return {}


def predictor_settings(predictor: Predictor, target: str) -> Dict[str, Any]:
    """The settings behind ``predictor``'s labels of ``target``: recorded in its provenance, or the
    labeller's configuration (``source`` says which)."""
    recorded = predictor.provenance.get("labeler_settings", {}).get(target)
    if recorded:
        return {**recorded, "source": "predictor provenance (the settings of its training labels)"}
    settings = labeler_settings(target)
    if settings:
        return {**settings, "source": "labeller configuration (perfsage.labelers; tool version as installed)"}
    return {}


def _accuracy(predictor: Predictor) -> Dict[str, Dict[str, Any]]:
    """Held-out scores from the provenance, by metric: ``{"mape", "within_10", "rows"}``."""
    scores = predictor.provenance.get("test", {})
    return {name.rpartition("/")[2]: dict(scores[name]) for name in predictor.output_names if name in scores}


def _labeler_metrics(name: str) -> Dict[str, str]:
    if name in ACCELERATORS:
        return dict(VELA_METRICS)
    if name == "host-cpu":
        return dict(HOST_CPU_METRICS)
    return {}


def targets() -> List[Dict[str, Any]]:
    """Every shipped predictor and every labeller, shipped predictors first.

    Each entry: ``target``; ``predictor`` (True when a predictor ships for it); ``labeller`` (True
    when ``perfsage.labelers.get_labeler`` makes its labels); ``metrics`` ({metric: unit}: the
    predictor's outputs, else the labeller's); ``settings`` (accelerator, system config, memory
    mode, clock, tool and its version, ...: see :func:`predictor_settings`); ``accuracy`` (the
    predictor's held-out MAPE and share within 10% per metric, from its provenance; {} without
    one); ``trained_on`` (the data and split it learned from).
    """
    labellers = labeler_names()
    shipped = shipped_predictors()
    out: List[Dict[str, Any]] = []
    for name in shipped + [n for n in labellers if n not in shipped]:
        entry: Dict[str, Any] = {"target": name, "predictor": name in shipped, "labeller": name in labellers}
        if name in shipped:
            p = load_predictor(name)
            entry["metrics"] = {n.rpartition("/")[2]: u for n, u in zip(p.output_names, p.units)}
            entry["settings"] = predictor_settings(p, name)
            entry["accuracy"] = _accuracy(p)
            entry["trained_on"] = {k: p.provenance[k] for k in ("train_data", "split", "trained_at")
                                   if k in p.provenance}
        else:
            entry["metrics"] = _labeler_metrics(name)
            entry["settings"] = labeler_settings(name)
            entry["accuracy"] = {}
            entry["trained_on"] = {}
        out.append(entry)
    return out


__all__ = ["labeler_settings", "predictor_settings", "targets"]
