"""The choice of the core's build (perfsage/_native.py): PERFSAGE_ISA picks baseline x86-64 or
x86-64-v3, the chosen build is perfsage._core everywhere in the package, the other is never loaded,
and both predict the same within float rounding.

Each build is loaded in its own subprocess, because one process can hold only one of them."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest

from perfsage import _native

REPO = Path(__file__).resolve().parents[2]
# Imports every subpackage (so that any module importing a build on its own would show), then
# reports what was loaded and the shipped predictors' predictions on a few specs of several spaces.
PROBE = """
import json, sys
import numpy as np
import perfsage, perfsage._core, perfsage.cli, perfsage.datasets, perfsage.evaluation, perfsage.labelers
from perfsage import _core
items = [it for space in ("kws", "image_classification", "transformer", "super_resolution")
         for it in perfsage.sample(space, 3, seed=7)]
np.savez(sys.argv[1], **{name: perfsage.load_predictor(name).predict(items, threads=1)
                         for name in perfsage.shipped_predictors()})
graphs = perfsage.spec_graphs(perfsage.sample("kws", 40, seed=4))
labels = np.array([[1e-6 * g.totals["macs"] + 0.05, 1e-3 * g.totals["param_bytes"] + 1.0] for g in graphs])
trained, heap = [], []
for threads in (1, 1, 2):
    p = perfsage.Predictor(["lat", "mem"], hidden=8, head_hidden=8, layers=2, seed=5)
    p.fit((graphs, labels), epochs=2, threads=threads, progress=False)
    trained.append(p.parameters())
    heap.append(np.empty(7 + 9 * threads, np.float32))  # so that later buffers land elsewhere
print(json.dumps({
    "build_info": perfsage.build_info(),
    "core_spec": perfsage._core.__spec__.name,
    "same_object": _core is sys.modules["perfsage._core"] is perfsage._core,
    "loaded": sorted(n for n in sys.modules if n.startswith("perfsage._core")),
    "graph_module": perfsage.Graph.__module__,
    "error_type": perfsage.PerfSageError.__module__ + "." + perfsage.PerfSageError.__qualname__,
    "training_repeats": all(np.array_equal(run[k], trained[0][k]) for run in trained for k in run),
}))
"""
# The builds differ in rounding only (FMA, other summation orders); a float32 prediction moves by
# a few units in the last place through the network's layers.
RTOL = 1e-5


def _x86_64_v3_expected() -> bool:
    """True where the build must have an x86-64-v3 core and the CPU can run it."""
    return platform.machine().lower() in ("x86_64", "amd64") and _native.missing_x86_64_v3(_native.cpu_flags()) == []


def _run(isa: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, _native.ISA_VARIABLE: isa}
    return subprocess.run([sys.executable, "-c", PROBE, str(out)], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> Dict[str, Dict[str, Any]]:
    """The probe's report and predictions for each value of PERFSAGE_ISA this machine can run."""
    values = [_native.BASELINE, _native.AUTO] + ([_native.X86_64_V3] if _x86_64_v3_expected() else [])
    out: Dict[str, Dict[str, Any]] = {}
    for isa in values:
        path = tmp_path_factory.mktemp("isa") / f"{isa}.npz"
        result = _run(isa, path)
        assert result.returncode == 0, f"PERFSAGE_ISA={isa}: {result.stderr}"
        with np.load(path) as predictions:
            out[isa] = {"report": json.loads(result.stdout), "predictions": dict(predictions)}
    return out


def test_each_value_loads_its_build_as_perfsage_core_and_nothing_else(probes) -> None:
    expected_auto = _native.X86_64_V3 if _x86_64_v3_expected() else _native.BASELINE
    for requested, probe in probes.items():
        report = probe["report"]
        isa = expected_auto if requested == _native.AUTO else requested
        module = f"perfsage.{_native.MODULES[isa]}"
        assert report["build_info"]["isa"] == isa, requested
        assert report["build_info"]["requested"] == requested
        assert report["build_info"]["module"] == module == report["core_spec"]
        assert report["same_object"], requested
        # perfsage._core names the chosen build; the other build's module never loads.
        assert report["loaded"] == sorted({"perfsage._core", module}), requested
        # Every build calls itself perfsage._core, so pickles and the stub do not depend on the build.
        assert report["graph_module"] == "perfsage._core"
        assert report["error_type"] == "perfsage._core.PerfSageError"


def test_an_x86_64_machine_with_the_instructions_has_both_builds() -> None:
    if not _x86_64_v3_expected():
        pytest.skip("not an x86-64 CPU with every x86-64-v3 instruction set: only the baseline build runs")
    assert _native.BUILT == [_native.BASELINE, _native.X86_64_V3], \
        "perfsage was built without _core_x86_64_v3 (configured with PERFSAGE_BUILD_X86_64_V3=OFF?)"


def test_each_build_trains_bit_identically_whatever_the_thread_count_and_heap(probes) -> None:
    # Eigen aligns its loops to the destination's address; with the x86-64-v3 build's 32-byte
    # vectors, gradients written straight into a std::vector changed with where malloc put it.
    for requested, probe in probes.items():
        assert probe["report"]["training_repeats"], requested


def test_auto_predicts_exactly_as_the_build_it_chose(probes) -> None:
    chosen = probes[_native.AUTO]["report"]["build_info"]["isa"]
    for name, value in probes[_native.AUTO]["predictions"].items():
        assert np.array_equal(value, probes[chosen]["predictions"][name]), name


def test_both_builds_predict_the_same_within_float_rounding(probes) -> None:
    if _native.X86_64_V3 not in probes:
        pytest.skip("this machine cannot run the x86-64-v3 build")
    baseline, v3 = probes[_native.BASELINE]["predictions"], probes[_native.X86_64_V3]["predictions"]
    assert sorted(baseline) == sorted(v3) and baseline
    for name in baseline:
        assert baseline[name].shape == v3[name].shape and np.isfinite(baseline[name]).all(), name
        np.testing.assert_allclose(v3[name], baseline[name], rtol=RTOL, atol=0, err_msg=name)


def test_both_builds_generate_the_same_stub() -> None:
    # Both builds call themselves perfsage._core, so the one committed stub serves both.
    if not _x86_64_v3_expected():
        pytest.skip("this machine cannot run the x86-64-v3 build")
    render = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('gen_stubs', sys.argv[1]); "
              "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); print(module.render())")
    stubs = []
    for isa in (_native.BASELINE, _native.X86_64_V3):
        result = subprocess.run([sys.executable, "-c", render, str(REPO / "scripts" / "gen_stubs.py")],
                                env={**os.environ, _native.ISA_VARIABLE: isa}, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        stubs.append(result.stdout)
    assert stubs[0] == stubs[1] and "class Graph" in stubs[0]


def test_an_unknown_value_fails_the_import_naming_the_variable_and_the_choices(tmp_path) -> None:
    result = _run("avx512", tmp_path / "unused.npz")
    assert result.returncode != 0
    assert "ImportError: PERFSAGE_ISA='avx512': expected one of auto, baseline, x86-64-v3" in result.stderr


def test_forcing_x86_64_v3_names_what_the_cpu_lacks() -> None:
    built = [_native.BASELINE, _native.X86_64_V3]
    with pytest.raises(ImportError, match=r"PERFSAGE_ISA=x86-64-v3: this CPU lacks avx2, fma \(flags in /proc/cpuinfo\)"):
        _native.choose(_native.X86_64_V3, built, ["avx2", "fma"])
    with pytest.raises(ImportError, match="has no _core_x86_64_v3 module"):
        _native.choose(_native.X86_64_V3, [_native.BASELINE], [])


def test_choose_falls_back_to_baseline_under_auto_only() -> None:
    both, base = [_native.BASELINE, _native.X86_64_V3], [_native.BASELINE]
    assert _native.choose(_native.AUTO, both, []) == _native.X86_64_V3
    assert _native.choose(_native.AUTO, both, ["movbe"]) == _native.BASELINE
    assert _native.choose(_native.AUTO, both, None) == _native.BASELINE  # flags unknown
    assert _native.choose(_native.AUTO, base, []) == _native.BASELINE
    assert _native.choose(_native.BASELINE, both, []) == _native.BASELINE
    assert _native.choose(_native.X86_64_V3, both, None) == _native.X86_64_V3  # an explicit request is trusted


def test_cpu_flags_reads_the_flags_line_and_lists_every_missing_instruction_set(tmp_path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    flags = [f for f in _native.X86_64_V3_CPU_FLAGS if f not in ("bmi2", "abm")]
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 " + " ".join(flags) + "\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    read = _native.cpu_flags(str(cpuinfo))
    assert read is not None and "sse2" in read and "avx2" in read
    assert _native.missing_x86_64_v3(read) == ["bmi2", "abm"]
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # an Arm CPU: no flags line
    assert _native.cpu_flags(str(cpuinfo)) is None
    assert _native.cpu_flags(str(tmp_path / "absent")) is None
    assert _native.missing_x86_64_v3(None) is None


def test_no_module_of_the_package_names_a_build_but_the_loader() -> None:
    # The routing lives in _native alone; a module importing _core_x86_64_v3 itself would load it
    # next to the chosen build.
    package = REPO / "python" / "perfsage"
    offenders = [str(p.relative_to(package)) for p in package.rglob("*.py")
                 if p.name != "_native.py" and _native.MODULES[_native.X86_64_V3] in p.read_text(encoding="utf-8")]
    assert offenders == []
