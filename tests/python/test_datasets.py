"""The dataset store: content ids, shards, reading, errors for bad files, compact copies, imports, info."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="datasets need pyarrow (pip install perfsage[label])")
import pyarrow.parquet as pq  # noqa: E402

import perfsage  # noqa: E402
from perfsage.cli import main  # noqa: E402
from perfsage.datasets import (  # noqa: E402
    DatasetError,
    ShardWriter,
    canonical_spec,
    compact_dataset,
    dataset_info,
    expand_dataset,
    import_csv,
    import_nb201,
    model_id,
    open_dataset,
    plan,
    spec_id,
)
from perfsage.spaces.nb201 import live_nodes, parse_arch  # noqa: E402

TARGETS = {"dev": {"metrics": {"latency_ms": "ms", "energy_mj": "mJ"}, "settings": {"tool": "test", "version": 1}}}


def _rows(space: str = "kws", n: int = 4, seed: int = 0, errors: int = 0) -> List[Dict[str, Any]]:
    """Rows as a labelling job writes them, with made-up labels derived from the model size."""
    rows = []
    for i, item in enumerate(plan([space], n, seed)):
        model = perfsage.build_model(item["spec"], seed=item["seed"], dtype=item["dtype"])
        row = {**item, "tflite": perfsage.strip_weights(model), "provenance": json.dumps({"i": i})}
        row["dev/latency_ms"] = len(model) / 1000.0
        row["dev/energy_mj"] = len(model) / 1e6
        if i < errors:
            row.update(error_kind="label", error=f"dev: made-up failure {i}")
        rows.append(row)
    return rows


def _features(graph: perfsage.Graph) -> tuple:
    return graph.node_features.tobytes(), graph.edge_index.tobytes(), tuple(sorted(graph.totals.items()))


# ---------------------------------------------------------------------------------------------
# Content ids


def test_spec_id_ignores_key_order_and_spacing_but_not_seed_or_dtype() -> None:
    item = perfsage.sample("kws", 1, seed=5)[0]
    spec = item["spec"]
    reordered = json.dumps(dict(reversed(list(spec.items()))), indent=2)
    assert spec_id(spec, item["seed"], "int8") == spec_id(reordered, item["seed"], "int8")
    seed = item["seed"]
    ids = {spec_id(spec, seed, "int8"), spec_id(spec, seed + 1, "int8"), spec_id(spec, seed, "float32")}
    assert len(ids) == 3 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    # The canonical text is what rows store; the writer must build the same bytes from it.
    assert perfsage.build_model(canonical_spec(spec), seed=seed) == perfsage.build_model(spec, seed=seed)
    assert model_id(b"abc") != model_id(b"abd")
    with pytest.raises(ValueError, match="not valid JSON"):
        canonical_spec("{nope")


def test_plan_is_deterministic_interleaved_and_prefix_stable() -> None:
    small = plan(["kws", "super_resolution"], 3, seed=1)
    large = plan(["kws", "super_resolution"], 5, seed=1)
    assert [i["space"] for i in small] == ["kws", "super_resolution"] * 3
    assert large[:6] == small  # n only appends: a bigger job resumes a smaller one
    assert len({i["id"] for i in large}) == 10


# ---------------------------------------------------------------------------------------------
# Writing and reading


def test_shards_round_trip_with_labels_units_and_errors(tmp_path: Path) -> None:
    rows = _rows(n=5, errors=1)
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        assert writer.existing() == {}
        writer.write(rows[:2])
        writer.write(rows[2:])
        assert writer.existing() == {r["id"]: r.get("error_kind") for r in rows}
    shards = sorted(p.name for p in (tmp_path / "d").glob("part-*.parquet"))
    assert shards == ["part-000001.parquet", "part-000002.parquet"]
    ds = open_dataset(tmp_path / "d")
    assert ds.num_rows == 5 and ds.ids == [r["id"] for r in rows]
    assert ds.label_columns == ["dev/latency_ms", "dev/energy_mj"]
    assert ds.units == {"dev/latency_ms": "ms", "dev/energy_mj": "mJ"}
    assert ds.metadata["perfsage.feature_schema_version"] == str(perfsage.FEATURE_SCHEMA_VERSION)
    assert list(ds.spaces) == ["kws"] * 5 and ds.ok.tolist() == [False, True, True, True, True]
    y = ds.labels(["dev/energy_mj", "dev/latency_ms"])
    assert y.dtype == np.float64 and y.shape == (5, 2)
    assert np.isnan(y[0]).all()  # the error row
    np.testing.assert_array_equal(y[1:, 1], [r["dev/latency_ms"] for r in rows[1:]])
    np.testing.assert_array_equal(ds.labels("dev"), ds.labels(["dev/latency_ms", "dev/energy_mj"]))
    with pytest.raises(DatasetError, match=r"no label column 'dev/latency_us'; it has dev/latency_ms, dev/energy_mj"):
        ds.labels(["dev/latency_us"])
    assert ds.table().column("tflite").to_pylist() == [r["tflite"] for r in rows]
    subset = ds.select(ds.ok)
    assert subset.ids == ds.ids[1:] and subset.table().column("tflite").to_pylist() == [r["tflite"] for r in rows[1:]]


def test_graphs_come_from_stored_tflite_or_are_rebuilt_from_the_spec(tmp_path: Path) -> None:
    rows = _rows(space="super_resolution", n=3)
    rows[1]["tflite"] = None  # as in a compact copy
    rows[2]["spec"], rows[2]["tflite"] = '{"not": "a spec"}', None  # cannot be rebuilt
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        writer.write(rows)
    graphs = open_dataset(tmp_path / "d").graphs(threads=2)
    expected = perfsage.load_tflite(perfsage.build_model(rows[1]["spec"], seed=rows[1]["seed"]))
    assert _features(graphs[1]) == _features(expected)
    assert _features(graphs[0]) == _features(perfsage.load_tflite(rows[0]["tflite"]))
    assert graphs[2] is None


def test_graphs_of_a_subset_across_shards_are_those_rows_graphs(tmp_path: Path) -> None:
    # graphs() reads the stored models one shard at a time (all of a large dataset's at once took
    # 20 GB): rows picked out of order from several shards, a repeated id whose latest shard wins,
    # and a row rebuilt from its spec must each get their own graph.
    rows = _rows(n=6)
    rows[4]["tflite"] = None
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        writer.write(rows[:2])
        writer.write(rows[2:4])
        writer.write(rows[4:])
        writer.write([rows[1]])
    ds = open_dataset(tmp_path / "d")
    by_id = {r["id"]: r for r in rows}
    pick = [5, 0, 4, 2, 1]
    subset = ds.select(pick)
    graphs = subset.graphs(threads=2)
    for graph, row_id in zip(graphs, subset.ids):
        row = by_id[row_id]
        expected = perfsage.load_tflite(row["tflite"] if row["tflite"] is not None else
                                        perfsage.build_model(row["spec"], seed=row["seed"]))
        assert _features(graph) == _features(expected), row_id
    assert [_features(g) for g in graphs] == [_features(g) for g in (ds.graphs()[i] for i in pick)]


def test_rows_stripped_before_weight_summaries_get_their_weight_statistics_from_the_spec(tmp_path: Path) -> None:
    # Why: datasets labelled before strip_weights kept weight summaries store models whose weight
    # columns read 0; trained on as they are, "0" would mean uniform weights, which no real model
    # shows. A renamed metadata entry makes a file of that age (same length, still valid).
    rows = _rows(space="kws", n=3)
    names = perfsage._core.node_feature_names()
    columns = [names.index("weight_zero_fraction"), names.index("weight_log2_magnitude")]
    current = [perfsage.load_tflite(row["tflite"]).node_features[:, columns] for row in rows]
    for row in rows[:2]:
        row["tflite"] = row["tflite"].replace(b"perfsage.weight_summaries", b"perfsage.weight_summarieX")
    rows[1]["spec"] = None  # nothing to rebuild it from: it keeps what the file says, with a warning
    assert not perfsage.load_tflite(rows[0]["tflite"]).node_features[:, columns].any()
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        writer.write(rows)
    with pytest.warns(UserWarning, match="were stored before perfsage kept weight statistics"):
        graphs = open_dataset(tmp_path / "d").graphs(threads=2)
    spec_path = perfsage.spec_graph(rows[0]["spec"], seed=rows[0]["seed"]).node_features
    np.testing.assert_array_equal(graphs[0].node_features, spec_path)
    np.testing.assert_allclose(graphs[0].node_features[:, columns], current[0], atol=0.6)
    assert not graphs[1].node_features[:, columns].any()
    np.testing.assert_array_equal(graphs[2].node_features[:, columns], current[2])


def test_rows_labelled_from_files_before_weight_summaries_get_them_from_those_files(tmp_path: Path) -> None:
    # Why: real models labelled from files before summaries existed read 0 in both weight columns,
    # and a schema-2 predictor took them for compressible weights (flash bytes predicted at 0.61x
    # of Vela's on the real-model set). The file the row was labelled from restores them; a row
    # whose file is gone or changed is named in a warning.
    import hashlib

    rows = _rows(space="kws", n=3)
    names = perfsage._core.node_feature_names()
    columns = [names.index("weight_zero_fraction"), names.index("weight_log2_magnitude")]
    models = tmp_path / "models"
    models.mkdir()
    for k, row in enumerate(rows):
        full = perfsage.build_model(row["spec"], seed=row["seed"])
        (models / f"m{k}.tflite").write_bytes(full)
        row["provenance"] = json.dumps({"file": f"models/m{k}.tflite", "file_sha256": hashlib.sha256(full).hexdigest()})
        row["tflite"] = row["tflite"].replace(b"perfsage.weight_summaries", b"perfsage.weight_summarieX")
        row["spec"] = None
    (models / "m2.tflite").write_bytes(b"changed since")
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        writer.write(rows)
    with pytest.warns(UserWarning, match=r"1 row\(s\) \(e\.g\. id .*\) were stored before perfsage kept weight"):
        graphs = open_dataset(tmp_path / "d").graphs(threads=2)
    restored = perfsage.load_tflite((models / "m0.tflite").read_bytes()).node_features
    np.testing.assert_array_equal(graphs[0].node_features, restored)
    assert graphs[1].node_features[:, columns].any()
    assert not graphs[2].node_features[:, columns].any()


def test_latest_shard_wins_for_a_repeated_id(tmp_path: Path) -> None:
    # What --retry-errors and an interrupted consolidation leave behind.
    rows = _rows(n=2, errors=2)
    fixed = dict(rows[0], error_kind=None, error=None, provenance='{"retried": true}')
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        writer.write(rows)
        writer.write([fixed])
        assert writer.existing() == {rows[0]["id"]: None, rows[1]["id"]: "label"}
    ds = open_dataset(tmp_path / "d")
    assert sorted(ds.ids) == sorted(r["id"] for r in rows)
    assert ds.provenance[ds.ids.index(rows[0]["id"])] == {"retried": True}


def test_consolidate_merges_shards_into_bounded_groups(tmp_path: Path) -> None:
    rows = _rows(n=6)
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        for row in rows:
            writer.write([row])
        sizes = [p.stat().st_size for p in writer.written]
        # A group closes once it reaches the target: 3 + 3 shards here.
        merged = writer.consolidate(writer.written, target_bytes=sum(sizes[:3]))
    assert [p.name for p in merged] == ["part-000007.parquet", "part-000008.parquet"]
    assert sorted(p.name for p in (tmp_path / "d").glob("part-*.parquet")) == [p.name for p in merged]
    assert [pq.read_metadata(p).num_rows for p in merged] == [3, 3]
    assert open_dataset(tmp_path / "d").ids == [r["id"] for r in rows]


def test_leftover_temporary_shard_is_ignored_then_removed(tmp_path: Path) -> None:
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        writer.write(_rows(n=2))
    shard = tmp_path / "d" / "part-000001.parquet"
    # A job killed in the middle of writing its second shard:
    half = tmp_path / "d" / ".part-000002.parquet.tmp"
    half.write_bytes(shard.read_bytes()[:1000])
    assert open_dataset(tmp_path / "d").num_rows == 2
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        assert not half.exists()
        assert writer.write(_rows(n=3)[2:]).name == "part-000002.parquet"
    assert open_dataset(tmp_path / "d").num_rows == 3


def test_writer_refuses_other_targets_settings_and_a_second_job(tmp_path: Path) -> None:
    path = tmp_path / "d"
    with ShardWriter(path, TARGETS):
        with pytest.raises(DatasetError, match="another perfsage job is writing to this dataset"):
            ShardWriter(path, TARGETS)
    other = {"dev": {**TARGETS["dev"], "settings": {"tool": "test", "version": 2}}}
    with pytest.raises(DatasetError, match=r"target dev was labelled with other settings \(version: 1 -> 2\)"):
        ShardWriter(path, other)
    with pytest.raises(DatasetError, match="labelled on targets dev; this job labels on board"):
        ShardWriter(path, {"board": TARGETS["dev"]})
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="exists and is not a perfsage dataset directory"):
        ShardWriter(tmp_path / "junk", TARGETS)


def test_truncated_parquet_is_a_clear_error(tmp_path: Path) -> None:
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        shard = writer.write(_rows(n=2))
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    message = rf"{shard}: not a readable Parquet file .*truncated, corrupt or not Parquet"
    with pytest.raises(DatasetError, match=message):
        open_dataset(tmp_path / "d")
    single = tmp_path / "single.parquet"
    single.write_bytes(data[:-9])
    with pytest.raises(DatasetError, match="not a readable Parquet file"):
        open_dataset(single)


def test_foreign_parquet_is_a_clear_error(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"model": ["a.tflite"], "latency": [1.0]}), foreign)
    message = (
        r"a Parquet file, but not a perfsage dataset: .*'perfsage.format: perfsage-dataset' "
        r"\(columns: model, latency\)"
    )
    with pytest.raises(DatasetError, match=message):
        open_dataset(foreign)
    with pytest.raises(DatasetError, match="no such dataset file or directory"):
        open_dataset(tmp_path / "missing.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="a directory without perfsage dataset shards"):
        open_dataset(tmp_path / "empty")


def test_newer_format_and_missing_columns_are_clear_errors(tmp_path: Path) -> None:
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        shard = writer.write(_rows(n=1))
    table = pq.read_table(shard)
    meta = dict(table.schema.metadata)
    newer = tmp_path / "newer.parquet"
    pq.write_table(table.replace_schema_metadata({**meta, b"perfsage.format_version": b"99"}), newer)
    with pytest.raises(DatasetError, match="dataset format 99 .*reads format 1 and older"):
        open_dataset(newer)
    broken = tmp_path / "broken.parquet"
    pq.write_table(table.drop_columns(["dev/energy_mj", "error"]), broken)
    with pytest.raises(DatasetError, match="without the column\\(s\\) error, dev/energy_mj"):
        open_dataset(broken)


def test_empty_dataset_directory_reads_as_zero_rows(tmp_path: Path) -> None:
    # A job killed before its first flush leaves the manifest only.
    ShardWriter(tmp_path / "d", TARGETS).close()
    ds = open_dataset(tmp_path / "d")
    assert ds.num_rows == 0 and ds.labels("dev").shape == (0, 2) and ds.graphs() == []


# ---------------------------------------------------------------------------------------------
# Compact copies


def test_compact_copy_rebuilds_to_identical_tflite(tmp_path: Path) -> None:
    rows = _rows(space="kws", n=6, errors=1) + _rows(space="super_resolution", n=4)
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        writer.write(rows[:5])
        writer.write(rows[5:])
    compact = compact_dataset(tmp_path / "d", tmp_path / "c.parquet", level=9)
    ds = open_dataset(compact)
    assert ds.compact and ds.num_rows == 10 and ds.ids == sorted(r["id"] for r in rows)
    assert ds.table().column("tflite").null_count == 10
    full = open_dataset(tmp_path / "d")
    order = [full.ids.index(i) for i in ds.ids]
    np.testing.assert_array_equal(ds.labels("dev"), full.labels("dev")[order])
    assert ds.provenance == [full.provenance[i] for i in order] and ds.errors == [full.errors[i] for i in order]
    expanded, rebuilt = expand_dataset(compact, tmp_path / "e.parquet", threads=2)
    assert rebuilt == 10
    back = open_dataset(expanded)
    assert not back.compact
    stored = {r["id"]: r["tflite"] for r in rows}
    assert back.table().column("tflite").to_pylist() == [stored[i] for i in back.ids]
    # Kept small: no TFLite bytes, zstd; the limit is loose, the measured number is in the report.
    assert compact.stat().st_size / len(rows) < 1500


# ---------------------------------------------------------------------------------------------
# Imports


def _nb201_sample_csv(data_dir: Path, tmp_path: Path, rows: int = 30) -> Path:
    """The first rows of the real latency CSV plus the first cells with no input->output path."""
    with open(data_dir / "nasbench201" / "latency.csv", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        records = list(reader)
    degenerate = [r for r in records if 3 not in live_nodes(parse_arch(r["arch_str"]))][:3]
    chosen = records[:rows] + [r for r in degenerate if r not in records[:rows]]
    out = tmp_path / "latency.csv"
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(chosen)
    return out


def test_import_nb201_builds_float_graphs_and_keeps_degenerate_cells_as_errors(data_dir: Path, tmp_path: Path) -> None:
    path = _nb201_sample_csv(data_dir, tmp_path)
    with open(path, newline="") as f:
        records = list(csv.DictReader(f))
    out = import_nb201(tmp_path / "nb201.parquet", path, threads=2, progress=False)
    ds = open_dataset(out)
    assert ds.num_rows == len(records)
    assert ds.label_columns == [f"nb201-{d}/latency_ms" for d in ("raspi4", "pixel3", "gold_6226", "titan_rtx_1")]
    assert set(ds.units.values()) == {"ms"} and set(ds.dtypes) == {"float32"}
    degenerate = [3 not in live_nodes(parse_arch(r["arch_str"])) for r in records]
    assert sum(degenerate) == 3 and (~ds.ok).tolist() == degenerate
    assert set(k for k in ds.error_kinds if k) == {"build"}
    y = ds.table().column("nb201-pixel3/latency_ms").to_pylist()
    assert y == [float(r["pixel3_ms"]) for r in records]  # stored even on error rows
    assert np.isnan(ds.labels("nb201-pixel3")[np.array(degenerate)]).all()
    graphs = ds.graphs(threads=2)
    assert [g is None for g in graphs] == degenerate
    first = perfsage.load_tflite(perfsage.nb201_model(records[0]["arch_str"], executed=True))
    assert _features(graphs[0]) == _features(first)
    assert ds.names[0] == records[0]["arch_str"]
    pruned = open_dataset(import_nb201(tmp_path / "pruned.parquet", path, threads=2, progress=False, executed=False))
    assert _features(pruned.graphs(threads=2)[0]) == _features(perfsage.load_tflite(
        perfsage.nb201_model(records[0]["arch_str"])))


def test_nb201_executed_network_keeps_every_edge() -> None:
    # Node 1 is dead (only 'none' edges leave it) and the 3 <- 1, 3 <- 2 edges are 'none'.
    arch = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
    pruned = perfsage.load_tflite(perfsage.nb201_model(arch))
    executed = perfsage.load_tflite(perfsage.nb201_model(arch, executed=True))
    assert pruned.op_names.count("SUB") == 0 and executed.op_names.count("SUB") == 15 * 4  # 4 'none' edges per cell
    assert executed.op_names.count("CONV_2D") - pruned.op_names.count("CONV_2D") == 15

    def conv_macs(g):
        return sum(int(m) for m, op in zip(g.node_costs["macs"], g.op_names) if op == "CONV_2D")

    # The dead conv 3x3 of every cell is computed: 5 cells per stage at 32x32x16, 16x16x32, 8x8x64.
    dead_conv_macs = sum(5 * h * h * c * c * 9 for h, c in ((32, 16), (16, 32), (8, 64)))
    assert conv_macs(executed) - conv_macs(pruned) == dead_conv_macs


def test_import_nb201_full_csv_has_341_cells_without_a_network(data_dir: Path) -> None:
    # The importer's error rows come from nb201_spec; the count is the data's (SOURCE.md caveat).
    with open(data_dir / "nasbench201" / "latency.csv", newline="") as f:
        cells = [r["arch_str"] for r in csv.DictReader(f)]
    assert len(cells) == 15625
    assert sum(3 not in live_nodes(parse_arch(c)) for c in cells) == 341


@pytest.mark.slow
def test_import_nb201_full(data_dir: Path, tmp_path: Path) -> None:
    ds = open_dataset(import_nb201(tmp_path / "nb201.parquet", tflite=False, progress=False))
    assert ds.num_rows == 15625 and int((~ds.ok).sum()) == 341 and len(set(ds.ids)) == 15625


def test_import_csv_of_model_files_and_specs(models_dir: Path, tmp_path: Path) -> None:
    models = sorted(models_dir.glob("mlperftiny_*.tflite"))[:2]
    assert len(models) == 2
    table = tmp_path / "measured.csv"
    table.write_text(
        "file,latency_ms,energy_mj\n" + f"{models[0]},1.5,0.2\n" + f"{os.path.relpath(models[1], tmp_path)},2.5,\n"
    )
    ds = open_dataset(import_csv(table, "my-board", {"latency_ms": "ms", "energy_mj": "mJ"}, tmp_path / "m.parquet",
                                 model_column="file", progress=False))
    assert ds.ids == [model_id(m.read_bytes()) for m in models]
    assert ds.units == {"my-board/latency_ms": "ms", "my-board/energy_mj": "mJ"}
    np.testing.assert_array_equal(ds.labels("my-board"), [[1.5, 0.2], [2.5, np.nan]])
    assert ds.specs == [None, None] and ds.names == [m.name for m in models]
    assert list(ds.dtypes) == [str(perfsage.load_tflite(m).tensors(0)[0]["dtype"]) for m in models]
    graphs = ds.graphs()
    assert _features(graphs[1]) == _features(perfsage.load_tflite(models[1]))
    # Compacting keeps the bytes of rows that no spec rebuilds.
    compact = open_dataset(compact_dataset(tmp_path / "m.parquet", tmp_path / "c.parquet", level=3))
    assert compact.table().column("tflite").null_count == 0

    items = perfsage.sample("kws", 2, seed=9)
    spec_csv = tmp_path / "specs.csv"
    with open(spec_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["spec", "seed", "ms"])
        for item in items:
            writer.writerow([json.dumps(item["spec"]), item["seed"], 3.0])
        writer.writerow([json.dumps({"inputs": [], "layers": [], "outputs": []}), 1, 4.0])
    ds = open_dataset(import_csv(spec_csv, "board", {"ms": "ms"}, tmp_path / "s.parquet", spec_column="spec",
                                 seed_column="seed", progress=False))
    assert ds.ids[:2] == [spec_id(i["spec"], i["seed"], "int8") for i in items]
    assert ds.error_kinds == [None, None, "build"] and "cannot build the model" in ds.errors[2]
    assert ds.table().column("tflite").to_pylist()[0] == perfsage.strip_weights(
        perfsage.build_model(items[0]["spec"], seed=items[0]["seed"]))


def test_import_csv_errors_name_the_line_and_column(models_dir: Path, tmp_path: Path) -> None:
    model = sorted(models_dir.glob("*.tflite"))[0]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"file,latency_ms\n{model},1.0\n{model},fast\n")
    with pytest.raises(DatasetError, match=rf"{bad}, line 3, column 'latency_ms': 'fast' is not a number"):
        import_csv(bad, "b", {"latency_ms": "ms"}, tmp_path / "o.parquet", model_column="file", progress=False)
    bad.write_text(f"file,latency_ms\n{model},1.0\n{model},2.0\n")
    with pytest.raises(DatasetError, match="rows 0 and 1 describe the same model"):
        import_csv(bad, "b", {"latency_ms": "ms"}, tmp_path / "o.parquet", model_column="file", progress=False)
    bad.write_text("file,latency_ms\nnowhere.tflite,1.0\n")
    with pytest.raises(DatasetError, match=r"line 2: cannot read model .*nowhere.tflite"):
        import_csv(bad, "b", {"latency_ms": "ms"}, tmp_path / "o.parquet", model_column="file", progress=False)
    with pytest.raises(DatasetError, match=r"no column\(s\) lat \(it has file, latency_ms\)"):
        import_csv(bad, "b", {"lat": "ms"}, tmp_path / "o.parquet", model_column="file", progress=False)
    assert not (tmp_path / "o.parquet").exists()


# ---------------------------------------------------------------------------------------------
# info and the CLI


def test_info_counts_errors_and_label_ranges(tmp_path: Path, capsys) -> None:
    rows = _rows(n=5, errors=2)
    rows[1]["error_kind"] = "timeout"
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        writer.write(rows)
    info = dataset_info(tmp_path / "d")
    assert info["rows"] == 5 and info["rows_ok"] == 3 and info["errors"] == {"label": 1, "timeout": 1}
    latency = info["targets"]["dev"]["metrics"]["latency_ms"]
    ok = [r["dev/latency_ms"] for r in rows[2:]]
    assert latency["unit"] == "ms" and latency["values"] == 3
    assert (latency["min"], latency["max"]) == (min(ok), max(ok))
    assert main(["dataset", "info", str(tmp_path / "d"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(info))
    assert main(["dataset", "info", str(tmp_path / "d")]) == 0
    text = capsys.readouterr().out
    assert "rows: 5 (3 labelled, 2 with errors)" in text and "errors: label 1, timeout 1" in text
    assert "latency_ms [ms]" in text and "spaces: kws 5" in text


def test_info_counts_operator_types_chunk_by_chunk(tmp_path: Path, monkeypatch) -> None:
    # It holds one chunk of graphs at a time (a 100,000-model dataset's all at once is many GB);
    # chunks of 2 rows must count as one pass does: labelled rows only, each model once per type.
    rows = _rows(space="op_zoo", n=7, errors=1)
    with ShardWriter(tmp_path / "d", TARGETS) as writer:
        writer.write(rows)
    expected: Dict[str, int] = {}
    for row in rows[1:]:
        for op in set(perfsage.load_tflite(row["tflite"]).op_names):
            expected[op] = expected.get(op, 0) + 1
    import perfsage.datasets._info as info_module

    monkeypatch.setattr(info_module, "_OPS_CHUNK", 2)
    assert dataset_info(tmp_path / "d", op_types=True)["op_types"] == expected


def test_cli_reports_a_foreign_parquet_file_in_one_line(tmp_path: Path, capsys) -> None:
    foreign = tmp_path / "f.parquet"
    pq.write_table(pa.table({"x": [1]}), foreign)
    assert main(["dataset", "info", str(foreign)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"perfsage: error: {foreign}: a Parquet file, but not a perfsage dataset")
    assert err.count("\n") == 1
