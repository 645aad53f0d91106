"""Labellers: Vela (Ethos-U) and LiteRT (host CPU) labels on small int8 KWS and image models.

Fast on purpose: the models are the smallest of seeded KWS and image-classification samples, so a
Vela compile takes ~10 ms in the helper process and a host-cpu label well under a second.
"""

from __future__ import annotations

import copy
import json
import math
import pickle

import pytest

import perfsage
from perfsage.labelers import LabelError, get_labeler, labeler_names
from perfsage.labelers.energy import ENERGY_CONSTANTS, energy_table, ethos_u_energy_mj
from perfsage.labelers.vela import recorded_limits

VELA_TARGETS = ["ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512"]


@pytest.fixture(scope="module")
def needs_vela():
    pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install 'perfsage[label]')")


@pytest.fixture(scope="module")
def needs_litert():
    pytest.importorskip("ai_edge_litert.interpreter",
                        reason="ai-edge-litert is not installed (pip install 'perfsage[label]')")


def _smallest(space: str, n: int, count: int, dtype: str = "int8"):
    items = perfsage.sample(space, n, seed=0)
    built = [(perfsage.build_model(it["spec"], seed=it["seed"], dtype=dtype), it) for it in items]
    built.sort(key=lambda pair: len(pair[0]))
    return built[:count]


@pytest.fixture(scope="module")
def kws_models():
    return [model for model, _ in _smallest("kws", 12, 3)]


@pytest.fixture(scope="module")
def image_model():
    return _smallest("image_classification", 12, 1)[0][0]


@pytest.fixture(scope="module")
def small_models(kws_models, image_model):
    return kws_models + [image_model]


@pytest.fixture(scope="module")
def vela_labelers(needs_vela):
    labelers = {name: get_labeler(name) for name in VELA_TARGETS}
    yield labelers
    for labeler in labelers.values():
        labeler.close()


@pytest.fixture(scope="module")
def host_cpu(needs_litert):
    labeler = get_labeler("host-cpu", budget_s=0.2)
    yield labeler
    labeler.close()


def test_names_and_unknown_name():
    assert labeler_names() == VELA_TARGETS + ["host-cpu"]
    with pytest.raises(ValueError, match="unknown labeller 'ethos-u99'.*ethos-u55-256"):
        get_labeler("ethos-u99")


@pytest.mark.parametrize("name", VELA_TARGETS)
def test_every_vela_config_labels(vela_labelers, small_models, name):
    labeler = vela_labelers[name]
    core_clock_hz = labeler.settings()["core_clock_hz"]
    for model in small_models:
        labels = labeler.label(model)
        assert set(labels) == set(labeler.metrics)
        assert all(math.isfinite(v) and v >= 0 for v in labels.values()), labels
        for metric in ("latency_ms", "total_cycles", "npu_cycles", "npu_ops", "macs",
                       "peak_sram_bytes", "sram_total_bytes", "energy_mj"):
            assert labels[metric] > 0, (name, metric, labels)
        # Vela's inference time is its total cycles at the configured clock.
        assert labels["latency_ms"] == pytest.approx(labels["total_cycles"] / core_clock_hz * 1e3, rel=1e-6)
        for area in ("sram", "dram", "offchip_flash"):
            assert labels[f"{area}_read_bytes"] + labels[f"{area}_write_bytes"] <= labels[f"{area}_total_bytes"]
        # The MACs Vela counts are the model's MACs (perfsage's reader counts a few extra, e.g.
        # in pooling, so allow 1%).
        assert labels["macs"] == pytest.approx(perfsage.load_tflite(model).totals["macs"], rel=0.01)
    if name.startswith("ethos-u55"):  # Shared_Sram: weights in off-chip flash, no DRAM
        assert labels["offchip_flash_bytes"] > 0 and labels["peak_dram_bytes"] == 0
    else:  # Dedicated_Sram_384KB: arena in DRAM, SRAM a cache of at most 384 KB
        assert labels["dram_total_bytes"] > 0 and labels["peak_sram_bytes"] <= 384 * 1024


def test_vela_labels_agree_with_its_summary_csv(vela_labelers, kws_models):
    labeler = vela_labelers["ethos-u55-256"]
    for model in kws_models:
        summary = labeler.summary(model)
        labels = labeler.label(model)
        assert summary.csv_name == "model_summary_Ethos_U55_High_End_Embedded.csv"
        assert labels["latency_ms"] == float(summary.csv_row["inference_time"]) * 1000  # CSV: seconds
        assert labels["peak_sram_bytes"] == float(summary.csv_row["sram_memory_used"]) * 1024  # KiB
        # Operator counts come from stdout; the CSV's pass count is their sum.
        assert labels["npu_ops"] + labels["cpu_ops"] == int(summary.csv_row["passes_before_fusing"])
        assert f"NPU operators = {int(labels['npu_ops'])} " in summary.stdout
        assert summary.csv_row["accelerator_configuration"] == "Ethos_U55_256"
        assert summary.csv_row["memory_mode"] == "Shared_Sram"


def test_bigger_npu_is_not_slower(vela_labelers, small_models):
    for model in small_models:
        slow = vela_labelers["ethos-u55-128"].label(model)["latency_ms"]
        fast = vela_labelers["ethos-u65-512"].label(model)["latency_ms"]
        assert fast <= slow, (fast, slow)


def test_energy_grows_with_macs_on_a_model_family(vela_labelers):
    base = perfsage.sample("kws", 1, seed=3)[0]
    macs, energy = [], []
    for scale in (1, 2, 3):
        spec = copy.deepcopy(base["spec"])
        for layer in spec["layers"]:  # widen every conv, and the flatten that follows them
            if "filters" in layer:
                layer["filters"] *= scale
            if layer["op"] == "reshape":
                layer["shape"][-1] *= scale
        labels = vela_labelers["ethos-u55-256"].label(perfsage.build_model(spec, seed=base["seed"]))
        macs.append(labels["macs"])
        energy.append(labels["energy_mj"])
    assert macs == sorted(macs) and len(set(macs)) == 3
    assert energy == sorted(energy) and len(set(energy)) == 3


def test_energy_model_arithmetic_and_table():
    mac, sram, flash = (ENERGY_CONSTANTS[k].value for k in ("int8_mac", "sram", "offchip_flash"))
    got = ethos_u_energy_mj(1e6, {"sram": 1000.0, "dram": 0.0, "off_chip_flash": 10.0}, 2.0, static_power_mw=5.0)
    assert got == pytest.approx((1e6 * mac + 1000 * sram + 10 * flash) * 1e-9 + 5.0 * 2.0 * 1e-3)
    with pytest.raises(ValueError, match="no energy constant for memory area 'on_chip_flash'"):
        ethos_u_energy_mj(1.0, {"on_chip_flash": 64.0}, 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        ethos_u_energy_mj(-1.0, {}, 1.0)
    rows = energy_table()
    assert {r["name"] for r in rows} == {"int8_mac", "sram", "dram", "offchip_flash", "static_power"}
    assert all(r["unit"] and len(r["source"]) > 20 for r in rows)
    json.dumps(rows)


def test_static_power_adds_power_times_latency(needs_vela, kws_models):
    with get_labeler("ethos-u55-256") as plain, get_labeler("ethos-u55-256", static_power_mw=10.0) as powered:
        a, b = plain.label(kws_models[0]), powered.label(kws_models[0])
    assert b["energy_mj"] - a["energy_mj"] == pytest.approx(10.0 * a["latency_ms"] * 1e-3)


def test_vela_has_no_state_between_calls(needs_vela, kws_models, image_model):
    """Same model twice, and configs interleaved, in one process: identical labels."""
    first = {}
    with get_labeler("ethos-u55-128", isolation="none") as u55, get_labeler("ethos-u65-512", isolation="none") as u65:
        for model in (kws_models[0], image_model):
            first[(0, model)] = u55.label(model)
            first[(1, model)] = u65.label(model)
        for model in (image_model, kws_models[0]):
            assert u65.label(model) == first[(1, model)]
            assert u55.label(model) == first[(0, model)]


def test_isolation_modes_give_identical_labels(needs_vela, kws_models):
    model = kws_models[1]
    results = {}
    for isolation in ("none", "worker", "subprocess"):
        with get_labeler("ethos-u65-256", isolation=isolation) as labeler:
            results[isolation] = labeler.label(model)
    assert results["none"] == results["worker"] == results["subprocess"]


def test_model_without_npu_ops_still_labelled(vela_labelers):
    item = perfsage.sample("kws", 1, seed=0)[0]
    float_model = perfsage.build_model(item["spec"], seed=item["seed"], dtype="float32")
    labels = vela_labelers["ethos-u55-256"].label(float_model)
    assert labels["npu_ops"] == 0 and labels["cpu_ops"] > 0
    assert labels["latency_ms"] == 0 and labels["energy_mj"] == 0


def test_corrupted_model_raises_label_error(vela_labelers, host_cpu, kws_models):
    truncated = kws_models[0][: len(kws_models[0]) // 2]
    for labeler in (vela_labelers["ethos-u55-256"], host_cpu):
        with pytest.raises(LabelError, match=r"not a valid TFLite flatbuffer \(\d+ bytes\): .*(truncated|corrupt)"):
            labeler.label(truncated)
        with pytest.raises(LabelError, match="not a TFLite model"):
            labeler.label(b"definitely not a model" * 4)
        with pytest.raises(TypeError, match="model must be TFLite bytes"):
            labeler.label("model.tflite")


def test_tool_failures_carry_the_tools_message(vela_labelers, host_cpu, kws_models):
    """A valid TFLite file without weights: both tools refuse it, and say why."""
    stripped = perfsage.strip_weights(kws_models[0])
    with pytest.raises(LabelError, match=r"(?s)Vela \(ethos-u55-256\) produced no summary CSV.*output ends with:\n.*buffer"):
        vela_labelers["ethos-u55-256"].label(stripped)
    with pytest.raises(LabelError, match=r"^LiteRT failed: \w+Error: .+"):
        host_cpu.label(stripped)
    assert host_cpu.label(kws_models[0])["latency_ms"] > 0


def test_vela_crash_is_contained(vela_labelers, kws_models):
    """Unverified garbage reaches Vela's C++ core (which segfaults on it): the helper process
    absorbs the crash, the label fails with Vela's story, and the next label works."""
    labeler = vela_labelers["ethos-u55-256"]
    truncated = kws_models[0][: len(kws_models[0]) // 2]
    with pytest.raises(LabelError, match=r"Vela \(ethos-u55-256\) produced no summary CSV"):
        labeler.summary(truncated, verify=False)
    assert labeler.label(kws_models[0])["npu_ops"] > 0


def test_vela_rejects_unknown_config_names(needs_vela):
    with pytest.raises(ValueError, match=r"no \[System_Config.Nope\]; it defines: .*Ethos_U55_High_End_Embedded"):
        get_labeler("ethos-u55-256", system_config="Nope")
    with pytest.raises(ValueError, match="isolation 'threads' is not one of"):
        get_labeler("ethos-u55-256", isolation="threads")


def test_vela_settings_record_provenance(vela_labelers):
    settings = vela_labelers["ethos-u65-512"].settings()
    json.dumps(settings)
    assert settings["tool"] == "ethos-u-vela" and settings["tool_version"]
    assert settings["system_config"] == "Ethos_U65_High_End"
    assert settings["memory_mode"] == "Dedicated_Sram_384KB"
    assert settings["core_clock_hz"] == 1e9
    assert "--accelerator-config" in settings["vela_args"] and "ethos-u65-512" in settings["vela_args"]


def test_vela_settings_give_the_dedicated_srams_size_as_the_peak_sram_limit(vela_labelers):
    # Dedicated_Sram_384KB inherits from Dedicated_Sram and sets arena_cache_size=393216: Vela keeps
    # the arena in DRAM with the SRAM as a cache of that size, so peak SRAM cannot exceed it. In
    # Shared_Sram the arena lives in the SRAM: no limit. --arena-cache-size overrides the mode's.
    assert recorded_limits(vela_labelers["ethos-u65-512"].settings()) == {"peak_sram_bytes": 393216.0}
    assert recorded_limits(vela_labelers["ethos-u55-256"].settings()) == {}
    assert recorded_limits(get_labeler("ethos-u65-256", arena_cache_size=200_000).settings()) == {
        "peak_sram_bytes": 200_000.0}
    assert recorded_limits({"tool": "host-cpu"}) == {}
    other = dict(vela_labelers["ethos-u65-512"].settings(), config_sha256="0" * 64)
    with pytest.raises(ValueError, match="is not the one these labels were made with"):
        recorded_limits(other)


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_host_cpu_latency_and_memory(host_cpu, dtype):
    item = perfsage.sample("kws", 1, seed=0)[0]
    labels = host_cpu.label(perfsage.build_model(item["spec"], seed=item["seed"], dtype=dtype))
    assert set(labels) == set(host_cpu.metrics)
    assert 0 < labels["latency_ms"] < 1000
    assert 0 <= labels["latency_spread"] < 1
    # One thread computes on the caller's thread: its CPU time cannot exceed the wall time by
    # more than clock-read jitter.
    assert 0 < labels["cpu_time_ms"] <= labels["latency_ms"] * 1.05 + 0.005
    assert labels["load_avg_1min"] >= 0
    assert labels["repeats"] >= 3
    if "xnnpack_partitions" in host_cpu.metrics:  # LiteRT 2.3.0 reports it
        assert labels["xnnpack_partitions"] >= 1  # XNNPACK took (part of) the model
    # The forked process holds the runtime (tens of MB) plus what the interpreter added.
    assert 10e6 < labels["peak_rss_bytes"] < 2e9
    assert 0 < labels["model_rss_bytes"] < labels["peak_rss_bytes"]


def test_host_cpu_bigger_model_uses_more_memory(host_cpu, kws_models, image_model):
    small = host_cpu.label(kws_models[0])
    big = host_cpu.label(image_model)
    assert len(image_model) > 2 * len(kws_models[0])
    assert big["model_rss_bytes"] > small["model_rss_bytes"]


def test_host_cpu_settings_and_options(host_cpu):
    settings = host_cpu.settings()
    json.dumps(settings)
    assert settings["threads"] == 1 and settings["tool"] == "ai-edge-litert"
    assert settings["repeat_rule"]["budget_s"] == 0.2 and settings["cpu_model"]
    with pytest.raises(ValueError, match="unknown host-cpu option.*budget"):
        get_labeler("host-cpu", budget=1.0)
    with pytest.raises(ValueError, match="max_repeats"):
        get_labeler("host-cpu", min_repeats=50, max_repeats=10)


@pytest.mark.parametrize("name", VELA_TARGETS + ["host-cpu"])
def test_labelers_pickle(name, kws_models):
    pytest.importorskip("ethosu.vela" if name != "host-cpu" else "ai_edge_litert.interpreter",
                        reason="labelling tool not installed (pip install 'perfsage[label]')")
    options = {"budget_s": 0.1} if name == "host-cpu" else {}
    with get_labeler(name, **options) as original:
        before = original.label(kws_models[0])  # starts a helper process, which must not be pickled
        with pickle.loads(pickle.dumps(original)) as clone:
            assert clone.settings() == original.settings()
            after = clone.label(kws_models[0])
    assert set(after) == set(before)
    if name != "host-cpu":  # Vela is deterministic; measured latency is not
        assert after == before


def test_real_kws_model(vela_labelers, host_cpu, models_dir):
    model = (models_dir / "mlperftiny_kws_ref_model.tflite").read_bytes()
    labels = vela_labelers["ethos-u55-256"].label(model)
    assert labels["npu_ops"] > 0 and labels["latency_ms"] > 0
    assert host_cpu.label(model)["latency_ms"] > 0
