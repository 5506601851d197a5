"""The ``torch-cuda`` target: what runs everywhere (availability, settings, the nvidia-smi
parser, the CUDA-event timer with fake events) and, where torch sees a GPU, the contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from latbench.arch import Workload
from latbench.backends.base import Backend
from latbench.backends.registry import default_registry
from latbench.backends.torch_cuda import (
    DEFAULT_FLUSH_BYTES,
    TorchCudaBackend,
    TorchCudaPrepared,
    cuda_event_timer,
    dynamo_limit_patch,
    l2_flush_bytes,
    parse_nvidia_smi,
    precision_problem,
    select_gpu,
    torch_availability,
)
from latbench.errors import ConfigError, TargetUnavailableError
from latbench.fingerprint import collect
from latbench.specs import BlockSpec
from latbench.target import Target
from latbench.testing.backend_contract import LAYER, BackendContract, W
from latbench.testing.cli import assert_user_error

HAS_CUDA = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU and a CUDA build of torch")
no_gpu = pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without a CUDA GPU")
ARCH = '{"layers": 1, "hidden": 64, "heads": 2, "ffn": 128}'


def latbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "latbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )


# --- availability ---------------------------------------------------------------------------
@no_gpu
def test_unavailable_here_with_a_one_line_reason() -> None:
    availability = TorchCudaBackend().availability()
    assert not availability.available
    assert "\n" not in availability.reason
    assert "CPU build" in availability.reason or "no CUDA device" in availability.reason
    with pytest.raises(TargetUnavailableError, match="not available here"):
        default_registry().resolve(Target.parse("torch-cuda:mode=cuda-graph"))
    backend = TorchCudaBackend()
    with pytest.raises(TargetUnavailableError, match="not available here"):
        backend.prepare(BlockSpec(LAYER, W), backend.normalize(Target("torch-cuda")))
    assert backend.fingerprint_extras() == {}


def _fake_torch(cuda: str | None, count: int, hip: str | None = None) -> Any:
    return SimpleNamespace(
        __version__="9.9.9",
        version=SimpleNamespace(cuda=cuda, hip=hip),
        cuda=SimpleNamespace(
            is_available=lambda: count > 0,
            device_count=lambda: count,
            get_device_name=lambda i: "NVIDIA H100 80GB HBM3",
        ),
    )


def test_availability_reasons() -> None:
    cpu = torch_availability(_fake_torch(None, 0))
    assert not cpu.available and cpu.reason.startswith("torch 9.9.9 is a CPU build: install a CUDA build")
    rocm = torch_availability(_fake_torch(None, 1, hip="6.0"))
    assert not rocm.available and "ROCm" in rocm.reason
    none = torch_availability(_fake_torch("12.4", 0))
    assert not none.available and none.reason.startswith("no CUDA device visible")
    gpu = torch_availability(_fake_torch("12.4", 2))
    assert gpu.available and gpu.reason == "torch 9.9.9, CUDA 12.4: 2 × NVIDIA H100 80GB HBM3"


@no_gpu
def test_devices_lists_torch_cuda_as_unavailable() -> None:
    result = latbench("devices", "--json")
    assert result.returncode == 0, result.stderr
    (row,) = [r for r in json.loads(result.stdout)["targets"] if r["target"] == "torch-cuda"]
    assert row["available"] is False and row["device"] == "gpu"
    assert row["reason"] == TorchCudaBackend().availability().reason


@no_gpu
@pytest.mark.parametrize(
    "args",
    [
        ("profile", "--target", "torch-cuda", "--plan", "quick", "--dry-run"),
        ("measure", "--target", "torch-cuda:mode=cuda-graph,l2_flush=true", "--arch", ARCH, "--seq", "8"),
    ],
    ids=["profile", "measure"],
)
def test_asking_for_it_here_is_a_one_line_error(args: tuple[str, ...]) -> None:
    assert_user_error(latbench(*args), "torch-cuda", "not available here")


# --- settings and precisions --------------------------------------------------------------
def test_normalize_fills_defaults_and_refuses_bad_settings() -> None:
    backend = TorchCudaBackend()
    target = backend.normalize(Target("torch-cuda"))
    assert dict(target.settings) == {"mode": "eager", "l2_flush": False, "device": 0, "threads": 1}
    assert target.device == "gpu"
    parsed = backend.normalize(Target.parse("torch-cuda:l2_flush=true,mode=cuda-graph,device=1"))
    assert parsed.get("l2_flush") is True and parsed.get("mode") == "cuda-graph" and parsed.get("device") == 1
    assert parsed.key != backend.normalize(Target.parse("torch-cuda:mode=cuda-graph,device=1")).key
    with pytest.raises(ConfigError, match=r"mode .* must be one of eager, cuda-graph, compile"):
        backend.normalize(Target.parse("torch-cuda:mode=graph"))
    with pytest.raises(ConfigError, match=r"l2_flush .* must be true or false"):
        backend.normalize(Target.parse("torch-cuda:l2_flush=1"))
    with pytest.raises(ConfigError, match="device"):
        backend.normalize(Target.parse("torch-cuda:device=-1"))
    with pytest.raises(ConfigError, match="device"):
        backend.normalize(Target.parse("torch-cuda:device=gpu0"))
    with pytest.raises(ConfigError, match="unknown setting"):
        backend.normalize(Target.parse("torch-cuda:flush=true"))


def test_precision_rules() -> None:
    assert precision_problem("fp32", bf16_supported=False) == ""
    assert precision_problem("fp16", bf16_supported=False) == ""
    assert precision_problem("bf16", bf16_supported=True) == ""
    assert "bf16" in precision_problem("bf16", bf16_supported=False)
    assert "supported precisions" in precision_problem("int8", bf16_supported=True)
    backend = TorchCudaBackend()
    with pytest.raises(ConfigError, match="no native bf16"):
        backend.check_spec(BlockSpec(LAYER, Workload(1, 16, "bf16")), bf16_supported=False)
    backend.check_spec(BlockSpec(LAYER, Workload(1, 16, "bf16")), bf16_supported=True)
    with pytest.raises(ConfigError, match="precision"):
        backend.check_spec(BlockSpec(LAYER, Workload(1, 16, "int8")), bf16_supported=True)


def test_l2_flush_is_larger_than_the_l2() -> None:
    assert l2_flush_bytes(50 * 2**20) == 100 * 2**20
    assert l2_flush_bytes(0) == DEFAULT_FLUSH_BYTES


# --- nvidia-smi ------------------------------------------------------------------------------
H100 = "GPU-5b2c8f3e-aaaa-bbbb-cccc-000000000001, NVIDIA H100 80GB HBM3, 550.54.15, 1980 MHz, 2619 MHz"
A10 = "GPU-0000aaaa-1111-2222-3333-444455556666, NVIDIA A10G, 535.104.05, [N/A], 6251 MHz"


def test_parse_nvidia_smi() -> None:
    (row,) = parse_nvidia_smi(H100 + "\n")
    assert row == {
        "uuid": "GPU-5b2c8f3e-aaaa-bbbb-cccc-000000000001",
        "name": "NVIDIA H100 80GB HBM3",
        "driver_version": "550.54.15",
        "sm_clock_mhz": 1980,
        "mem_clock_mhz": 2619,
    }
    rows = parse_nvidia_smi(f"WARNING: infoROM is corrupted\n\n{H100}\r\n{A10}\n")
    assert [r["name"] for r in rows] == ["NVIDIA H100 80GB HBM3", "NVIDIA A10G"]
    assert rows[1]["sm_clock_mhz"] == 0 and rows[1]["mem_clock_mhz"] == 6251
    na = parse_nvidia_smi("GPU-x, [N/A], [Not Supported], N/A, 1593")[0]
    assert na["name"] == "" and na["driver_version"] == "" and na["sm_clock_mhz"] == 0
    assert na["mem_clock_mhz"] == 1593
    assert parse_nvidia_smi("") == [] and parse_nvidia_smi("NVIDIA-SMI has failed") == []


def test_select_gpu_by_uuid_then_index() -> None:
    rows = parse_nvidia_smi(f"{H100}\n{A10}")
    # torch's uuid has no "GPU-" prefix; nvidia-smi lists GPUs in PCI order, not CUDA's
    assert select_gpu(rows, "0000aaaa-1111-2222-3333-444455556666", 0) is rows[1]
    assert select_gpu(rows, "", 1) is rows[1]
    assert select_gpu(rows, "ffffffff-0000-0000-0000-000000000000", 0) is None
    assert select_gpu(rows[:1], "", 3) is rows[0]
    assert select_gpu([], "", 0) is None


def test_gpu_clocks_are_optional_fingerprint_fields() -> None:
    fp = collect()
    assert "gpu_sm_clock_mhz" not in fp.to_dict() and "gpu_mem_clock_mhz" not in fp.to_dict()
    gpu = replace(fp, gpu="NVIDIA H100", gpu_sm_clock_mhz=1980, gpu_mem_clock_mhz=2619)
    assert gpu.to_dict()["gpu_sm_clock_mhz"] == 1980 and gpu.key != fp.key
    assert type(fp).from_dict(gpu.to_dict()) == gpu


# --- the CUDA-event timer ------------------------------------------------------------------
class FakeEvent:
    """Records what is done to it in a shared log; each ``record`` stamps the fake GPU time."""

    def __init__(self, log: list[str], gpu: dict[str, float]) -> None:
        self.log, self.gpu, self.id = log, gpu, len(log)
        self.t = -1.0
        log.append(f"new{self.id}")

    def record(self, stream: object = None) -> None:
        assert stream == "stream"
        self.t = self.gpu["ms"]
        self.log.append("record")

    def synchronize(self) -> None:
        self.log.append("sync")

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.log[-1] in ("sync", "elapsed"), "elapsed_time before the host waited"
        self.log.append("elapsed")
        return end.t - self.t


def _fake_timer(flush: bool) -> tuple[Any, Any, list[str]]:
    """A timer on fake events and a fake call: each call is 2.5 ms, each flush 100 ms of GPU time."""
    log: list[str] = []
    gpu = {"ms": 0.0}

    def fn() -> None:
        gpu["ms"] += 2.5
        log.append("call")

    def flusher() -> None:
        gpu["ms"] += 100.0
        log.append("flush")

    return cuda_event_timer(lambda: FakeEvent(log, gpu), "stream", flusher if flush else None), fn, log


def test_event_timer_records_end_before_the_one_synchronize() -> None:
    timer, fn, log = _fake_timer(flush=False)
    seconds = timer(fn, 4)
    assert log == ["new0", "new1", "record", "call", "call", "call", "call", "record", "sync", "elapsed"]
    assert seconds == pytest.approx(4 * 2.5e-3)  # elapsed ms -> seconds for all the calls
    log.clear()
    assert timer(fn, 2) == pytest.approx(5e-3)
    assert log == ["record", "call", "call", "record", "sync", "elapsed"]  # events are reused


def test_event_timer_with_flush_times_each_call_between_flushes() -> None:
    timer, fn, log = _fake_timer(flush=True)
    seconds = timer(fn, 3)
    body = [e for e in log if not e.startswith("new")]
    assert body[:12] == ["flush", "record", "call", "record"] * 3
    assert body[12:] == ["sync", "elapsed", "elapsed", "elapsed"]  # one wait, after the last end
    assert seconds == pytest.approx(3 * 2.5e-3)  # the flushes are outside every pair
    log.clear()
    assert timer(fn, 2) == pytest.approx(5e-3)
    assert not any(e.startswith("new") for e in log) and log.count("sync") == 1


def test_prepared_launches_without_waiting_and_outputs_after_the_stream() -> None:
    log: list[str] = []
    stream = SimpleNamespace(synchronize=lambda: log.append("sync"))
    value = torch.ones(2, 3, dtype=torch.float16)

    def read() -> torch.Tensor:
        log.append("read")
        return value

    prepared = TorchCudaPrepared(
        lambda: log.append("run"), read, stream, None, 0.5, 6, {"cuda_graph": 1.0, "l2_flush": 0.0}
    )
    assert prepared() is None and log == ["run"]
    out = prepared.outputs()
    assert log == ["run", "read", "sync"] and out.dtype.name == "float32" and out.shape == (2, 3)
    assert prepared.extras() == {"cuda_graph": 1.0, "l2_flush": 0.0}
    assert prepared.build_time_s == 0.5 and prepared.instances_per_call == 6
    prepared.close()


# --- on a GPU: the shared contract and the modes ---------------------------------------------
@needs_gpu
class TestTorchCuda(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return TorchCudaBackend()


@needs_gpu
@pytest.mark.parametrize("mode", ["eager", "cuda-graph", "compile"])
@pytest.mark.parametrize("l2_flush", [False, True])
def test_modes_run_and_record_their_extras(mode: str, l2_flush: bool) -> None:
    from latbench.testing.backend_contract import TINY, _reference
    from latbench.timing import measure_group

    backend = TorchCudaBackend()
    target = backend.normalize(Target("torch-cuda", settings=(("mode", mode), ("l2_flush", l2_flush))))
    availability = backend.target_availability(target)
    if not availability.available:
        pytest.skip(availability.reason)
    spec = BlockSpec(LAYER, W)
    prepared = backend.prepare(spec, target)
    try:
        torch.testing.assert_close(
            torch.from_numpy(prepared.outputs()),
            torch.from_numpy(_reference(spec)),
            rtol=1e-3,
            atol=1e-3,
        )
        extras = prepared.extras()
        assert extras["cuda_graph"] == float(mode == "cuda-graph") and extras["l2_flush"] == float(l2_flush)
        assert ("compile_s" in extras) == (mode == "compile")
        (sampled,) = measure_group([prepared], TINY, timers=[prepared.timer()])
        assert all(t > 0 for t in sampled.times_s)
    finally:
        prepared.close()


@needs_gpu
def test_fingerprint_names_the_gpu() -> None:
    extras = TorchCudaBackend().fingerprint_extras()
    assert extras["gpu"] and extras["cuda"] == torch.version.cuda
    fp = collect(extras)
    assert fp.gpu == extras["gpu"]


def test_the_compile_limits_patch_covers_old_and_new_dynamo_names() -> None:
    new = SimpleNamespace(
        recompile_limit=8, accumulated_recompile_limit=256, fail_on_recompile_limit_hit=False
    )
    assert dynamo_limit_patch(new, "2.13") == {
        "recompile_limit": 1_000_000,
        "accumulated_recompile_limit": 1_000_000,
        "fail_on_recompile_limit_hit": True,
    }
    old = SimpleNamespace(cache_size_limit=8, accumulated_cache_size_limit=64)
    assert dynamo_limit_patch(old, "2.4") == {
        "cache_size_limit": 1_000_000,
        "accumulated_cache_size_limit": 1_000_000,
    }
    real = torch._dynamo.config
    with real.patch(dynamo_limit_patch(real, "this")):  # every name is one this torch knows
        assert real.recompile_limit == 1_000_000
    with pytest.raises(ConfigError, match="no known Dynamo recompile limit"):
        dynamo_limit_patch(SimpleNamespace(), "9.0")
