"""The perfsage command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import perfsage
from perfsage.cli import main


def test_inspect_table(models_dir: Path, capsys) -> None:
    model = models_dir / "mlperftiny_kws_ref_model.tflite"
    assert main(["inspect", str(model)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{model}: 13 operators, 12 edges"
    assert lines[1].split()[:3] == ["#", "op", "output"]
    assert "DEPTHWISE_CONV_2D" in out and "1x25x5x64 int8" in out
    assert "total MACs 2,664,780" in out


def test_inspect_json_matches_the_api(models_dir: Path, capsys) -> None:
    model = models_dir / "mlperftiny_pretrainedResnet_quant.tflite"
    assert main(["inspect", "--json", str(model)]) == 0
    report = json.loads(capsys.readouterr().out)
    graph = perfsage.load_tflite(model)
    assert report["totals"] == graph.totals
    assert [n["op"] for n in report["nodes"]] == graph.op_names
    assert [n["macs"] for n in report["nodes"]] == graph.node_costs["macs"].tolist()
    assert report["nodes"][0]["output_shape"] == [1, 32, 32, 16]


def test_inspect_vela_model_shows_custom_op(models_dir: Path, capsys) -> None:
    assert main(["inspect", str(models_dir / "tflm_person_detect_vela.tflite")]) == 0
    assert "ethos-u" in capsys.readouterr().out


def test_bad_model_is_a_clean_error(tmp_path: Path) -> None:
    # Installed entry point, as a user runs it: one line on stderr, exit 1, no traceback.
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    run = subprocess.run(
        [sys.executable, "-m", "perfsage", "inspect", str(bad)], capture_output=True, text=True
    )
    assert run.returncode == 1
    assert run.stderr.strip() == f"perfsage: error: {bad}: not a TFLite model (no 'TFL3' file identifier at byte 4)"
    assert "Traceback" not in run.stderr
