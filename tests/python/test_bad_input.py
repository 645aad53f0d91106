"""Bad input gets a PerfSageError naming the file and the problem: never a crash or garbage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import perfsage


def test_error_is_a_value_error() -> None:
    assert issubclass(perfsage.PerfSageError, ValueError)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"TFL3", "too short"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "no 'TFL3' file identifier"),
        (b"\x10\x00\x00\x00TFL3" + bytes(8), "verification failed"),
    ],
)
def test_bad_files_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    with pytest.raises(perfsage.PerfSageError, match=rf"^{path}: .*{message}"):
        perfsage.load_tflite(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(perfsage.PerfSageError, match=r"missing\.tflite: cannot open: No such file"):
        perfsage.load_tflite(tmp_path / "missing.tflite")
    with pytest.raises(perfsage.PerfSageError, match="is a directory"):
        perfsage.load_tflite(tmp_path)


def test_wrong_python_types() -> None:
    with pytest.raises(TypeError, match="expected a path or bytes, got int"):
        perfsage.load_tflite(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="contiguous 1-D bytes"):
        perfsage._core.load_bytes(np.zeros((4, 4), dtype=np.float32))


def test_truncated_real_model_names_the_problem(models_dir: Path, tmp_path: Path) -> None:
    data = (models_dir / "mlperftiny_vww_96_int8.tflite").read_bytes()
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(perfsage.PerfSageError, match=r"cut\.tflite: flatbuffer verification failed"):
        perfsage.load_tflite(path)


def test_thousands_of_mutations_give_errors_or_valid_graphs(real_models) -> None:
    # Truncations at many offsets and random byte flips of every real model; each must load into a
    # consistent graph or fail with a PerfSageError naming the item.
    rng = np.random.default_rng(7)
    items, labels = [], []
    for path in real_models:
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        for n in np.unique(np.linspace(0, len(data) - 1, 120).astype(int)):
            items.append(data[:n].tobytes())
            labels.append(f"{path.name} truncated to {n}")
        for trial in range(200):
            mutated = data.copy()
            positions = rng.integers(0, len(data), size=rng.integers(1, 5))
            mutated[positions] = rng.integers(0, 256, size=len(positions))
            items.append(mutated.tobytes())
            labels.append(f"{path.name} flip {trial}")
    assert len(items) > 4000
    results = perfsage._core.load_many(items, 0)
    errors = 0
    for i, ((graph, error), label) in enumerate(zip(results, labels)):
        if graph is None:
            assert error.startswith(f"items[{i}]: "), (label, error)
            errors += 1
            continue
        assert graph.num_nodes > 0, label
        assert graph.node_features.shape == (graph.num_nodes, len(perfsage.node_feature_names()))
        assert not np.isnan(graph.node_features).any(), label
        src, dst = graph.edge_index
        assert (src < dst).all() and (dst < graph.num_nodes).all(), label
    assert errors > 1000 and len(items) - errors > 500
