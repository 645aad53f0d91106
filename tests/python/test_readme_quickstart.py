"""The README's first command, exactly as written, in a fresh clone with nothing beside it.

A user who clones perfsage has no ../shared/data next to it. The first thing they run must set
everything up and print predictions from what the clone itself holds. This test clones the
repository's committed HEAD into a temporary folder (so uncommitted changes are not part of it, as
for a user), removes every hint of the shared data from the environment, runs the command with
bash and checks the table it prints. It builds perfsage from scratch in the clone (a few minutes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Seconds the setup and prediction may take: a cold C++ build plus pip installs from the cache.
TIMEOUT_S = 1500


def readme_commands():
    """The README's first two bash code blocks: the set-up-and-predict and the test commands."""
    return re.findall(r"```bash\n(.*?)\n```", (REPO / "README.md").read_text(), flags=re.S)[:2]


def test_readme_starts_with_two_commands():
    # Why: the README's promise is two commands; the second is what .ci/run calls.
    commands = readme_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    assert "predict" in commands[0] and "setup.sh" in commands[0]
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1].split()[-1] in ci, ".ci/run must call the README's test command"


def test_first_command_works_on_a_clone_alone(tmp_path):
    # Why: on a clone without ../shared the first command used to fail with "cannot open".
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "lonely" / "perfsage"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=300)
    assert not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PERFSAGE_DATA", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    # The project's own .venv must not be found first: the clone sets up its own.
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(REPO)))
    command = readme_commands()[0]
    result = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert result.returncode == 0, f"{command!r} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("model")), None)
    assert header is not None, f"no table in the output:\n{result.stdout}"
    assert "latency_ms" in lines[header] and "energy_mj" in lines[header]
    body = lines[header + 2:]
    rows = body[:body.index("")] if "" in body else body
    assert rows and all(row.startswith("mlperftiny-kws-dscnn (example)") for row in rows), result.stdout
    targets = {row.split()[2] for row in rows}
    assert {"ethos-u55-256", "ethos-u65-512"} <= targets, result.stdout
    for row in rows:
        latency = re.search(r"([0-9.]+(?:e-?\d+)?) ms", row)
        assert latency and 0.001 < float(latency.group(1)) < 10, row
    assert "perfsage predict model.tflite" in result.stdout
