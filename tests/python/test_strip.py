"""strip_weights: weight-free copies that perfsage reads to exactly the same features."""

from __future__ import annotations

import numpy as np
import pytest

import perfsage
from writer_specs import ALL


def assert_same_graph(a: perfsage.Graph, b: perfsage.Graph) -> None:
    assert a.node_features.tobytes() == b.node_features.tobytes()
    assert a.graph_features.tobytes() == b.graph_features.tobytes()
    np.testing.assert_array_equal(a.edge_index, b.edge_index)
    assert a.totals == b.totals


def test_real_models_keep_their_features(real_models) -> None:
    for path in real_models:
        full = path.read_bytes()
        stripped = perfsage.strip_weights(full)
        assert_same_graph(perfsage.load_tflite(full), perfsage.load_tflite(stripped))
        assert len(stripped) < len(full), path.name
        assert perfsage.strip_weights(stripped) == stripped  # idempotent


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_generated_models_shrink_to_kilobytes(dtype: str) -> None:
    for name, spec in ALL.items():
        full = perfsage.build_model(spec, dtype=dtype)
        stripped = perfsage.strip_weights(full)
        assert_same_graph(perfsage.load_tflite(full), perfsage.load_tflite(stripped))
        constants = [t for t in perfsage.load_tflite(stripped).tensors() if t["is_constant"]]
        assert constants and all(t["data_bytes"] == 0 for t in constants), name
        assert len(stripped) < 40_000, (name, len(stripped))


def test_metadata_and_signatures_survive(models_dir) -> None:
    tflite = pytest.importorskip("tflite")
    stripped = perfsage.strip_weights((models_dir / "mlperftiny_kws_ref_model.tflite").read_bytes())
    model = tflite.Model.GetRootAsModel(stripped, 0)
    names = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    assert model.Buffers(names["min_runtime_version"]).DataLength() > 0
    assert "perfsage.stripped_buffers" in names


def test_bad_input_is_an_error() -> None:
    with pytest.raises(perfsage.PerfSageError, match="not a TFLite model"):
        perfsage.strip_weights(b"\x00" * 64)


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_model_without_constants_strips_to_a_readable_model(dtype: str) -> None:
    spec = {"inputs": [{"name": "x", "shape": [1, 4, 4, 3]}], "layers": [
        {"name": "r", "op": "relu"}, {"name": "t", "op": "tanh"}]}
    full = perfsage.build_model(spec, dtype=dtype)
    stripped = perfsage.strip_weights(full)
    assert_same_graph(perfsage.load_tflite(full), perfsage.load_tflite(stripped))
    assert perfsage.strip_weights(stripped) == stripped
