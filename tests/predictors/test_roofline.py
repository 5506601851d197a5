"""The roofline predictor: shipped spec sheets, the analytical time against hand
computation, the CPU thread model, this machine's estimate, and calibration on the
fake-backend law."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from latbench.arch import Arch, Workload
from latbench.errors import ConfigError
from latbench.fingerprint import collect
from latbench.predictors import registry, roofline
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.io import load_predictor, save_predictor
from latbench.predictors.roofline import (
    DeviceSpec,
    RooflinePredictor,
    detect_cpu_spec,
    device_spec,
    roofline_layer_seconds,
    roofline_seconds,
    spec_sheets,
)
from latbench.specs import EncoderSpec, OpSpec, layer_ops
from latbench.target import Target

EXPECTED_DEVICES = {
    "nvidia-h100-sxm",
    "nvidia-h100-pcie",
    "nvidia-h200-sxm",
    "nvidia-a100-sxm-80gb",
    "nvidia-a100-pcie-40gb",
    "nvidia-l4",
    "nvidia-l40s",
    "nvidia-a10",
    "nvidia-t4",
    "nvidia-v100-sxm2",
    "nvidia-rtx-4090",
    "tpu-v4",
    "tpu-v5e",
    "tpu-v5p",
    "tpu-v6e",
    "amd-epyc-7763",
    "amd-epyc-9654",
    "intel-xeon-8480",
    "intel-xeon-8380",
    "aws-graviton3",
}
GOOD_SHEET = """
[devices.toy-gpu]
name = "Toy GPU"
kind = "gpu"
peak_flops = { fp32 = 1e12, fp16 = 4e12 }
memory_bandwidth_Bps = 1e11
op_overhead_s = 5e-6
source = ["https://example.com/toy"]
"""


def spec(
    layers: int = 1,
    hidden: int = 64,
    heads: int = 4,
    ffn: int = 128,
    batch: int = 1,
    seq: int = 16,
    precision: str = "fp32",
) -> EncoderSpec:
    return EncoderSpec(
        Arch.uniform(layers, hidden, heads, ffn, vocab_size=100), Workload(batch, seq, precision)
    )


def by_hand(encoder: EncoderSpec, peak: float, bandwidth: float, overhead: float) -> float:
    """The roofline of one encoder with the scalar ``latbench.specs`` formulas."""
    w, arch = encoder.workload, encoder.arch
    parts = [(OpSpec("embedding", w, arch.hidden, vocab_size=arch.vocab_size), 1)]
    for layer in arch.layers:
        parts += layer_ops(layer, w)
    return sum(n * (max(op.flops / peak, op.bytes_moved / bandwidth) + overhead) for op, n in parts)


# --- the shipped sheets ------------------------------------------------------------------
def test_every_shipped_sheet_loads_with_sources_and_positive_figures() -> None:
    sheets = spec_sheets()
    assert set(sheets) >= EXPECTED_DEVICES
    for key, sheet in sheets.items():
        assert sheet.key == key and sheet.name and sheet.kind in ("cpu", "gpu", "tpu")
        assert sheet.source and all(url.startswith("https://") for url in sheet.source)
        assert sheet.peak_flops["fp32"] > 0 and all(v > 0 for v in sheet.peak_flops.values())
        assert sheet.memory_bandwidth_Bps > 0 and 0 < sheet.op_overhead_s < 1e-4
        if sheet.kind == "cpu":
            assert sheet.cores and 0 < sheet.per_core_bandwidth_Bps < sheet.memory_bandwidth_Bps  # type: ignore[operator]
            assert "estimate" in sheet.notes
        else:
            assert sheet.cores is None and sheet.per_core_bandwidth_Bps is None
        assert DeviceSpec.from_dict(json.loads(json.dumps(sheet.to_dict()))) == sheet


def test_cpu_peaks_match_their_stated_derivation() -> None:
    for sheet in spec_sheets().values():
        if sheet.kind != "cpu":
            continue
        found = re.match(r"(\d+) cores x ([\d.]+) GHz.*? x (\d+) FP32 FLOP/cycle", sheet.derivation)
        assert found, sheet.key
        cores, ghz, per_cycle = int(found[1]), float(found[2]), int(found[3])
        assert cores == sheet.cores
        assert sheet.peak_flops["fp32"] == pytest.approx(cores * ghz * 1e9 * per_cycle)


def test_tensor_figures_are_dense_and_above_fp32() -> None:
    h100 = device_spec("nvidia-h100-sxm")
    assert h100.peak_flops["bf16"] > 10 * h100.peak_flops["fp32"]
    assert h100.peak_flops["bf16"] < 1.2e15  # 989.5 TFLOP/s dense, not the 1979 with sparsity
    assert device_spec("nvidia-h200-sxm").memory_bandwidth_Bps > h100.memory_bandwidth_Bps
    # a precision a device lacks falls back to fp32 (the T4 has no bf16 units)
    t4 = device_spec("nvidia-t4")
    assert t4.peak_flops_for("bf16") == t4.peak_flops["fp32"] < t4.peak_flops_for("fp16")
    with pytest.raises(ValueError, match="unknown precision 'fp64'"):
        t4.peak_flops_for("fp64")


def test_unknown_device_is_refused_with_the_known_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown device 'nvidia-h9000'; known: auto, .*nvidia-h100-sxm"):
        device_spec("nvidia-h9000")
    with pytest.raises(ConfigError, match="unknown device"):
        RooflinePredictor(device="nvidia-h9000").fit([], [])
    assert device_spec(" NVIDIA-L4 ") == device_spec("nvidia-l4")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("memory_bandwidth_Bps = 1e11\n", ""), "'memory_bandwidth_Bps' is missing"),
        (lambda s: s.replace("fp32 = 1e12", "fp32 = -1e12"), "'peak_flops.fp32' must be positive"),
        (lambda s: s.replace("fp32 = 1e12, ", ""), "'peak_flops' must be a table .* including fp32"),
        (lambda s: s.replace("fp16 = 4e12", "fp64 = 4e12"), "unknown precision 'fp64'"),
        (lambda s: s.replace('kind = "gpu"', 'kind = "fpga"'), "'kind' must be one of cpu, gpu, tpu"),
        (lambda s: s.replace('["https://example.com/toy"]', "[]"), "'source' must list the https://"),
        (lambda s: s.replace("op_overhead_s", "overhead_ms"), "'overhead_ms' is not a spec-sheet field"),
        (lambda s: s.replace('kind = "gpu"', 'kind = "cpu"'), "'cores' must be a positive integer"),
        (lambda s: s.replace("[devices.toy-gpu]", "[devices.toy-gpu"), "is not valid TOML"),
        (lambda s: "[other]\nx = 1\n", r"has no \[devices.<name>\] tables"),
    ],
)
def test_a_malformed_sheet_is_a_clear_error_naming_the_field(monkeypatch, edit, message) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(roofline, "_sheet_text", lambda: GOOD_SHEET)
    assert set(spec_sheets()) == {"toy-gpu"}
    monkeypatch.setattr(roofline, "_sheet_text", lambda: edit(GOOD_SHEET))
    with pytest.raises(ConfigError, match=message):
        spec_sheets()


def test_a_damaged_saved_spec_is_refused() -> None:
    data = device_spec("nvidia-l4").to_dict()
    with pytest.raises(ConfigError, match="'memory_bandwidth_Bps' must be a number"):
        DeviceSpec.from_dict({**data, "memory_bandwidth_Bps": "fast"})
    with pytest.raises(ConfigError, match="'cores' applies to CPUs only"):
        DeviceSpec.from_dict({**data, "cores": 4})
    with pytest.raises(ConfigError, match="string 'key'"):
        DeviceSpec.from_dict({"name": "x"})


# --- the analytical time ---------------------------------------------------------------
@pytest.mark.parametrize("device", ["nvidia-a100-sxm-80gb", "tpu-v5e", "amd-epyc-7763"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_roofline_equals_hand_computation_for_a_one_layer_encoder(device: str, precision: str) -> None:
    sheet = device_spec(device)
    encoder = spec(precision=precision, batch=2, seq=32)
    threads = 4
    peak, bandwidth = sheet.peak_flops_for(precision, threads), sheet.bandwidth_for(threads)
    got = roofline_seconds(EncoderBatch.from_specs([encoder]), sheet, threads)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(by_hand(encoder, peak, bandwidth, sheet.op_overhead_s), rel=1e-12)


def test_layer_times_are_zero_on_padding_and_sum_to_the_layers() -> None:
    sheet = device_spec("nvidia-l4")
    encoders = [spec(layers=1), spec(layers=3, hidden=128)]
    batch = EncoderBatch.from_specs(encoders)
    layers = roofline_layer_seconds(batch, sheet)
    assert layers.shape == (2, 3) and np.all(layers[0, 1:] == 0) and np.all(layers[1] > 0)
    totals = roofline_seconds(batch, sheet)
    for i, encoder in enumerate(encoders):
        one = by_hand(encoder, sheet.peak_flops["fp32"], sheet.memory_bandwidth_Bps, sheet.op_overhead_s)
        assert totals[i] == pytest.approx(one, rel=1e-12)
    assert roofline_seconds(EncoderBatch.from_specs([]), sheet).shape == (0,)


def test_tiny_shapes_are_bandwidth_bound_and_big_ones_compute_bound() -> None:
    sheet = device_spec("nvidia-h100-sxm")
    faster_math = replace(sheet, peak_flops={p: 2 * v for p, v in sheet.peak_flops.items()})
    faster_memory = replace(sheet, memory_bandwidth_Bps=2 * sheet.memory_bandwidth_Bps)
    tiny = EncoderBatch.from_specs([spec(batch=1, seq=1, precision="fp16")])
    big_spec = spec(hidden=2048, heads=16, ffn=8192, batch=64, seq=128, precision="fp16")
    big = EncoderBatch.from_specs([big_spec])
    # one token: every operator waits on memory, so doubling the FLOP/s changes nothing
    assert roofline_seconds(tiny, faster_math)[0] == roofline_seconds(tiny, sheet)[0]
    assert roofline_seconds(tiny, faster_memory)[0] < roofline_seconds(tiny, sheet)[0]
    # 8k tokens through 2048-wide matmuls: the FLOPs dominate
    base, quicker = roofline_seconds(big, sheet)[0], roofline_seconds(big, faster_math)[0]
    assert quicker < 0.7 * base
    assert roofline_seconds(big, faster_memory)[0] > 0.9 * base


def test_more_cpu_threads_are_faster_until_the_cores_run_out() -> None:
    sheet = device_spec("amd-epyc-9654")
    batch = EncoderBatch.from_specs([spec(layers=4, hidden=256, ffn=1024, batch=4, seq=128)])
    times = [roofline_seconds(batch, sheet, t)[0] for t in (1, 2, 8, 96)]
    assert all(a > b for a, b in itertools.pairwise(times))
    assert roofline_seconds(batch, sheet, 500)[0] == times[-1]  # SMT siblings share the FMA units
    assert sheet.bandwidth_for(1) == sheet.per_core_bandwidth_Bps
    assert sheet.bandwidth_for(96) == sheet.memory_bandwidth_Bps  # the socket caps the cores
    assert sheet.peak_flops_for("fp32", 48) == pytest.approx(sheet.peak_flops["fp32"] / 2)
    gpu = device_spec("nvidia-a10")
    assert roofline_seconds(batch, gpu, 1)[0] == roofline_seconds(batch, gpu, 64)[0]  # threads: CPU only
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        roofline_seconds(batch, sheet, 0)


# --- the predictor ------------------------------------------------------------------------
def test_registered_and_sklearn_style() -> None:
    predictor = registry.create("roofline")
    assert isinstance(predictor, RooflinePredictor)
    assert predictor.get_params() == {"device": "auto", "threads": 1}
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        RooflinePredictor(threads=0).fit([], [])
    with pytest.raises(ValueError, match="device must be a spec-sheet name"):
        RooflinePredictor(device="").fit([], [])


def test_fitted_on_nothing_it_is_the_spec_sheet_estimate(tmp_path: Path) -> None:
    predictor = RooflinePredictor(device="nvidia-a100-sxm-80gb").fit([], [])
    assert predictor.n_train_ == 0 and (predictor.scale_, predictor.overhead_s_) == (1.0, 0.0)
    encoders = [spec(), spec(layers=6, hidden=256, ffn=1024, seq=128)]
    detail = predictor.predict_detail(encoders)
    sheet = device_spec("nvidia-a100-sxm-80gb")
    analytical = roofline_seconds(EncoderBatch.from_specs(encoders), sheet, 1)
    np.testing.assert_array_equal(detail.latency_s, analytical)
    assert detail.low_s is None  # no measurements, no interval
    path = tmp_path / "a100.json"
    save_predictor(predictor, path, target=Target("fake-cpu"), fingerprint=collect(), training={})
    loaded = load_predictor(path).predictor
    assert loaded.device_spec_ == sheet
    np.testing.assert_array_equal(loaded.predict(encoders), detail.latency_s)


def test_calibrated_on_measurements_it_tracks_the_fake_law(measured) -> None:  # type: ignore[no-untyped-def]
    _, X, y, *_ = measured
    predictor = RooflinePredictor().fit(X[:20], y[:20])
    errors = predictor.predict(X[20:]) / y[20:] - 1
    assert np.mean(np.abs(errors)) < 0.20
    assert predictor.scale_ > 0 and predictor.device_spec_.key == "auto"


def test_a_saved_predictor_keeps_its_sheet_when_sheets_change(measured, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, X, y, target, fingerprint = measured
    predictor = RooflinePredictor(device="nvidia-l4").fit(X, y)
    path = tmp_path / "l4.json"
    save_predictor(predictor, path, target=target, fingerprint=fingerprint, training={})
    monkeypatch.setattr(roofline, "_sheet_text", lambda: GOOD_SHEET)
    loaded = load_predictor(path, target=target, fingerprint=fingerprint).predictor
    np.testing.assert_allclose(loaded.predict(X), predictor.predict(X), rtol=1e-12)


# --- this machine -------------------------------------------------------------------------
def test_detect_cpu_spec_works_here() -> None:
    here = detect_cpu_spec()
    assert here.key == "auto" and here.kind == "cpu" and here.cores and here.cores >= 1
    assert here.peak_flops["fp32"] > 1e9 and here.memory_bandwidth_Bps > 0
    assert "estimate" in here.notes and "FP32 FLOP/cycle" in here.derivation
    assert DeviceSpec.from_dict(json.loads(json.dumps(here.to_dict()))) == here
    same = detect_cpu_spec(collect())  # the fingerprint of this machine: same ISA
    assert same.derivation.split(" x ")[-1] == here.derivation.split(" x ")[-1]


@pytest.mark.parametrize(
    ("info", "per_cycle"),
    [
        ({"vendor_id": "GenuineIntel", "cpu family": "6", "flags": "sse2 avx2 fma avx512f"}, 64),
        ({"vendor_id": "AuthenticAMD", "cpu family": "25", "flags": "sse2 avx2 fma avx512f"}, 32),
        ({"vendor_id": "AuthenticAMD", "cpu family": "25", "flags": "sse2 avx avx2 fma"}, 32),
        ({"vendor_id": "GenuineIntel", "cpu family": "6", "flags": "sse2 avx"}, 8),
    ],
)
def test_detect_cpu_spec_reads_the_isa(monkeypatch, info, per_cycle) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(roofline.this_machine, "max_clock_hz", lambda: None)
    monkeypatch.setattr(roofline.platform, "machine", lambda: "x86_64")
    sheet = detect_cpu_spec(cpuinfo={**info, "model name": "Test CPU", "cpu MHz": "3000.000"})
    assert sheet.peak_flops["fp32"] == pytest.approx(sheet.cores * 3e9 * per_cycle)  # type: ignore[operator]
    assert "3.00 GHz (current MHz)" in sheet.derivation


def test_detect_cpu_spec_degrades_without_cpuinfo(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(roofline.this_machine, "max_clock_hz", lambda: None)
    monkeypatch.setattr(roofline.platform, "machine", lambda: "x86_64")
    bare = detect_cpu_spec(cpuinfo={})
    assert "assumed, none readable" in bare.derivation
    assert bare.peak_flops["fp32"] == pytest.approx(bare.cores * 2e9 * 8)  # type: ignore[operator]
    elsewhere = replace(collect(), cpu_flags_digest="0" * 16, physical_cores=32, machine="aarch64")
    foreign = detect_cpu_spec(elsewhere)
    assert foreign.cores == 32 and "another machine" in foreign.notes and foreign.source == ()
    assert foreign.peak_flops["fp32"] == pytest.approx(32 * 2e9 * 16)  # NEON baseline, assumed clock
