"""Users' own models: any ONNX encoder, or a local Hugging Face checkpoint exported the way
users deploy it, timed with the shared protocol and broken down by operator.

* ``onnx_feeds``: inputs built from the graph's declared inputs: token ids within the
  embedding's vocabulary, masks of ones, token types of zeros, positions counting up; the
  first two dimensions of the token inputs (symbolic or fixed) are the batch and the
  sequence, bound by ``batch`` and ``seq``. Anything left unbound, or a sequence longer
  than the model's positions, is a one-line ``ConfigError``.
* ``measure_onnx``: the graph on an ONNX Runtime CPU target, timed like every latbench
  spec, then profiled by ONNX Runtime; ``operator_breakdown`` maps the profiler's node
  times onto latbench's operators (embeddings, projections, attention, FFN, layer norm,
  the rest) and says how much of the latency no node accounts for.
* ``export_hf_model``: a local Hugging Face checkpoint or config (BERT, RoBERTa,
  DistilBERT, ELECTRA; with or without a classification head) exported with input ids
  and attention mask at opset 17; ``measure_hf_eager`` times it as eager PyTorch.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from latbench.errors import ConfigError
from latbench.fingerprint import Fingerprint
from latbench.measurement import KernelTime, Measurement, Stats
from latbench.specs import ModelSpec
from latbench.target import Target
from latbench.timing import ProtocolSettings, Sampled, measure_group

#: Model families ``export_hf_model`` takes (Hugging Face ``model_type``).
HF_FAMILIES = ("bert", "roberta", "distilbert", "electra")
#: latbench's operators, in the order a breakdown lists them.
CATEGORIES = ("embeddings", "projections", "attention", "ffn", "layer norm", "the rest")


# --- inputs ------------------------------------------------------------------------------------
def load_onnx(path: str | Path) -> Any:
    """The ONNX model at ``path``; a missing or non-ONNX file is a one-line ConfigError."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no ONNX model at {path}")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, OSError) as exc:
        raise ConfigError(f"{path} is not an ONNX model ({type(exc).__name__})") from None
    if not model.graph.node or not model.graph.input:
        raise ConfigError(f"{path} is not an ONNX model with a graph (no nodes or no inputs)")
    return model


def _initializer_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    return {init.name: tuple(init.dims) for init in model.graph.initializer}


def vocab_size(model: Any, input_name: str) -> int | None:
    """The row count of the embedding table that ``input_name`` indexes (a Gather of an
    initializer by it), or None when the graph does not show one."""
    shapes = _initializer_shapes(model)
    for node in model.graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] == input_name:
            shape = shapes.get(node.input[0])
            if shape and len(shape) == 2:
                return shape[0]
    return None


def max_positions(model: Any) -> int | None:
    """The model's position count: the rows of its position-embedding table, when an
    initializer's name says which one that is."""
    for name, shape in _initializer_shapes(model).items():
        if "position_embeddings" in name and len(shape) == 2:
            return shape[0]
    return None


def _role(name: str) -> str:
    lowered = name.lower()
    if "mask" in lowered:
        return "mask"
    if "token_type" in lowered or "segment" in lowered:
        return "token_type"
    if "position" in lowered:
        return "position"
    return "ids"


def onnx_feeds(model: Any, batch: int, seq: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for every declared graph input (see the module docstring)."""
    import onnx

    if batch < 1 or seq < 1:
        raise ConfigError(f"--batch and --seq must be positive, got {batch} and {seq}")
    initializers = {init.name for init in model.graph.initializer}
    positions = max_positions(model)
    if positions is not None and seq > positions:
        raise ConfigError(f"--seq {seq} is longer than the model's {positions} positions")
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for value in model.graph.input:
        if value.name in initializers:  # older exporters list weights as inputs too
            continue
        tensor = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        shape = []
        for axis, dim in enumerate(tensor.shape.dim):
            wanted = batch if axis == 0 else seq if axis == 1 else None
            if dim.HasField("dim_value"):
                if wanted is not None and dim.dim_value != wanted:
                    what = "batch size" if axis == 0 else "sequence length"
                    raise ConfigError(
                        f"input {value.name!r} has a fixed {what} of {dim.dim_value}; pass "
                        f"--{'batch' if axis == 0 else 'seq'} {dim.dim_value}"
                    )
                shape.append(dim.dim_value)
            elif wanted is not None:
                shape.append(wanted)
            else:
                raise ConfigError(
                    f"input {value.name!r} has a symbolic dimension {dim.dim_param or '?'!r} at axis {axis} "
                    "that latbench cannot bind: it binds axis 0 to --batch and axis 1 to --seq"
                )
        feeds[value.name] = _feed(model, value.name, tuple(shape), np.dtype(dtype), rng)
    if not feeds:
        raise ConfigError("the ONNX model declares no inputs to feed")
    return feeds


def _feed(
    model: Any, name: str, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator
) -> np.ndarray:
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return np.ones(shape, dtype)
    role = _role(name)
    if role == "mask":
        return np.ones(shape, dtype)
    if role == "token_type":
        return np.zeros(shape, dtype)
    if role == "position":
        return np.broadcast_to(np.arange(shape[-1], dtype=dtype), shape).copy()
    vocab = vocab_size(model, name) or 100
    return rng.integers(0, vocab, size=shape, dtype=dtype)


# --- the breakdown -----------------------------------------------------------------------------
_PROJECTION = re.compile(r"attention/(self/)?(query|key|value)\b|attention/output/dense|/(q|k|v|out)_lin/")
_FFN = re.compile(r"/intermediate/|/output/dense|/ffn/|/lin[12]/")
_ATTENTION = re.compile(r"/attention/")


def operator_of(node_name: str, op_type: str) -> str:
    """latbench's operator (one of CATEGORIES) that an ONNX node of a BERT-family export
    belongs to, from its scoped name (``/bert/encoder/layer.0/attention/self/query/MatMul``)
    and, for ONNX Runtime's fused nodes, its type."""
    name = node_name.lower()
    if op_type in ("LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization") or (
        "layernorm" in name or "layer_norm" in name
    ):
        return "layer norm"
    if op_type == "EmbedLayerNormalization" or "/embeddings/" in name:
        return "embeddings"
    if op_type in ("Attention", "MultiHeadAttention"):
        return "attention"
    if re.search(r"/output/add(_\d+)?$", name):  # the residual add before the norm: add & norm
        return "layer norm"
    if _PROJECTION.search(name):
        return "projections"
    if _ATTENTION.search(name):
        return "attention"
    if op_type in ("FastGelu", "BiasGelu", "Gelu") or _FFN.search(name):
        return "ffn"
    return "the rest"


@dataclass(frozen=True)
class Breakdown:
    """One inference's latency (ms) shared out over latbench's operators in proportion to
    the profiler's node times, and the share no node accounts for (scheduling, copies,
    the session's own work). Profiling slows every node, so the profile gives shares, and
    the measured latency (taken without the profiler) gives the milliseconds."""

    operators_ms: Mapping[str, float]
    unattributed_ms: float
    nodes: int
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "operators_ms": dict(self.operators_ms),
            "unattributed_ms": self.unattributed_ms,
            "nodes": self.nodes,
        }


@dataclass(frozen=True)
class NodeProfile:
    """ONNX Runtime's profile of some runs: each node's op type and mean µs per run, and the
    mean µs of a whole run."""

    nodes: Mapping[str, tuple[str, float]]
    run_us: float


def node_profile(events: list[dict[str, Any]], *, skip_runs: int) -> NodeProfile:
    """Node times from ONNX Runtime's profiler events, after ``skip_runs`` warm-up runs."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")[skip_runs:]
    if not runs:
        raise ValueError("the profile holds no runs after the warm-up")
    total: dict[str, float] = defaultdict(float)
    ops: dict[str, str] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        if not any(start <= event["ts"] <= end for start, end in runs):
            continue
        node = name[: -len("_kernel_time")]
        total[node] += event["dur"]
        ops[node] = event.get("args", {}).get("op_name", "unknown")
    nodes = {node: (ops[node], us / len(runs)) for node, us in total.items()}
    return NodeProfile(nodes, sum(end - start for start, end in runs) / len(runs))


def operator_breakdown(profile: NodeProfile, latency_ms: float) -> Breakdown:
    """``latency_ms`` shared out by ``profile`` (see ``Breakdown``)."""
    per_us: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
    for node, (op_type, us) in profile.nodes.items():
        per_us[operator_of(node, op_type)] += us
    run_us = max(profile.run_us, sum(per_us.values()), 1e-9)
    operators_ms = {k: latency_ms * us / run_us for k, us in per_us.items()}
    return Breakdown(operators_ms, latency_ms - sum(operators_ms.values()), len(profile.nodes), latency_ms)


# --- measuring ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserModelMeasurement:
    """One user model timed on one target: the raw samples (per inference) and how they
    were taken, the build time, and (ONNX Runtime) the per-operator breakdown."""

    what: str
    target: Target
    batch: int
    seq: int
    times_s: tuple[float, ...]
    iterations_per_sample: int
    rounds: int
    stable: bool
    build_time_s: float
    breakdown: Breakdown | None = None
    inputs: Mapping[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, sampled: Sampled, **fields: Any) -> UserModelMeasurement:
        """From the protocol's result for the model, with the rest of the fields."""
        return cls(
            times_s=sampled.times_s,
            iterations_per_sample=sampled.iterations_per_sample,
            rounds=sampled.rounds,
            stable=sampled.stable,
            **fields,
        )

    @cached_property
    def stats(self) -> Stats:
        return Stats.of(self.times_s)

    def to_measurement(self, spec: ModelSpec, fingerprint: Fingerprint, *, worker: str = "") -> Measurement:
        """As a database row: the breakdown's operators (and the unattributed share) stand
        where a block's backend-profiler kernels do."""
        from datetime import UTC, datetime

        kernels: tuple[KernelTime, ...] = ()
        if self.breakdown is not None:
            shares = {**self.breakdown.operators_ms, "unattributed": self.breakdown.unattributed_ms}
            kernels = tuple(KernelTime(name, 1, ms * 1e-3) for name, ms in shares.items())
        return Measurement(
            spec=spec,
            target=self.target,
            fingerprint=fingerprint,
            times_s=self.times_s,
            iterations_per_sample=self.iterations_per_sample,
            rounds=self.rounds,
            stable=self.stable,
            build_time_s=self.build_time_s,
            measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
            kernels=kernels,
            worker=worker,
        )

    def to_dict(self) -> dict[str, Any]:
        st = self.stats
        return {
            "model": self.what,
            "target": str(self.target),
            "workload": {"batch": self.batch, "seq_len": self.seq},
            "inputs": {k: list(v) for k, v in self.inputs.items()},
            **st.summary_ms(),
            "stable": self.stable,
            "build_time_s": self.build_time_s,
            "breakdown": self.breakdown.to_dict() if self.breakdown else None,
        }


def measure_onnx(
    source: str | Path | bytes,
    target_text: str,
    *,
    batch: int = 1,
    seq: int = 128,
    settings: ProtocolSettings | None = None,
    profile_runs: int = 10,
    what: str | None = None,
) -> UserModelMeasurement:
    """Time an ONNX model (a path, or the bytes of one) on an ONNX Runtime CPU target with
    the shared protocol, then profile ``profile_runs`` runs for the breakdown."""
    import onnx
    import onnxruntime as ort

    from latbench.backends.onnxruntime_cpu import OnnxRuntimeCPUBackend
    from latbench.backends.registry import default_registry

    backend, target = default_registry().resolve(Target.parse(target_text))
    if not isinstance(backend, OnnxRuntimeCPUBackend) or backend.name != "onnxruntime-cpu":
        raise ConfigError(f"an ONNX model is measured on onnxruntime-cpu, not {target.name}")
    model = onnx.load_from_string(source) if isinstance(source, bytes) else load_onnx(source)
    feeds = onnx_feeds(model, batch, seq)
    data = source if isinstance(source, bytes) else model.SerializeToString()
    start = time.perf_counter()
    try:
        session = ort.InferenceSession(
            data, backend.session_options(target), providers=["CPUExecutionProvider"]
        )
        outputs = [o.name for o in session.get_outputs()]
        session.run(outputs, feeds)  # a model that cannot run fails here, in one line
    except Exception as exc:  # ORT raises its own exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"onnxruntime cannot run this model: {first}") from None
    build_time_s = time.perf_counter() - start
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    for name in outputs:
        binding.bind_output(name)
    (sampled,) = measure_group([lambda: session.run_with_iobinding(binding)], settings or ProtocolSettings())
    latency_ms = sampled.stats.median_s * 1e3
    with tempfile.TemporaryDirectory(prefix="latbench-ort-") as tmp:
        profiling = ort.InferenceSession(
            data, backend.session_options(target, profile_dir=tmp), providers=["CPUExecutionProvider"]
        )
        warmup = 2
        for _ in range(warmup + profile_runs):
            profiling.run(outputs, feeds)
        with open(profiling.end_profiling()) as f:
            events = json.load(f)
    breakdown = operator_breakdown(node_profile(events, skip_runs=warmup), latency_ms)
    return UserModelMeasurement.of(
        sampled,
        what=what or (str(source) if not isinstance(source, bytes) else "onnx model"),
        target=target,
        batch=batch,
        seq=seq,
        build_time_s=build_time_s,
        breakdown=breakdown,
        inputs={name: list(value.shape) for name, value in feeds.items()},
    )


# --- Hugging Face ------------------------------------------------------------------------------
def load_hf_model(directory: str | Path) -> Any:
    """A local Hugging Face checkpoint (weights when present, else the config's random
    initialisation) of a supported family, in eval mode."""
    try:
        import transformers
    except ImportError:
        raise ConfigError("--hf-model needs transformers: pip install 'latbench[hf]'") from None
    directory = Path(directory)
    config_path = directory / "config.json" if directory.is_dir() else directory
    if not config_path.is_file():
        raise ConfigError(f"no Hugging Face config.json at {directory}")
    try:
        config = transformers.AutoConfig.from_pretrained(str(config_path.parent), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot read the Hugging Face config at {config_path}: {exc}") from None
    if config.model_type not in HF_FAMILIES:
        raise ConfigError(
            f"model type {config.model_type!r} is not supported; --hf-model takes {', '.join(HF_FAMILIES)}"
        )
    head = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    auto = transformers.AutoModelForSequenceClassification if head else transformers.AutoModel
    transformers.utils.logging.disable_progress_bar()  # no loading bars between latbench's lines
    weights = any((config_path.parent / n).is_file() for n in ("model.safetensors", "pytorch_model.bin"))
    if weights:
        model = auto.from_pretrained(str(config_path.parent), local_files_only=True)
    else:
        model = auto.from_config(config)
    return model.eval()


def check_hf_workload(model: Any, seq: int) -> None:
    positions = getattr(model.config, "max_position_embeddings", None)
    if model.config.model_type == "roberta" and positions is not None:
        positions -= 2  # RoBERTa's positions start after the padding index
    if positions is not None and seq > positions:
        raise ConfigError(f"--seq {seq} is longer than the model's {positions} positions")


def export_hf_model(model: Any, batch: int, seq: int) -> bytes:
    """``model`` as users deploy it: ONNX with ``input_ids`` and ``attention_mask`` (dynamic
    batch and sequence), opset 17, logits or the last hidden state as its output (the
    export latbench's own graphs go through too: ``latbench.models.deployed``)."""
    import torch

    from latbench.models.deployed import export_deployed

    check_hf_workload(model, seq)
    ids = torch.ones((batch, seq), dtype=torch.long)
    mask = torch.ones((batch, seq), dtype=torch.long)

    class Deployed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask)[0]

    return export_deployed(Deployed(), (ids, mask), ("input_ids", "attention_mask"))


def measure_hf_eager(
    model: Any, *, batch: int = 1, seq: int = 128, threads: int = 1, settings: ProtocolSettings | None = None
) -> UserModelMeasurement:
    """``model`` timed as eager PyTorch on the CPU (``torch.no_grad``, ``threads`` intra-op
    threads), the way torch-cpu times latbench's own graphs."""
    import torch

    from latbench.backends.registry import default_registry

    check_hf_workload(model, seq)
    _, target = default_registry().resolve(Target("torch-cpu", settings={"threads": threads}))
    ids = torch.randint(0, int(model.config.vocab_size), (batch, seq))
    mask = torch.ones((batch, seq), dtype=torch.long)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)

            def call() -> None:
                model(input_ids=ids, attention_mask=mask)

            build_time_s = time.perf_counter() - start
            (sampled,) = measure_group([call], settings or ProtocolSettings())
    finally:
        torch.set_num_threads(previous)
    return UserModelMeasurement.of(
        sampled,
        what=f"{type(model).__name__} (eager)",
        target=target,
        batch=batch,
        seq=seq,
        build_time_s=build_time_s,
        inputs={"input_ids": [batch, seq], "attention_mask": [batch, seq]},
    )


def model_digest(*parts: bytes) -> str:
    """A short content hash identifying a user's model (its ONNX graph, or a checkpoint's
    config and weights)."""
    import hashlib

    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def hf_digest(directory: str | Path) -> str:
    """``model_digest`` of a Hugging Face checkpoint's config and weight files."""
    folder = Path(directory)
    folder = folder if folder.is_dir() else folder.parent
    files = sorted(
        p for p in folder.iterdir() if p.suffix in (".json", ".safetensors", ".bin") and p.is_file()
    )
    return model_digest(*(p.name.encode() + p.read_bytes() for p in files))


def measure_user_model(
    *,
    onnx_path: str | Path | None = None,
    hf_model: str | Path | None = None,
    target: str,
    batch: int = 1,
    seq: int = 128,
    settings: ProtocolSettings | None = None,
) -> list[tuple[ModelSpec, UserModelMeasurement]]:
    """What ``latbench measure --onnx`` / ``--hf-model`` measures, each with the spec it is
    stored under: an ONNX file on ``target``; or a Hugging Face checkpoint exported and
    measured on ``target``, then run as eager PyTorch on torch-cpu with ``target``'s threads."""
    from latbench.arch import Arch, Workload
    from latbench.backends.registry import default_registry

    if (onnx_path is None) == (hf_model is None):
        raise ConfigError("give one of an ONNX file and a Hugging Face checkpoint")
    workload = Workload(batch, seq)
    if onnx_path is not None:
        result = measure_onnx(onnx_path, target, batch=batch, seq=seq, settings=settings)
        digest = model_digest(Path(onnx_path).read_bytes())
        return [(ModelSpec(Path(onnx_path).name, digest, workload, "onnx"), result)]
    assert hf_model is not None
    model = load_hf_model(hf_model)
    exported = export_hf_model(model, batch, seq)
    deployed = measure_onnx(
        exported, target, batch=batch, seq=seq, settings=settings, what=f"{hf_model} (ONNX)"
    )
    _, resolved = default_registry().resolve(Target.parse(target))
    threads = int(resolved.get("threads", 1))  # type: ignore[arg-type]
    eager = measure_hf_eager(model, batch=batch, seq=seq, threads=threads, settings=settings)
    try:
        arch: Arch | None = Arch.from_hf_config(str(hf_model))
    except ConfigError:
        arch = None  # stored without a shape: predictors cannot be scored on it
    name, digest = Path(hf_model).resolve().name, hf_digest(hf_model)
    return [
        (ModelSpec(name, digest, workload, "hf", arch), deployed),
        (ModelSpec(name, digest, workload, "hf-eager", arch), eager),
    ]
