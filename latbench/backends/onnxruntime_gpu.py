"""``onnxruntime-cuda`` and ``onnxruntime-tensorrt``: ONNX Runtime's CUDA and TensorRT
execution providers (``pip install onnxruntime-gpu`` on a machine with an NVIDIA GPU).

* The graph is the one ``onnxruntime-cpu`` loads (:func:`~latbench.backends.onnxruntime_cpu.export_spec`).
* **A session that does not run on the GPU is an error, not a measurement.** ORT silently
  substitutes the CPU provider when a GPU provider fails to load (a missing CUDA library),
  and by default places nodes the GPU provider does not take on the CPU. So the session is
  created with ORT's ``session.disable_cpu_ep_fallback=1`` (ORT then refuses to create a
  session with any node on the CPU: "This session contains graph nodes that are assigned to
  the default CPU EP, but fallback to CPU EP has been explicitly disabled by the user"), and
  without the CPU provider in its provider list (ORT rejects listing it together with that
  option as a conflicting configuration); :func:`check_providers` then checks the providers
  the session reports. ``cpu_fallback=true`` allows CPU nodes (a few shape computations of
  some graphs land there) and measures the mixed session: the setting is part of the
  target, so such measurements never mix with strict ones. For the TensorRT provider the
  CUDA provider follows it in the list, as ORT recommends: nodes TensorRT does not take run
  on the CUDA provider, still on the GPU.
* Inputs and the output are bound on the GPU once with IOBinding, so a timed call runs the
  graph and copies nothing. ``run_with_iobinding`` is synchronous (ORT synchronizes its
  stream at the end of a run), so the host clock around it is a correct measurement; where
  torch has CUDA, the CUDA provider runs on a stream of its own that torch created
  (``user_compute_stream``) and the calls are timed with CUDA events on that stream
  (``cuda_events.torch_stream_timer``). Not torch's current stream: that is the legacy default
  stream, whose handle is 0, and ORT takes a ``user_compute_stream`` of 0 for "none" and
  runs on a stream of its own, which events on the default stream do not bracket.
Settings: ``device_id``; ``opt_level`` as for ``onnxruntime-cpu``; ``cpu_fallback`` (above);
for ``onnxruntime-tensorrt`` also ``fp16`` (the provider's ``trt_fp16_enable``, TensorRT's
weakly typed FP16: TensorRT 11 removed it, see ``latbench.backends.tensorrt``), ``engine_cache``
(a directory for the provider's engine and timing caches; ``""``: none).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from latbench.backends.base import Availability, Prepared, Setting, import_for_availability
from latbench.backends.cuda_events import torch_stream_timer
from latbench.backends.onnxruntime_cpu import OPT_LEVELS, OnnxRuntimeCPUBackend, export_spec
from latbench.errors import TargetUnavailableError
from latbench.specs import Spec
from latbench.target import Target
from latbench.timing import Timer

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
#: ORT session option that makes a session with any node on the CPU provider fail to load.
DISABLE_CPU_FALLBACK = "session.disable_cpu_ep_fallback"

COMMON_SETTINGS: dict[str, Setting] = {
    "device_id": Setting(int, 0, "CUDA device index"),
    "opt_level": Setting(str, "all", "graph optimization level", OPT_LEVELS),
    "cpu_fallback": Setting(
        bool, False, "allow nodes on the CPU provider [false: a session with any is an error]"
    ),
}


def check_providers(requested: str, session_providers: Sequence[str]) -> None:
    """Raise ``TargetUnavailableError`` (one line) unless the session runs on ``requested``:
    ORT falls back to the CPU provider silently when a GPU provider cannot load."""
    providers = list(session_providers)
    if not providers or providers[0] != requested:
        raise TargetUnavailableError(
            f"onnxruntime did not run the session on {requested} (it uses {', '.join(providers) or 'none'}): "
            "the provider failed to load (missing CUDA/cuDNN/TensorRT libraries or no GPU); "
            "a CPU fallback is not measured"
        )


def session_providers(
    requested: str, provider_options: Mapping[str, str], *, device_id: int, cpu_fallback: bool
) -> list[tuple[str, dict[str, str]]]:
    """The provider list of a session for ``requested``: TensorRT is followed by CUDA (nodes
    TensorRT does not take stay on the GPU), and the CPU provider is listed only when CPU
    fallback is allowed (ORT rejects it together with ``session.disable_cpu_ep_fallback``)."""
    providers = [(requested, dict(provider_options))]
    if requested == TENSORRT:
        providers.append((CUDA, {"device_id": str(device_id)}))
    if cpu_fallback:
        providers.append((CPU, {}))
    return providers


def torch_cuda_stream(device_id: int) -> Any:
    """A new torch CUDA stream on ``device_id`` for ORT to run on (never the default stream:
    its handle is 0, which ORT reads as no stream), or None without torch or CUDA."""
    try:
        import torch

        if not torch.cuda.is_available() or device_id >= torch.cuda.device_count():
            return None
        return torch.cuda.Stream(device_id)
    except Exception:  # torch missing or broken: time with the host clock
        return None


def load_error_line(exc: BaseException) -> str:
    """The first line of why ORT could not create a session. ORT's Python layer retries a
    failed GPU session with a fallback provider list that includes the CPU provider, which a
    strict session refuses ("Conflicting session configuration..."); the error raised is then
    the retry's, and the real cause (missing TensorRT or CUDA libraries) is its ``__cause__``."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return next((line for line in str(cause).splitlines() if line.strip()), type(cause).__name__)


class _OrtGpuBackend(OnnxRuntimeCPUBackend):
    provider: ClassVar[str]
    device = "gpu"
    SETTINGS: ClassVar[dict[str, Setting]] = dict(COMMON_SETTINGS)
    PRECISIONS = ("fp32",)

    def availability(self) -> Availability:
        ort, missing = import_for_availability("onnxruntime", "pip install onnxruntime-gpu")
        if missing:
            return missing
        if self.provider not in ort.get_available_providers():
            return Availability(
                False,
                f"onnxruntime {ort.__version__} has no {self.provider}: "
                "install onnxruntime-gpu instead of onnxruntime",
            )
        return Availability(True, f"onnxruntime {ort.__version__}, {self.provider}")

    def provider_options(self, target: Target, stream: Any) -> dict[str, str]:
        return {"device_id": str(target.get("device_id"))}

    def session_options(self, target: Target, profile_dir: str | None = None) -> Any:
        options = super().session_options(target, profile_dir)
        options.add_session_config_entry(DISABLE_CPU_FALLBACK, "0" if target.get("cpu_fallback") else "1")
        return options

    def prepare(self, spec: Spec, target: Target) -> Prepared:
        import onnxruntime as ort

        self.check_spec(spec)
        device_id = int(target.get("device_id"))  # type: ignore[arg-type]
        start = time.perf_counter()
        model, feeds, instances_per_call = export_spec(spec)
        stream = torch_cuda_stream(device_id)
        providers = session_providers(
            self.provider,
            self.provider_options(target, stream),
            device_id=device_id,
            cpu_fallback=bool(target.get("cpu_fallback")),
        )
        try:
            session = ort.InferenceSession(model, self.session_options(target), providers=providers)
        except Exception as exc:  # ORT raises its own exception types
            raise TargetUnavailableError(
                f"onnxruntime could not load {spec.label} on {self.provider}: {load_error_line(exc)}"
            ) from exc
        check_providers(self.provider, session.get_providers())
        on_stream = stream if "user_compute_stream" in providers[0][1] else None
        return OrtGpuPrepared(
            session, feeds, device_id, on_stream, time.perf_counter() - start, instances_per_call
        )


class OnnxRuntimeCudaBackend(_OrtGpuBackend):
    name = "onnxruntime-cuda"
    provider = CUDA
    description = "ONNX Runtime, CUDA execution provider (onnxruntime-gpu)"

    def provider_options(self, target: Target, stream: Any) -> dict[str, str]:
        options = super().provider_options(target, stream)
        if stream is not None:  # run on this stream, so CUDA events on it time the graph
            options["user_compute_stream"] = str(stream.cuda_stream)
        return options


class OnnxRuntimeTensorRTBackend(_OrtGpuBackend):
    name = "onnxruntime-tensorrt"
    provider = TENSORRT
    description = "ONNX Runtime, TensorRT execution provider (onnxruntime-gpu with TensorRT)"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        **COMMON_SETTINGS,
        "fp16": Setting(bool, False, "let TensorRT use FP16 kernels (trt_fp16_enable; not on TensorRT 11)"),
        "engine_cache": Setting(str, "", "directory for the provider's engine and timing caches [none]"),
    }

    def provider_options(self, target: Target, stream: Any) -> dict[str, str]:
        options = super().provider_options(target, stream)
        options["trt_fp16_enable"] = "1" if target.get("fp16") else "0"
        cache = str(target.get("engine_cache") or "")
        if cache:
            options.update(
                trt_engine_cache_enable="1",
                trt_engine_cache_path=cache,
                trt_timing_cache_enable="1",
                trt_timing_cache_path=cache,
            )
        return options


class OrtGpuPrepared(Prepared):
    def __init__(  # type: ignore[no-untyped-def]
        self, session, feeds: Mapping[str, np.ndarray], device_id: int, stream, build_time_s, instances
    ) -> None:
        import onnxruntime as ort

        self.session = session
        self.build_time_s = build_time_s
        self.instances_per_call = instances
        self.stream = stream
        # Inputs live on the GPU and the output is allocated there: a call copies nothing.
        self.values = {
            name: ort.OrtValue.ortvalue_from_numpy(value, "cuda", device_id) for name, value in feeds.items()
        }
        self.binding = session.io_binding()
        for name, value in self.values.items():
            self.binding.bind_ortvalue_input(name, value)
        self.binding.bind_output(session.get_outputs()[0].name, "cuda", device_id)
        self.binding.synchronize_inputs()

    def __call__(self) -> None:
        self.session.run_with_iobinding(self.binding)

    def timer(self) -> Timer | None:
        if self.stream is None:
            return None  # run_with_iobinding is synchronous: the host clock is correct
        return torch_stream_timer(self, self.stream)

    def outputs(self) -> np.ndarray:
        self.session.run_with_iobinding(self.binding)
        return np.asarray(self.binding.copy_outputs_to_cpu()[0], dtype=np.float32)

    def close(self) -> None:
        self.binding = None
        self.values = {}
        self.session = None
