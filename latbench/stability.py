"""Is this machine quiet enough to measure right now? (``latbench stability``)

In the spirit of pyperf's ``system`` check, two kinds of evidence before a long profile:

* ``system_checks``: what the kernel says about the machine while nothing of ours runs:
  other processes' CPU use and the hypervisor's steal time over a short window
  (``/proc/stat``), the load average against the usable CPUs, the frequency governor and
  the spread of the cores' clocks, and the memory left;
* ``probe``: the same few encoders measured in several passes with pauses between them,
  and, for each way of summarising a spec's samples (``ESTIMATORS``: median, minimum,
  10th percentile, interquartile mean), how far two passes disagree — the noise floor a
  predictor fitted now would face, and which figure reproduces best on this machine today.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latbench.arch import Arch, Workload
from latbench.errors import ConfigError
from latbench.measurement import ESTIMATORS, Measurement, quantile
from latbench.specs import EncoderSpec

#: The probe's encoders: small to BERT-base-wide, at the workload latbench profiles.
PROBE_ARCHS = (
    Arch.uniform(2, 128, 2, 512),
    Arch.uniform(4, 256, 4, 1024),
    Arch.uniform(4, 512, 8, 2048),
    Arch.uniform(2, 768, 12, 3072),
)


@dataclass(frozen=True)
class StabilitySettings:
    """``latbench stability``'s options (its flags' defaults come from here)."""

    target: str = "onnxruntime-cpu:threads=1"
    passes: int = 3
    pause_s: float = 10.0  # between passes: drift over seconds to minutes is what hurts
    samples: int = 32
    window_s: float = 1.0  # how long the system check watches /proc/stat
    batch: int = 1
    seq: int = 128

    def __post_init__(self) -> None:
        if isinstance(self.passes, bool) or not isinstance(self.passes, int) or self.passes < 2:
            raise ConfigError(f"--passes must be at least 2 (the probe compares passes), got {self.passes}")
        for name in ("samples", "batch", "seq"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name} must be a positive integer, got {value}")
        if self.pause_s < 0 or self.window_s <= 0:
            raise ConfigError("--pause-s must be >= 0 and the check's window > 0")

    def specs(self) -> list[EncoderSpec]:
        return [EncoderSpec(arch, Workload(self.batch, self.seq)) for arch in PROBE_ARCHS]


# --- what the kernel says ------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One system check: ``ok`` None when the machine does not expose it."""

    name: str
    ok: bool | None
    value: str
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "value": self.value, "advice": self.advice}


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat (jiffies)."""

    busy: int
    idle: int
    steal: int

    @classmethod
    def parse(cls, stat_text: str) -> CpuTimes:
        for line in stat_text.splitlines():
            if line.startswith("cpu "):
                values = [int(v) for v in line.split()[1:]]
                values += [0] * (8 - len(values))
                user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
                return cls(busy=user + nice + system + irq + softirq, idle=idle + iowait, steal=steal)
        raise ValueError("no aggregate cpu line in /proc/stat")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return None


def cpu_window(
    window_s: float, read: Callable[[str], str | None] = _read, sleep: Callable[[float], None] = time.sleep
) -> tuple[float, float] | None:
    """Other processes' share of the CPUs and the steal share over ``window_s`` (this
    process sleeps meanwhile), or None without /proc/stat."""
    first = read("/proc/stat")
    if first is None:
        return None
    sleep(window_s)
    second = read("/proc/stat")
    if second is None:
        return None
    a, b = CpuTimes.parse(first), CpuTimes.parse(second)
    busy, idle, steal = b.busy - a.busy, b.idle - a.idle, b.steal - a.steal
    total = busy + idle + steal
    if total <= 0:
        return None
    return busy / total, steal / total


def system_checks(
    window_s: float = 1.0,
    *,
    read: Callable[[str], str | None] = _read,
    sleep: Callable[[float], None] = time.sleep,
    cpus: int | None = None,
) -> list[Check]:
    """The kernel's view of the machine (see the module docstring); ``read`` and ``sleep``
    are injectable so the checks are tested on made-up /proc files."""
    from latbench.fingerprint import usable_cpus

    cpus = cpus or usable_cpus()
    checks = []
    window = cpu_window(window_s, read, sleep)
    if window is None:
        checks.append(Check("other processes", None, "/proc/stat not readable"))
        checks.append(Check("steal time", None, "/proc/stat not readable"))
    else:
        busy, steal = window
        checks.append(
            Check("other processes", busy <= 0.10, f"{busy:.0%} of the CPUs busy over {window_s:g} s",
                  "" if busy <= 0.10 else "something else is running: wait for it, or measure elsewhere")
        )  # fmt: skip
        checks.append(
            Check("steal time", steal <= 0.02, f"{steal:.1%} taken by the hypervisor",
                  "" if steal <= 0.02 else "a neighbour on the host is busy: figures will drift")
        )  # fmt: skip
    loadavg = read("/proc/loadavg")
    if loadavg:
        load = float(loadavg.split()[0])
        checks.append(
            Check("load average", load <= 0.5 * cpus, f"{load:.2f} over the last minute on {cpus} CPUs",
                  "" if load <= 0.5 * cpus else "the machine has been busy; a profile now will be noisy")
        )  # fmt: skip
    else:
        checks.append(Check("load average", None, "/proc/loadavg not readable"))
    governors = {
        g.strip()
        for cpu in range(cpus)
        if (g := read(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor")) is not None
    }
    if governors:
        ok = governors == {"performance"}
        checks.append(
            Check("frequency governor", ok, ", ".join(sorted(governors)),
                  "" if ok else "set the performance governor (cpupower frequency-set -g performance)")
        )  # fmt: skip
    else:
        checks.append(Check("frequency governor", None, "not exposed (a VM's host decides)"))
    mhz = [
        float(line.split(":")[1])
        for line in (read("/proc/cpuinfo") or "").splitlines()
        if line.startswith("cpu MHz")
    ]
    if mhz:
        spread = (max(mhz) - min(mhz)) / max(mhz)
        checks.append(
            Check("core clocks", spread <= 0.10, f"{min(mhz):.0f}-{max(mhz):.0f} MHz",
                  "" if spread <= 0.10 else "cores run at different clocks now: turbo or power saving varies")
        )  # fmt: skip
    meminfo = {
        line.split(":")[0]: line.split(":")[1].split()[0]
        for line in (read("/proc/meminfo") or "").splitlines()
        if ":" in line
    }
    if "MemAvailable" in meminfo:
        available_gib = int(meminfo["MemAvailable"]) / 2**20
        checks.append(
            Check("memory", available_gib >= 1.0, f"{available_gib:.1f} GiB available",
                  "" if available_gib >= 1.0 else "little memory left: swapping would distort every figure")
        )  # fmt: skip
    return checks


# --- the probe -------------------------------------------------------------------------------
@dataclass(frozen=True)
class EstimatorAgreement:
    """How far two passes' figures of the same spec disagree, for one estimator, over
    every pair of passes and every spec (``|a/b - 1|``)."""

    estimator: str
    differences: tuple[float, ...]

    @property
    def within_5(self) -> float:
        return sum(d <= 0.05 for d in self.differences) / len(self.differences)

    @property
    def within_10(self) -> float:
        return sum(d <= 0.10 for d in self.differences) / len(self.differences)

    @property
    def median(self) -> float:
        return quantile(sorted(self.differences), 0.5)

    @property
    def p90(self) -> float:
        return quantile(sorted(self.differences), 0.9)

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "pairs": len(self.differences),
            "within_5": self.within_5,
            "within_10": self.within_10,
            "median_difference": self.median,
            "p90_difference": self.p90,
        }


def agreement(
    passes: Sequence[Sequence[Measurement]],
    *,
    starts: Sequence[float] | None = None,
    min_gap_s: float = 0.0,
    max_gap_s: float = math.inf,
    normalise: bool = False,
) -> list[EstimatorAgreement]:
    """Every estimator's pass-to-pass disagreement, best first; passes list the same specs.

    With ``starts`` (each pass's start, s), only pairs of passes ``min_gap_s`` to
    ``max_gap_s`` apart count. ``normalise`` first divides out the pair's common factor
    (the median ratio over its specs): what is left is how unevenly a slowdown hit the
    specs, the part no reference measurement can correct."""
    if starts is not None and len(starts) != len(passes):
        raise ValueError("one start time per pass")
    out = []
    for name, estimate in ESTIMATORS.items():
        diffs = []
        for (i, first), (j, second) in itertools.combinations(enumerate(passes), 2):
            if starts is not None and not min_gap_s <= abs(starts[j] - starts[i]) <= max_gap_s:
                continue
            again = {m.spec.key: m for m in second}
            ratios = [
                estimate(m.times_s) / estimate(again[m.spec.key].times_s)
                for m in first
                if m.spec.key in again
            ]
            if not ratios:
                continue
            common = quantile(sorted(ratios), 0.5) if normalise else 1.0
            diffs += [abs(r / common - 1) for r in ratios]
        if diffs:
            out.append(EstimatorAgreement(name, tuple(diffs)))
    return sorted(out, key=lambda a: (a.median, -a.within_10))


@dataclass(frozen=True)
class StabilityReport:
    settings: StabilitySettings
    checks: tuple[Check, ...]
    agreements: tuple[EstimatorAgreement, ...]
    pass_times: tuple[float, ...] = field(default=())

    @property
    def best(self) -> EstimatorAgreement:
        return self.agreements[0]

    @property
    def verdict(self) -> str:
        """``quiet`` when the best figure reproduces within ±5% for 90% of the pairs and no
        check failed, ``usable`` within ±10% for 90%, else ``noisy``."""
        failed = any(c.ok is False for c in self.checks)
        if self.best.within_5 >= 0.9 and not failed:
            return "quiet"
        return "usable" if self.best.within_10 >= 0.9 else "noisy"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "target": self.settings.target,
            "passes": self.settings.passes,
            "pause_s": self.settings.pause_s,
            "checks": [c.to_dict() for c in self.checks],
            "estimators": [a.to_dict() for a in self.agreements],
            "pass_times": list(self.pass_times),
        }


def probe(
    settings: StabilitySettings,
    measure: Callable[[list[EncoderSpec]], list[Measurement]],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    on_pass: Callable[[int], None] = lambda k: None,
) -> tuple[list[list[Measurement]], list[float]]:
    """``settings.passes`` passes of ``measure`` over the probe's specs, ``pause_s`` apart,
    each in its own order (a neighbour's burst should not always hit the same spec)."""
    specs = settings.specs()
    passes, started = [], []
    for k in range(settings.passes):
        if k:
            sleep(settings.pause_s)
        on_pass(k)
        started.append(clock())
        order = specs[k % len(specs) :] + specs[: k % len(specs)]
        passes.append(measure(order))
    return passes, started


def check_stability(
    settings: StabilitySettings,
    *,
    on_pass: Callable[[int], None] = lambda k: None,
) -> StabilityReport:
    """The system checks, then the probe on ``settings.target`` (see the module docstring)."""
    from latbench.backends.registry import default_registry
    from latbench.fingerprint import collect
    from latbench.profile import measure_specs
    from latbench.target import Target
    from latbench.timing import ProtocolSettings

    backend, target = default_registry().resolve(Target.parse(settings.target))
    for spec in settings.specs():
        backend.check_spec(spec)
    checks = system_checks(settings.window_s)
    fingerprint = collect(backend.fingerprint_extras())
    protocol = ProtocolSettings.with_samples(settings.samples)
    worker = f"stability:{os.getpid()}"

    def measure(specs: list[EncoderSpec]) -> list[Measurement]:
        return measure_specs(backend, target, fingerprint, specs, protocol, worker=worker, kernel_runs=0)

    passes, started = probe(settings, measure, on_pass=on_pass)
    return StabilityReport(settings, tuple(checks), tuple(agreement(passes)), tuple(started))
