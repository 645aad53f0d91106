"""Which build of the C++ core perfsage runs on, chosen once at import.

On x86-64 perfsage ships its core twice: ``_core``, built for baseline x86-64 (any 64-bit x86 CPU),
and ``_core_x86_64_v3``, the same code built for x86-64-v3 (AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE),
as faiss ships an AVX2 module next to its generic one. Importing perfsage imports this module
first; it loads one build and registers it as ``perfsage._core``, so every ``from ._core import``
in the package, and in user code, gets that build. Only one build is ever loaded in a process:
both register the same C++ classes with pybind11, which refuses a second registration.

The environment variable ``PERFSAGE_ISA`` chooses:

* ``auto`` (or unset): x86-64-v3 when it was built and the CPU has every instruction set it uses
  (read from ``/proc/cpuinfo``; where that file does not exist, baseline);
* ``baseline``: the baseline build, on any CPU;
* ``x86-64-v3``: the x86-64-v3 build; an ImportError names the instruction sets the CPU lacks.

The two builds give the same predictions within float rounding, not bit for bit: with AVX2 and
FMA, Eigen sums in other orders and rounds a product and a sum once instead of twice.

This module imports nothing of ours.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any, Dict, FrozenSet, List, Optional, Sequence

ISA_VARIABLE = "PERFSAGE_ISA"
AUTO = "auto"
BASELINE = "baseline"
X86_64_V3 = "x86-64-v3"
# The extension module of each build, in this package.
MODULES: Dict[str, str] = {BASELINE: "_core", X86_64_V3: "_core_x86_64_v3"}
CPUINFO = "/proc/cpuinfo"
# Every instruction set of x86-64-v3 (levels v2 and v3 of the x86-64 psABI), as Linux names them in
# /proc/cpuinfo ("pni" is SSE3, "abm" LZCNT, "lahf_lm" LAHF/SAHF in 64-bit mode). -march=x86-64-v3
# lets the compiler use any of them anywhere, so all must be present, not only AVX2 and FMA.
X86_64_V3_CPU_FLAGS = ("pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "cx16", "lahf_lm", "avx", "avx2",
                       "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave")


def cpu_flags(path: str = CPUINFO) -> Optional[FrozenSet[str]]:
    """The instruction sets of the first CPU in ``path`` (its ``flags`` line), or None when the
    file does not exist or has no such line (not Linux, or not x86)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def missing_x86_64_v3(flags: Optional[FrozenSet[str]]) -> Optional[List[str]]:
    """The x86-64-v3 instruction sets missing from ``flags``; None when the flags are unknown."""
    if flags is None:
        return None
    return [flag for flag in X86_64_V3_CPU_FLAGS if flag not in flags]


def choose(requested: str, built: Sequence[str], missing: Optional[Sequence[str]]) -> str:
    """The build to load (BASELINE or X86_64_V3) for the value of PERFSAGE_ISA, the builds this
    installation has and the CPU's missing x86-64-v3 instruction sets (None: unknown). A request
    that cannot be met raises ImportError saying why."""
    if requested not in (AUTO, BASELINE, X86_64_V3):
        raise ImportError(f"{ISA_VARIABLE}={requested!r}: expected one of {AUTO}, {BASELINE}, {X86_64_V3}")
    if requested == BASELINE:
        return BASELINE
    if X86_64_V3 not in built:
        if requested == AUTO:
            return BASELINE
        raise ImportError(f"{ISA_VARIABLE}={X86_64_V3}: this perfsage has no {MODULES[X86_64_V3]} module "
                          f"(it is built only on x86-64 with GCC or Clang); set {ISA_VARIABLE}={BASELINE} or {AUTO}")
    if missing:
        if requested == AUTO:
            return BASELINE
        raise ImportError(f"{ISA_VARIABLE}={X86_64_V3}: this CPU lacks {', '.join(missing)} (flags in {CPUINFO}); "
                          f"set {ISA_VARIABLE}={BASELINE} or {AUTO}")
    if missing is None and requested == AUTO:
        return BASELINE  # the CPU's flags are unknown: auto takes the build that runs everywhere
    return X86_64_V3


def _load(isa: str) -> ModuleType:
    """Imports the build of ``isa`` and makes it ``perfsage._core`` for every later import."""
    module = importlib.import_module(f"{__package__}.{MODULES[isa]}")
    sys.modules[f"{__package__}._core"] = module
    return module


_requested = os.environ.get(ISA_VARIABLE) or AUTO
_cpu_missing = missing_x86_64_v3(cpu_flags())
BUILT = [isa for isa, module in MODULES.items() if importlib.util.find_spec(f"{__package__}.{module}") is not None]
ISA = choose(_requested, BUILT, _cpu_missing)
core = _load(ISA)


def build_info() -> Dict[str, Any]:
    """Which build of the core this process runs on and why: ``isa`` (``baseline`` or
    ``x86-64-v3``), ``module`` (its extension module), ``requested`` (PERFSAGE_ISA, ``auto`` when
    unset), ``built`` (the builds this installation has) and ``cpu_missing_x86_64_v3`` (the
    instruction sets the CPU lacks for x86-64-v3; None when they could not be read)."""
    return {"isa": ISA, "module": core.__spec__.name, "requested": _requested, "built": list(BUILT),
            "cpu_missing_x86_64_v3": None if _cpu_missing is None else list(_cpu_missing)}
