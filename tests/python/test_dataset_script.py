"""scripts/build_datasets.sh at a tiny size: builds, resumes, and writes compact copies that
rebuild the full datasets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="datasets need pyarrow (pip install perfsage[label])")
pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install perfsage[label])")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install perfsage[label])")

from perfsage import sample  # noqa: E402
from perfsage.datasets import open_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SPACES = ["detection", "image_classification", "kws", "super_resolution"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="the build script is a bash script")
def test_build_script_builds_resumes_and_compacts(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "datasets"
    command = [
        "bash", str(REPO / "scripts" / "build_datasets.sh"), "--n-per-space", "1", "--host-n-per-space", "1",
        "--nb201-limit", "12", "--out", str(out), "--workers", "2", "--require-ethos", "4", "--require-host", "4",
    ]
    env = {**os.environ, "PYTHON": sys.executable, "PERFSAGE_DATA": str(data_dir)}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr

    ethos = open_dataset(out / "compact" / "paper-ethos-u.parquet")
    host = open_dataset(out / "compact" / "paper-host-cpu.parquet")
    nb201 = open_dataset(out / "compact" / "nb201.parquet")
    assert ethos.compact and host.compact and nb201.compact
    assert sorted(ethos.spaces) == sorted(host.spaces) == SPACES
    assert set(ethos.dtypes) == {"int8"} and ethos.ok.all() and host.ok.all()
    assert sorted(ethos.ids) == sorted(host.ids)  # host-cpu labels the first models of the same samples
    assert {c.split("/")[0] for c in ethos.label_columns} == {"ethos-u55-256", "ethos-u65-512"}
    assert {c.split("/")[0] for c in host.label_columns} == {"host-cpu"}
    assert nb201.num_rows == 12

    # The compact copy is the full dataset: the same labels, and graphs rebuilt from the specs equal
    # the graphs of the stored weight-free TFLite.
    full = open_dataset(out / "paper-ethos-u.parquet")
    order = [full.ids.index(i) for i in ethos.ids]
    np.testing.assert_array_equal(ethos.labels(ethos.label_columns), full.labels(ethos.label_columns)[order])
    for rebuilt, stored in zip(ethos.graphs(), [full.graphs()[i] for i in order]):
        assert rebuilt.node_features.tobytes() == stored.node_features.tobytes()
        assert rebuilt.totals == stored.totals

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 already stored; labelling 0" in again.stdout + again.stderr
    assert f"{out}/nb201.parquet exists; keeping it" in again.stdout

    stricter = subprocess.run(command[:-4] + ["--require-ethos", "5", "--require-host", "4"],
                              capture_output=True, text=True, env=env, timeout=600)
    assert stricter.returncode == 1
    assert "fewer than the 5 labelled rows required" in stricter.stdout


WORLD_SPACES = ["autoencoder", "cnn_families", "mobile_v3", "motifs", "op_zoo", "recurrent_audio", "transformer"]
FLOAT_SECTION_SPACES = ["op_zoo", "motifs", "cnn_families", "mobile_v3", "transformer", "recurrent_audio",
                        "image_classification", "kws"]
AFFINE_SPACES = ["op_zoo", "motifs", "cnn_families", "mobile_v3", "image_classification", "kws", "detection",
                 "autoencoder"]
STEM_SPACES = ["kws", "cnn_families", "op_zoo"]
TRAINED_SPACES = ["op_zoo", "motifs", "autoencoder", "transformer", "recurrent_audio", "kws", "image_classification",
                  "mobile_v3", "cnn_families"]
FLAT_SPACES = ["op_zoo", "motifs", "kws", "recurrent_audio", "image_classification", "cnn_families", "mobile_v3",
               "transformer"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="the build script is a bash script")
def test_world_script_builds_every_part_with_per_operator_labels_and_resumes(tmp_path: Path) -> None:
    """scripts/build_world_datasets.sh at one model per part: the new spaces in int8, the second zoo
    draw, the motifs, op_zoo and motifs with mixed weights, the 16x8 models, float sections, affine
    layers, depthwise stems, trained weights, flat inputs and the paper spaces: one dataset with per-operator
    labels summing to the model labels."""
    out = tmp_path / "datasets"
    command = ["bash", str(REPO / "scripts" / "build_world_datasets.sh"), "--zoo-n", "1", "--zoo2-n", "1",
               "--other-n", "1", "--motifs-n", "1", "--mixed-n", "1", "--x16-n", "1", "--float-n", "1",
               "--affine-n", "1", "--stems-n", "1", "--trained-zoo-n", "1", "--trained-n", "1",
               "--flat-zoo-n", "1", "--flat-n", "1",
               "--paper-n-per-space", "1", "--workers", "2",
               "--out", str(out)]
    env = {**os.environ, "PYTHON": sys.executable}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    world = open_dataset(out / "world-ethos-u.parquet")
    assert sorted(set(world.spaces)) == sorted(WORLD_SPACES + SPACES)
    # Both mixed draws have non-uniform weights; a float-sections draw adds a model where it changed the spec.
    sectioned = sum(sample(space, 1, float_sections="mixed")[0]["spec"] != sample(space, 1)[0]["spec"]
                    for space in FLOAT_SECTION_SPACES)
    affine = sum(sample(space, 1, affine="mixed")[0]["spec"] != sample(space, 1)[0]["spec"] for space in AFFINE_SPACES)
    stems = sum(sample(space, 1, stems="mixed")[0]["spec"] != sample(space, 1)[0]["spec"] for space in STEM_SPACES)
    assert sectioned >= 3 and affine >= 3, (sectioned, affine)
    # Every trained draw has a "weights" field, so each is a new row unless the mixed-weights step
    # (op_zoo and motifs) drew the same values for the same seed.
    trained = sum(space not in ("op_zoo", "motifs") or
                  sample(space, 1, weights="trained")[0]["spec"] != sample(space, 1, weights="mixed")[0]["spec"]
                  for space in TRAINED_SPACES)
    assert trained >= len(TRAINED_SPACES) - 2
    # A flat-inputs draw (trained weights, stems) is the trained step's row unless stems or flat inputs changed it.
    flat = sum(sample(space, 1, weights="trained", stems="mixed", flat_inputs="mixed")[0]["spec"] !=
               sample(space, 1, weights="trained")[0]["spec"] for space in FLAT_SPACES)
    assert world.num_rows == 1 + 5 + 1 + 1 + 2 + 2 + 4 + sectioned + affine + stems + trained + flat + 2
    assert sorted(world.dtypes.tolist()).count("int16x8") == 4
    assert set(world.targets) == {"ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512"}
    latency = world.labels(["ethos-u55-256/latency_ms"])[:, 0]
    per_op = world.node_labels("ethos-u55-256", "latency_ms")
    checked = 0
    for total, ops in zip(latency, per_op):
        if ops is not None and np.isfinite(total):
            np.testing.assert_allclose(ops.astype(np.float64).sum(), total, rtol=1e-4)
            checked += 1
    assert checked >= 10, (checked, world.errors)
    assert open_dataset(out / "compact" / "world-ethos-u.parquet").compact

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "labelling 0" in again.stdout + again.stderr and "labelling 1" not in again.stdout + again.stderr
