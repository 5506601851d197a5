"""What a search optimises: an accuracy signal and a latency cost for each candidate student.

Accuracy (``AccuracyObjective``: ``evaluate(arch, work_dir) -> Evaluation``):

* ``ProxyDistillation`` — the real signal: a short distillation of the candidate from the
  teacher (``DistillConfig.proxy()``: 300 steps on 2,000 examples unless told otherwise),
  scored on the development set: accuracy, label and probability loyalty. The same class
  with a full ``DistillConfig`` trains the final Pareto students.
* ``SurrogateAccuracy`` — an inexpensive, deterministic stand-in so that samplers can be
  compared over hundreds of trials (the search benchmark). It is *not* a model of any real
  task: accuracy rises with depth and width with diminishing returns, heads that are too
  narrow or too many for the hidden size cost accuracy, and a small noise that depends
  only on the architecture and the seed is added (as a proxy's run-to-run noise would be).

Latency (``LatencyCost``: ``estimate(archs) -> list[LatencyEstimate]``):

* ``PredictedLatency`` — a fitted predictor (``latbench fit``) at one workload, with its
  90% interval; cheap, so the search can rank many candidates by it;
* ``MeasuredLatency`` — the real target, timed with the shared protocol (median and IQR),
  for the candidates whose interval straddles the budget and for the final Pareto set.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from latbench.arch import Arch, Workload
from latbench.errors import ConfigError


@dataclass(frozen=True)
class Evaluation:
    """One candidate's accuracy and what else its evaluation measured (loyalty, params …)."""

    accuracy: float
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


class AccuracyObjective(Protocol):
    name: str

    def evaluate(self, arch: Arch, work_dir: Path | None = None) -> Evaluation: ...

    def describe(self) -> dict[str, Any]: ...

    def check(self, archs: Sequence[Arch]) -> None:
        """Raise ``ConfigError`` when one of ``archs`` cannot be evaluated (before any work)."""
        ...


@dataclass(frozen=True)
class LatencyEstimate:
    """A latency in milliseconds with its interval (equal to it when there is none).

    ``ms`` is the latency figure (for a measurement, the minimum of its samples: see
    ``latbench.measurement.LATENCY_FIGURE``); a measurement also keeps the typical
    (median) and tail (p90, p99) figures, so a report shows what a loaded machine does."""

    ms: float
    low_ms: float
    high_ms: float
    measured: bool = False
    iqr_ms: float | None = None
    outside_table: tuple[str, ...] = ()
    median_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None

    def straddles(self, budget_ms: float) -> bool:
        return self.low_ms <= budget_ms < self.high_ms


class LatencyCost(Protocol):
    name: str

    def estimate(self, archs: Sequence[Arch]) -> list[LatencyEstimate]: ...

    def describe(self) -> dict[str, Any]: ...


# --- accuracy --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SurrogateAccuracy:
    """Deterministic accuracy surrogate for benchmarking samplers (see the module docstring).

    ``accuracy = floor + (ceiling - floor) * (1 - exp(-capacity))`` where capacity grows
    with log(layers), log(hidden), log(FFN ratio) and log(heads), and falls when a head is narrower
    than ``min_head_dim`` or there are more heads than ``hidden / 16``; plus a Gaussian
    noise of ``noise`` standard deviation seeded by the architecture and ``seed``.
    """

    seed: int = 0
    noise: float = 0.003
    floor: float = 0.5
    ceiling: float = 0.92
    name: str = "surrogate"

    def evaluate(self, arch: Arch, work_dir: Path | None = None) -> Evaluation:
        return Evaluation(self.accuracy(arch), {"params": float(arch.params)})

    def accuracy(self, arch: Arch) -> float:
        depth = 0.55 * math.log(1 + arch.num_layers)
        per_layer = []
        for layer in arch.layers:
            width = 0.7 * math.log(layer.hidden / 64)
            ffn = 0.25 * math.log(layer.ffn / layer.hidden)
            narrow = max(0.0, math.log(24 / layer.head_dim)) ** 2 * 0.4
            heads = 0.08 * math.log(layer.heads)
            crowded = max(0.0, math.log(layer.heads / (layer.hidden / 16))) * 0.3
            per_layer.append(width + ffn + heads - narrow - crowded)
        capacity = max(0.0, depth + sum(per_layer) / len(per_layer))
        value = self.floor + (self.ceiling - self.floor) * (1 - math.exp(-capacity))
        return min(1.0, max(0.0, value + self.noise * _gaussian(arch, self.seed)))

    def describe(self) -> dict[str, Any]:
        return {
            "objective": self.name,
            "seed": self.seed,
            "noise": self.noise,
            "floor": self.floor,
            "ceiling": self.ceiling,
        }

    def check(self, archs: Sequence[Arch]) -> None:
        return None


def _gaussian(arch: Arch, seed: int) -> float:
    """A standard normal number that depends only on ``arch`` and ``seed``."""
    digest = hashlib.sha256(f"{seed}:{sorted(arch.to_dict().items())}".encode()).digest()
    u1 = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 1)
    u2 = int.from_bytes(digest[8:16], "big") / 2**64
    return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


class ProxyDistillation:
    """Accuracy from distilling the candidate from ``teacher`` (proxy or full config).

    The teacher and the data are loaded once; every evaluation writes its student into
    ``work_dir`` (so a full run there resumes when interrupted)."""

    name = "proxy-distillation"

    def __init__(
        self,
        teacher: str | Path,
        train: str | Path,
        dev: str | Path | None = None,
        config: Any = None,
        *,
        int8: bool = False,
    ) -> None:
        from latbench.distill import DistillConfig, load_checkpoint, load_data

        self.teacher_path, self.train_path, self.dev_path = Path(teacher), Path(train), dev
        self.config = config or DistillConfig.proxy()
        self.int8 = int8
        self.teacher = load_checkpoint(teacher)
        # Whole sets: distill_student draws a proxy's subsets, as `latbench distill --proxy` does.
        self.datasets = load_data(train, dev, self.teacher, 0.1, self.config.seed)

    def check(self, archs: Sequence[Arch]) -> None:
        from latbench.distill import check_settings

        for arch in archs:
            try:
                check_settings(self.teacher, arch, self.config)
            except ConfigError as exc:
                raise ConfigError(f"student {arch.short_label} of the search space: {exc}") from None

    def evaluate(self, arch: Arch, work_dir: Path | None = None) -> Evaluation:
        import tempfile

        from latbench.distill import distill_student

        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="latbench-trial-") as scratch:
            out = work_dir or Path(scratch)
            outcome = distill_student(
                self.teacher_path,
                self.train_path,
                arch,
                out,
                self.config,
                dev_path=self.dev_path,
                int8=self.int8,
                teacher=self.teacher,
                datasets=self.datasets,
            )
        metrics = {
            "label_loyalty": outcome.student.label_loyalty,
            "probability_loyalty": outcome.student.probability_loyalty,
            "params": float(outcome.student_params),
            "flops": float(outcome.student_flops),
            "teacher_accuracy": outcome.teacher.accuracy,
            "steps": float(outcome.steps),
        }
        if outcome.int8 is not None:
            metrics["int8_accuracy"] = outcome.int8.accuracy
            metrics["int8_label_loyalty"] = outcome.int8.label_loyalty
        metrics = {k: float(v) for k, v in metrics.items() if v is not None}
        return Evaluation(outcome.student.accuracy, metrics, time.perf_counter() - start)

    def describe(self) -> dict[str, Any]:
        return {
            "objective": self.name,
            "teacher": str(self.teacher_path),
            "teacher_arch": self.teacher.arch.to_dict(),
            "train": str(self.train_path),
            "dev": None if self.dev_path is None else str(self.dev_path),
            "distill": self.config.to_dict(),
        }


# --- latency --------------------------------------------------------------------------------
class PredictedLatency:
    """Latency from a predictor file at ``workload`` (its 90% interval when it has one)."""

    name = "predicted"

    def __init__(self, predictor_path: str | Path, workload: Workload) -> None:
        from latbench.predictors.io import load_predictor

        self.path = Path(predictor_path)
        self.workload = workload
        with warnings.catch_warnings():
            # A predictor fitted elsewhere is the user's choice here; the search records
            # the predictor's target and fingerprint beside its results.
            warnings.simplefilter("ignore")
            self.loaded = load_predictor(self.path)

    def estimate(self, archs: Sequence[Arch]) -> list[LatencyEstimate]:
        from latbench.specs import EncoderSpec

        if not archs:
            return []
        specs = [EncoderSpec(arch, self.workload) for arch in archs]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # outside-the-table shapes are recorded per trial
            detail = self.loaded.predictor.predict_detail(specs)
        out, outside = [], detail.outside
        for i in range(len(archs)):
            ms = float(detail.latency_s[i]) * 1e3
            low = float(detail.low_s[i]) * 1e3 if detail.low_s is not None else ms
            high = float(detail.high_s[i]) * 1e3 if detail.high_s is not None else ms
            out.append(LatencyEstimate(ms, min(low, ms), max(high, ms), outside_table=outside[i]))
        return out

    def describe(self) -> dict[str, Any]:
        fingerprint = self.loaded.fingerprint
        return {
            "latency": self.name,
            "predictor_file": str(self.path),
            "predictor": self.loaded.predictor.name,
            "target": str(self.loaded.target),
            "fingerprint": None if fingerprint is None else fingerprint.to_dict(),
            "workload": self.workload.to_dict(),
        }


class MeasuredLatency:
    """Latency timed on a target available here (``latbench measure``'s protocol)."""

    name = "measured"

    def __init__(self, target: str, workload: Workload, samples: int = 30, *, backend: Any = None) -> None:
        """``target`` as ``latbench measure --target`` takes it; ``backend`` overrides the
        registry's (tests pass a fake one)."""
        from latbench.backends.registry import default_registry
        from latbench.fingerprint import collect
        from latbench.target import Target

        parsed = Target.parse(target)
        if backend is None:
            self.backend, self.target = default_registry().resolve(parsed)
        else:
            self.backend, self.target = backend, backend.normalize(parsed)
        self.fingerprint = collect(self.backend.fingerprint_extras())
        self.workload = workload
        self.samples = samples

    def estimate(self, archs: Sequence[Arch]) -> list[LatencyEstimate]:
        from latbench.db import default_worker
        from latbench.profile import measure_specs
        from latbench.specs import EncoderSpec
        from latbench.timing import ProtocolSettings

        if not archs:
            return []
        specs = [EncoderSpec(arch, self.workload) for arch in archs]
        for spec in specs:
            self.backend.check_spec(spec)
        settings = ProtocolSettings(samples=self.samples, min_samples=min(16, self.samples))
        with _torch_threads_kept():  # a torch target sets the process's threads to its own
            measured = measure_specs(
                self.backend, self.target, self.fingerprint, specs, settings, worker=default_worker()
            )
        out = []
        for m in measured:
            st = m.stats
            ms = m.latency_ms
            out.append(
                LatencyEstimate(
                    ms, ms, ms, measured=True, iqr_ms=st.iqr_s * 1e3,
                    median_ms=st.median_s * 1e3, p90_ms=st.p90_s * 1e3, p99_ms=st.p99_s * 1e3,
                )
            )  # fmt: skip
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "latency": self.name,
            "target": str(self.target),
            "fingerprint": self.fingerprint.to_dict(),
            "workload": self.workload.to_dict(),
            "samples": self.samples,
        }


@contextlib.contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """Restore torch's intra-op thread count afterwards (when torch is loaded), so that a
    search's training after a measurement keeps its share of the cores."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if torch is not None and threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
