"""Compiling generated models with Vela in tests: what went to the NPU, and why anything did not."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest


@dataclass
class VelaResult:
    npu_operators: int
    cpu_operators: int
    cpu_reasons: List[str]  # Vela's stated reason for each operator it left on the CPU
    stdout: str


def compile_with_vela(model: bytes, workdir: Path, accelerator: str = "ethos-u55-256") -> VelaResult:
    """Compiles `model` with the installed Vela; skips the test when Vela is not installed."""
    pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install ethos-u-vela)")
    vela = shutil.which("vela", path=str(Path(sys.executable).parent)) or "vela"
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "model.tflite"
    path.write_bytes(model)
    run = subprocess.run([vela, str(path), "--accelerator-config", accelerator, "--output-dir", str(workdir / "out")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    reasons = re.findall(r"Warning \(supported operators\) operator: \S+, ofm: .*\nReason: (.*)", run.stdout)
    return VelaResult(
        npu_operators=int(re.search(r"NPU operators = (\d+)", run.stdout).group(1)),
        cpu_operators=int(re.search(r"CPU operators = (\d+)", run.stdout).group(1)),
        cpu_reasons=reasons,
        stdout=run.stdout,
    )
