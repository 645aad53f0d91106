"""Per-operator Vela labels: Vela's debug database summed per TFLite operator.

The sums are checked against Vela's summary inside ``label_operators`` itself; these tests make
sure that check runs and holds on every search space and on a real model, that operators land
where they belong (lowered operators, removed ones, CPU ones), that the three ways of running Vela
agree, and that a malformed database is refused by name.
"""

from __future__ import annotations

import numpy as np
import pytest

import perfsage
from perfsage.cli import main as cli_main
from perfsage.datasets import DatasetError, compact_dataset, dataset_info, format_info, open_dataset
from perfsage.examples import example_model
from perfsage.labelers import LabelError, get_labeler
from perfsage.labelers.vela_layers import (
    LAYER_METRICS,
    DebugDatabaseError,
    check_totals,
    operator_costs,
    read_tables,
)

SPACES = ["kws", "image_classification", "super_resolution", "detection", "autoencoder", "transformer"]


@pytest.fixture(scope="module")
def labeler():
    pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install 'perfsage[label]')")
    labeler = get_labeler("ethos-u55-256")
    yield labeler
    labeler.close()


def _smallest(space: str) -> bytes:
    items = perfsage.sample(space, 6, seed=2)
    return min((perfsage.build_model(it["spec"], seed=it["seed"], dtype="int8") for it in items), key=len)


@pytest.mark.parametrize("space", SPACES)
def test_operator_costs_add_up_to_the_model(labeler, space):
    # Why: per-operator labels are only usable for training if they sum to the graph label.
    model = _smallest(space)
    labels, costs = labeler.label_operators(model)
    graph = perfsage.load_tflite(model)
    assert labels == labeler.label(model), "asking for the debug database changed Vela's summary"
    assert set(LAYER_METRICS) | {"latency_ms", "energy_mj"} == set(costs.values)
    for values in costs.values.values():
        assert values.shape == (graph.num_nodes,) and np.all(values >= 0)
    assert costs.total("cycles") == labels["total_cycles"]
    assert costs.total("macs") == labels["macs"]
    np.testing.assert_allclose(costs.values["latency_ms"].sum(), labels["latency_ms"], rtol=1e-12)
    np.testing.assert_allclose(costs.values["energy_mj"].sum(), labels["energy_mj"], rtol=1e-12)
    assert len(costs.placement) == graph.num_nodes
    # Operators with cycles are on the NPU; what Vela removed costs nothing.
    for i, place in enumerate(costs.placement):
        if costs.values["cycles"][i] > 0:
            assert place == "npu", (i, graph.op_names[i])
        if place == "none":
            assert costs.values["cycles"][i] == 0


def test_lowered_and_removed_operators(labeler):
    # Why: SOFTMAX becomes ~30 Vela operations and RESHAPE none; both must land on the right operator.
    model = example_model()
    graph = perfsage.load_tflite(model)
    labels, costs = labeler.label_operators(model)
    assert costs.rows > graph.num_nodes
    ops = graph.op_names
    assert costs.placement[ops.index("RESHAPE")] == "none"
    assert costs.values["cycles"][ops.index("SOFTMAX")] > 0
    conv = [i for i, name in enumerate(ops) if name == "CONV_2D"]
    assert costs.values["macs"][conv[0]] == graph.node_costs["macs"][conv[0]]
    assert costs.unattributed["cycles"] == 0


def test_shared_kws_model(labeler, models_dir):
    # Why: the reference case, a model no perfsage code wrote.
    model = (models_dir / "mlperftiny_kws_ref_model.tflite").read_bytes()
    labels, costs = labeler.label_operators(model)
    assert costs.total("cycles") == labels["total_cycles"] > 0
    assert all(place in ("npu", "none") for place in costs.placement)


def test_float_model_is_all_cpu(labeler):
    # Why: Vela leaves float operators to the CPU; they must be marked, at zero NPU cost.
    labels, costs = labeler.label_operators(example_model("float32"))
    assert set(costs.placement) == {"cpu"}
    assert costs.total("cycles") == labels["total_cycles"] == 0


def test_isolations_agree(labeler):
    # Why: the debug database is a file, so every way of running Vela must give the same costs.
    model = _smallest("kws")
    _, reference = labeler.label_operators(model)
    for isolation in ("none", "subprocess"):
        other = get_labeler("ethos-u55-256", isolation=isolation)
        try:
            _, costs = other.label_operators(model)
        finally:
            other.close()
        assert costs.placement == reference.placement
        for metric, values in reference.values.items():
            np.testing.assert_array_equal(costs.values[metric], values, err_msg=f"{isolation}: {metric}")


def _database(perf_rows, source_rows, perf_debug_rows=()):
    def table(name, rows):
        if not rows:
            return f'<table name="{name}">\n<![CDATA[\n]]>\n</table>\n'
        header = list(rows[0])
        body = "\n".join(",".join(str(r[h]) for h in header) for r in rows)
        return f'<table name="{name}">\n<![CDATA[\n{",".join(header)}\n{body}\n]]>\n</table>\n'
    return ("<?xml version='1.0' encoding='UTF-8'?>\n<debug source=\"x\">\n" + table("perf", perf_rows)
            + table("source", source_rows) + table("perf_debug", list(perf_debug_rows)) + "</debug>\n")


def _perf(id_, source, op="Conv2D", cycles=10, macs=5):
    return {"id": id_, "source_id": source, "optimised_id": 0, "operator": op, "name": f"t{id_}",
            "staging_usage": 0, "op_cycles": cycles, "npu_cycles": cycles, "mac_count": macs, "Sram_ac": 1}


def test_attribution_rules_on_a_synthetic_database():
    # Why: pins the rules (sums per operator, unattributed rows, placements) independently of Vela.
    perf = [_perf(10, 1), _perf(11, 1, "Relu", 0, 0), _perf(12, 3, "Passthrough", 0, 0), _perf(13, -1, cycles=7),
            _perf(14, 2, cycles=3)]
    source = [{"id": 1, "operator": "Conv2D", "ext_key": 0}, {"id": 2, "operator": "Add", "ext_key": 2},
              {"id": 3, "operator": "Gather", "ext_key": 3}]
    traffic = [{"id": 10, "SramFeatureMap_read": 100, "SramFeatureMap_write": 50, "SramFeatureMap_ac": 9,
                "OffChipFlashWeights_read": 20}]
    costs = operator_costs(read_tables(_database(perf, source, traffic)), 5)
    assert costs.values["cycles"].tolist() == [10, 0, 3, 0, 0]
    assert costs.values["sram_bytes"].tolist() == [150, 0, 0, 0, 0]  # "_ac" columns are cycles, not bytes
    assert costs.values["offchip_flash_bytes"].tolist() == [20, 0, 0, 0, 0]
    assert costs.placement == ["npu", "none", "npu", "cpu", "none"]
    assert costs.unattributed["cycles"] == 7 and costs.total("cycles") == 20
    check_totals(costs, {"cycles": 20, "macs": 15}, "synthetic")
    with pytest.raises(DebugDatabaseError, match="synthetic: the operators' cycles sum to 20"):
        check_totals(costs, {"cycles": 21}, "synthetic")


@pytest.mark.parametrize("text, match", [
    ("<debug><table", "not readable XML"),
    ("<debug></debug>", "no 'perf' table"),
])
def test_malformed_database_is_refused(text, match):
    # Why: a Vela version with other outputs must fail loudly, never mislabel.
    with pytest.raises(DebugDatabaseError, match=match):
        read_tables(text)


def test_out_of_range_operator_and_bad_number_are_named():
    # Why: a database from another model (or a corrupt one) must not be summed silently.
    source = [{"id": 1, "operator": "Conv2D", "ext_key": 9}]
    with pytest.raises(DebugDatabaseError, match="operator 9, but the model has 2 operators"):
        operator_costs(read_tables(_database([_perf(10, 1)], source)), 2)
    bad = _perf(10, 1)
    bad["op_cycles"] = "lots"
    with pytest.raises(DebugDatabaseError, match="column 'op_cycles': 'lots' is not a number"):
        operator_costs(read_tables(_database([bad], [{"id": 1, "operator": "Conv2D", "ext_key": 0}])), 2)


def test_dataset_stores_per_operator_labels(labeler, tmp_path):
    # Why: the per-operator labels are only worth having if a dataset keeps them, row by row,
    # aligned with each row's graph, through compaction and the command line.
    out = tmp_path / "ops.parquet"
    code = cli_main(["dataset", "build", "--space", "kws", "--space", "op_zoo", "--n", "3", "--target", "ethos-u55-256",
                     "--target", "ethos-u65-512", "--per-operator", "--workers", "1", "--out", str(out),
                     "--no-progress"])
    assert code == 0
    for path in (out, compact_dataset(out, tmp_path / "compact.parquet")):
        dataset = open_dataset(path)
        assert dataset.targets["ethos-u55-256"]["node_metrics"]["cycles"] == "cycles"
        graphs = dataset.graphs()
        for target in ("ethos-u55-256", "ethos-u65-512"):
            cycles = dataset.node_labels(target, "cycles")
            placement = dataset.node_labels(target, "placement")
            totals = dataset.labels(f"{target}/total_cycles")[:, 0]
            for graph, per_op, where, total in zip(graphs, cycles, placement, totals):
                assert per_op.shape == (graph.num_nodes,) == where.shape
                np.testing.assert_allclose(per_op.sum(dtype=np.float64), total, rtol=1e-6)
                assert set(where.tolist()) <= {0.0, 1.0, 2.0}
    info = dataset_info(out)
    assert info["targets"]["ethos-u55-256"]["per_operator"]["rows"] == 6
    assert "per-operator labels: 6 of 6 labelled rows" in format_info(info)
    counted = dataset_info(out, op_types=True)["op_types"]
    assert counted["CONV_2D"] >= 3 and counted["SOFTMAX"] >= 3  # every KWS model has both
    assert max(counted.values()) <= 6
    with pytest.raises(DatasetError, match="no per-operator labels 'ethos-u55-256/ops/nothing'"):
        dataset.node_labels("ethos-u55-256", "nothing")


def test_per_operator_needs_a_target_that_gives_them(tmp_path, capsys):
    # Why: host-cpu cannot price operators; asking for it must say so, not fail inside a worker.
    code = cli_main(["dataset", "build", "--space", "kws", "--n", "1", "--target", "host-cpu", "--per-operator",
                     "--out", str(tmp_path / "x.parquet"), "--no-progress"])
    assert code != 0
    assert "--per-operator: host-cpu gives no per-operator labels" in capsys.readouterr().err
