"""Labelling model files (``perfsage dataset label`` / ``label_files``) with the real Vela labeller:
rows match the labeller run directly, resuming skips stored files, bad files become error rows,
and the real-model script's int8 check tells full-integer models from the others."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import struct
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="datasets need pyarrow (pip install perfsage[label])")
pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install perfsage[label])")

from model_bytes import bad_name_model, with_byte  # noqa: E402
from perfsage import build_model, load_tflite, strip_weights  # noqa: E402
from perfsage.cli import main  # noqa: E402
from perfsage.datasets import DatasetError, label_files, model_id, open_dataset  # noqa: E402
from perfsage.labelers import get_labeler  # noqa: E402
from perfsage.spaces import sample  # noqa: E402

TARGET = "ethos-u55-256"
REPO = Path(__file__).resolve().parents[2]


def _write_models(folder: Path, n: int, seed: int = 0) -> Dict[str, bytes]:
    """``n`` int8 KWS models from perfsage's own space, written as ``kws-<i>.tflite``."""
    folder.mkdir(parents=True, exist_ok=True)
    models = {}
    for i, item in enumerate(sample("kws", n, seed)):
        model = build_model(item["spec"], seed=item["seed"], dtype="int8")
        (folder / f"kws-{i}.tflite").write_bytes(model)
        models[f"kws-{i}"] = model
    return models


def test_rows_hold_what_the_labeller_says_of_each_file(tmp_path: Path) -> None:
    models = _write_models(tmp_path / "models", 3)
    log = io.StringIO()
    summary = label_files(tmp_path / "out", tmp_path / "models", TARGET, space="mine", workers=1, progress=False,
                          log=log)
    assert summary.complete and summary.labelled == 3 and not summary.errors, log.getvalue()
    dataset = open_dataset(summary.path)
    table = dataset.table().to_pylist()
    by_name = {row["name"]: row for row in table}
    assert sorted(by_name) == sorted(models)
    with get_labeler(TARGET) as labeler:
        for name, model in models.items():
            row = by_name[name]
            assert row["id"] == model_id(model)
            assert row["space"] == "mine" and row["dtype"] == "int8"
            assert row["spec"] is None and row["seed"] is None and row["error"] is None
            assert row["tflite"] == strip_weights(model)
            expected = labeler.label(model)
            assert {m: row[f"{TARGET}/{m}"] for m in expected} == pytest.approx(expected, rel=1e-12)
            provenance = json.loads(row["provenance"])
            assert provenance["file"] == str(tmp_path / "models" / f"{name}.tflite")
            assert provenance["file_sha256"] == hashlib.sha256(model).hexdigest()
    # The stored weight-free copies read to the features of the files themselves.
    for name, graph in zip(dataset.names, dataset.graphs(threads=1)):
        np.testing.assert_array_equal(graph.node_features, load_tflite(models[name]).node_features)


def test_running_again_labels_only_the_new_files(tmp_path: Path) -> None:
    models = _write_models(tmp_path / "models", 3, seed=5)
    first = tmp_path / "models" / "kws-2.tflite"
    moved = tmp_path / "later.tflite"
    first.rename(moved)
    out = tmp_path / "out"
    log = io.StringIO()
    label_files(out, [tmp_path / "models"], TARGET, workers=1, progress=False, log=log)
    before = dict(zip(open_dataset(out).ids, open_dataset(out).provenance))
    # The third model appears; the first reappears under another name (same bytes: one row).
    (tmp_path / "copy-of-kws-0.tflite").write_bytes(models["kws-0"])
    log = io.StringIO()
    summary = label_files(out, [tmp_path / "models", moved, tmp_path / "copy-of-kws-0.tflite"], TARGET, workers=1,
                          progress=False, log=log)
    text = log.getvalue()
    assert "3 models planned (4 files, space real); 2 already stored; labelling 1" in text, text
    assert "copy-of-kws-0.tflite has the same bytes as" in text
    assert summary.labelled == 1 and summary.complete
    dataset = open_dataset(out)
    assert sorted(dataset.names) == ["kws-0", "kws-1", "later"]
    after = dict(zip(dataset.ids, dataset.provenance))
    assert all(after[row_id] == provenance for row_id, provenance in before.items())  # not relabelled


def test_a_corrupt_file_is_an_error_row_and_the_job_goes_on(tmp_path: Path) -> None:
    models = _write_models(tmp_path / "models", 1, seed=2)
    model = models["kws-0"]
    (tmp_path / "models" / "truncated.tflite").write_bytes(model[: len(model) // 2])
    (tmp_path / "models" / "notes.tflite").write_bytes(b"not a model")
    out = tmp_path / "out"
    summary = label_files(out, tmp_path / "models", TARGET, workers=1, progress=False, log=io.StringIO())
    assert summary.complete and summary.labelled == 3 and summary.errors == {"import": 2}
    dataset = open_dataset(out)
    rows = {r["name"]: r for r in dataset.table(tflite=False).to_pylist()}
    assert rows["kws-0"]["error"] is None and rows["kws-0"][f"{TARGET}/latency_ms"] > 0
    truncated = rows["truncated"]
    assert truncated["error_kind"] == "import" and truncated[f"{TARGET}/latency_ms"] is None
    assert truncated["error"].startswith("not a valid TFLite model: ")
    assert "truncated.tflite" in truncated["error"] and "verification failed" in truncated["error"]
    assert "notes.tflite: not a TFLite model (no 'TFL3' file identifier" in rows["notes"]["error"]
    assert np.isnan(dataset.labels([f"{TARGET}/latency_ms"])[~dataset.ok]).all()
    # Stored errors are not retried unless asked; asked, the file is still bad.
    log = io.StringIO()
    assert label_files(out, tmp_path / "models", TARGET, workers=1, progress=False, log=log).labelled == 0
    retried = label_files(out, tmp_path / "models", TARGET, workers=1, retry_errors=True, progress=False, log=log)
    assert retried.labelled == 2 and retried.errors == {"import": 2}


def test_paths_that_name_no_model_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no-such.tflite: no such file or directory"):
        label_files(tmp_path / "out", tmp_path / "no-such.tflite", TARGET, log=io.StringIO())
    with pytest.raises(DatasetError, match="empty: a directory without .tflite files"):
        label_files(tmp_path / "out", [tmp_path / "empty"], TARGET, log=io.StringIO())
    with pytest.raises(ValueError, match="space name"):
        label_files(tmp_path / "out", [tmp_path / "empty"], TARGET, space="a/b", log=io.StringIO())
    assert not (tmp_path / "out").exists()


def test_shared_int8_and_float_models(tmp_path: Path, models_dir: Path) -> None:
    files = [models_dir / "mlperftiny_kws_ref_model.tflite", models_dir / "mlperftiny_kws_ref_model_float32.tflite"]
    log = io.StringIO()
    summary = label_files(tmp_path / "out", files, [TARGET, "ethos-u65-512"], workers=1, progress=False, log=log)
    assert summary.complete and not summary.errors
    assert "1 model(s) have float tensors (mlperftiny_kws_ref_model_float32)" in log.getvalue()
    dataset = open_dataset(summary.path)
    rows = {r["name"]: r for r in dataset.table(tflite=False).to_pylist()}
    int8, float32 = rows["mlperftiny_kws_ref_model"], rows["mlperftiny_kws_ref_model_float32"]
    assert int8["dtype"] == "int8" and float32["dtype"] == "float32"
    for target in (TARGET, "ethos-u65-512"):
        # The int8 DS-CNN runs on the NPU whole; Vela leaves the float one's operators to the CPU.
        assert int8[f"{target}/cpu_ops"] == 0 and int8[f"{target}/npu_ops"] > 0
        assert int8[f"{target}/latency_ms"] > 0
        assert float32[f"{target}/cpu_ops"] > 0
    assert int8[f"{TARGET}/latency_ms"] > int8["ethos-u65-512/latency_ms"]  # the larger NPU is faster


def _real_models_script():
    spec = importlib.util.spec_from_file_location("real_models", REPO / "scripts" / "real_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_models"] = module  # its dataclasses look their module up while being defined
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["real_models"]
    return module


def test_real_models_script_tells_full_integer_models(models_dir: Path, tmp_path: Path) -> None:
    script = _real_models_script()
    assert script.dtype_problems(models_dir / "mlperftiny_vww_96_int8.tflite", "int8") == []
    assert script.dtype_problems(models_dir / "mlperftiny_vww_96_float.tflite", None) == [
        "32 activation float32 tensor(s)", "56 constant float32 tensor(s)"]
    assert script.dtype_problems(models_dir / "tflm_person_detect_vela.tflite", None)[0].startswith(
        "already compiled by Vela")
    # Full-integer, but with int16 activations: fine for the shared set and for the audio schemes,
    # not for a converted int8 model.
    scrambled = models_dir / "tflm_keyword_scrambled_8bit.tflite"
    assert script.dtype_problems(scrambled, None) == []
    assert "activation int16" in " ".join(script.dtype_problems(scrambled, "int8"))
    assert "activation int16" not in " ".join(script.dtype_problems(scrambled, "int8-audio"))
    (tmp_path / "bad.tflite").write_bytes(b"\0" * 64)
    assert script.dtype_problems(tmp_path / "bad.tflite", None)[0].startswith("does not load: ")
    specs = script.catalogue()
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) and 120 <= len(names) <= 200
    assert {s.quantization for s in specs} <= set(script.QUANTIZATION)
    assert {s.framework for s in specs} == set(script.CONVERTERS)
    assert script.model_seed(0, names[0]) == script.model_seed(0, names[0]) != script.model_seed(1, names[0])


FAKE_CONVERTER = """
import json, os, sys, time
for name in sys.argv[1:sys.argv.index("--out")]:
    print("START " + name, flush=True)
    if name == "raises":
        print("FAILED " + json.dumps({"name": name, "error": "ValueError: no"}), flush=True)
    elif name == "crashes":
        print("dying", file=sys.stderr, flush=True)
        os._exit(3)
    elif name == "hangs":
        time.sleep(60)
    else:
        print("RECORD " + json.dumps({"name": name, "argv": sys.argv[1:]}), flush=True)
"""


def test_real_models_converter_failures_cost_one_model_each(tmp_path: Path) -> None:
    # A converter process serves many models; one that raises, crashes or hangs is recorded as
    # failed, and the models after it are converted by a new process.
    script = _real_models_script()
    converter = tmp_path / "fake_converter.py"
    converter.write_text(FAKE_CONVERTER)
    records, failures = [], []
    names = ["a", "raises", "b", "crashes", "c", "hangs", "d"]
    script.run_converter(converter, names, tmp_path, 0, 5.0, lambda record, wall: records.append(record),
                         lambda name, error, wall: failures.append((name, error)))
    assert [r["name"] for r in records] == ["a", "b", "c", "d"]
    assert records[1]["argv"][:len(names)] == names  # still the first process
    assert records[2]["argv"][:3] == ["c", "hangs", "d"]  # a new process after the crash
    assert records[3]["argv"][:2] == ["d", "--out"]  # and after the hang
    assert [name for name, _ in failures] == ["raises", "crashes", "hangs"]
    assert failures[0][1] == "ValueError: no"
    assert failures[1][1].startswith("exit status 3: ") and "dying" in failures[1][1]
    assert failures[2][1] == "no result within 5 s"


def test_cli_label_and_info(tmp_path: Path, capsys) -> None:
    _write_models(tmp_path / "models", 2, seed=7)
    out = tmp_path / "out"
    command = ["dataset", "label", str(tmp_path / "models"), "--target", TARGET, "--out", str(out), "--space",
               "real-test", "--workers", "1", "--timeout", "120", "--no-progress"]
    assert main(command) == 0
    assert "2 models planned (2 files, space real-test)" in capsys.readouterr().err
    assert main(["dataset", "info", str(out)]) == 0
    assert "real-test 2" in capsys.readouterr().out
    assert main(command) == 0
    assert "2 already stored; labelling 0" in capsys.readouterr().err
    assert main(["dataset", "label", str(tmp_path / "nothing"), "--target", TARGET, "--out", str(out)]) == 1
    assert "perfsage: error: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dataset", "label", str(tmp_path / "models"), "--out", str(out)])  # no --target
    assert "--target" in capsys.readouterr().err


def test_ill_formed_tensor_names_are_labelled_or_error_rows(tmp_path: Path) -> None:
    # A tensor name that is not UTF-8 once aborted the whole job (issue 12): such a model is
    # labelled, and one that also fails to load is an error row quoting the name with U+FFFD.
    model = _write_models(tmp_path / "source", 1)["kws-0"]
    tensor = load_tflite(model).tensors(0)[0]
    corrupted = bad_name_model(model, tensor["name"], index=0)
    shape = struct.pack(f"<{len(tensor['shape']) + 1}i", len(tensor["shape"]), *tensor["shape"])
    assert corrupted.count(shape) == 1
    broken = with_byte(corrupted, corrupted.index(shape) + 4, struct.pack("<i", -1))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "named.tflite").write_bytes(corrupted)
    (tmp_path / "models" / "broken.tflite").write_bytes(broken)
    log = io.StringIO()
    summary = label_files(tmp_path / "out", tmp_path / "models", TARGET, workers=1, progress=False, log=log)
    assert summary.complete and summary.labelled == 2 and summary.errors == {"import": 1}, log.getvalue()
    rows = {row["name"]: row for row in open_dataset(summary.path).table().to_pylist()}
    assert rows["named"]["error"] is None and rows["named"][f"{TARGET}/latency_ms"] > 0
    assert f"tensor 0 '\ufffd{tensor['name'][1:]}': shape dimension 0 is negative" in rows["broken"]["error"]
