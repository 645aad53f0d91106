"""The Python API of the reader: inputs it accepts, arrays it returns, batch loading."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import numpy as np
import pytest

import perfsage

KWS = "mlperftiny_kws_ref_model.tflite"


@pytest.fixture(scope="module")
def kws_path(models_dir: Path) -> Path:
    return models_dir / KWS


def test_every_input_kind_gives_the_same_graph(kws_path: Path) -> None:
    # Paths (str or PathLike) and bytes-like objects are all the same model.
    data = kws_path.read_bytes()
    graphs = [
        perfsage.load_tflite(str(kws_path)),
        perfsage.load_tflite(kws_path),
        perfsage.load_tflite(data),
        perfsage.load_tflite(bytearray(data)),
        perfsage.load_tflite(memoryview(data)),
        perfsage.load_tflite(np.frombuffer(data, dtype=np.uint8)),
    ]
    for g in graphs[1:]:
        np.testing.assert_array_equal(g.node_features, graphs[0].node_features)
        np.testing.assert_array_equal(g.edge_index, graphs[0].edge_index)
        np.testing.assert_array_equal(g.graph_features, graphs[0].graph_features)
    assert graphs[0].source == str(kws_path)
    assert graphs[2].source == "<bytes>"


def test_array_shapes_dtypes_and_names(kws_path: Path) -> None:
    g = perfsage.load_tflite(kws_path)
    node_names = perfsage.node_feature_names()
    graph_names = perfsage.graph_feature_names()
    assert g.node_features.dtype == np.float32 and g.node_features.flags.c_contiguous
    assert g.node_features.shape == (g.num_nodes, len(node_names))
    assert g.edge_index.dtype == np.int64 and g.edge_index.shape == (2, g.num_edges)
    assert g.graph_features.dtype == np.float32 and g.graph_features.shape == (len(graph_names),)
    assert g.op_types.dtype == np.int32 and g.op_types.shape == (g.num_nodes,)
    assert len(set(node_names)) == len(node_names) and len(set(graph_names)) == len(graph_names)
    assert len(g.op_names) == g.num_nodes
    vocab = perfsage.op_vocabulary()
    assert vocab[3] == "CONV_2D" and vocab[perfsage._core.CUSTOM_OP_TYPE] == "CUSTOM"
    assert [vocab[t] for t in g.op_types] == g.op_names
    assert f"count_{vocab[-1]}" == graph_names[-1]


def test_features_agree_with_exact_costs(kws_path: Path) -> None:
    # The float columns carry the exact int64 costs (they are small enough here to be exact).
    g = perfsage.load_tflite(kws_path)
    col = {n: i for i, n in enumerate(perfsage.node_feature_names())}
    gcol = {n: i for i, n in enumerate(perfsage.graph_feature_names())}
    for name, values in g.node_costs.items():
        np.testing.assert_array_equal(g.node_features[:, col[name]], values.astype(np.float32))
    assert g.totals["macs"] == int(g.node_costs["macs"].sum())
    assert g.graph_features[gcol["total_macs"]] == np.float32(g.totals["macs"])
    assert g.graph_features[gcol["count_CONV_2D"]] == g.op_names.count("CONV_2D")
    assert g.graph_features[gcol["num_nodes"]] == g.num_nodes


def test_arrays_are_read_only_views_that_outlive_the_graph(kws_path: Path) -> None:
    g = perfsage.load_tflite(kws_path)
    features, edges = g.node_features, g.edge_index
    expected = features.copy()
    with pytest.raises(ValueError):
        features[0, 0] = 1.0
    del g
    gc.collect()
    perfsage.load_tflite(kws_path)  # reuse freed memory, if it had been freed
    np.testing.assert_array_equal(features, expected)
    assert edges.shape[0] == 2


def test_edges_point_forward_and_stay_in_range(real_models) -> None:
    for path in real_models:
        g = perfsage.load_tflite(path)
        src, dst = g.edge_index
        assert (src < dst).all(), path.name
        assert (dst < g.num_nodes).all() and (src >= 0).all(), path.name


def test_features_are_deterministic(real_models) -> None:
    for path in real_models:
        a, b = perfsage.load_tflite(path), perfsage.load_tflite(path.read_bytes())
        assert a.node_features.tobytes() == b.node_features.tobytes(), path.name
        assert a.graph_features.tobytes() == b.graph_features.tobytes(), path.name


@pytest.mark.parametrize("threads", [0, 1, 2, 5])
def test_load_many_matches_one_by_one(real_models, threads: int) -> None:
    items = [p if i % 2 else p.read_bytes() for i, p in enumerate(real_models * 3)]
    graphs = perfsage.load_many(items, threads=threads)
    assert len(graphs) == len(items)
    for item, g in zip(items, graphs):
        single = perfsage.load_tflite(item)
        np.testing.assert_array_equal(g.node_features, single.node_features)
        np.testing.assert_array_equal(g.edge_index, single.edge_index)


def test_load_many_errors(real_models, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(real_models[0].read_bytes()[:100])
    items = [real_models[0], bad, real_models[1], tmp_path / "missing.tflite"]
    with pytest.raises(perfsage.PerfSageError, match=r"bad\.tflite: .*\(and 1 more failed\)"):
        perfsage.load_many(items)
    graphs = perfsage.load_many(items, on_error="none")
    assert [g is None for g in graphs] == [False, True, False, True]
    with pytest.raises(ValueError, match="on_error"):
        perfsage.load_many(items, on_error="ignore")
    with pytest.raises(ValueError, match="threads"):
        perfsage.load_many(items, threads=-1)
    with pytest.raises(TypeError, match=r"items\[1\]: expected a path or bytes, got int"):
        perfsage.load_many([real_models[0], 7])
    assert perfsage.load_many([]) == []


def test_concurrent_python_threads_get_identical_graphs(real_models) -> None:
    # Loading releases the GIL; several Python threads at once must not disturb each other.
    expected = [perfsage.load_tflite(p).node_features.copy() for p in real_models]
    failures = []

    def work() -> None:
        for _ in range(5):
            for p, e in zip(real_models, perfsage.load_many(real_models, threads=2)):
                if not np.array_equal(e.node_features, expected[real_models.index(p)]):
                    failures.append(p.name)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_tensor_and_operator_details(kws_path: Path) -> None:
    g = perfsage.load_tflite(kws_path)
    tensors, ops = g.tensors(), g.operators()
    assert len(ops) == g.num_nodes
    conv = ops[0]
    assert conv["name"] == "CONV_2D" and conv["options"]["stride"] == (2, 2)
    weights = tensors[conv["inputs"][1]]
    assert weights["is_constant"] and weights["dtype"] == "int8"
    assert len(weights["quantization"]["scale"]) == weights["shape"][0]  # per output channel
    sg = g.subgraph(0)
    assert sg["num_operators"] == g.num_nodes and len(sg["inputs"]) == 1
    with pytest.raises(IndexError, match="subgraph 3 out of range"):
        g.tensors(3)
