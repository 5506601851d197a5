from __future__ import annotations

import json

import pytest

from latbench.backends.base import Availability, Backend
from latbench.backends.onnxruntime_cpu import OnnxRuntimeCPUBackend, aggregate_kernel_events
from latbench.backends.registry import Registry, default_registry
from latbench.backends.torch_cpu import TorchCPUBackend
from latbench.errors import ConfigError, TargetUnavailableError
from latbench.specs import BlockSpec
from latbench.target import Target
from latbench.testing.backend_contract import LAYER, SPECS, BackendContract, W


class TestTorchCPU(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return TorchCPUBackend()


class TestOnnxRuntimeCPU(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return OnnxRuntimeCPUBackend()


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_ort_optimization_levels_all_run(level: str) -> None:
    backend = OnnxRuntimeCPUBackend()
    target = backend.normalize(Target.parse(f"onnxruntime-cpu:opt_level={level},threads=1"))
    prepared = backend.prepare(SPECS[0], target)
    prepared()
    prepared.close()


def test_ort_rejects_an_unknown_optimization_level() -> None:
    with pytest.raises(ConfigError, match=r"opt_level.*disable, basic, extended, all"):
        OnnxRuntimeCPUBackend().normalize(Target.parse("onnxruntime-cpu:opt_level=max"))


def test_ort_profiler_reports_the_fused_kernels_of_a_block() -> None:
    backend = OnnxRuntimeCPUBackend()
    target = backend.normalize(Target.parse("onnxruntime-cpu:opt_level=all,threads=1"))
    prepared = backend.prepare(BlockSpec(LAYER, W, "model"), target)
    kernels = {k.op_type: k for k in prepared.kernels(runs=3)}
    prepared.close()
    # In the deployed form (dynamic shapes, as exported models are) ORT fuses the FFN's
    # bias add and GELU into BiasGelu and the scaled Q·Kᵀ into FusedMatMul: once per layer
    assert kernels["BiasGelu"].count == 1 and kernels["FusedMatMul"].count == 1
    assert "Erf" not in kernels and kernels["LayerNormalization"].count == 2
    unfused = backend.normalize(Target.parse("onnxruntime-cpu:opt_level=disable,threads=1"))
    prepared = backend.prepare(BlockSpec(LAYER, W, "model"), unfused)
    names = {k.op_type for k in prepared.kernels(runs=3)}
    prepared.close()
    assert not names & {"BiasGelu", "FusedMatMul"} and "Erf" in names


def test_kernel_events_are_assigned_to_runs_and_warmup_is_dropped() -> None:
    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},
        {"cat": "Node", "name": "a_kernel_time", "ts": 10, "dur": 999, "args": {"op_name": "MatMul"}},
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 100},
        {"cat": "Node", "name": "a_kernel_time", "ts": 210, "dur": 40, "args": {"op_name": "MatMul"}},
        {"cat": "Node", "name": "b_kernel_time", "ts": 260, "dur": 10, "args": {"op_name": "Softmax"}},
        {"cat": "Node", "name": "a_fence_before", "ts": 209, "dur": 0, "args": {"op_name": "MatMul"}},
        {"cat": "Session", "name": "model_run", "ts": 400, "dur": 100},
        {"cat": "Node", "name": "a_kernel_time", "ts": 410, "dur": 60, "args": {"op_name": "MatMul"}},
        {"cat": "Node", "name": "b_kernel_time", "ts": 460, "dur": 10, "args": {"op_name": "Softmax"}},
    ]
    kernels = aggregate_kernel_events(json.loads(json.dumps(events)), skip_runs=1, instances=1)
    assert [(k.op_type, k.count) for k in kernels] == [("MatMul", 1), ("Softmax", 1)]
    assert kernels[0].time_s == pytest.approx(50e-6)
    assert aggregate_kernel_events(events, skip_runs=5, instances=1) == ()


def test_registry_lists_builtins_and_gives_one_line_errors() -> None:
    registry = default_registry()
    assert {"torch-cpu", "onnxruntime-cpu"} <= set(registry.names())
    with pytest.raises(TargetUnavailableError, match=r"unknown target 'tpu-v9'.*known targets: "):
        registry.create("tpu-v9")


class _Unavailable(TorchCPUBackend):
    name = "fake-gpu"

    def availability(self) -> Availability:
        return Availability(False, "no CUDA device")


def test_registry_copy_takes_fakes_without_touching_the_default() -> None:
    registry = default_registry().copy()
    registry.register("fake-gpu", _Unavailable)
    assert "fake-gpu" in registry and "fake-gpu" not in default_registry()
    with pytest.raises(TargetUnavailableError, match="fake-gpu is not available here: no CUDA device"):
        registry.get_available("fake-gpu")


def test_registry_reports_a_backend_whose_package_is_missing() -> None:
    registry = Registry({"ghost": "latbench.backends.no_such_module:Ghost"})
    availability = registry.create("ghost").availability()
    assert not availability.available and "cannot import" in availability.reason


def test_a_backend_missing_a_method_fails_at_instantiation() -> None:
    class Incomplete(Backend):
        name = "incomplete"

        def availability(self) -> Availability:
            return Availability(True, "")

    with pytest.raises(TypeError, match="prepare"):
        Incomplete()  # type: ignore[abstract]
