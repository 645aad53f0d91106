"""Names in a model file are untrusted bytes (issue 12): a tensor name that is not UTF-8 must read
with U+FFFD in place of each bad sequence, and never turn a model, a message or a batch into a
UnicodeDecodeError."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import perfsage
from model_bytes import bad_name_model, name_offset, with_byte
from perfsage.cli import main

# The input alone has 77 channels, so its shape vector is unique in the file and can be corrupted.
SPEC = {"inputs": [{"name": "input_image", "shape": [1, 8, 8, 77]}], "layers": [
    {"name": "conv", "op": "conv2d", "filters": 4, "kernel": 3},
    {"name": "pool", "op": "global_avg_pool"},
    {"name": "flat", "op": "reshape", "shape": [1, 4]},
    {"name": "logits", "op": "dense", "units": 3},
    {"name": "probs", "op": "softmax"}]}


@pytest.fixture(scope="module")
def original() -> bytes:
    return perfsage.build_model(SPEC, dtype="int8")


@pytest.fixture(scope="module")
def corrupted(original: bytes) -> bytes:
    return bad_name_model(original, "input_image")


def test_model_with_an_ill_formed_name_loads_and_reads_with_replacement(original, corrupted, tmp_path) -> None:
    path = tmp_path / "bad_name.tflite"
    path.write_bytes(corrupted)
    graph = perfsage.load_tflite(path)
    names = [t["name"] for t in graph.tensors(0)]
    assert names[0] == "input\ufffdimage"
    assert names[1:] == [t["name"] for t in perfsage.load_tflite(original).tensors(0)][1:]
    assert str(graph.subgraph(0)["name"]) == "main"
    np.testing.assert_array_equal(graph.node_features, perfsage.load_tflite(original).node_features)


def test_batches_and_predictions_do_not_trip_on_it(original, corrupted, tmp_path) -> None:
    path = tmp_path / "bad_name.tflite"
    path.write_bytes(corrupted)
    graphs = perfsage.load_many([corrupted, path, original], on_error="none")
    assert all(g is not None for g in graphs)
    predictor = perfsage.load_predictor(perfsage.shipped_predictors()[0])
    predictions = predictor.predict(graphs)
    np.testing.assert_array_equal(predictions[0], predictions[2])
    np.testing.assert_array_equal(predictions[1], predictions[2])


def test_an_error_quoting_an_ill_formed_name_is_a_perfsage_error_with_the_file(corrupted, tmp_path) -> None:
    # A negative dimension in the badly named tensor: the reader's message quotes the name.
    shape = struct.pack("<5i", 4, 1, 8, 8, 77)
    assert corrupted.count(shape) == 1
    broken = with_byte(corrupted, corrupted.index(shape) + 16, struct.pack("<i", -77))
    path = tmp_path / "broken.tflite"
    path.write_bytes(broken)
    expected = r"tensor 0 'input\ufffdimage': shape dimension 3 is negative"
    with pytest.raises(perfsage.PerfSageError, match=rf"^{path}: subgraph 0, {expected}"):
        perfsage.load_tflite(path)
    assert perfsage.load_many([broken, corrupted], on_error="none")[0] is None
    with pytest.raises(perfsage.PerfSageError, match=rf"^items\[0\]: subgraph 0, {expected}"):
        perfsage.load_many([broken], on_error="raise")


def test_cli_inspect_prints_the_replaced_name(corrupted, tmp_path, capsys) -> None:
    path = tmp_path / "bad_name.tflite"
    path.write_bytes(corrupted)
    assert main(["inspect", str(path)]) == 0
    assert "5 operators" in capsys.readouterr().out
    assert main(["inspect", "--json", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == str(path) and len(report["nodes"]) == 5


def test_names_decode_as_python_replaces(original) -> None:
    # Random bytes in a name read exactly as Python's own decoder with errors="replace" reads them
    # (one U+FFFD per maximal ill-formed subpart), whatever the bytes are.
    rng = np.random.default_rng(12)
    offset = name_offset(original, "input_image")
    for _ in range(200):
        raw = rng.integers(0x60, 0x100, size=len("input_image"), dtype=np.uint8).tobytes()
        if b"\0" in raw:
            continue
        graph = perfsage.load_tflite(with_byte(original, offset, raw))
        assert graph.tensors(0)[0]["name"] == raw.decode("utf-8", errors="replace"), raw


def test_non_ascii_layer_names_become_the_same_tensor_names() -> None:
    # build_model sends the spec as ASCII JSON, an emoji as a surrogate pair escape: the tensor
    # name must be the UTF-8 of what the user wrote, not encoded surrogates.
    name = "conv_\u00e9_\U0001f600"
    spec = {**SPEC, "layers": [{**SPEC["layers"][0], "name": name}] + SPEC["layers"][1:]}
    graph = perfsage.load_tflite(perfsage.build_model(spec, dtype="float32"))
    assert name in [t["name"] for t in graph.tensors(0)]
    with pytest.raises(perfsage.PerfSageError, match="unpaired surrogate"):
        perfsage.build_model(json.dumps(spec).replace("\\ude00", ""))
