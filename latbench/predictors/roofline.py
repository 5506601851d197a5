"""Roofline latency: what an encoder would take on a device from its spec sheet alone.

Every operator of every layer (``latbench.specs.LAYER_OPS``) and the embedding is
charged ``max(FLOPs / peak FLOP/s, bytes / memory bandwidth) + a per-kernel overhead``,
and the parts are summed. That is a lower bound a real runtime never quite reaches, but
it ranks shapes sensibly and answers for hardware nobody has profiled: the question a
search for a student that must run on a target we do not own asks first.

* ``DeviceSpec`` holds one device's figures; ``spec_sheets()`` reads the shipped ones
  (``latbench/predictors/specsheets.toml``, each with its public sources), ``device_spec(name)``
  picks one and ``detect_cpu_spec()`` estimates this machine's CPU ("auto").
* ``roofline_seconds(batch, device, threads)`` is the analytical time per encoder,
  vectorised over populations; other predictors use it as a feature.
* ``RooflinePredictor`` (``roofline``) is ``scale * roofline + overhead``: fitted on
  measured encoders it corrects the roofline's optimism; fitted on none (``fit([], [])``)
  it is the pure spec-sheet estimate.
"""

from __future__ import annotations

import functools
import math
import platform
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

import numpy as np

from latbench import fingerprint as this_machine
from latbench.errors import ConfigError
from latbench.fingerprint import Fingerprint, cpu_flags_digest, physical_cores
from latbench.predictors.base import LatencyPredictor, Prediction, fit_affine_relative
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.table import LatencyTable
from latbench.specs import LAYER_OPS

KINDS = ("cpu", "gpu", "tpu")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
SHEET_FILE = "specsheets.toml"
SHEET_WHERE = "latbench/predictors/specsheets.toml"
AUTO = "auto"

# What ``detect_cpu_spec`` assumes where it cannot measure (documented estimates).
AUTO_PER_CORE_BANDWIDTH_BPS = 15e9  # one core streaming from DRAM on a recent server CPU
AUTO_SOCKET_BANDWIDTH_CAP_BPS = 204.8e9  # 8 channels of DDR4-3200
AUTO_CLOCK_HZ = 2.0e9  # when no clock can be read
AUTO_CPU_OVERHEAD_S = 1e-6

_FIELDS = frozenset(
    {
        "name",
        "kind",
        "peak_flops",
        "memory_bandwidth_Bps",
        "cores",
        "per_core_bandwidth_Bps",
        "op_overhead_s",
        "source",
        "derivation",
        "notes",
    }
)


def check_threads(threads: Any) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


@dataclass(frozen=True)
class DeviceSpec:
    """One device's spec sheet: peak FLOP/s per precision, memory bandwidth, and for CPUs
    the core count and what one core can stream (a single core cannot use the whole
    socket's bandwidth, so one-thread inference is bandwidth-bound much earlier).

    ``op_overhead_s`` is a per-kernel launch/dispatch cost: an estimate, which a
    calibrated fit on measurements replaces. ``source`` lists where the figures come from.
    """

    key: str
    name: str
    kind: str
    peak_flops: Mapping[str, float]
    memory_bandwidth_Bps: float
    op_overhead_s: float
    cores: int | None = None
    per_core_bandwidth_Bps: float | None = None
    source: tuple[str, ...] = ()
    derivation: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "peak_flops", MappingProxyType(dict(self.peak_flops)))
        object.__setattr__(self, "source", tuple(self.source))

    def __hash__(self) -> int:
        return hash((self.key, self.name, tuple(sorted(self.peak_flops.items()))))

    def _threads_used(self, threads: int) -> int:
        threads = check_threads(threads)
        return min(int(threads), self.cores) if self.kind == "cpu" and self.cores else int(threads)

    def peak_flops_for(self, precision: str, threads: int = 1) -> float:
        """Peak FLOP/s at ``precision``; on a CPU, the share of ``threads`` cores (more
        threads than cores add nothing: SMT siblings share the FMA units).

        A precision the sheet does not list falls back to the fp32 figure: a device
        without bf16/fp16/int8 units (a T4 has no bf16, a Zen 3 core no bf16 or fp16
        arithmetic) runs such a model by converting to fp32, at the fp32 rate at best.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
        used = self._threads_used(threads)
        peak = self.peak_flops.get(precision, self.peak_flops["fp32"])
        if self.kind == "cpu" and self.cores:
            return peak * used / self.cores
        return peak

    def bandwidth_for(self, threads: int = 1) -> float:
        """Memory bandwidth (bytes/s) ``threads`` cores can draw: on a CPU
        ``min(socket, per_core * threads)``; an accelerator's whole bandwidth otherwise."""
        used = self._threads_used(threads)
        if self.kind == "cpu" and self.per_core_bandwidth_Bps:
            return min(self.memory_bandwidth_Bps, self.per_core_bandwidth_Bps * used)
        return self.memory_bandwidth_Bps

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, so a saved predictor carries the sheet it was fitted with."""
        return {
            "key": self.key,
            "name": self.name,
            "kind": self.kind,
            "peak_flops": dict(self.peak_flops),
            "memory_bandwidth_Bps": self.memory_bandwidth_Bps,
            "cores": self.cores,
            "per_core_bandwidth_Bps": self.per_core_bandwidth_Bps,
            "op_overhead_s": self.op_overhead_s,
            "source": list(self.source),
            "derivation": self.derivation,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceSpec:
        if not isinstance(data, Mapping) or not isinstance(data.get("key"), str):
            raise ConfigError("a device spec must be a mapping with a string 'key'; write it with to_dict()")
        values = {k: v for k, v in data.items() if k != "key" and v is not None}
        return _validated(data["key"], values, "device spec", require_urls=False)


# --- the shipped sheets --------------------------------------------------------------
def _sheet_text() -> str:
    """The shipped spec sheets' TOML (package data, so it works from a wheel too)."""
    return resources.files("latbench.predictors").joinpath(SHEET_FILE).read_text(encoding="utf-8")


def spec_sheets() -> dict[str, DeviceSpec]:
    """Every shipped device by key, validated (a malformed sheet is a ``ConfigError``)."""
    return dict(parse_spec_sheets(_sheet_text()))


@functools.lru_cache(maxsize=4)
def parse_spec_sheets(text: str, where: str = SHEET_WHERE) -> Mapping[str, DeviceSpec]:
    """Parse and validate spec-sheet TOML: a ``[devices.<key>]`` table per device."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML ({exc}); fix the file") from None
    devices = document.get("devices")
    if not isinstance(devices, dict) or not devices:
        raise ConfigError(f"{where} has no [devices.<name>] tables; add at least one device")
    sheets = {}
    for key, data in devices.items():
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: devices.{key} must be a table of fields")
        sheets[key] = _validated(key, data, where, require_urls=True)
    return MappingProxyType(sheets)


def device_spec(name: str) -> DeviceSpec:
    """The spec sheet called ``name`` (``"auto"``: this machine's CPU, estimated)."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key == AUTO:
        return _this_cpu_spec()
    sheets = spec_sheets()
    if key not in sheets:
        raise ConfigError(
            f"unknown device {name!r}; known: {AUTO}, {', '.join(sorted(sheets))} "
            f"(or add a sheet to {SHEET_WHERE})"
        )
    return sheets[key]


@functools.cache
def _this_cpu_spec() -> DeviceSpec:
    """``detect_cpu_spec()`` once per process: the current clock some kernels report
    drifts between reads, and the folds of one fit (and refits) must see one device."""
    return detect_cpu_spec()


def _validated(key: str, data: Mapping[str, Any], where: str, *, require_urls: bool) -> DeviceSpec:
    """A ``DeviceSpec`` from one sheet's fields, or a ``ConfigError`` naming the field."""

    def bad(fld: str, problem: str) -> ConfigError:
        return ConfigError(f"{where}: device {key!r} field {fld!r} {problem}; fix the spec sheet")

    def positive(fld: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad(fld, f"must be a number, got {value!r}")
        if value <= 0:
            raise bad(fld, f"must be positive, got {value!r}")
        return float(value)

    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise bad(unknown[0], f"is not a spec-sheet field (known: {', '.join(sorted(_FIELDS))})")
    for required in ("name", "kind", "peak_flops", "memory_bandwidth_Bps", "op_overhead_s"):
        if required not in data:
            raise bad(required, "is missing")
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise bad("name", "must be a non-empty string")
    kind = data["kind"]
    if kind not in KINDS:
        raise bad("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    peaks = data["peak_flops"]
    if not isinstance(peaks, Mapping) or "fp32" not in peaks:
        raise bad("peak_flops", "must be a table of FLOP/s per precision including fp32")
    for precision in peaks:
        if precision not in PRECISIONS:
            raise bad("peak_flops", f"has unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
    peak_flops = {p: positive(f"peak_flops.{p}", v) for p, v in peaks.items()}
    bandwidth = positive("memory_bandwidth_Bps", data["memory_bandwidth_Bps"])
    overhead = data["op_overhead_s"]
    if isinstance(overhead, bool) or not isinstance(overhead, (int, float)) or not 0 <= overhead < 1:
        raise bad("op_overhead_s", f"must be a number of seconds in [0, 1), got {overhead!r}")
    cores = data.get("cores")
    per_core = data.get("per_core_bandwidth_Bps")
    if kind == "cpu":
        if isinstance(cores, bool) or not isinstance(cores, int) or cores <= 0:
            raise bad("cores", f"must be a positive integer for a CPU, got {cores!r}")
        per_core = positive("per_core_bandwidth_Bps", per_core)
        if per_core > bandwidth:
            raise bad(
                "per_core_bandwidth_Bps", "exceeds memory_bandwidth_Bps (a core cannot beat its socket)"
            )
        if not str(data.get("derivation", "")).strip():
            raise bad("derivation", "must say how a CPU's peak was computed (cores x clock x FLOPs/cycle)")
    else:
        for fld in ("cores", "per_core_bandwidth_Bps"):
            if data.get(fld) is not None:
                raise bad(fld, f"applies to CPUs only, not a {kind}")
    source = data.get("source", [])
    if isinstance(source, str) or not all(isinstance(s, str) and s.strip() for s in source):
        raise bad("source", "must be a list of non-empty strings")
    if require_urls and (not source or not all(s.startswith("https://") for s in source)):
        raise bad("source", "must list the https:// pages the figures come from")
    for fld in ("derivation", "notes"):
        if not isinstance(data.get(fld, ""), str):
            raise bad(fld, "must be a string")
    return DeviceSpec(
        key=key,
        name=name,
        kind=kind,
        peak_flops=peak_flops,
        memory_bandwidth_Bps=bandwidth,
        op_overhead_s=float(overhead),
        cores=cores if kind == "cpu" else None,
        per_core_bandwidth_Bps=per_core if kind == "cpu" else None,
        source=tuple(source),
        derivation=data.get("derivation", ""),
        notes=data.get("notes", ""),
    )


# --- this machine ----------------------------------------------------------------------
def _simd_fp32_per_cycle(flags: set[str], info: Mapping[str, str], machine: str) -> tuple[int, str]:
    """FP32 FLOPs per cycle per core the vector units allow, and why."""
    if "avx512f" in flags and "fma" in flags:
        if info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") == "25":
            return 32, "AVX-512 on Zen 4's 2 x 256-bit FMA units"
        return 64, "AVX-512 + FMA, assuming 2 x 512-bit FMA units"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2 + FMA, 2 x 256-bit FMA units"
    if flags & {"asimd", "sve"} or machine.lower() in ("arm64", "aarch64"):
        return 16, "Arm NEON, assuming 2 x 128-bit FMA pipes"
    return 8, "no wide FMA known: 4-wide SSE add + multiply"


def detect_cpu_spec(
    fingerprint: Fingerprint | None = None, *, cpuinfo: Mapping[str, str] | None = None
) -> DeviceSpec:
    """An estimated spec sheet for this machine's CPU (device ``"auto"``).

    Cores come from ``fingerprint`` (or this machine); clock (cpufreq max, else the
    current MHz), ISA flags and vendor from ``cpuinfo`` (default: /proc/cpuinfo, whose
    first processor entry the fingerprint also reads). FP32 FLOPs/cycle follow from the
    ISA: AVX-512+FMA 64 (32 on Zen 4), AVX2+FMA 32, NEON 16, else 8. Bandwidth is a guess
    (``AUTO_PER_CORE_BANDWIDTH_BPS`` per core). When the fingerprint is another machine's
    (its flags digest differs from ``cpuinfo``'s), only its core count and model are
    used, with baseline ISA and clock. Everything is an estimate; the notes say so.
    """
    info = dict(this_machine.proc_cpuinfo() if cpuinfo is None else cpuinfo)
    flags = set((info.get("flags") or info.get("Features") or "").split())
    machine = platform.machine()
    notes = ["estimated from /proc/cpuinfo, not a vendor sheet"]
    local = True
    if fingerprint is None:
        cores = physical_cores()
        model = info.get("model name") or platform.processor() or "unknown CPU"
    else:
        cores = max(1, int(fingerprint.physical_cores))
        model = fingerprint.cpu_model
        if fingerprint.cpu_flags_digest != cpu_flags_digest(flags):
            local = False
            info, flags, machine = {}, set(), fingerprint.machine
            notes.append("the fingerprint is another machine's: its ISA and clock are unknown here")
    clock_hz, clock_from = None, ""
    if local:
        clock_hz, clock_from = this_machine.max_clock_hz(), "cpufreq max"
        if clock_hz is None:
            try:
                clock_hz, clock_from = float(info["cpu MHz"]) * 1e6, "current MHz"
            except (KeyError, ValueError):
                clock_hz = None
    if not clock_hz or clock_hz <= 0:
        clock_hz, clock_from = AUTO_CLOCK_HZ, "assumed, none readable"
    per_cycle, why = _simd_fp32_per_cycle(flags, info, machine)
    fp32 = cores * clock_hz * per_cycle
    peak_flops = {"fp32": fp32}
    if "amx_bf16" in flags:
        peak_flops["bf16"] = cores * clock_hz * 1024
    elif "avx512_bf16" in flags:
        peak_flops["bf16"] = 2 * fp32
    if "amx_int8" in flags:
        peak_flops["int8"] = cores * clock_hz * 2048
    elif flags & {"avx512_vnni", "avx_vnni"}:
        peak_flops["int8"] = 4 * fp32
    bandwidth = min(AUTO_PER_CORE_BANDWIDTH_BPS * cores, AUTO_SOCKET_BANDWIDTH_CAP_BPS)
    notes.append(
        f"bandwidth guessed at {AUTO_PER_CORE_BANDWIDTH_BPS / 1e9:g} GB/s per core "
        f"(socket capped at {AUTO_SOCKET_BANDWIDTH_CAP_BPS / 1e9:g} GB/s)"
    )
    return DeviceSpec(
        key=AUTO,
        name=f"{model} (detected)",
        kind="cpu",
        peak_flops=peak_flops,
        memory_bandwidth_Bps=bandwidth,
        op_overhead_s=AUTO_CPU_OVERHEAD_S,
        cores=cores,
        per_core_bandwidth_Bps=min(AUTO_PER_CORE_BANDWIDTH_BPS, bandwidth),
        source=("/proc/cpuinfo",) if local else (),
        derivation=(
            f"{cores} cores x {clock_hz / 1e9:.2f} GHz ({clock_from}) x {per_cycle} FP32 FLOP/cycle ({why})"
        ),
        notes="; ".join(notes),
    )


# --- the roofline --------------------------------------------------------------------
def roofline_layer_seconds(batch: EncoderBatch, device: DeviceSpec, threads: int = 1) -> np.ndarray:
    """``(n, max_layers)``: each layer's roofline time (0 for padding), every operator
    charged ``max(flops / peak, bytes / bandwidth) + op_overhead_s``."""
    peak = device.peak_flops_for(batch.precision, threads)
    bandwidth = device.bandwidth_for(threads)
    total = np.zeros(batch.heads.shape)
    for op, count in LAYER_OPS:
        bound = np.maximum(batch.op_flops(op) / peak, batch.op_bytes(op) / bandwidth)
        total += count * (bound + device.op_overhead_s)
    return np.where(batch.mask, total, 0.0)


def roofline_seconds(batch: EncoderBatch, device: DeviceSpec, threads: int = 1) -> np.ndarray:
    """``(n,)``: the roofline time of each encoder: embedding plus all its layers."""
    peak = device.peak_flops_for(batch.precision, threads)
    bandwidth = device.bandwidth_for(threads)
    embedding = np.maximum(batch.embedding_flops() / peak, batch.embedding_bytes() / bandwidth)
    return embedding + device.op_overhead_s + roofline_layer_seconds(batch, device, threads).sum(axis=1)


class RooflinePredictor(LatencyPredictor):
    """``scale * roofline + overhead`` on one device's spec sheet.

    ``device``: a key of ``spec_sheets()`` or ``"auto"`` (this machine's CPU, estimated);
    ``threads``: CPU threads the runtime uses (ignored on accelerators). The resolved
    sheet is stored (``device_spec_``), so a saved predictor does not depend on the
    machine or sheet version it is loaded with.
    """

    name = "roofline"

    def __init__(self, device: str = AUTO, threads: int = 1) -> None:
        self.device = device
        self.threads = threads

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.device, str) or not self.device.strip():
            raise ValueError(f"device must be a spec-sheet name or 'auto', got {self.device!r}")
        check_threads(self.threads)

    def _fit(self, batch: EncoderBatch, y: np.ndarray, table: LatencyTable | None) -> None:
        self.device_spec_ = device_spec(self.device)
        raw = roofline_seconds(batch, self.device_spec_, self.threads)
        self.scale_, self.overhead_s_ = fit_affine_relative(raw, y)

    def _predict(self, batch: EncoderBatch) -> Prediction:
        raw = roofline_seconds(batch, self.device_spec_, self.threads)
        return Prediction(np.maximum(self.scale_ * raw + self.overhead_s_, 0.0))

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "device_spec_": self.device_spec_.to_dict(),
            "scale_": self.scale_,
            "overhead_s_": self.overhead_s_,
        }

    def set_state(self, state: dict[str, Any]) -> LatencyPredictor:
        super().set_state(state)
        self.device_spec_ = DeviceSpec.from_dict(state["device_spec_"])
        self.scale_, self.overhead_s_ = float(state["scale_"]), float(state["overhead_s_"])
        return self
