"""The notebooks in notebooks/ run from the first cell to the last, in a fresh kernel.

Each notebook is executed with nbclient in a temporary directory, with the small settings its
"parameters" cell picks when PERFSAGE_NOTEBOOK_FAST=1 (seconds per notebook). A failing cell fails
the test with that cell's source and traceback. The notebooks are committed without outputs;
they use the shipped predictors, so those files must be present (no skip).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat (pip install perfsage[test])")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient (pip install perfsage[test])")
pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel (pip install perfsage[test])")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
NAMES = ["tour", "train_your_own", "latency_constrained_nas", "bring_your_own_board"]
# Seconds one cell may run before the test fails (the slowest fast-mode cell takes a few seconds).
CELL_TIMEOUT_S = 180
# The inline backend renders with Agg (no display needed) and keeps the figures as PNG outputs.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _read(name: str):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _outputs(notebook, output_type=None):
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if output_type is None or o.output_type == output_type]


def _execute(name, tmp_path, monkeypatch, data_dir):
    """Runs notebooks/<name>.ipynb in fast mode with PERFSAGE_DATA=data_dir; returns what it printed."""
    notebook = _read(name)
    monkeypatch.setenv("PERFSAGE_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", INLINE_BACKEND)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' temporary directories go here
    monkeypatch.setenv("PERFSAGE_DATA", str(data_dir))
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"notebooks/{name}.ipynb: a cell failed:\n{_ANSI.sub('', str(error))}", pytrace=False)
    assert not _outputs(notebook, "error")
    printed = "".join(o.get("text", "") for o in _outputs(notebook, "stream"))
    assert printed.strip(), f"{name}: the notebook printed nothing"
    figures = [o for o in _outputs(notebook) if "image/png" in o.get("data", {})]
    assert figures, f"{name}: no figure was drawn"
    return printed


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_fast_mode(name, tmp_path, monkeypatch):
    # Why: the notebooks are documentation users run; a broken API call must fail CI, not a reader.
    _execute(name, tmp_path, monkeypatch, os.environ.get("PERFSAGE_DATA", str(REPO.parent / "shared" / "data")))


def test_tour_runs_without_shared_data(tmp_path, monkeypatch):
    # Why: a user's clone has no ../shared/data; the tour must fall back to the built-in example and say so.
    empty = tmp_path / "no-data"
    empty.mkdir()
    printed = _execute("tour", tmp_path, monkeypatch, empty)
    assert "not found" in printed and "built-in example" in printed
    assert "mlperftiny-kws-dscnn.tflite" in printed


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_clean_with_parameters_first(name):
    # Why: outputs in git bloat diffs and go stale; the test relies on the parameters cell.
    notebook = _read(name)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count") is not None]
    assert not dirty, f"notebooks/{name}.ipynb: code cells {dirty} carry outputs; strip them before committing"
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []), f"{name}: the first code cell is not tagged 'parameters'"
    assert "PERFSAGE_NOTEBOOK_FAST" in first.source
