"""What a new user tripped on (issue 12): errors that say what was expected, fit's edge cases, one
error base, generate into a used folder, predict on folders, --csv, targets, warnings, help."""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

import perfsage
from perfsage.cli import _parser, main

VELA_COMPILED = "tflm_person_detect_vela.tflite"


def _kws_models(n: int, dtype: str = "int8", seed: int = 0) -> List[bytes]:
    return [perfsage.build_model(i["spec"], seed=i["seed"], dtype=dtype) for i in perfsage.sample("kws", n, seed)]


@pytest.fixture(scope="module")
def models() -> List[bytes]:
    return _kws_models(3)


@pytest.fixture(scope="module")
def u55() -> perfsage.Predictor:
    return perfsage.load_predictor("ethos-u55-256")


# ---------------------------------------------------------------------------------------------
# Items 2 and 3: errors name the bad item and say what was expected


def test_predict_names_the_index_of_the_bad_item(u55, models) -> None:
    g = perfsage.load_tflite(models[0])
    with pytest.raises(TypeError, match=r"^graphs\[2\]: expected a Graph, a path, bytes or a spec, got NoneType$"):
        u55.predict([g, g, None])
    with pytest.raises(TypeError, match=r"^graphs\[1\]: .* got int$"):
        u55.predict([models[0], 7])


def test_explain_and_check_take_one_model(u55, models) -> None:
    with pytest.raises(TypeError, match="explain: expected one model .* got list; call it once per model"):
        u55.explain([])
    with pytest.raises(TypeError, match="explain: expected one model .* got list"):
        u55.explain([models[0], models[1]])  # used to explain the first one silently
    with pytest.raises(TypeError, match="check: expected one model .* got NoneType"):
        u55.check(None)
    assert u55.check(models[0]) == []


def test_load_many_refuses_one_model_and_impossible_thread_counts(models, tmp_path: Path) -> None:
    path = tmp_path / "one.tflite"
    path.write_bytes(models[0])
    for one in (str(path), path, models[0], bytearray(models[0])):
        with pytest.raises(TypeError, match="items: expected a list of .tflite paths or TFLite bytes, got one "
                                            ".*; wrap a single model in a list, or use load_tflite"):
            perfsage.load_many(one)
    with pytest.raises(TypeError, match="items: expected a list .* got one int"):
        perfsage.load_many(3)
    for threads in (2**40, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"threads must be an int from 0 \(every core\) to 2147483647, got"):
            perfsage.load_many([str(path)], threads=threads)
    assert len(perfsage.load_many([str(path)], threads=2**31 - 1)) == 1  # the largest the core takes


def test_predict_and_fit_check_threads(u55, models) -> None:
    with pytest.raises(ValueError, match="threads must be an int"):
        u55.predict(models, threads=2**40)
    p = perfsage.Predictor(["a"], hidden=8, head_hidden=8, validation_split=0.0)
    with pytest.raises(ValueError, match="threads must be an int"):
        p.fit((models, [1.0, 2.0, 3.0]), epochs=1, threads=-2, progress=False)


# ---------------------------------------------------------------------------------------------
# Item 4: fit with nothing to do, or nothing to validate on


def test_fit_refuses_zero_epochs_and_stays_untrained(models) -> None:
    p = perfsage.Predictor(["a"], hidden=8, head_hidden=8, validation_split=0.0)
    for epochs in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match=f"fit: epochs must be a positive int, got {epochs!r}"):
            p.fit((models, [1.0, 2.0, 3.0]), epochs=epochs, progress=False)
    assert not p.is_trained


def test_fit_on_too_few_graphs_to_validate_warns(models) -> None:
    p = perfsage.Predictor(["a"], hidden=8, head_hidden=8)
    with pytest.warns(UserWarning, match="fit: 1 training graph.* too few to hold out 10% for validation .*"
                                         "val_loss is nan"):
        p.fit(([models[0]], [1.0]), epochs=2, progress=False)
    assert p.is_trained and p.provenance["val_graphs"] == 0
    # Asked for no validation, or given it: no warning (warnings are errors in this suite).
    perfsage.Predictor(["a"], hidden=8, head_hidden=8, validation_split=0.0).fit(
        ([models[0]], [1.0]), epochs=1, progress=False)
    perfsage.Predictor(["a"], hidden=8, head_hidden=8).fit(
        ([models[0]], [1.0]), val=([models[1]], [2.0]), epochs=1, progress=False)


# ---------------------------------------------------------------------------------------------
# Item 5: one base for perfsage's errors


def test_dataset_error_is_a_perfsage_error(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="datasets need pyarrow (pip install perfsage[label])")
    from perfsage.datasets import DatasetError, open_dataset

    assert issubclass(DatasetError, perfsage.PerfSageError) and issubclass(DatasetError, ValueError)
    with pytest.raises(perfsage.PerfSageError, match="no such dataset file or directory"):
        open_dataset(tmp_path / "nothing.parquet")


# ---------------------------------------------------------------------------------------------
# Item 6: generate into a folder that has models


def test_generate_refuses_a_folder_that_is_not_empty(tmp_path: Path, capsys) -> None:
    out = tmp_path / "kws"
    assert main(["generate", "--space", "kws", "--n", "2", "--out", str(out)]) == 0
    manifest = (out / "manifest.jsonl").read_text()
    capsys.readouterr()
    assert main(["generate", "--space", "nb201", "--n", "1", "--seed", "4", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out}: not empty (it holds kws-000000.tflite, kws-000001.tflite, manifest.jsonl; 3 entries)" in err
    assert "choose another --out, or empty this one" in err
    # Nothing was written: the manifest still lists exactly the folder's models.
    assert (out / "manifest.jsonl").read_text() == manifest
    assert sorted(p.name for p in out.iterdir()) == ["kws-000000.tflite", "kws-000001.tflite", "manifest.jsonl"]
    (tmp_path / "empty").mkdir()
    assert main(["generate", "--space", "kws", "--n", "1", "--out", str(tmp_path / "empty")]) == 0


# ---------------------------------------------------------------------------------------------
# Items 8, 9, 11, 12: perfsage predict


@pytest.fixture()
def folder(tmp_path: Path, models) -> Path:
    """Two models in a folder (written out of name order), one in a subfolder, and a float model."""
    d = tmp_path / "models"
    (d / "sub").mkdir(parents=True)
    (d / "b.tflite").write_bytes(models[1])
    (d / "a.tflite").write_bytes(models[0])
    (d / "notes.txt").write_text("not a model")
    (d / "sub" / "c.tflite").write_bytes(models[2])
    (tmp_path / "float.tflite").write_bytes(_kws_models(1, dtype="float32")[0])
    return d


def test_predict_a_folder_predicts_its_models_sorted_not_recursively(folder: Path, u55, models, capsys) -> None:
    assert main(["predict", str(folder), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == [str(folder / "a.tflite"), str(folder / "b.tflite")]
    expected = u55.predict(models[:2])
    got = np.array([[m["value"] for m in r["metrics"].values()] for r in rows], dtype=np.float32)
    np.testing.assert_array_equal(got, expected)
    empty = folder / "sub" / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), str(folder / "sub")]) == 1
    captured = capsys.readouterr()
    assert (f"perfsage: error: {empty}: a directory without .tflite files (subdirectories are not searched)"
            in captured.err)
    assert str(folder / "sub" / "c.tflite") in captured.out  # the rest is still predicted


def _csv(text: str) -> List[Dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_csv_one_row_per_model_and_target(folder: Path, capsys) -> None:
    targets = ["--target", "ethos-u55-256", "--target", "ethos-u65-512"]
    assert main(["predict", str(folder), "--json", *targets]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert main(["predict", str(folder), "--csv", *targets]) == 0
    table = _csv(capsys.readouterr().out)
    assert [(r["model"], r["target"]) for r in table] == [(r["model"], r["target"]) for r in rows]
    assert list(table[0])[:7] == ["model", "target", "latency_ms [ms]", "energy_mj [mJ]", "peak_sram_bytes [bytes]",
                                  "offchip_flash_bytes [bytes]", "peak_dram_bytes [bytes]"]
    for line, row in zip(table, rows):
        for metric, value in row["metrics"].items():
            assert float(line[f"{metric} [{value['unit']}]"]) == value["value"]  # full precision
        assert line["system_config"] == row["settings"]["system_config"]
        assert line["memory_mode"] == row["settings"]["memory_mode"]
    u65 = [line for line in table if line["target"] == "ethos-u65-512"]
    assert all(line["offchip_flash_bytes [bytes]"] == "" and line["peak_dram_bytes [bytes]"] for line in u65)
    assert {line["accelerator_config"] for line in u65} == {"ethos-u65-512"}
    with pytest.raises(SystemExit):
        _parser().parse_args(["predict", str(folder), "--csv", "--json"])
    assert main(["predict", str(folder), "--csv", "--explain"]) == 1
    assert "--explain lists operators in the table or in --json" in capsys.readouterr().err


def test_predict_json_carries_the_target_settings(folder: Path, capsys) -> None:
    assert main(["predict", str(folder / "a.tflite"), "--json", "--target", "ethos-u65-512"]) == 0
    settings = json.loads(capsys.readouterr().out)[0]["settings"]
    assert settings["accelerator_config"] == "ethos-u65-512"
    assert settings["system_config"] == "Ethos_U65_High_End" and settings["memory_mode"] == "Dedicated_Sram_384KB"
    assert settings["tool"] == "ethos-u-vela" and "source" in settings


def test_warnings_once_per_model_and_quiet(folder: Path, capsys) -> None:
    float_model = folder.parent / "float.tflite"
    targets = ["--target", "ethos-u55-256", "--target", "ethos-u65-512"]
    assert main(["predict", str(float_model), str(folder / "a.tflite"), *targets]) == 0
    err = capsys.readouterr().err.splitlines()
    floats = [line for line in err if "looks like a float model" in line]
    # Both predictors warn about the float model; the user reads it once, without a target name.
    assert floats == [f"perfsage: warning: {float_model}: this looks like a float model (0% of its operators "
                      "have quantized outputs) but the predictor was trained on int8 models; NPUs such as the "
                      "Ethos-U run int8 only"]
    assert all(str(folder / "a.tflite") not in line for line in err)
    assert main(["predict", str(float_model), *targets, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and str(float_model) in captured.out
    assert main(["predict", str(float_model), "--json", "-q"]) == 0
    assert "float model" in json.loads(capsys.readouterr().out)[0]["warnings"][0]  # still in the output


def test_a_model_compiled_by_vela_is_refused_by_name(models_dir: Path, folder: Path, u55, capsys) -> None:
    compiled = models_dir / VELA_COMPILED
    assert main(["predict", str(compiled), str(folder / "a.tflite")]) == 1
    captured = capsys.readouterr()
    assert (f"perfsage: error: {compiled}: already compiled by Vela (operator 0 is its 'ethos-u' custom operator, "
            "which runs the NPU command stream): a prediction for it is meaningless; predict the model given to "
            "Vela instead") in captured.err
    assert VELA_COMPILED not in captured.out and "a.tflite" in captured.out
    assert u55.check(compiled)[0].startswith("already compiled by Vela")


def test_top_needs_explain_and_a_positive_count(folder: Path, capsys) -> None:
    model = str(folder / "a.tflite")
    assert main(["predict", model, "--top", "3"]) == 1
    assert "perfsage: error: --top sets how many operators --explain lists: add --explain" in capsys.readouterr().err
    for bad in ("0", "-2", "x"):
        with pytest.raises(SystemExit) as exit_info:
            main(["predict", model, "--explain", "--top", bad])
        assert exit_info.value.code == 2
        assert "argument --top: expected a positive whole number" in capsys.readouterr().err
    assert main(["predict", model, "--explain", "--top", "2", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["explain"]) == 2


# ---------------------------------------------------------------------------------------------
# Item 10: targets


def test_targets_lists_predictors_and_labellers_with_settings_and_accuracy(capsys) -> None:
    from perfsage.labelers import labeler_names

    entries = {e["target"]: e for e in perfsage.targets()}
    assert set(entries) == set(perfsage.shipped_predictors()) | set(labeler_names())
    for name in perfsage.shipped_predictors():
        e = entries[name]
        p = perfsage.load_predictor(name)
        assert e["predictor"] and e["labeller"]
        assert list(e["metrics"]) == [n.split("/")[1] for n in p.output_names]
        assert list(e["accuracy"]) == list(e["metrics"])
        for column, score in p.provenance["test"].items():
            assert e["accuracy"][column.split("/")[1]] == score
        # Scored on a held-out split of a real training set (the full world build holds out 10,800-
        # 11,300 models per target), not on a handful.
        assert e["trained_on"]["split"]["test"] == next(iter(p.provenance["test"].values()))["rows"] > 10000
    assert entries["ethos-u55-256"]["settings"]["system_config"] == "Ethos_U55_High_End_Embedded"
    assert entries["ethos-u55-256"]["settings"]["memory_mode"] == "Shared_Sram"
    assert entries["ethos-u65-512"]["settings"]["memory_mode"] == "Dedicated_Sram_384KB"
    assert not entries["host-cpu"]["predictor"] and entries["host-cpu"]["accuracy"] == {}
    assert entries["host-cpu"]["settings"]["tool"] == "ai-edge-litert"
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "ethos-u55-256  shipped" in out and "Ethos_U55_High_End_Embedded  Shared_Sram" in out
    u55 = entries["ethos-u55-256"]["accuracy"]["latency_ms"]["mape"]
    assert f"latency_ms {100 * u55:.2f}%" in out
    assert main(["targets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(list(entries.values())))


def test_targets_match_the_labellers_own_settings() -> None:
    pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install perfsage[label])")
    from perfsage._targets import labeler_settings
    from perfsage.labelers import get_labeler

    for name in ("ethos-u55-256", "ethos-u65-512", "ethos-u55-128"):
        with get_labeler(name) as labeler:
            full = labeler.settings()
        static = labeler_settings(name)
        assert {k: full[k] for k in static} == static, name


def test_a_predictor_fitted_on_a_dataset_records_its_labellers_settings(tmp_path: Path, models) -> None:
    pytest.importorskip("pyarrow", reason="datasets need pyarrow (pip install perfsage[label])")
    from perfsage._targets import predictor_settings
    from perfsage.datasets import ShardWriter

    settings = {"tool": "stopwatch", "board": "my-board rev B", "core_clock_hz": 80e6}
    with ShardWriter(tmp_path / "d", {"my-board": {"metrics": {"latency_ms": "ms"}, "settings": settings}}) as w:
        w.write([{"id": f"m{i}", "space": "kws", "tflite": m, "my-board/latency_ms": 1.0 + i}
                 for i, m in enumerate(models)])
    p = perfsage.Predictor(["my-board/latency_ms"], hidden=8, head_hidden=8, validation_split=0.0)
    p.fit(tmp_path / "d", epochs=1, progress=False)
    assert p.provenance["labeler_settings"] == {"my-board": settings}
    recorded = predictor_settings(p, "my-board")
    assert recorded["board"] == "my-board rev B" and recorded["source"].startswith("predictor provenance")


# ---------------------------------------------------------------------------------------------
# Item 12: help for everything, --version


def _subparsers(parser: argparse.ArgumentParser, path: str = "perfsage"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"{path} {name}: no help line in {path} --help"
                yield from _subparsers(sub, f"{path} {name}")


def test_every_command_and_option_has_help() -> None:
    missing = []
    commands = list(_subparsers(_parser()))
    assert len(commands) > 15
    for path, parser in commands:
        if not parser.description:  # what `perfsage CMD --help` says the command does
            missing.append(f"{path} (no description)")
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_version() -> None:
    run = subprocess.run([sys.executable, "-m", "perfsage", "--version"], capture_output=True, text=True)
    expected = f"perfsage {perfsage.__version__} (core built for {perfsage.build_info()['isa']})"
    assert run.returncode == 0 and run.stdout.strip() == expected
