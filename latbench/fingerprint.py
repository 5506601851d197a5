"""``Fingerprint``: what hardware and software a measurement was taken on.

Collected explicitly with :func:`collect` (never at import time). ``key`` hashes every
field that can change a latency (CPU model, flags, cores, caches, library versions), but
not the host name, so identical machines of a fleet share measurements.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from latbench.keys import content_key

# JAX's device runtimes (libtpu, the CUDA plugin) change latencies as much as jaxlib does.
TRACKED_LIBRARIES = (
    "latbench",
    "torch",
    "onnxruntime",
    "onnx",
    "numpy",
    "jax",
    "jaxlib",
    "libtpu",
    "jax-cuda12-plugin",
    "tensorrt",
)


@dataclass(frozen=True)
class Fingerprint:
    cpu_model: str
    cpu_flags_digest: str
    physical_cores: int
    logical_cpus: int
    usable_cpus: int
    l2_cache_bytes: int
    l3_cache_bytes: int
    memory_bytes: int
    machine: str
    os: str
    python: str
    libraries: tuple[tuple[str, str], ...] = ()
    gpu: str = ""
    gpu_driver: str = ""
    cuda: str = ""
    tpu: str = ""
    #: The device a compiling backend runs on, as its runtime names it (JAX: platform
    #: ``cpu``/``gpu``/``tpu``, device kind ``TPU v5 lite`` or the GPU's name, and how many
    #: such devices it sees). Left out of ``to_dict`` (and so of ``key``) when empty, so the
    #: keys of fingerprints taken before these fields existed do not change.
    device_platform: str = ""
    device_kind: str = ""
    device_count: int = 0
    #: The GPU's maximum SM and memory clocks (``nvidia-smi``'s ``clocks.max.sm`` and
    #: ``clocks.max.mem``, MHz), for CUDA targets; optional like the device fields above.
    gpu_sm_clock_mhz: int = 0
    gpu_mem_clock_mhz: int = 0
    #: How the backend builds latbench's encoders and blocks (``latbench.models.deployed``'s
    #: ``GRAPH_FORM`` for the ONNX Runtime targets). Empty, and left out of the key, for
    #: measurements of the earlier fused form: a database profiled before keeps its rows,
    #: and they are never mixed with measurements of the deployed form.
    graph_form: str = ""
    hostname: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        data = self.to_dict()
        data.pop("hostname")
        return content_key(data)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["libraries"] = dict(self.libraries)
        for name in _OPTIONAL_FIELDS:
            if not data[name]:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        values = dict(data)
        values["libraries"] = tuple(sorted(dict(values.get("libraries", {})).items()))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})

    def library(self, name: str) -> str:
        return dict(self.libraries).get(name, "")

    def summary(self) -> str:
        text = (
            f"{self.cpu_model} · {self.physical_cores} cores ({self.usable_cpus} usable) · "
            f"L3 {self.l3_cache_bytes // 2**20} MiB · {self.os}"
        )
        if self.device_platform and self.device_platform != "cpu":
            text += f" · {self.device_count} × {self.device_kind}"
        return text


_OPTIONAL_FIELDS = (
    "device_platform",
    "device_kind",
    "device_count",
    "gpu_sm_clock_mhz",
    "gpu_mem_clock_mhz",
    "graph_form",
)


def library_versions(names: tuple[str, ...] = TRACKED_LIBRARIES) -> tuple[tuple[str, str], ...]:
    found = []
    for name in names:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(sorted(found))


def _read_sysfs_cache_bytes(level: int) -> int:
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            path = os.path.join(base, entry)
            with open(os.path.join(path, "level")) as f:
                if int(f.read().strip()) != level:
                    continue
            with open(os.path.join(path, "type")) as f:
                if f.read().strip() == "Instruction":
                    continue
            with open(os.path.join(path, "size")) as f:
                text = f.read().strip().upper()
            scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1], 1)
            return int(text.rstrip("KMG")) * scale
    except (OSError, ValueError):
        pass
    return 0


def cpu_flags_digest(flags: Iterable[str]) -> str:
    """A short hash of a CPU's ISA flags (what tells two machines of one model apart)."""
    return hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16]


def max_clock_hz() -> float | None:
    """The highest clock the kernel reports (cpufreq), absent on many VMs."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return float(f.read().strip()) * 1e3  # kHz
    except (OSError, ValueError):
        return None


def proc_cpuinfo() -> dict[str, str]:
    """The first processor's entries of /proc/cpuinfo (empty off Linux)."""
    entries: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                entries[key.strip()] = value.strip()
    except OSError:
        pass
    return entries


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask, e.g. under taskset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def physical_cores() -> int:
    """Physical cores usable by this process (hyper-threads counted once)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    try:
        siblings = set()
        for cpu in cpus:
            path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
            with open(path) as f:
                siblings.add(f.read().strip())
        return max(1, len(siblings))
    except OSError:
        return max(1, len(cpus))


def collect(extra: Mapping[str, Any] | None = None) -> Fingerprint:
    """Read the fingerprint of this machine. ``extra`` fills GPU/TPU/device fields for backends."""
    info = proc_cpuinfo()
    flags = sorted(info.get("flags", "").split())
    usable = usable_cpus()
    l2 = _read_sysfs_cache_bytes(2)
    l3 = _read_sysfs_cache_bytes(3)
    fields: dict[str, Any] = {
        "cpu_model": info.get("model name") or platform.processor() or "unknown",
        "cpu_flags_digest": cpu_flags_digest(flags),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count() or 1,
        "usable_cpus": usable,
        "l2_cache_bytes": l2,
        "l3_cache_bytes": l3,
        "memory_bytes": _memory_bytes(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libraries": library_versions(),
        "hostname": socket.gethostname(),
    }
    fields.update(extra or {})
    return Fingerprint(**fields)
