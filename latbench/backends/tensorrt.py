"""``tensorrt``: a TensorRT engine built from latbench's ONNX export, timed on the GPU.

Needs ``pip install tensorrt`` (10.x or 11.x) and torch with CUDA (device buffers, streams,
CUDA events and CUDA graphs come from torch, so no cuda-python is needed).

* **Graph.** The spec's torch module exported to ONNX with dynamic ``batch`` and ``seq``
  axes (:func:`input_templates`, :func:`export_dynamic_onnx`), in the spec's precision
  (fp16/bf16 graphs for strongly typed networks, see :func:`precision_flags`).
* **Optimization profiles** (:func:`optimization_profiles`): by default one profile per
  distinct (batch, seq) with min = opt = max. TensorRT tunes its kernels for a profile's
  ``opt`` shape; a single covering profile (``mode="covering"``, min/max = the plan's
  extremes, opt = the largest) would time every other shape with kernels chosen for
  another one, so a latency table would measure the profile and not the shape, unlike a
  static-shape deployment. ``prepare`` builds one engine per spec with its exact profile.
* **Engine cache.** Engines are stored under ``cache_dir`` (default
  ``~/.cache/latbench/tensorrt``, ``$XDG_CACHE_HOME`` honoured, resolved when an engine is
  built) as ``<sha256>.engine``, keyed by :func:`engine_cache_key` over the graph bytes,
  every build setting (precision plan, profiles, workspace, GPU and its compute capability)
  and the TensorRT version. A timing cache per TensorRT version and GPU sits beside them.
* **Timing.** A call is ``execute_async_v3`` on a torch CUDA stream followed by a stream
  synchronize; the protocol times back-to-back launches with CUDA events on that stream
  (``cuda_event_timer``). With ``cuda_graph=true`` the enqueue is captured once into a CUDA
  graph and a call replays it (no per-call launch overhead).
* **Per-layer times** come from TensorRT's ``IProfiler`` (:func:`layer_times`): TensorRT's
  fused layers (``{ForeignNode[...]}``, ``... + ...``), not latbench's operators.

Settings: ``cuda_graph``, ``cache_dir``, ``workspace_mib``, ``typing`` (``strong``: the
graph carries the precision; ``weak``: fp32 graph plus TensorRT 10's FP16/BF16 builder
flags, which TensorRT 11 removed), ``device_id``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from latbench.backends.base import Availability, Backend, Prepared, Setting
from latbench.errors import ConfigError, TargetUnavailableError
from latbench.keys import content_key
from latbench.measurement import KernelTime
from latbench.specs import BlockSpec, EncoderSpec, OpSpec, Spec
from latbench.target import Target
from latbench.timing import Timer

INSTALL_HINT = "pip install tensorrt on a machine with an NVIDIA GPU"
SUPPORTED_MAJORS = (10, 11)
BATCH, SEQ = "batch", "seq"
Dim = int | str  # a fixed size, or the name of a dynamic axis (BATCH, SEQ)

# --- the ONNX graph TensorRT consumes ---------------------------------------------------------


def input_templates(spec: Spec) -> tuple[tuple[str, tuple[Dim, ...]], ...]:
    """The graph inputs of ``spec`` (names as ``torch_modules.build`` gives them) with their
    shapes, ``"batch"`` and ``"seq"`` standing for the dynamic axes."""
    if isinstance(spec, EncoderSpec):
        return (("input_ids", (BATCH, SEQ)),)
    if isinstance(spec, BlockSpec):
        return (("hidden_states", (BATCH, SEQ, spec.layer.hidden)),)
    if not isinstance(spec, OpSpec):
        raise TypeError(f"no graph inputs for {type(spec).__name__}")
    h, a, f = spec.hidden, spec.heads, spec.ffn
    op = spec.op
    if op == "embedding":
        return (("input_ids", (BATCH, SEQ)),)
    if op in ("qkv_proj", "ffn_up_gelu"):
        return (("x", (BATCH, SEQ, h)),)
    if op == "out_proj":
        return (("x", (BATCH, SEQ, spec.width)),)
    if op == "ffn_down":
        return (("x", (BATCH, SEQ, f)),)
    if op == "add_layernorm":
        return (("x", (BATCH, SEQ, h)), ("residual", (BATCH, SEQ, h)))
    if op == "attn_scores":
        return (("q", (BATCH, a, SEQ, h // a)), ("k", (BATCH, a, SEQ, h // a)))
    if op == "softmax":
        return (("scores", (BATCH, a, SEQ, SEQ)),)
    if op == "attn_context":
        return (("probs", (BATCH, a, SEQ, SEQ)), ("v", (BATCH, a, SEQ, h // a)))
    raise AssertionError(f"unhandled operator {op}")


def input_shapes(spec: Spec) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The concrete input shapes of ``spec`` (its workload's batch and sequence length)."""
    sizes = {BATCH: spec.workload.batch, SEQ: spec.workload.seq_len}
    return tuple(
        (name, tuple(sizes[d] if isinstance(d, str) else d for d in dims))
        for name, dims in input_templates(spec)
    )


def dynamic_axes(spec: Spec) -> dict[str, dict[int, str]]:
    """``torch.onnx.export``'s ``dynamic_axes`` for ``spec``: every batch and seq axis named."""
    return {
        name: {i: d for i, d in enumerate(dims) if isinstance(d, str)} for name, dims in input_templates(spec)
    }


def graph_key(spec: Spec) -> str:
    """What identifies a spec's graph apart from its batch and sequence length (the same
    module and weights, so the same dynamic-shape ONNX graph)."""
    data = spec.to_dict()
    data["workload"] = {"precision": spec.workload.precision}
    return content_key(data)


def export_dynamic_onnx(built: Any, spec: Spec, dtype: str = "fp32") -> bytes:
    """ONNX of ``built`` (``torch_modules.build(spec)``) with dynamic batch/seq axes, its
    floating-point weights and inputs cast to ``dtype`` (a strongly typed network's precision):
    one graph serves every (batch, seq) of an optimization profile."""
    import torch

    from latbench.models.onnx_export import export_onnx

    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    return export_onnx(built, dynamic_axes=dynamic_axes(spec), dtype=torch_dtype)


# --- optimization profiles ----------------------------------------------------------------


@dataclass(frozen=True)
class InputRange:
    """An input's min/opt/max shapes in one optimization profile."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def covers(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max, strict=True)
        )


@dataclass(frozen=True)
class Profile:
    """One TensorRT optimization profile of the graph ``graph`` (see :func:`graph_key`)."""

    graph: str
    inputs: tuple[InputRange, ...]

    def covers(self, spec: Spec) -> bool:
        shapes = dict(input_shapes(spec))
        return (
            graph_key(spec) == self.graph
            and set(shapes) == {r.name for r in self.inputs}
            and all(r.covers(shapes[r.name]) for r in self.inputs)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "graph": self.graph,
            "inputs": [{"name": r.name, "min": r.min, "opt": r.opt, "max": r.max} for r in self.inputs],
        }


PROFILE_MODES = ("exact", "covering")


def optimization_profiles(specs: Iterable[Spec], mode: str = "exact") -> list[Profile]:
    """Optimization profiles covering ``specs``, sorted by graph, then batch and seq.

    ``exact``: one profile per graph and distinct (batch, seq), min = opt = max (see the
    module docstring for why). ``covering``: one profile per graph from its smallest to its
    largest batch and sequence length, opt at the largest (batch, seq) of the specs.
    """
    if mode not in PROFILE_MODES:
        raise ConfigError(f"profile mode must be one of {', '.join(PROFILE_MODES)}, got {mode!r}")
    graphs: dict[str, tuple[Spec, set[tuple[int, int]]]] = {}
    for spec in specs:
        key = graph_key(spec)
        graphs.setdefault(key, (spec, set()))[1].add((spec.workload.batch, spec.workload.seq_len))
    profiles: list[Profile] = []
    for key in sorted(graphs):
        spec, sizes = graphs[key]
        if mode == "exact":
            for b, s in sorted(sizes):
                profiles.append(Profile(key, _ranges(spec, (b, s), (b, s), (b, s))))
        else:
            lo = (min(b for b, _ in sizes), min(s for _, s in sizes))
            hi = (max(b for b, _ in sizes), max(s for _, s in sizes))
            opt = max(sizes, key=lambda bs: (bs[0] * bs[1], bs))
            profiles.append(Profile(key, _ranges(spec, lo, opt, hi)))
    return profiles


def _ranges(
    spec: Spec, lo: tuple[int, int], opt: tuple[int, int], hi: tuple[int, int]
) -> tuple[InputRange, ...]:
    def shape(dims: tuple[Dim, ...], bs: tuple[int, int]) -> tuple[int, ...]:
        sizes = {BATCH: bs[0], SEQ: bs[1]}
        return tuple(sizes[d] if isinstance(d, str) else d for d in dims)

    return tuple(
        InputRange(name, shape(dims, lo), shape(dims, opt), shape(dims, hi))
        for name, dims in input_templates(spec)
    )


# --- engine cache ---------------------------------------------------------------------------


def engine_cache_key(onnx_bytes: bytes, settings: Mapping[str, Any], trt_version: str) -> str:
    """SHA-256 (hex) over the canonical JSON of ``settings`` and the TensorRT version, then
    the graph bytes: an engine is reused only for the same graph, settings and TensorRT."""
    try:
        header = json.dumps(
            {"settings": dict(settings), "tensorrt": str(trt_version)}, sort_keys=True, separators=(",", ":")
        )
    except TypeError as exc:
        raise ConfigError(f"engine settings must be JSON values: {exc}") from exc
    digest = hashlib.sha256()
    digest.update(len(header).to_bytes(8, "little"))
    digest.update(header.encode())
    digest.update(onnx_bytes)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/latbench/tensorrt`` (``~/.cache/...``), resolved when called."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "latbench" / "tensorrt"


def engine_cache_path(cache_dir: str | os.PathLike[str], key: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", key):
        raise ValueError(f"not an engine cache key: {key!r}")
    return Path(cache_dir) / f"{key}.engine"


# --- precision: TensorRT 10 vs 11 ------------------------------------------------------------
#
# What NVIDIA's migration guide ("Migrating from TensorRT 10.x to 11.x", Python API reference,
# docs.nvidia.com/deeplearning/tensorrt/latest/api/migration/) says: TensorRT 11 removes weak
# typing. BuilderFlag.FP16 and BuilderFlag.BF16 are gone (replacement: a strongly typed network
# whose ONNX carries the types, e.g. converted by ModelOpt AutoCast); BuilderFlag.INT8/FP8/INT4/
# FP4, the INT8 calibrator and quantization flags are gone (replacement: explicit Q/DQ nodes in
# the graph); OBEY/PREFER_PRECISION_CONSTRAINTS and DIRECT_IO are gone; platform_has_fast_fp16/
# int8 are gone. Every 11.x network is strongly typed and the STRONGLY_TYPED creation flag is
# accepted but ignored; on 10.x (weak typing deprecated since 10.12) it must be set to opt in.
# Not verified here (no TensorRT on this machine): whether BuilderFlag.TF32 survives in 11.x
# (it is not in the removed list), so it is cleared only where the attribute exists.


@dataclass(frozen=True)
class PrecisionPlan:
    """How to build an engine of one precision on one TensorRT major version."""

    graph_dtype: str  # the dtype of the exported ONNX graph (weights and float inputs)
    strongly_typed: bool
    network_flags: tuple[str, ...]  # trt.NetworkDefinitionCreationFlag names to set
    builder_flags: tuple[str, ...]  # trt.BuilderFlag names to set
    clear_flags: tuple[str, ...]  # trt.BuilderFlag names to clear (where they exist)

    def to_dict(self) -> dict[str, Any]:
        return {
            "graph_dtype": self.graph_dtype,
            "strongly_typed": self.strongly_typed,
            "network_flags": list(self.network_flags),
            "builder_flags": list(self.builder_flags),
            "clear_flags": list(self.clear_flags),
        }


def gpu_precisions(compute_capability: tuple[int, int]) -> frozenset[str]:
    """The precisions with fast kernels on a GPU of ``compute_capability``: FP16 from sm_53,
    INT8 from sm_61, BF16 from sm_80 (Ampere)."""
    cc = tuple(compute_capability)
    found = {"fp32"}
    if cc >= (5, 3):
        found.add("fp16")
    if cc >= (6, 1):
        found.add("int8")
    if cc >= (8, 0):
        found.add("bf16")
    return frozenset(found)


def precision_flags(
    precision: str, trt_major_version: int, capabilities: Iterable[str], *, strongly_typed: bool = True
) -> PrecisionPlan:
    """The build plan for ``precision`` on TensorRT ``trt_major_version`` for a GPU with
    ``capabilities`` (:func:`gpu_precisions`); ``ConfigError`` (one line) where it cannot be
    built. fp32 clears TF32, so fp32 means IEEE fp32 matmuls (as torch's default)."""
    if trt_major_version not in SUPPORTED_MAJORS:
        raise TargetUnavailableError(
            f"TensorRT {trt_major_version} is not supported; latbench builds with TensorRT 10 or 11"
        )
    if precision == "int8":
        raise ConfigError(
            "tensorrt does not run int8 specs: TensorRT needs explicit Q/DQ quantization in the graph "
            "(TensorRT 11 removed implicit INT8 calibration) and latbench's ONNX export has none"
        )
    if precision not in ("fp32", "fp16", "bf16"):
        raise ConfigError(f"tensorrt does not run {precision}; supported precisions: fp32, fp16, bf16")
    if precision not in set(capabilities):
        raise ConfigError(
            f"this GPU has no fast {precision} kernels, so TensorRT cannot build a {precision} engine"
        )
    clear = ("TF32",)
    if strongly_typed:
        network = ("STRONGLY_TYPED",) if trt_major_version == 10 else ()  # always on in 11.x
        return PrecisionPlan(precision, True, network, (), clear)
    if trt_major_version >= 11:
        raise ConfigError(
            "TensorRT 11 removed weakly typed networks (BuilderFlag.FP16/BF16/INT8); use typing=strong"
        )
    builder = {"fp32": (), "fp16": ("FP16",), "bf16": ("BF16",)}[precision]
    return PrecisionPlan("fp32", False, (), builder, clear)


# --- per-layer times ----------------------------------------------------------------------

_COPY_INDEX = re.compile(r"layers\.\d+")


def layer_kind(name: str) -> str:
    """A TensorRT layer name with the copy index of ``layers.N`` replaced by ``*``, so the
    same fused layer of every copy of a layer stack (or encoder layer) is one kind."""
    return _COPY_INDEX.sub("layers.*", name)


def layer_times(
    records: Iterable[tuple[str, float]], runs: int, instances: int = 1
) -> tuple[KernelTime, ...]:
    """Per-layer time per spec instance from ``(layer name, ms)`` profiler records of
    ``runs`` inferences of ``instances`` spec instances each, slowest first."""
    if runs < 1 or instances < 1:
        raise ValueError("runs and instances must be >= 1")
    total_ms: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for name, ms in records:
        kind = layer_kind(str(name))
        total_ms[kind] += float(ms)
        count[kind] += 1
    per = runs * instances
    return tuple(
        KernelTime(op_type=kind, count=max(1, round(count[kind] / per)), time_s=total_ms[kind] * 1e-3 / per)
        for kind in sorted(total_ms, key=lambda k: (-total_ms[k], k))
    )


# --- the backend ----------------------------------------------------------------------------


class TensorRTError(RuntimeError):
    """TensorRT failed on one spec (parse, build, shapes, enqueue): the protocol records that
    spec as failed and goes on with the others, as for any backend's runtime error."""


class TensorRTBackend(Backend):
    name = "tensorrt"
    device = "gpu"
    description = "NVIDIA TensorRT engine built from the ONNX export (needs tensorrt and a CUDA GPU)"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "device_id": Setting(int, 0, "CUDA device index"),
        "cuda_graph": Setting(bool, False, "replay the enqueue as a CUDA graph"),
        "cache_dir": Setting(str, "", "engine and timing cache directory [~/.cache/latbench/tensorrt]"),
        "workspace_mib": Setting(int, 4096, "builder workspace limit in MiB"),
        "typing": Setting(
            str,
            "strong",
            "strong: the graph carries the precision; weak: TensorRT 10 flags",
            ("strong", "weak"),
        ),
    }
    PRECISIONS = ("fp32", "fp16", "bf16")

    def availability(self) -> Availability:
        try:
            import tensorrt as trt
        except ImportError:
            return Availability(False, f"tensorrt is not installed ({INSTALL_HINT})")
        except Exception as exc:  # a broken install must not break `latbench devices`
            return Availability(False, f"tensorrt cannot be imported ({type(exc).__name__}: {exc})")
        major = _major(trt.__version__)
        if major not in SUPPORTED_MAJORS:
            return Availability(False, f"tensorrt {trt.__version__} is not supported (10.x or 11.x)")
        try:
            import torch

            if not torch.cuda.is_available():
                return Availability(
                    False, f"tensorrt {trt.__version__} is installed but torch finds no CUDA GPU"
                )
            gpu = torch.cuda.get_device_name(0)
        except ImportError:
            return Availability(False, "tensorrt needs torch with CUDA for device buffers and streams")
        return Availability(True, f"tensorrt {trt.__version__}, {gpu}")

    def target_availability(self, target: Target) -> Availability:
        availability = self.availability()
        if not availability.available:
            return availability
        import torch

        device_id = int(target.get("device_id", 0))  # type: ignore[arg-type]
        if device_id >= torch.cuda.device_count():
            return Availability(False, f"no CUDA device {device_id} ({torch.cuda.device_count()} here)")
        return availability

    def fingerprint_extras(self) -> dict[str, Any]:
        try:
            import tensorrt as trt
            import torch

            if not torch.cuda.is_available():
                return {}
            return {"gpu": torch.cuda.get_device_name(0), "tensorrt": trt.__version__}
        except Exception:
            return {}

    def prepare(self, spec: Spec, target: Target) -> Prepared:  # pragma: no cover - needs a GPU
        self.check_spec(spec)
        import tensorrt as trt
        import torch

        from latbench.models.torch_modules import build

        device_id = int(target.get("device_id"))  # type: ignore[arg-type]
        device = torch.device("cuda", device_id)
        # TensorRT builds, deserializes and runs on the *current* CUDA device, whatever device
        # the buffers and the stream are on: make device_id current for this process's thread.
        torch.cuda.set_device(device)
        capability = torch.cuda.get_device_capability(device)
        plan = precision_flags(
            spec.workload.precision,
            _major(trt.__version__),
            gpu_precisions(capability),
            strongly_typed=target.get("typing") == "strong",
        )
        start = time.perf_counter()
        built = build(spec)
        onnx_bytes = export_dynamic_onnx(built, spec, plan.graph_dtype)
        profiles = optimization_profiles([spec])
        gpu = torch.cuda.get_device_name(device)
        settings = {
            "precision": plan.to_dict(),
            "profiles": [p.to_dict() for p in profiles],
            "workspace_mib": int(target.get("workspace_mib")),  # type: ignore[arg-type]
            "gpu": gpu,
            "compute_capability": list(capability),
        }
        cache_dir = Path(str(target.get("cache_dir") or "") or default_cache_dir()).expanduser()
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = engine_cache_path(cache_dir, engine_cache_key(onnx_bytes, settings, trt.__version__))
        logger = trt.Logger(trt.Logger.WARNING)
        cached = path.exists()
        build_s = 0.0
        if cached:
            serialized = path.read_bytes()
        else:
            build_start = time.perf_counter()
            timing_cache = cache_dir / f"timing-{trt.__version__}-{re.sub(r'[^A-Za-z0-9]+', '_', gpu)}.cache"
            serialized = _build_engine(trt, logger, onnx_bytes, plan, profiles, settings, timing_cache, spec)
            build_s = time.perf_counter() - build_start
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(serialized)
            os.replace(tmp, path)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(serialized)
        if engine is None:
            raise TensorRTError(f"TensorRT could not deserialize the engine of {spec.label} ({path})")
        prepared = TrtPrepared(
            trt, runtime, engine, built, device, bool(target.get("cuda_graph")), plan.graph_dtype
        )
        prepared.build_time_s = time.perf_counter() - start
        prepared._extras = {"trt_build_s": build_s, "trt_engine_cached": float(cached)}
        return prepared


def _build_engine(  # type: ignore[no-untyped-def]  # pragma: no cover - needs TensorRT
    trt, logger, onnx_bytes: bytes, plan: PrecisionPlan, profiles, settings, timing_cache: Path, spec
) -> bytes:
    builder = trt.Builder(logger)
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTError(f"TensorRT cannot parse the ONNX graph of {spec.label}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings["workspace_mib"]) << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer names for the profiler
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    for name in plan.clear_flags:
        if hasattr(trt.BuilderFlag, name):
            config.clear_flag(getattr(trt.BuilderFlag, name))
    for profile in profiles:
        trt_profile = builder.create_optimization_profile()
        for r in profile.inputs:
            trt_profile.set_shape(r.name, r.min, r.opt, r.max)
        config.add_optimization_profile(trt_profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    # A cache from another device or TensorRT build is refused: start an empty one then
    # (it replaces the file below).
    if not config.set_timing_cache(cache, ignore_mismatch=False) and not config.set_timing_cache(
        config.create_timing_cache(b""), ignore_mismatch=False
    ):
        raise TensorRTError(f"TensorRT refused an empty timing cache while building {spec.label}")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTError(f"TensorRT could not build an engine for {spec.label} (see its log)")
    tmp = timing_cache.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    os.replace(tmp, timing_cache)
    return bytes(serialized)


class TrtPrepared(Prepared):  # pragma: no cover - needs a GPU
    def __init__(self, trt, runtime, engine, built, device, cuda_graph: bool, dtype: str) -> None:  # type: ignore[no-untyped-def]
        import torch

        self.trt, self.runtime, self.engine = trt, runtime, engine
        self.instances_per_call = built.instances_per_call
        self._extras: dict[str, float] = {}
        self.stream = torch.cuda.Stream(device)
        self.context = engine.create_execution_context()
        self.context.set_optimization_profile_async(0, self.stream.cuda_stream)
        torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        self.buffers: dict[str, Any] = {}
        for name, x in zip(built.input_names, built.inputs, strict=True):
            value = (x.to(torch_dtype) if x.is_floating_point() else x).to(device).contiguous()
            self.buffers[name] = value
            if not self.context.set_input_shape(name, tuple(value.shape)):
                raise TensorRTError(f"TensorRT refused input {name} of shape {tuple(value.shape)}")
        dtypes = {
            trt.float32: torch.float32,
            trt.float16: torch.float16,
            trt.bfloat16: torch.bfloat16,
            trt.int32: torch.int32,
            trt.int64: torch.int64,
        }
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                shape = tuple(self.context.get_tensor_shape(name))
                self.output_name = name
                self.buffers[name] = torch.empty(
                    shape, dtype=dtypes[engine.get_tensor_dtype(name)], device=device
                )
        for name, value in self.buffers.items():
            if not self.context.set_tensor_address(name, value.data_ptr()):
                raise TensorRTError(f"TensorRT refused the address of tensor {name}")
        self.graph = None
        # The inputs were copied on torch's current stream; TensorRT runs on self.stream.
        self.stream.wait_stream(torch.cuda.current_stream(device))
        self._enqueue()  # shape-dependent setup happens in the first enqueue, not in a capture
        self.stream.synchronize()
        if cuda_graph:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=self.stream):
                self._enqueue()
            self.stream.synchronize()

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise TensorRTError("TensorRT execute_async_v3 failed (see its log)")

    def _launch(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._enqueue()

    def __call__(self) -> None:
        self._launch()
        self.stream.synchronize()

    def timer(self) -> Timer | None:
        from latbench.backends.cuda_events import torch_stream_timer

        return torch_stream_timer(self._launch, self.stream)

    def outputs(self) -> np.ndarray:
        self()
        return self.buffers[self.output_name].float().cpu().numpy()

    def kernels(self, runs: int = 20) -> tuple[KernelTime, ...]:
        trt = self.trt
        records: list[tuple[str, float]] = []

        class Recorder(trt.IProfiler):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.IProfiler.__init__(self)

            def report_layer_time(self, layer_name: str, ms: float) -> None:
                records.append((layer_name, ms))

        warmup = 3
        self.context.profiler = Recorder()
        try:
            for i in range(warmup + runs):
                if i == warmup:
                    records.clear()
                self._enqueue()  # never the CUDA graph: the profiler reports per enqueue
                self.stream.synchronize()
        finally:
            self.context.profiler = None
        return layer_times(records, runs, self.instances_per_call)

    def extras(self) -> Mapping[str, float]:
        return dict(self._extras)

    def close(self) -> None:
        self.graph = None
        self.context = None
        self.engine = None
        self.buffers = {}


def _major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return 0
