"""``onnxruntime-cpu``: ONNX Runtime's CPU execution provider.

Settings: ``threads`` (intra-op; inter-op is 1 and thread spinning is off, so an idle
pool does not steal the CPU from the timed work), ``opt_level`` (``disable``, ``basic``,
``extended``, ``all``: how far ORT may rewrite and fuse the graph), and ``kernels``
(whether block and encoder measurements also record per-kernel times from ORT's
profiler, in a separate session so profiling never slows the timed one).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from typing import Any, ClassVar

import numpy as np

from latbench.backends.base import THREADS, Availability, Backend, Prepared, Setting
from latbench.errors import TargetUnavailableError
from latbench.measurement import KernelTime
from latbench.specs import OpSpec, Spec
from latbench.target import Target

OPT_LEVELS = ("disable", "basic", "extended", "all")


class OnnxRuntimeCPUBackend(Backend):
    name = "onnxruntime-cpu"
    description = "ONNX Runtime, CPU execution provider"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "threads": THREADS,
        "opt_level": Setting(str, "all", "graph optimization level", OPT_LEVELS),
        "kernels": Setting(bool, True, "record per-kernel times of blocks and encoders"),
    }

    def availability(self) -> Availability:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return Availability(False, f"onnxruntime is not installed ({exc})")
        if "CPUExecutionProvider" not in ort.get_available_providers():
            return Availability(False, "this onnxruntime build has no CPUExecutionProvider")
        return Availability(True, f"onnxruntime {ort.__version__}")

    def session_options(self, target: Target, profile_dir: str | None = None) -> Any:
        import onnxruntime as ort

        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[str(target.get("opt_level"))]
        options.intra_op_num_threads = int(target.get("threads", 1))  # type: ignore[arg-type]
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        if profile_dir is not None:
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(profile_dir, "ort")
        return options

    def fingerprint_extras(self) -> dict[str, Any]:
        from latbench.models.deployed import GRAPH_FORM

        return {"graph_form": GRAPH_FORM}

    def prepare(self, spec: Spec, target: Target) -> Prepared:
        import onnxruntime as ort

        self.check_spec(spec)
        start = time.perf_counter()
        model, feeds, instances_per_call = export_spec(spec)
        try:
            session = ort.InferenceSession(
                model, self.session_options(target), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types
            raise TargetUnavailableError(
                f"onnxruntime could not load the graph of {spec.label}: {exc}"
            ) from exc
        if session.get_providers()[0] != "CPUExecutionProvider":
            raise TargetUnavailableError(
                f"onnxruntime ran {spec.label} on {session.get_providers()}, not the CPU"
            )
        profile_kernels = bool(target.get("kernels")) and not isinstance(spec, OpSpec)
        return OrtPrepared(
            self,
            target,
            model,
            session,
            feeds,
            time.perf_counter() - start,
            instances_per_call,
            profile_kernels,
        )


def export_spec(spec: Spec) -> tuple[bytes, dict[str, np.ndarray], int]:
    """The ONNX graph of ``spec``, its input feeds by name, and how many spec instances one
    call runs: what every ONNX Runtime target loads. Encoders and blocks take the form a
    model exported from ``transformers`` has (``latbench.models.deployed``: three
    projections, the attention mask, dynamic batch and sequence axes), so they time like
    users' models; an operator is a static graph of that operator alone."""
    from latbench.models.deployed import build_deployed, export_deployed
    from latbench.models.onnx_export import export_onnx

    built = build_deployed(spec)
    if isinstance(spec, OpSpec):
        model = export_onnx(built)
    else:
        model = export_deployed(built.module, built.inputs, built.input_names)
    feeds = {name: x.numpy() for name, x in zip(built.input_names, built.inputs, strict=True)}
    return model, feeds, built.instances_per_call


class OrtPrepared(Prepared):
    def __init__(  # type: ignore[no-untyped-def]
        self, backend, target, model, session, feeds, build_time_s, instances_per_call, profile_kernels
    ) -> None:
        self.backend = backend
        self.target = target
        self.model = model
        self.session = session
        self.feeds = feeds
        self.build_time_s = build_time_s
        self.instances_per_call = instances_per_call
        self.profile_kernels = profile_kernels
        # Inputs are bound once, so a call costs the graph and not the copying of its inputs.
        self.binding = session.io_binding()
        for name, value in feeds.items():
            self.binding.bind_cpu_input(name, value)
        self.binding.bind_output(session.get_outputs()[0].name)

    def __call__(self) -> None:
        self.session.run_with_iobinding(self.binding)

    def outputs(self) -> np.ndarray:
        return self.session.run(None, self.feeds)[0]

    def kernels(self, runs: int = 20) -> tuple[KernelTime, ...]:
        """Per-kernel time per spec instance, from ORT's profiler in a separate session."""
        if not self.profile_kernels:
            return ()
        import onnxruntime as ort

        warmup = 3
        with tempfile.TemporaryDirectory(prefix="latbench-ort-") as tmp:
            options = self.backend.session_options(self.target, profile_dir=tmp)
            session = ort.InferenceSession(self.model, options, providers=["CPUExecutionProvider"])
            for _ in range(warmup + runs):
                session.run(None, self.feeds)
            path = session.end_profiling()
            with open(path) as f:
                events = json.load(f)
        return aggregate_kernel_events(events, skip_runs=warmup, instances=self.instances_per_call)

    def close(self) -> None:
        self.session = None
        self.binding = None


def aggregate_kernel_events(
    events: list[dict[str, Any]], *, skip_runs: int, instances: int
) -> tuple[KernelTime, ...]:
    """Sum ORT profiler node events by kernel type, per run and per spec instance.

    Runs are the ``model_run`` session events; node events are assigned to the run whose
    interval contains them, and the first ``skip_runs`` runs (warm-up) are dropped.
    """
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")[skip_runs:]
    if not runs:
        return ()
    total_us: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for event in events:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        ts = event["ts"]
        if not any(start <= ts <= end for start, end in runs):
            continue
        op_type = event.get("args", {}).get("op_name", "unknown")
        total_us[op_type] += event["dur"]
        count[op_type] += 1
    per = len(runs) * instances
    return tuple(
        KernelTime(op_type=op, count=max(1, round(count[op] / per)), time_s=total_us[op] * 1e-6 / per)
        for op in sorted(total_us, key=lambda k: -total_us[k])
    )
