"""The ``xla`` target: JAX programs compiled by XLA, run on this machine's CPU."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from latbench.arch import Arch, LayerShape, Workload
from latbench.backends.base import Backend
from latbench.backends.registry import default_registry
from latbench.backends.xla import XlaBackend, cost_extras, device_fields, tpu_generation
from latbench.cli import main
from latbench.db import MeasurementDB
from latbench.errors import ConfigError, TargetUnavailableError
from latbench.fingerprint import collect, usable_cpus
from latbench.plans import QUICK
from latbench.profile import measure_specs, run_profile
from latbench.specs import BlockSpec, EncoderSpec, OpSpec, Spec, with_workload
from latbench.target import Target
from latbench.testing.backend_contract import SPECS, TINY, BackendContract, W, _reference
from latbench.timing import ProtocolSettings


class TestXla(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return XlaBackend()


@pytest.fixture
def xla() -> tuple[XlaBackend, Target]:
    backend = XlaBackend()
    availability = backend.availability()
    if not availability.available:
        pytest.skip(f"xla unavailable: {availability.reason}")
    return backend, backend.normalize(Target("xla"))


def _outputs(backend: Backend, spec, target: Target) -> np.ndarray:  # type: ignore[no-untyped-def]
    prepared = backend.prepare(spec, target)
    try:
        return prepared.outputs()
    finally:
        prepared.close()


# --- the same computation as the torch reference ------------------------------------------
FIXED_HEAD = LayerShape(64, 2, 128, head_size=64)  # attention 2 × 64 = 128 wide on hidden 64
MORE_SPECS = [
    BlockSpec(FIXED_HEAD, W, "isolated"),
    EncoderSpec(Arch(hidden=64, heads=(4, 2), ffn=(128, 256), vocab_size=100, max_positions=32), W),
    EncoderSpec(Arch.uniform(1, 64, 4, 128, vocab_size=100, max_positions=32, type_vocab_size=0), W),
    OpSpec.for_layer("qkv_proj", FIXED_HEAD, W),
    OpSpec.for_layer("attn_scores", FIXED_HEAD, W),
    OpSpec("qkv_proj", Workload(2, 8), 64),
]


@pytest.mark.parametrize("spec", MORE_SPECS, ids=lambda s: s.label)
def test_fixed_head_sizes_mixed_layers_and_batches_match_the_torch_reference(xla, spec) -> None:  # type: ignore[no-untyped-def]
    backend, target = xla
    np.testing.assert_allclose(_outputs(backend, spec, target), _reference(spec), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("spec", [SPECS[0], SPECS[2], SPECS[3]], ids=lambda s: s.label)
def test_bf16_matches_torch_in_bf16(xla, spec) -> None:  # type: ignore[no-untyped-def]
    from latbench.backends.torch_cpu import TorchCPUBackend

    backend, target = xla
    bf16 = with_workload(spec, Workload(1, 16, "bf16"))
    torch_cpu = TorchCPUBackend()
    expected = _outputs(torch_cpu, bf16, torch_cpu.normalize(Target("torch-cpu")))
    got = _outputs(backend, bf16, target)
    assert got.dtype == np.float32
    # bf16 keeps 8 bits of mantissa: outputs of LayerNorm (~N(0, 1)) agree to a few 1e-2
    np.testing.assert_allclose(got, expected, rtol=0.05, atol=0.1)
    assert np.abs(got - expected).mean() < 0.02


def test_fp16_and_int8_are_refused_before_anything_is_built(xla) -> None:  # type: ignore[no-untyped-def]
    backend, target = xla
    for precision in ("fp16", "int8"):
        with pytest.raises(ConfigError, match="supported precisions: fp32, bf16"):
            backend.prepare(BlockSpec(LayerShape(64, 4, 128), Workload(1, 16, precision)), target)


# --- compile time apart from run time; XLA's cost analysis --------------------------------
def test_compile_is_build_time_and_never_part_of_a_timed_call(xla) -> None:  # type: ignore[no-untyped-def]
    backend, target = xla
    spec = EncoderSpec(Arch.uniform(2, 64, 4, 128, vocab_size=100, max_positions=32), W)
    prepared = backend.prepare(spec, target)
    try:
        compile_s = prepared.extras()["xla_compile_s"]
        assert 0 < compile_s <= prepared.build_time_s
        start = time.perf_counter()
        prepared()
        first_s = time.perf_counter() - start
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            prepared()
            runs.append(time.perf_counter() - start)
    finally:
        prepared.close()
    # compiling this encoder takes ~0.5 s, running it ~0.2 ms: a compile in the first call
    # would make it the size of the compile, not of the runs
    assert first_s < compile_s / 2, (first_s, compile_s)
    assert statistics.median(runs) < compile_s / 20


def test_cost_analysis_is_stored_with_the_measurement_and_read_back(xla, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backend, target = xla
    fingerprint = collect(backend.fingerprint_extras())
    qkv, block = OpSpec("qkv_proj", W, 64), BlockSpec(LayerShape(64, 4, 128), W, "isolated")
    measured = measure_specs(backend, target, fingerprint, [qkv, block], TINY)
    with MeasurementDB(tmp_path / "m.db") as db:
        db.add(measured)
    with MeasurementDB(tmp_path / "m.db", create=False) as db:
        back = db.measurements()
    assert back == measured
    m_qkv, m_block = back
    # XLA counts the matrix product (the formula's 2·tokens·hidden·3·hidden) and the bias add
    assert m_qkv.extra("xla_flops") == pytest.approx(qkv.flops, rel=0.02)
    assert m_qkv.extra("xla_bytes_accessed") >= 4 * 64 * 3 * 64  # at least the weights, once
    assert m_block.extra("xla_flops") > m_qkv.extra("xla_flops")
    assert m_block.extra("xla_transcendentals") > 0  # softmax exponentials, GELU's erf
    assert all(m.extra("xla_compile_s") > 0 and m.build_time_s >= m.extra("xla_compile_s") for m in back)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"flops": 10.0, "bytes accessed": 20.0, "utilization0{}": 1.0},
            {"xla_flops": 10.0, "xla_bytes_accessed": 20.0},
        ),
        (
            [{"flops": 10.0, "bytes accessed": 20.0, "transcendentals": 3.0}],
            {"xla_flops": 10.0, "xla_bytes_accessed": 20.0, "xla_transcendentals": 3.0},
        ),
        (None, {}),
        ([], {}),
        ([None], {}),
        ({"flops": -1.0, "bytes accessed": float("nan")}, {}),
        ({"flops": "n/a", "bytes accessed": 5}, {"xla_bytes_accessed": 5.0}),
    ],
    ids=["dict", "list-of-one-dict", "none", "empty-list", "list-of-none", "unknown-values", "odd-types"],
)
def test_cost_analysis_of_every_jax_version_is_normalised(raw, expected) -> None:  # type: ignore[no-untyped-def]
    assert cost_extras(raw) == expected


# --- the device fingerprint -----------------------------------------------------------------
def test_fingerprint_records_the_platform_device_and_jax_versions(xla) -> None:  # type: ignore[no-untyped-def]
    backend, _ = xla
    extras = backend.fingerprint_extras()
    assert extras["device_platform"] == "cpu" and extras["device_kind"] and extras["device_count"] >= 1
    fingerprint = collect(extras)
    assert fingerprint.device_platform == "cpu"
    assert fingerprint.library("jax") and fingerprint.library("jaxlib")


@pytest.mark.parametrize(
    ("kind", "generation"),
    [
        ("TPU v2", "v2"),
        ("TPU v3", "v3"),
        ("TPU v4", "v4"),
        ("TPU v4 lite", "v4i"),
        ("TPU v5 lite", "v5e"),
        ("TPU v5e", "v5e"),
        ("TPU v5", "v5p"),
        ("TPU v5p", "v5p"),
        ("TPU v6 lite", "v6e"),
        ("TPU v6e", "v6e"),
        ("TPU7x", "v7x"),
        ("cpu", ""),
        ("NVIDIA H100 80GB HBM3", ""),
    ],
)
def test_tpu_generation_from_the_device_kind(kind: str, generation: str) -> None:
    assert tpu_generation(kind) == generation


def test_device_fields_of_tpus_and_gpus() -> None:
    tpus = [SimpleNamespace(platform="tpu", device_kind="TPU v5 lite")] * 4
    assert device_fields(tpus) == {
        "device_platform": "tpu",
        "device_kind": "TPU v5 lite",
        "device_count": 4,
        "tpu": "v5e",
    }
    gpu = SimpleNamespace(platform="gpu", device_kind="NVIDIA H100 80GB HBM3")
    assert device_fields([gpu])["gpu"] == "NVIDIA H100 80GB HBM3"
    assert collect(device_fields(tpus)).tpu == "v5e"


# --- settings and availability ------------------------------------------------------------
def test_platform_is_a_setting_with_choices() -> None:
    backend = XlaBackend()
    assert backend.normalize(Target("xla")).get("platform") == "auto"
    assert backend.normalize(Target.parse("xla:platform=cpu")).get("platform") == "cpu"
    with pytest.raises(ConfigError, match=r"platform of xla must be one of auto, cpu, gpu, tpu"):
        backend.normalize(Target.parse("xla:platform=ipu"))


@pytest.mark.parametrize("platform", ["gpu", "tpu"])
def test_a_platform_jax_has_no_device_for_is_unavailable_in_one_line(xla, platform: str) -> None:  # type: ignore[no-untyped-def]
    backend, _ = xla
    target = backend.normalize(Target.parse(f"xla:platform={platform}"))
    availability = backend.target_availability(target)
    assert not availability.available and f"no {platform} device" in availability.reason
    with pytest.raises(
        TargetUnavailableError, match=f"xla:platform={platform}.* is not available here"
    ) as info:
        default_registry().resolve(target)
    assert "\n" not in str(info.value)
    with pytest.raises(TargetUnavailableError, match=f"no {platform} device") as info:
        backend.prepare(SPECS[0], target)
    assert "\n" not in str(info.value)


def test_cpu_platform_runs(xla) -> None:  # type: ignore[no-untyped-def]
    backend, _ = xla
    target = backend.normalize(Target.parse("xla:platform=cpu"))
    _, resolved = default_registry().resolve(target)
    assert resolved == target and backend.target_availability(target).available
    spec = OpSpec("softmax", W, heads=4)
    np.testing.assert_allclose(_outputs(backend, spec, target), _reference(spec), rtol=1e-5, atol=1e-6)


def test_threads_other_than_the_usable_cpus_are_refused_with_how_to_get_them(xla) -> None:  # type: ignore[no-untyped-def]
    backend, _ = xla
    usable = usable_cpus()
    assert backend.normalize(Target("xla")).get("threads") == usable
    more = backend.normalize(Target("xla", settings=(("threads", usable + 1),)))
    message = rf"one thread per CPU .*\({usable} here\).*use threads={usable}$"
    with pytest.raises(ConfigError, match=message):
        backend.prepare(SPECS[3], more)
    with pytest.raises(TargetUnavailableError, match=rf"threads={usable + 1} is not available here: XLA"):
        default_registry().resolve(more)  # before any database is opened
    assert not backend.target_availability(more).available
    if usable > 1:
        one = backend.normalize(Target("xla", settings=(("threads", 1),)))
        with pytest.raises(ConfigError, match=r"taskset -c 0`"):
            backend.prepare(SPECS[3], one)


def test_without_jax_the_target_is_unavailable_in_one_line(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "jax", None)  # `import jax` now raises ImportError
    availability = XlaBackend().availability()
    assert not availability.available
    assert "jax is not installed" in availability.reason and "latbench[tpu]" in availability.reason
    assert "\n" not in availability.reason
    assert XlaBackend().fingerprint_extras() == {}
    code = main(["profile", "--target", "xla", "--plan", "quick", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "latbench: error: target xla is not available here: jax is"
    )
    assert main(["devices", "--json"]) == 0
    assert '"reason": "jax is not installed' in capsys.readouterr().out


def test_importing_latbench_or_its_cli_never_imports_jax() -> None:
    code = """
import sys
import latbench, latbench.backends.registry, latbench.cli
from latbench.backends.registry import default_registry
from latbench.target import Target
backend = default_registry().create("xla")
backend.normalize(Target.parse("xla:platform=cpu"))
try:
    latbench.cli.main(["--help"])
except SystemExit:
    pass
assert "jax" not in sys.modules, "importing latbench imported jax"
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


# --- the quick plan, profiled on this CPU ---------------------------------------------------
@pytest.mark.slow
def test_xla_profiles_the_quick_plan_on_this_cpu(xla, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every kind of spec of the quick plan (each operator, blocks in both contexts,
    encoders), at its smallest and its largest shape in the plan, compiles and runs: one
    sample each, the least the protocol takes. (All 136 specs took ~90 s on 2 cores, nearly
    all of it XLA compiling the same graphs at other sizes.)"""
    backend, target = xla
    fingerprint = collect(backend.fingerprint_extras())
    fastest = ProtocolSettings(
        warmup_min_s=0.0,
        warmup_min_iters=1,
        min_sample_s=0.0,
        samples=1,
        min_samples=1,
        rounds=1,
        max_extensions=0,
    )
    kinds: dict[tuple[str, str | None, str | None], list[Spec]] = {}
    for spec in QUICK.specs():
        kinds.setdefault((spec.kind, getattr(spec, "op", None), getattr(spec, "context", None)), []).append(
            spec
        )
    assert len(kinds) == 12  # nine operators, blocks in two contexts, encoders
    specs = list({s: None for group in kinds.values() for s in (group[0], group[-1])})
    with MeasurementDB(tmp_path / "quick.db") as db:
        result = run_profile(specs, backend, target, fingerprint, db, fastest)
        assert result.failed == ()
        measured = db.measurements(target_key=target.key, fingerprint_key=fingerprint.key)
    assert result.measured == len(specs) == len(measured)
    assert {m.spec.key for m in measured} == {s.key for s in specs}
    for m in measured:
        assert m.median_s > 0 and m.build_time_s > 0
        assert m.extra("xla_flops") > 0 and m.extra("xla_bytes_accessed") > 0, m.spec.label
        assert m.fingerprint.device_platform == "cpu"
