"""Every `perfsage` command in README.md's code blocks runs (issue 12: the import-csv example failed).

Commands are the lines of ```bash blocks that start with ``perfsage`` or ``.venv/bin/perfsage``
(continuation lines joined, trailing comments dropped). Each must have an entry in ``HANDLING``:
run as written (in a temporary folder holding the files the README names, made from generated
models), run scaled down, checked against ``--help`` (a synopsis with placeholders), or skipped with
the reason. A new README command without an entry fails ``test_every_readme_command_is_handled``.
The two commands at the top (scripts/setup.sh and scripts/test.sh) start with ``bash``: the README
quick-start test runs them. Each ```python block runs too, or is skipped for a stated reason
(``PYTHON_HANDLING``).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

import perfsage

from perfsage.datasets import import_csv

from conftest import DATA_DIR, REPO

README = REPO / "README.md"
BIN = Path(sys.executable).parent  # the environment's perfsage entry point sits next to its python


@dataclass(frozen=True)
class Handling:
    """How the test treats one README command."""

    replace: Dict[str, str] = field(default_factory=dict)  # run scaled down: text -> replacement
    # "vela" (ethos-u-vela installed), "data" (PERFSAGE_DATA present), "kws.parquet" (the dataset the
    # README's build command makes: built first when the test runs alone)
    needs: Tuple[str, ...] = ()
    skip: str = ""  # never run, for this reason
    synopsis: bool = False  # placeholders: check its subcommand and options against --help


RUN = Handling()
BUILD_KWS = "perfsage dataset build --space kws --n 5000 --target ethos-u55-256 --out kws.parquet"
IMPORT_MINE = ("perfsage dataset import-csv my.csv --model-column model --target my-board --metric latency_ms=ms "
               "--out mine.parquet")
EVALUATE_SKIP = "needs the world data and trains for hours (perfsage evaluate is tested in test_evaluation.py)"

HANDLING: Dict[str, Handling] = {
    # Predicting with the shipped predictors
    "perfsage predict model.tflite more.tflite": RUN,
    "perfsage predict models/": RUN,
    "perfsage predict model.tflite --target ethos-u65-512 --target ethos-u55-256 --json": RUN,
    "perfsage predict models/ --target ethos-u65-512 --target ethos-u55-256 --csv > predictions.csv": RUN,
    "perfsage predict model.tflite --explain --top 5": RUN,
    "perfsage predict model.tflite --target my-board.psage": RUN,
    "perfsage targets": RUN,
    # Labels and datasets (kws.parquet is built first: info and repair read it)
    BUILD_KWS: Handling(replace={"--n 5000": "--n 3 --no-progress"}, needs=("vela",)),
    "perfsage dataset info kws.parquet": Handling(needs=("vela", "kws.parquet")),
    "perfsage dataset import-nb201 --out nb201.parquet": Handling(replace={"--out": "--limit 20 --no-progress --out"},
                                                                  needs=("data",)),
    IMPORT_MINE: RUN,
    "perfsage dataset build ... --executor dask --scheduler tcp://host:8786": Handling(
        skip="needs a Dask scheduler at tcp://host:8786 (the Dask executor is tested in test_dataset_build.py)"),
    "perfsage dataset repair kws.parquet": Handling(needs=("vela", "kws.parquet")),
    # A new device (mine.parquet is imported first)
    "perfsage adapt --base multi-device --data mine.parquet --target my-board --out my-board.psage":
        Handling(needs=("mine.parquet",)),
    "perfsage dataset label MODELS_DIR more.tflite --target ethos-u55-256 --out my-models.parquet":
        Handling(needs=("vela",)),
    # How accurate it is: the committed reports
    "perfsage evaluate datasets/compact/world-ethos-u.parquet --target ethos-u55-128 --target ethos-u55-256 "
    "--target ethos-u65-512 --target ethos-u65-256 --splits random,real --real datasets/real-models.parquet "
    "--predictors python/perfsage/predictors --methods perfsage,loglinear,lookup_ops --intervals "
    "--out reports/world-ethos-u":
        Handling(skip=EVALUATE_SKIP),
    "perfsage evaluate datasets/compact/world-ethos-u.parquet --target ethos-u55-256 --splits random,loso,ophold "
    "--methods perfsage,loglinear,lookup_ops --limit 12000 --out reports/world-generalisation":
        Handling(skip=EVALUATE_SKIP),
    "perfsage evaluate datasets/compact/world-ethos-u.parquet --target ethos-u55-256 --splits loso "
    "--methods perfsage --limit 12000 --intervals --out reports/world-intervals":
        Handling(skip=EVALUATE_SKIP),
    "perfsage evaluate datasets/nb201.parquet --target nb201-raspi4 --target nb201-pixel3 "
    "--target nb201-gold_6226 --target nb201-titan_rtx_1 --splits fewshot --out reports/nb201 --gcn-epochs 30":
        Handling(skip=EVALUATE_SKIP),
    "perfsage evaluate datasets/compact/paper-host-cpu.parquet --target host-cpu --splits random,loso,fewshot "
    "--out reports/host-cpu": Handling(skip=EVALUATE_SKIP),
    "perfsage evaluate datasets/compact/paper-host-cpu.parquet --target host-cpu --splits loso --loso-seeds 3 "
    "--methods perfsage,loglinear,lookup,lookup_ops --out reports/host-cpu-loso-seeds": Handling(skip=EVALUATE_SKIP),
    # Command line: synopses
    "perfsage predict MODEL_OR_DIR [MORE ...] [--target NAME_OR_FILE] [--json | --csv] [--explain [--top N]] "
    "[--interval LEVEL [--interval-scope SCOPE]] [--quiet]": Handling(synopsis=True),
    "perfsage targets [--json]": Handling(synopsis=True),
    "perfsage inspect MODEL.tflite [MORE.tflite ...] [--json]": Handling(synopsis=True),
    "perfsage spaces": RUN,
    "perfsage generate --space kws --n 1000 --seed 0 --dtype int8 --out DIR [--strip]": Handling(synopsis=True),
    "perfsage dataset {build,label,info,import-nb201,import-csv,compact,expand,repair} ...": Handling(synopsis=True),
    "perfsage adapt --data DATASET --target NAME --out FILE.psage [--base NAME_OR_FILE] [--epochs N]":
        Handling(synopsis=True),
    "perfsage evaluate DATASET --target T --out DIR [--splits ...] [--real REAL] [--predictors DIR] [--intervals] "
    "[--loso-seeds N] [--perfsage K=V]":
        Handling(synopsis=True),
    "perfsage --version": RUN,
}


def readme_commands(text: str) -> List[str]:
    """The perfsage commands of the ```bash blocks of ``text``, in order."""
    commands: List[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        for line in re.sub(r"\\\n\s*", "", block).splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith(("perfsage ", ".venv/bin/perfsage ")) or line in ("perfsage", ".venv/bin/perfsage"):
                commands.append(re.sub(r"\s+", " ", line))
    return commands


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_every_readme_command_is_handled() -> None:
    assert len(COMMANDS) >= 20, "the README's commands were not found: has its layout changed?"
    unhandled = [c for c in COMMANDS if c not in HANDLING]
    stale = [c for c in HANDLING if c not in COMMANDS]
    assert not unhandled, f"README commands with no entry in HANDLING (say how to run or why to skip): {unhandled}"
    assert not stale, f"HANDLING entries for commands the README no longer has: {stale}"


def test_extraction_joins_continuations_and_drops_comments() -> None:
    text = "x\n```bash\nperfsage a \\\n    --b c   # why\nls\n.venv/bin/perfsage d\n```\n```python\nperfsage e\n```\n"
    assert readme_commands(text) == ["perfsage a --b c", ".venv/bin/perfsage d"]


def _kws(n: int, seed: int) -> List[bytes]:
    return [perfsage.build_model(i["spec"], seed=i["seed"]) for i in perfsage.sample("kws", n, seed)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder with every file the README's commands name."""
    work = tmp_path_factory.mktemp("readme")
    models = _kws(4, seed=1)
    (work / "model.tflite").write_bytes(models[0])
    (work / "more.tflite").write_bytes(models[1])
    for folder in ("models", "MODELS_DIR"):
        (work / folder).mkdir()
        for i, model in enumerate(models[2:]):
            (work / folder / f"kws-{i}.tflite").write_bytes(model)
    # my-board.psage: a small predictor of a made-up board.
    graphs = [perfsage.load_tflite(m) for m in _kws(12, seed=2)]
    board = perfsage.Predictor(["my-board/latency_ms"], units=["ms"], hidden=8, head_hidden=8)
    board.fit((graphs, np.array([g.totals["macs"] / 1e6 for g in graphs])), epochs=2, progress=False)
    board.save(work / "my-board.psage")
    with open(work / "my.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "latency_ms"])
        writer.writerows([["model.tflite", 1.25], ["more.tflite", 0.75], ["models/kws-0.tflite", 0.9],
                          ["models/kws-1.tflite", 1.1]])
    return work


def _missing(needs: Tuple[str, ...]) -> str:
    if "vela" in needs and importlib.util.find_spec("ethosu") is None:
        return "needs ethos-u-vela (pip install perfsage[label])"
    if "data" in needs and not DATA_DIR.exists():
        return f"needs the shared data folder (PERFSAGE_DATA; {DATA_DIR} not found)"
    return ""


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    if shutil.which("perfsage", path=str(BIN)) is None:
        pytest.fail(f"no perfsage entry point in {BIN}: install perfsage in this environment")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PERFSAGE_DATA": str(DATA_DIR)}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _check_synopsis(command: str, cwd: Path) -> None:
    words = command.split()[1:]
    path = []
    for word in words:
        if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
            break
        path.append(word)
    run = _run(" ".join(["perfsage", *path, "--help"]), cwd)
    assert run.returncode == 0, run.stderr
    named = re.findall(r"--[a-z][a-z-]*", command)
    for braces in re.findall(r"\{([^}]*)\}", command):
        named += braces.split(",")
    absent = [n for n in named if n not in run.stdout]
    assert not absent, f"`perfsage {' '.join(path)} --help` does not know {absent}"


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command: str, workdir: Path) -> None:
    handling = HANDLING.get(command)
    if handling is None:
        pytest.fail("not in HANDLING (see test_every_readme_command_is_handled)")
    if handling.skip:
        pytest.skip(handling.skip)
    missing = _missing(handling.needs)
    if missing:
        pytest.skip(missing)
    if handling.synopsis:
        _check_synopsis(command, workdir)
        return
    if "kws.parquet" in handling.needs and not (workdir / "kws.parquet").exists():
        _run_as_handled(BUILD_KWS, workdir)
    if "mine.parquet" in handling.needs and not (workdir / "mine.parquet").exists():
        _run_as_handled(IMPORT_MINE, workdir)
    _run_as_handled(command, workdir)


def _run_as_handled(command: str, workdir: Path) -> None:
    scaled = command
    for old, new in HANDLING[command].replace.items():
        assert old in scaled, f"{old!r} is no longer in the command"
        scaled = scaled.replace(old, new)
    run = _run(scaled, workdir)
    assert run.returncode == 0, f"{scaled}\nstdout:\n{run.stdout[-2000:]}\nstderr:\n{run.stderr[-2000:]}"
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------------------------------------
# Python snippets: each ```python block runs in a folder with the files it names, given the few
# names it leaves to the reader (``b_bytes``, ``graph``, ...).

PYTHON_SKIP = "needs the 21,000-model training set (datasets/paper-ethos-u.parquet) and 200 epochs"
PYTHON_HANDLING: Dict[str, str] = {  # first line of code (after imports) -> "" to run, or why not
    'p = perfsage.load_predictor("ethos-u55-256")': "",
    'g = perfsage.load_tflite("model.tflite")': "",
    'spec = {"inputs": [{"name": "x", "shape": [1, 49, 10, 1]}],': "",
    'p = perfsage.Predictor(targets=["ethos-u55-256/latency_ms", "ethos-u55-256/energy_mj"])': PYTHON_SKIP,
    'base = perfsage.load_predictor("multi-device")': "",
    'p = perfsage.Predictor(targets=["my-board/latency_ms"])': "",
}


def python_blocks(text: str) -> List[Tuple[str, str]]:
    """(first line of code after the imports, with its comment dropped; code) of each ```python block."""
    blocks = []
    for code in re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        first = next(line for line in code.splitlines() if line.strip() and not line.startswith("import "))
        blocks.append((re.sub(r"\s+#.*$", "", first).strip(), code))
    return blocks


PYTHON_BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_every_python_block_is_handled() -> None:
    firsts = [first for first, _ in PYTHON_BLOCKS]
    assert len(firsts) >= 4
    assert sorted(firsts) == sorted(PYTHON_HANDLING), "README python blocks and PYTHON_HANDLING differ"


@pytest.mark.parametrize("first, code", PYTHON_BLOCKS, ids=[f"python-{i}" for i in range(len(PYTHON_BLOCKS))])
def test_readme_python_block_runs(first: str, code: str, tmp_path: Path, monkeypatch) -> None:
    reason = PYTHON_HANDLING.get(first)
    if reason is None:
        pytest.fail("not in PYTHON_HANDLING (see test_every_python_block_is_handled)")
    if reason:
        pytest.skip(reason)
    models = _kws(3, seed=3)
    for name, model in (("a.tflite", models[0]), ("model.tflite", models[1])):
        (tmp_path / name).write_bytes(model)
    float_spec = perfsage.sample("kws", 1, seed=3)[0]["spec"]
    (tmp_path / "a_float32.tflite").write_bytes(perfsage.build_model(float_spec, dtype="float32"))
    if "mine.parquet" in code:  # the measurements the README imports with import-csv
        with open(tmp_path / "my.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["model", "latency_ms"])
            for i, model in enumerate(_kws(12, seed=5)):
                (tmp_path / f"m{i}.tflite").write_bytes(model)
                writer.writerow([f"m{i}.tflite", 0.5 + 0.1 * i])
        import_csv(tmp_path / "my.csv", "my-board", {"latency_ms": "ms"}, tmp_path / "mine.parquet",
                   model_column="model", progress=False)
    monkeypatch.chdir(tmp_path)
    namespace = {"perfsage": perfsage, "b_bytes": models[2], "other_bytes": models[2],
                 "graph": perfsage.load_tflite(models[2]), "paths_or_bytes": ["a.tflite", models[2]],
                 "items": ["model.tflite", b"not a model"]}
    exec(compile(code, f"README.md ({first[:30]}...)", "exec"), namespace)
