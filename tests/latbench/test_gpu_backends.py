"""The GPU targets (``onnxruntime-cuda``, ``onnxruntime-tensorrt``, ``tensorrt``): everything
that runs on the CPU (availability, fallback detection, the ONNX TensorRT consumes, its
optimization profiles, engine-cache keys, precision plans, profiler parsing); the backend
contract where a GPU target is available."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latbench.arch import Arch, LayerShape, Workload
from latbench.backends.base import Backend
from latbench.backends.onnxruntime_gpu import (
    CPU,
    CUDA,
    DISABLE_CPU_FALLBACK,
    TENSORRT,
    OnnxRuntimeCudaBackend,
    OnnxRuntimeTensorRTBackend,
    check_providers,
    load_error_line,
    session_providers,
)
from latbench.backends.registry import default_registry
from latbench.backends.tensorrt import (
    InputRange,
    Profile,
    TensorRTBackend,
    default_cache_dir,
    engine_cache_key,
    engine_cache_path,
    export_dynamic_onnx,
    gpu_precisions,
    graph_key,
    input_shapes,
    input_templates,
    layer_kind,
    layer_times,
    optimization_profiles,
    precision_flags,
)
from latbench.cli import main
from latbench.errors import ConfigError, TargetUnavailableError
from latbench.measurement import KernelTime
from latbench.models.torch_modules import build
from latbench.plans import QUICK
from latbench.specs import BlockSpec, EncoderSpec, OpSpec, layer_ops, with_workload
from latbench.target import Target
from latbench.testing.backend_contract import LAYER, SPECS, BackendContract, W
from latbench.testing.cli import assert_user_error

GPU_TARGETS = ("onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt")


def _ort_has(provider: str) -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return provider in ort.get_available_providers()


def _has_tensorrt() -> bool:
    return TensorRTBackend().availability().available


# --- availability -------------------------------------------------------------------------


@pytest.mark.skipif(_ort_has(CUDA), reason="this onnxruntime has the CUDA provider")
def test_ort_cuda_unavailable_without_onnxruntime_gpu_in_one_line() -> None:
    import onnxruntime as ort

    availability = OnnxRuntimeCudaBackend().availability()
    assert not availability.available and "\n" not in availability.reason
    assert availability.reason == (
        f"onnxruntime {ort.__version__} has no CUDAExecutionProvider: "
        "install onnxruntime-gpu instead of onnxruntime"
    )


@pytest.mark.skipif(_ort_has(TENSORRT), reason="this onnxruntime has the TensorRT provider")
def test_ort_tensorrt_unavailable_without_its_provider() -> None:
    availability = OnnxRuntimeTensorRTBackend().availability()
    assert not availability.available and "\n" not in availability.reason
    assert "has no TensorrtExecutionProvider: install onnxruntime-gpu" in availability.reason


def test_without_onnxruntime_the_ort_gpu_targets_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    for backend in (OnnxRuntimeCudaBackend(), OnnxRuntimeTensorRTBackend()):
        availability = backend.availability()
        assert not availability.available
        assert (
            availability.reason.startswith("onnxruntime is not installed") and "\n" not in availability.reason
        )


def test_without_tensorrt_the_target_is_unavailable_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError
    availability = TensorRTBackend().availability()
    assert not availability.available
    assert availability.reason == (
        "tensorrt is not installed (pip install tensorrt on a machine with an NVIDIA GPU)"
    )
    assert TensorRTBackend().fingerprint_extras() == {}


@pytest.mark.skipif(_has_tensorrt(), reason="tensorrt is available here")
def test_devices_json_lists_the_gpu_targets_with_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--json"]) == 0
    rows = {row["target"]: row for row in json.loads(capsys.readouterr().out)["targets"]}
    for name in GPU_TARGETS:
        assert rows[name]["device"] == "gpu"
        if name == "tensorrt" or not _ort_has(CUDA if name == "onnxruntime-cuda" else TENSORRT):
            assert rows[name]["available"] is False
            assert rows[name]["reason"] and "\n" not in rows[name]["reason"]
    assert "tensorrt is not installed" in rows["tensorrt"]["reason"]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("tensorrt", "tensorrt is not installed"),
        ("onnxruntime-cuda", "has no CUDAExecutionProvider"),
        ("onnxruntime-tensorrt", "has no TensorrtExecutionProvider"),
    ],
)
def test_profiling_an_unavailable_gpu_target_is_a_one_line_user_error(
    name: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if default_registry().create(name).availability().available:
        pytest.skip(f"{name} is available here")
    code = main(["profile", "--target", name, "--plan", "quick", "--dry-run"])
    assert_user_error((code, capsys.readouterr().err), f"target {name} is not available here", needle)


def test_settings_normalize_with_defaults_and_reject_unknown_ones() -> None:
    trt_target = TensorRTBackend().normalize(Target("tensorrt"))
    assert dict(trt_target.settings) == {
        "cache_dir": "",  # resolved when an engine is built, never at import
        "cuda_graph": False,
        "device_id": 0,
        "typing": "strong",
        "workspace_mib": 4096,
    }
    ort_trt = OnnxRuntimeTensorRTBackend().normalize(Target.parse("onnxruntime-tensorrt:fp16=true"))
    assert ort_trt.get("fp16") is True and ort_trt.get("cpu_fallback") is False
    with pytest.raises(ConfigError, match="unknown setting"):
        OnnxRuntimeCudaBackend().normalize(Target.parse("onnxruntime-cuda:fp16=true"))
    with pytest.raises(ConfigError, match="strong, weak"):
        TensorRTBackend().normalize(Target.parse("tensorrt:typing=loose"))


def test_importing_the_gpu_backends_imports_neither_tensorrt_nor_onnxruntime() -> None:
    code = """
import sys
from latbench.backends.registry import default_registry
from latbench.target import Target
for name in ("tensorrt", "onnxruntime-cuda", "onnxruntime-tensorrt"):
    default_registry().create(name).normalize(Target(name))
assert "tensorrt" not in sys.modules and "onnxruntime" not in sys.modules, sorted(sys.modules)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- silent CPU fallback is an error ---------------------------------------------------------


def test_check_providers_raises_on_a_fallback_to_the_cpu() -> None:
    with pytest.raises(
        TargetUnavailableError, match="did not run the session on CUDAExecutionProvider"
    ) as info:
        check_providers(CUDA, [CPU])
    assert "\n" not in str(info.value)
    with pytest.raises(TargetUnavailableError):
        check_providers(TENSORRT, [CUDA, CPU])  # TensorRT asked, CUDA got the graph
    with pytest.raises(TargetUnavailableError, match="uses none"):
        check_providers(CUDA, [])


def test_check_providers_passes_when_the_first_provider_is_the_requested_one() -> None:
    check_providers(CUDA, [CUDA, CPU])
    check_providers(TENSORRT, [TENSORRT, CUDA])


def test_the_cpu_provider_is_listed_only_when_cpu_fallback_is_allowed() -> None:
    assert session_providers(CUDA, {"device_id": "1"}, device_id=1, cpu_fallback=False) == [
        (CUDA, {"device_id": "1"})
    ]
    assert [p for p, _ in session_providers(TENSORRT, {}, device_id=0, cpu_fallback=False)] == [
        TENSORRT,
        CUDA,
    ]
    assert [p for p, _ in session_providers(CUDA, {}, device_id=0, cpu_fallback=True)] == [CUDA, CPU]


def test_a_load_error_names_the_cause_and_not_orts_fallback_retry() -> None:
    """ORT's Python layer retries a failed GPU session with the CPU provider added, which a
    strict session refuses, and raises the retry's error ``from`` the first one."""
    missing = RuntimeError(
        "\n/onnxruntime_src/onnxruntime/python/onnxruntime_pybind_state.cc:507 Please install TensorRT "
        "libraries as mentioned in the GPU requirements page\nFalling back to [...] and retrying."
    )
    try:
        try:
            raise missing
        except RuntimeError as first:
            raise ValueError(
                "Conflicting session configuration: explicitly added the CPU EP to the session, but "
                "also disabled fallback to the CPU EP via session configuration options."
            ) from first
    except ValueError as retried:
        line = load_error_line(retried)
    assert line.endswith("Please install TensorRT libraries as mentioned in the GPU requirements page")
    assert load_error_line(RuntimeError("no such file\nmore")) == "no such file"
    assert load_error_line(RuntimeError("")) == "RuntimeError"


def test_strict_sessions_disable_cpu_fallback_and_lenient_ones_do_not() -> None:
    backend = OnnxRuntimeCudaBackend()
    strict = backend.session_options(backend.normalize(Target("onnxruntime-cuda")))
    assert strict.get_session_config_entry(DISABLE_CPU_FALLBACK) == "1"
    lenient = backend.session_options(backend.normalize(Target.parse("onnxruntime-cuda:cpu_fallback=true")))
    assert lenient.get_session_config_entry(DISABLE_CPU_FALLBACK) == "0"


@pytest.mark.skipif(_ort_has(CUDA), reason="this onnxruntime has the CUDA provider")
def test_a_graph_that_would_run_on_the_cpu_fails_to_prepare_strict_or_lenient() -> None:
    """Real ORT (CPU build): the CUDA provider cannot load. Strict, ORT refuses the session
    (nodes on the CPU provider); lenient, ORT silently runs it on the CPU and
    ``check_providers`` refuses it. Neither is measured."""
    backend = OnnxRuntimeCudaBackend()
    for target_text, needle in [
        ("onnxruntime-cuda", "fallback to CPU EP has been explicitly disabled"),
        ("onnxruntime-cuda:cpu_fallback=true", "it uses CPUExecutionProvider"),
    ]:
        target = backend.normalize(Target.parse(target_text))
        with (
            pytest.warns(UserWarning, match="CUDAExecutionProvider"),
            pytest.raises(TargetUnavailableError) as info,
        ):
            backend.prepare(SPECS[0], target)
        assert needle in str(info.value) and "\n" not in str(info.value)


def test_the_ort_gpu_targets_refuse_low_precision_before_building() -> None:
    spec = with_workload(SPECS[0], Workload(1, 16, "fp16"))
    for backend in (OnnxRuntimeCudaBackend(), OnnxRuntimeTensorRTBackend()):
        with pytest.raises(ConfigError, match="does not run fp16"):
            backend.prepare(spec, backend.normalize(Target(backend.name)))


# --- the ONNX graph TensorRT consumes, and its optimization profiles ------------------------


def _one_of_each_kind(specs):  # type: ignore[no-untyped-def]
    seen = {}
    for spec in specs:
        seen.setdefault((spec.kind, getattr(spec, "op", ""), getattr(spec, "context", "")), spec)
    return list(seen.values())


QUICK_SPECS = QUICK.specs()
KINDS = _one_of_each_kind(QUICK_SPECS)


def test_input_templates_match_what_build_gives_for_every_spec_kind() -> None:
    specs = [*KINDS, OpSpec.for_layer("out_proj", LayerShape(64, 2, 128, head_size=64), W)]
    assert {(s.kind, getattr(s, "op", "")) for s in specs} >= {("op", o.op) for o, _ in layer_ops(LAYER, W)}
    for spec in specs:
        built = build(spec)
        assert tuple(built.input_names) == tuple(name for name, _ in input_templates(spec)), spec.label
        assert tuple(tuple(x.shape) for x in built.inputs) == tuple(s for _, s in input_shapes(spec)), (
            spec.label
        )


def _onnx_input_dims(model: bytes) -> dict[str, list[int | str]]:
    import onnx

    graph = onnx.load_from_string(model).graph
    return {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}


@pytest.mark.parametrize("spec", KINDS, ids=lambda s: s.label)
def test_the_onnx_export_has_dynamic_axes_named_as_the_profile_inputs(spec) -> None:  # type: ignore[no-untyped-def]
    model = export_dynamic_onnx(build(spec), spec)
    dims = _onnx_input_dims(model)
    (profile,) = optimization_profiles([spec])
    assert list(dims) == [r.name for r in profile.inputs]  # same names, same order
    for name, template in input_templates(spec):
        assert dims[name] == list(template)  # "batch" / "seq" where dynamic, sizes elsewhere
    for r in profile.inputs:
        static = [(d, m) for d, m in zip(dims[r.name], r.min, strict=True) if isinstance(d, int)]
        assert all(d == m for d, m in static)


@pytest.mark.parametrize(
    "spec", [KINDS[0], KINDS[-1], *[s for s in KINDS if s.kind == "op"][:3]], ids=lambda s: s.label
)
def test_one_dynamic_graph_runs_other_batches_and_lengths_like_torch(spec) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(export_dynamic_onnx(build(spec), spec), providers=[CPU])
    other = build(with_workload(spec, Workload(2, 24)))  # same weights: they do not depend on the workload
    got = session.run(None, {n: x.numpy() for n, x in zip(other.input_names, other.inputs, strict=True)})[0]
    with torch.no_grad():
        expected = other.module(*other.inputs).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_fp16_graphs_for_strongly_typed_networks_carry_fp16() -> None:
    import onnx

    spec = with_workload(SPECS[0], Workload(1, 16, "fp16"))
    graph = onnx.load_from_string(export_dynamic_onnx(build(spec), spec, "fp16")).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert {t.data_type for t in graph.initializer} == {onnx.TensorProto.FLOAT16}


def test_the_quick_plan_profiles_cover_every_spec_one_shape_each() -> None:
    profiles = optimization_profiles(QUICK_SPECS)
    assert profiles == optimization_profiles(list(reversed(QUICK_SPECS)))  # deterministic
    assert len(profiles) == len({(graph_key(s), s.workload.batch, s.workload.seq_len) for s in QUICK_SPECS})
    for spec in QUICK_SPECS:
        covering = [p for p in profiles if p.covers(spec)]
        assert len(covering) == 1, spec.label
        assert all(r.min == r.opt == r.max for r in covering[0].inputs)
    keys = [p.graph for p in profiles]
    assert keys == sorted(keys)


def test_a_covering_profile_spans_every_batch_and_length_of_a_graph() -> None:
    specs = [with_workload(SPECS[0], Workload(b, s)) for b, s in [(4, 16), (1, 64), (1, 16), (2, 32)]]
    specs.append(with_workload(SPECS[0], Workload(1, 16, "fp16")))  # another graph: its dtype
    exact = optimization_profiles(specs)
    assert len(exact) == 5
    fp32 = [p for p in exact if p.graph == graph_key(specs[0])]
    assert [p.inputs[0].opt for p in fp32] == [(1, 16, 64), (1, 64, 64), (2, 32, 64), (4, 16, 64)]
    covering = optimization_profiles(specs, mode="covering")
    assert len(covering) == 2
    (one,) = [p for p in covering if p.graph == graph_key(specs[0])]
    assert one.inputs == (InputRange("hidden_states", (1, 16, 64), (4, 16, 64), (4, 64, 64)),)
    assert all(one.covers(s) for s in specs[:4]) and not one.covers(specs[4])
    assert not one.covers(with_workload(SPECS[0], Workload(8, 16)))
    with pytest.raises(ConfigError, match="exact, covering"):
        optimization_profiles(specs, mode="median")


def test_profiles_of_two_input_graphs_keep_static_dims() -> None:
    spec = OpSpec.for_layer("attn_context", LAYER, Workload(2, 8))
    (profile,) = optimization_profiles([spec, with_workload(spec, Workload(1, 32))], mode="covering")
    assert profile.inputs == (
        InputRange("probs", (1, 4, 8, 8), (1, 4, 32, 32), (2, 4, 32, 32)),
        InputRange("v", (1, 4, 8, 16), (1, 4, 32, 16), (2, 4, 32, 16)),
    )
    assert Profile.covers(profile, spec)
    encoder = EncoderSpec(Arch.uniform(1, 64, 4, 128, vocab_size=100, max_positions=64), Workload(1, 8))
    assert optimization_profiles([encoder])[0].to_dict()["inputs"] == [
        {"name": "input_ids", "min": (1, 8), "opt": (1, 8), "max": (1, 8)}
    ]
    assert graph_key(encoder) == graph_key(with_workload(encoder, Workload(3, 16)))
    assert graph_key(BlockSpec(LAYER, W, "model")) != graph_key(BlockSpec(LAYER, W, "isolated"))


# --- engine cache ---------------------------------------------------------------------------

SETTINGS = {
    "precision": {"graph_dtype": "fp16"},
    "workspace_mib": 4096,
    "gpu": "NVIDIA H100",
    "profiles": [1],
}


def test_engine_cache_keys_are_stable_and_ignore_key_order() -> None:
    key = engine_cache_key(b"graph", SETTINGS, "10.13.0")
    assert key == engine_cache_key(b"graph", dict(reversed(list(SETTINGS.items()))), "10.13.0")
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_engine_cache_keys_change_with_each_setting(setting: str) -> None:
    changed = {**SETTINGS, setting: "other"}
    assert engine_cache_key(b"graph", changed, "10.13.0") != engine_cache_key(b"graph", SETTINGS, "10.13.0")


def test_engine_cache_keys_change_with_the_graph_and_tensorrt_version() -> None:
    key = engine_cache_key(b"graph", SETTINGS, "10.13.0")
    assert engine_cache_key(b"graph!", SETTINGS, "10.13.0") != key
    assert engine_cache_key(b"graph", SETTINGS, "11.0.0") != key
    assert engine_cache_key(b"graph", {**SETTINGS, "extra": 1}, "10.13.0") != key
    with pytest.raises(ConfigError, match="JSON"):
        engine_cache_key(b"graph", {"x": object()}, "10.13.0")


def test_engine_cache_paths_and_the_default_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = engine_cache_key(b"g", {}, "10")
    assert engine_cache_path(tmp_path, key) == tmp_path / f"{key}.engine"
    with pytest.raises(ValueError, match="not an engine cache key"):
        engine_cache_path(tmp_path, "../../etc/passwd")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "latbench" / "tensorrt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "latbench" / "tensorrt"


# --- precision: TensorRT 10 vs 11 ------------------------------------------------------------

H100 = gpu_precisions((9, 0))
T4 = gpu_precisions((7, 5))


def test_gpu_precisions_by_compute_capability() -> None:
    assert {"fp32", "fp16", "bf16", "int8"} == H100
    assert {"fp32", "fp16", "int8"} == T4
    assert gpu_precisions((5, 2)) == {"fp32"}


def test_strong_typing_on_tensorrt_10_sets_the_creation_flag_and_11_needs_none() -> None:
    for precision in ("fp32", "fp16", "bf16"):
        ten = precision_flags(precision, 10, H100)
        assert ten.strongly_typed and ten.network_flags == ("STRONGLY_TYPED",) and ten.builder_flags == ()
        assert ten.graph_dtype == precision  # the graph carries the precision
        eleven = precision_flags(precision, 11, H100)
        assert eleven.strongly_typed and eleven.network_flags == () and eleven.builder_flags == ()
        assert eleven.graph_dtype == precision
    assert precision_flags("fp32", 10, H100).clear_flags == ("TF32",)


def test_weak_typing_uses_builder_flags_on_tensorrt_10_and_is_refused_on_11() -> None:
    fp16 = precision_flags("fp16", 10, H100, strongly_typed=False)
    assert fp16.builder_flags == ("FP16",) and fp16.graph_dtype == "fp32" and not fp16.strongly_typed
    assert precision_flags("bf16", 10, H100, strongly_typed=False).builder_flags == ("BF16",)
    assert precision_flags("fp32", 10, H100, strongly_typed=False).builder_flags == ()
    with pytest.raises(ConfigError, match="TensorRT 11 removed weakly typed"):
        precision_flags("fp16", 11, H100, strongly_typed=False)


def test_precisions_the_gpu_or_the_graph_cannot_give_are_refused() -> None:
    with pytest.raises(ConfigError, match="no fast bf16"):
        precision_flags("bf16", 10, T4)
    for major in (10, 11):
        with pytest.raises(ConfigError, match="explicit Q/DQ"):
            precision_flags("int8", major, H100)
    with pytest.raises(TargetUnavailableError, match="TensorRT 8 is not supported"):
        precision_flags("fp32", 8, H100)


def test_tensorrt_refuses_int8_specs_before_building() -> None:
    backend = TensorRTBackend()
    with pytest.raises(ConfigError, match="supported precisions: fp32, fp16, bf16"):
        backend.prepare(
            with_workload(SPECS[0], Workload(1, 16, "int8")), backend.normalize(Target("tensorrt"))
        )


# --- TensorRT profiler records ----------------------------------------------------------------


def test_layer_times_average_runs_and_merge_the_copies_of_a_layer() -> None:
    per_run = [
        ("{ForeignNode[/layers.0/qkv/MatMul.../layers.0/norm2/Add_1]}", 0.30),
        ("{ForeignNode[/layers.1/qkv/MatMul.../layers.1/norm2/Add_1]}", 0.34),
        ("Reformatting CopyNode for Input Tensor 0 to /layers.0/qkv/MatMul", 0.02),
    ]
    records = per_run * 4  # 4 runs of a 2-copy layer stack
    times = layer_times(records, runs=4, instances=2)
    assert [k.op_type for k in times] == [
        "{ForeignNode[/layers.*/qkv/MatMul.../layers.*/norm2/Add_1]}",
        "Reformatting CopyNode for Input Tensor 0 to /layers.*/qkv/MatMul",
    ]
    assert times[0].count == 1 and times[0].time_s == pytest.approx((0.30 + 0.34) * 1e-3 / 2)
    assert times[1] == KernelTime(times[1].op_type, 1, pytest.approx(0.02 * 1e-3 / 2))
    assert layer_times([], runs=3) == ()
    assert layer_kind("/embeddings/Gather") == "/embeddings/Gather"
    with pytest.raises(ValueError, match="runs"):
        layer_times(records, runs=0)


def test_layer_times_count_a_layer_run_several_times_per_inference() -> None:
    records = [("/attn/Softmax", 0.1), ("/attn/Softmax", 0.1), ("/out/MatMul", 0.5)] * 2
    softmax, matmul = sorted(layer_times(records, runs=2), key=lambda k: k.op_type)
    assert softmax.count == 2 and softmax.time_s == pytest.approx(0.2e-3)
    assert matmul.count == 1 and matmul.time_s == pytest.approx(0.5e-3)


# --- the contract, where a GPU target runs ------------------------------------------------


class TestOnnxRuntimeCuda(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return OnnxRuntimeCudaBackend()


class TestOnnxRuntimeTensorRT(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return OnnxRuntimeTensorRTBackend()


class TestTensorRT(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return TensorRTBackend()


@pytest.mark.skipif(not _has_tensorrt(), reason="needs tensorrt and a CUDA GPU")
def test_tensorrt_engines_are_cached_and_report_fused_layers(tmp_path: Path) -> None:
    backend = TensorRTBackend()
    target = backend.normalize(Target.parse(f"tensorrt:cache_dir={tmp_path}"))
    spec = BlockSpec(LAYER, W, "model")
    first = backend.prepare(spec, target)
    assert first.extras()["trt_engine_cached"] == 0.0
    kernels = first.kernels(runs=3)
    first.close()
    assert kernels and all(k.time_s > 0 for k in kernels)
    assert len(list(tmp_path.glob("*.engine"))) == 1 and list(tmp_path.glob("timing-*.cache"))
    second = backend.prepare(spec, target)
    assert second.extras()["trt_engine_cached"] == 1.0
    second.close()


@pytest.mark.skipif(not _has_tensorrt(), reason="needs tensorrt and a CUDA GPU")
def test_tensorrt_cuda_graph_replay_gives_the_same_output() -> None:
    backend = TensorRTBackend()
    spec = SPECS[0]
    plain = backend.prepare(spec, backend.normalize(Target("tensorrt")))
    graphed = backend.prepare(spec, backend.normalize(Target.parse("tensorrt:cuda_graph=true")))
    np.testing.assert_allclose(graphed.outputs(), plain.outputs(), rtol=1e-5, atol=1e-6)
    timer = graphed.timer()
    assert timer is not None and timer(graphed, 5) > 0
    plain.close()
    graphed.close()
