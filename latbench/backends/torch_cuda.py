"""``torch-cuda``: PyTorch on an NVIDIA GPU, eager, replayed as a CUDA graph, or torch.compile'd.

Importing this module needs no GPU and no CUDA build of torch: everything that touches the
device sits behind ``availability()`` (a CPU build of torch, or no visible device, is a
one-line reason, never a traceback).

* ``prepare`` builds the same torch module as ``torch-cpu`` (``latbench.models.torch_modules``),
  moves it and its inputs to the GPU in the spec's precision, and runs it a few times
  (cuDNN/cuBLAS handles, allocator). A call then *launches* one inference and returns
  without waiting: the GPU runs asynchronously, so the host clock would time the launch.
* Timing is done with CUDA events (:func:`cuda_event_timer`): a start event is recorded on
  the device's stream, the N calls of a sample are launched, an end event is recorded, and
  only then does the host wait (once, on the end event) and read ``elapsed_time``. Nothing
  inside the timed region synchronizes, so back-to-back calls queue as they would in a
  serving loop, and launch overhead counts only where the GPU really waits for it.
* ``l2_flush=true`` measures each call with a cold L2: before every call a buffer twice the
  size of the GPU's L2 (``L2_cache_size``; 256 MiB where torch does not know it) is
  zeroed, which evicts the weights and activations the previous call left there. The flush
  is queued *between* timed regions: each call gets its own start/end event pair, the
  flush runs outside them, and a sample is the sum of its calls' times, so the protocol's
  N-calls-per-sample calibration is unchanged and the host still waits only once, after
  the last end event. Without it (the default) calls run back to back with a warm L2, as
  in a steady serving loop. The setting is part of the target (so cold and warm
  measurements have different keys) and stored as the measurement extra ``l2_flush``.

Settings:

``mode``
    ``eager`` (default): PyTorch eager, one kernel launch per operator.
    ``cuda-graph``: the module is captured once into a ``torch.cuda.CUDAGraph`` (warmed up on
    a side stream first, as PyTorch's documentation requires) and a call replays the graph:
    eager's kernels without its per-operator launch overhead.
    ``compile``: ``torch.compile(fullgraph=True, dynamic=False)`` in its default mode
    (Inductor's fused Triton kernels, no CUDA graphs, so that ``cuda-graph`` stays the one
    mode that removes launch overhead and the two effects can be told apart;
    ``max-autotune`` benchmarks GEMM configurations for minutes per shape, too slow for a
    plan of hundreds of shapes). The first call compiles; its time is ``build_time_s`` and
    the measurement extra ``compile_s``. Needs Triton.
``l2_flush``
    ``true``/``false`` (default): cold or warm L2 per call, see above.
``device``
    The CUDA device index (default 0).
``threads``
    Host intra-op threads (torch's CPU thread pool; the GPU work does not use them).

Precisions: fp32, fp16, and bf16 where the GPU runs it natively (compute capability 8.0+).
Fingerprint: the GPU's name, driver version, CUDA version and maximum SM/memory clocks
(``nvidia-smi``, see :func:`parse_nvidia_smi`), of device 0 (``torch.cuda.current_device()``).
"""

from __future__ import annotations

import functools
import importlib
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from latbench.backends.base import THREADS, Availability, Backend, Prepared, Setting, import_for_availability
from latbench.backends.cuda_events import cuda_event_timer
from latbench.errors import ConfigError, TargetUnavailableError, first_line
from latbench.specs import Spec
from latbench.target import SettingValue, Target
from latbench.timing import Timer

MODES = ("eager", "cuda-graph", "compile")
INSTALL_HINT = "install a CUDA build of torch (https://pytorch.org/get-started/locally/)"
#: Flush buffer size where torch does not report the L2 size.
DEFAULT_FLUSH_BYTES = 256 * 2**20
#: Untimed calls in ``prepare`` (allocator, cuBLAS handles, Triton autotuning).
PREPARE_WARMUP_CALLS = 3
NVIDIA_SMI_FIELDS = ("uuid", "name", "driver_version", "clocks.max.sm", "clocks.max.mem")


class TorchCudaBackend(Backend):
    name = "torch-cuda"
    device = "gpu"
    description = "PyTorch on an NVIDIA GPU: eager, CUDA graphs or torch.compile, timed by CUDA events"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "mode": Setting(str, "eager", "eager | cuda-graph (replay a captured graph) | compile", MODES),
        "l2_flush": Setting(bool, False, "flush the GPU's L2 before every timed call [false: warm cache]"),
        "device": Setting(int, 0, "CUDA device index"),
        "threads": THREADS,
    }
    PRECISIONS = ("fp32", "fp16", "bf16")

    def availability(self) -> Availability:
        torch, missing = import_for_availability("torch", INSTALL_HINT)
        return missing or torch_availability(torch)

    def target_availability(self, target: Target) -> Availability:
        availability = self.availability()
        if not availability.available:
            return availability
        import torch

        index = int(target.get("device", 0))  # type: ignore[arg-type]
        try:
            count = torch.cuda.device_count()
            if index >= count:
                return Availability(False, f"no CUDA device {index}: {count} visible (devices 0-{count - 1})")
            name = torch.cuda.get_device_name(index)
        except Exception as exc:
            return Availability(False, f"CUDA device {index} cannot be queried ({first_line(exc)})")
        if target.get("mode") == "compile":
            problem = triton_problem()
            if problem:
                return Availability(False, problem)
        return Availability(True, f"cuda:{index} {name}, mode {target.get('mode', 'eager')}")

    def _check_setting(self, key: str, setting: Setting, value: SettingValue) -> SettingValue:
        value = super()._check_setting(key, setting, value)
        if key == "device" and int(value) < 0:
            raise ConfigError(f"setting device of {self.name} must be a device index >= 0, got {value}")
        return value

    def check_spec(self, spec: Spec, *, bf16_supported: bool | None = None) -> None:
        super().check_spec(spec)
        if spec.workload.precision == "bf16":
            if bf16_supported is None:
                bf16_supported = _bf16_supported(0)
            problem = precision_problem("bf16", bf16_supported)
            if problem:
                raise ConfigError(f"target {self.name}: {problem}")

    def fingerprint_extras(self) -> dict[str, Any]:
        """The GPU of ``torch.cuda.current_device()``: name, driver, CUDA version, clocks."""
        if not self.availability().available:
            return {}
        try:
            import torch

            index = torch.cuda.current_device()
            props = torch.cuda.get_device_properties(index)
            fields: dict[str, Any] = {"gpu": str(props.name), "cuda": str(torch.version.cuda or "")}
            uuid = str(getattr(props, "uuid", "") or "")
        except Exception:
            return {}
        row = select_gpu(parse_nvidia_smi(_run_nvidia_smi()), uuid, index)
        if row:
            fields["gpu_driver"] = row["driver_version"]
            fields["gpu_sm_clock_mhz"] = row["sm_clock_mhz"]
            fields["gpu_mem_clock_mhz"] = row["mem_clock_mhz"]
        return fields

    def prepare(self, spec: Spec, target: Target) -> Prepared:
        availability = self.target_availability(target)
        if not availability.available:
            raise TargetUnavailableError(f"target {target} is not available here: {availability.reason}")
        import torch

        from latbench.models.torch_modules import TORCH_DTYPES, build

        index = int(target.get("device"))  # type: ignore[arg-type]
        self.check_spec(spec, bf16_supported=_bf16_supported(index))
        torch.set_num_threads(int(target.get("threads")))  # type: ignore[arg-type]
        device = torch.device("cuda", index)
        mode = str(target.get("mode"))
        start = time.perf_counter()
        built = build(spec)
        dtype = TORCH_DTYPES[spec.workload.precision]
        module = built.module.requires_grad_(False).to(device=device, dtype=dtype).eval()
        inputs = tuple(
            x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device) for x in built.inputs
        )
        extras: dict[str, float] = {"cuda_graph": float(mode == "cuda-graph")}
        stream = torch.cuda.current_stream(device)
        if mode == "compile":
            module, extras["compile_s"] = _compile(module, inputs, device)
        with torch.cuda.device(device):
            for _ in range(PREPARE_WARMUP_CALLS):
                module(*inputs)
            torch.cuda.synchronize(device)
            if mode == "cuda-graph":
                capture_start = time.perf_counter()
                graph, output = _capture(module, inputs, device)
                extras["capture_s"] = time.perf_counter() - capture_start
                run = graph.replay

                def read() -> Any:
                    graph.replay()
                    return output  # the graph's static output, rewritten by every replay

            else:
                run = read = functools.partial(module, *inputs)
        flush = None
        if target.get("l2_flush"):
            flush_bytes = l2_flush_bytes(getattr(torch.cuda.get_device_properties(index), "L2_cache_size", 0))
            buffer = torch.empty(flush_bytes, dtype=torch.uint8, device=device)
            flush = buffer.zero_
            extras["l2_flush_bytes"] = float(flush_bytes)
        extras["l2_flush"] = float(flush is not None)
        torch.cuda.synchronize(device)
        return TorchCudaPrepared(
            run,
            read,
            stream,
            flush,
            time.perf_counter() - start,
            built.instances_per_call,
            extras,
            keep=(module, inputs),
            reset_dynamo=mode == "compile",
        )


class TorchCudaPrepared(Prepared):
    def __init__(  # type: ignore[no-untyped-def]
        self,
        run: Callable[[], Any],
        read: Callable[[], Any],
        stream,
        flush: Callable[[], Any] | None,
        build_time_s: float,
        instances_per_call: int,
        extras: Mapping[str, float],
        *,
        keep: tuple[Any, ...] = (),
        reset_dynamo: bool = False,
    ) -> None:
        self._run: Callable[[], Any] | None = run
        self._read: Callable[[], Any] | None = read
        self._stream = stream
        self._flush = flush
        self.build_time_s = build_time_s
        self.instances_per_call = instances_per_call
        self._extras = dict(extras)
        self._keep: tuple[Any, ...] = keep  # module and inputs stay alive as long as the graph
        self._reset_dynamo = reset_dynamo

    def __call__(self) -> None:
        """Launch one inference on the GPU; returns without waiting for it."""
        self._run()  # type: ignore[misc]

    def timer(self) -> Timer:
        import torch

        return cuda_event_timer(lambda: torch.cuda.Event(enable_timing=True), self._stream, self._flush)

    def outputs(self) -> np.ndarray:
        import torch

        out = self._read()  # type: ignore[misc]
        self._stream.synchronize()
        return out.to(torch.float32).cpu().numpy()

    def extras(self) -> Mapping[str, float]:
        return dict(self._extras)

    def close(self) -> None:
        self._run = self._read = self._flush = None
        self._keep = ()
        if self._reset_dynamo:
            # Dynamo keeps one cache entry per compiled shape on the module class's code and
            # checks their guards in turn on every call: cleared after each group, a later
            # group's calls do not pay for the guards of every shape compiled before it.
            import torch._dynamo

            torch._dynamo.reset()
            self._reset_dynamo = False


def torch_availability(torch: ModuleType | Any) -> Availability:
    """Whether ``torch`` (the module, or a stand-in in tests) can run on a CUDA GPU here."""
    version = getattr(torch, "__version__", "?")
    cuda = getattr(torch.version, "cuda", None)
    if not cuda:
        if getattr(torch.version, "hip", None):
            return Availability(False, f"torch {version} is a ROCm build; torch-cuda needs a CUDA build")
        return Availability(False, f"torch {version} is a CPU build: {INSTALL_HINT}")
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception as exc:
        return Availability(False, f"no CUDA device visible ({first_line(exc)})")
    if not count:
        return Availability(
            False,
            f"no CUDA device visible (torch {version}, CUDA {cuda}; check the driver, CUDA_VISIBLE_DEVICES)",
        )
    try:
        names = sorted({str(torch.cuda.get_device_name(i)) for i in range(count)})
    except Exception as exc:
        return Availability(False, f"CUDA devices cannot be queried ({first_line(exc)})")
    return Availability(True, f"torch {version}, CUDA {cuda}: {count} × {', '.join(names)}")


def precision_problem(precision: str, bf16_supported: bool) -> str:
    """Why this GPU cannot run ``precision`` ("" if it can): bf16 needs native support."""
    if precision not in TorchCudaBackend.PRECISIONS:
        return f"does not run {precision}; supported precisions: {', '.join(TorchCudaBackend.PRECISIONS)}"
    if precision == "bf16" and not bf16_supported:
        return "this GPU has no native bf16 (compute capability 8.0+ needed); use fp16 or fp32"
    return ""


def l2_flush_bytes(l2_cache_size: int) -> int:
    """Bytes to zero so that the L2 holds nothing from before: twice the L2, or 256 MiB."""
    return 2 * l2_cache_size if l2_cache_size and l2_cache_size > 0 else DEFAULT_FLUSH_BYTES


def triton_problem() -> str:
    """Why ``mode=compile`` cannot run here ("" if Triton imports)."""
    try:
        importlib.import_module("triton")
    except ImportError as exc:
        return f"mode=compile needs triton, which is not installed ({exc}); pip install triton"
    except Exception as exc:
        return f"mode=compile needs triton, which cannot be imported ({first_line(exc)})"
    return ""


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """Rows of ``nvidia-smi --query-gpu=uuid,name,driver_version,clocks.max.sm,clocks.max.mem
    --format=csv,noheader``, one per GPU: ``uuid``, ``name``, ``driver_version`` and the clocks
    as ints (``sm_clock_mhz``, ``mem_clock_mhz``; 0 for ``[N/A]`` or anything unparsable).
    Lines that are not such a row (warnings, blank lines) are skipped."""
    rows = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(NVIDIA_SMI_FIELDS) or not parts[0]:
            continue
        uuid, name, driver, sm, mem = parts
        rows.append(
            {
                "uuid": uuid,
                "name": "" if _missing(name) else name,
                "driver_version": "" if _missing(driver) else driver,
                "sm_clock_mhz": _mhz(sm),
                "mem_clock_mhz": _mhz(mem),
            }
        )
    return rows


def select_gpu(rows: list[dict[str, Any]], uuid: str, index: int) -> dict[str, Any] | None:
    """The row of the GPU torch calls ``index`` with ``uuid``. nvidia-smi lists GPUs in PCI
    order and ignores ``CUDA_VISIBLE_DEVICES``, so the UUID decides; without one, the only
    row, else the row at ``index`` (right when both orders agree), else None."""
    wanted = _uuid(uuid)
    if wanted:
        for row in rows:
            if _uuid(row["uuid"]) == wanted:
                return row
    if len(rows) == 1:
        return rows[0]
    return rows[index] if not wanted and 0 <= index < len(rows) else None


def _uuid(text: str) -> str:
    text = text.strip().lower()
    return text[4:] if text.startswith("gpu-") else text


def _missing(value: str) -> bool:
    return not value or value.strip("[]").lower() in ("n/a", "not supported", "unknown error")


def _mhz(value: str) -> int:
    number = value.lower().removesuffix("mhz").strip()
    try:
        return max(0, int(float(number)))
    except ValueError:
        return 0


def _run_nvidia_smi() -> str:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ""
    query = ",".join(NVIDIA_SMI_FIELDS)
    try:
        result = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout if result.returncode == 0 else ""


def _bf16_supported(index: int) -> bool:
    try:
        import torch

        if not torch.cuda.is_available():
            return True  # nothing to run on: availability, not precision, is the error
        major, _ = torch.cuda.get_device_capability(index)
        return major >= 8
    except Exception:
        return False


def _compile(module: Any, inputs: tuple[Any, ...], device: Any) -> tuple[Any, float]:
    """``torch.compile`` the module and run its first call (the compile); its duration.

    Dynamo recompiles once per shape on the same module class and, past its recompile
    limit, silently runs eager instead: the limits are raised for this compile and hitting
    one is an error, so a ``compile`` measurement is never an eager one.
    """
    import torch
    import torch._dynamo

    config = torch._dynamo.config
    patch = dynamo_limit_patch(config, torch.__version__)
    compiled = torch.compile(module, fullgraph=True, dynamic=False)
    start = time.perf_counter()
    with config.patch(patch), torch.cuda.device(device):
        compiled(*inputs)
        torch.cuda.synchronize(device)
    return compiled, time.perf_counter() - start


#: Dynamo's recompile limits: current names, then those of torch < 2.6.
DYNAMO_LIMITS = (
    "recompile_limit",
    "accumulated_recompile_limit",
    "cache_size_limit",
    "accumulated_cache_size_limit",
)
DYNAMO_FAIL_ON_LIMIT = ("fail_on_recompile_limit_hit", "fail_on_cache_limit_hit")


def dynamo_limit_patch(config: Any, torch_version: str) -> dict[str, object]:
    """The ``torch._dynamo.config.patch`` that lets one process compile every shape of a plan:
    each limit ``config`` has raised out of reach, and hitting one made an error. Past a limit
    Dynamo silently runs eager, so a ``compile`` measurement would be an eager one; where
    ``config`` has none of the known limits, ``ConfigError``."""
    patch: dict[str, object] = {name: 1_000_000 for name in DYNAMO_LIMITS if hasattr(config, name)}
    if not patch:
        raise ConfigError(
            f"mode=compile: torch {torch_version} has no known Dynamo recompile limit to raise, "
            "so a compile measurement could silently run eager; use mode=eager or cuda-graph"
        )
    patch.update({name: True for name in DYNAMO_FAIL_ON_LIMIT if hasattr(config, name)})
    return patch


def _capture(module: Any, inputs: tuple[Any, ...], device: Any) -> tuple[Any, Any]:
    """Capture one call of ``module`` into a CUDA graph (after warming up on a side stream,
    as ``torch.cuda.graphs`` requires); returns the graph and its static output tensor."""
    import torch

    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(PREPARE_WARMUP_CALLS):
            module(*inputs)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = module(*inputs)
    torch.cuda.synchronize(device)
    return graph, output
