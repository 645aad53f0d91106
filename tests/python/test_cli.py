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


def test_spaces_lists_every_space_with_knobs(capsys) -> None:
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    for name, space in perfsage.spaces.spaces().items():
        assert f"{name}: {space.description}" in out
    assert "    num_blocks: 1, 2, 3, 4, 5, 6" in out


def test_generate_writes_models_and_a_manifest(tmp_path: Path, capsys) -> None:
    out = tmp_path / "kws"
    assert main(["generate", "--space", "kws", "--n", "5", "--seed", "3", "--dtype", "float32", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(5))
    expected = perfsage.sample("kws", 5, seed=3)
    for record, item in zip(records, expected):
        assert record["spec"] == item["spec"] and record["seed"] == item["seed"]
        model = (out / record["file"]).read_bytes()
        assert model == perfsage.build_model(item["spec"], seed=item["seed"], dtype="float32")
    assert "wrote 5 models" in capsys.readouterr().err


def test_generate_int16x8_models_of_the_dtypes_samples(tmp_path: Path) -> None:
    # Why: 16x8 samples redraw specs with layers that have no 16x8 kernel; generate must follow.
    assert main(["generate", "--space", "mobile_v3", "--n", "3", "--dtype", "int16x8", "--out", str(tmp_path)]) == 0
    records = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    for record, item in zip(records, perfsage.sample("mobile_v3", 3, seed=0, dtype="int16x8")):
        assert record["spec"] == item["spec"]
        model = perfsage.load_tflite((tmp_path / record["file"]).read_bytes())
        assert {t["dtype"] for t in model.tensors()} >= {"int16", "int8", "int64"}


def test_generate_stripped_and_unknown_space(tmp_path: Path, capsys) -> None:
    assert main(["generate", "--space", "nb201", "--n", "2", "--out", str(tmp_path), "--strip"]) == 0
    files = sorted(tmp_path.glob("*.tflite"))
    assert len(files) == 2 and all(f.stat().st_size < 100_000 for f in files)
    assert main(["generate", "--space", "cifar", "--n", "2", "--out", str(tmp_path)]) == 1
    assert "unknown search space 'cifar'" in capsys.readouterr().err


def test_nb201_model_matches_the_spec_builder() -> None:
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    model = perfsage.nb201_model(arch)
    assert model == perfsage.build_model(perfsage.spaces.nb201_spec(arch), dtype="float32")
    assert perfsage.load_tflite(model).tensors()[0]["shape"] == (1, 32, 32, 3)
