"""A whole ``latbench search`` run as the library does it: the command line only parses a
``SearchJob``, hands callbacks for its progress display, and prints.

``SearchRun(job, argv)`` checks everything that can be checked before the first trial
(the space, the predictor, the target to measure on, the teacher and data, every
extreme student of the space against the teacher); then ``open`` creates or resumes the
study, ``search`` runs the trials (with ``job.workers - 1`` extra local worker processes
sharing the study), ``finish`` fully distils and re-measures the Pareto set, and
``write`` saves ``search.json`` and ``trials.csv``.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from latbench import __version__
from latbench.arch import Arch, Workload
from latbench.backends.registry import default_registry
from latbench.fingerprint import library_versions
from latbench.search.objectives import (
    AccuracyObjective,
    MeasuredLatency,
    PredictedLatency,
    ProxyDistillation,
    SurrogateAccuracy,
)
from latbench.search.settings import SearchJob
from latbench.search.space import load_space
from latbench.search.study import (
    SearchOutcome,
    TrialRecord,
    extremes,
    finish,
    load_outcome,
    open_study,
    run_search,
    write_results,
)
from latbench.search.workers import LocalWorkers, MachineLock, threads_per_worker, worker_command

#: What a search's numbers depend on, recorded with its results.
RECORDED_LIBRARIES = ("torch", "onnxruntime", "optuna", "scikit-learn", "numpy", "xgboost", "tokenizers")

OnTrial = Callable[[TrialRecord, Sequence[TrialRecord], float], None]


def measuring_target(
    text: str | None, latency: PredictedLatency, workload: Workload, note: Callable[[str], None]
) -> MeasuredLatency | None:
    """The target the search measures on: ``text``, else the predictor's when available here
    (else None, and ``note`` says that latencies are predicted only)."""
    if text:
        return MeasuredLatency(text, workload)
    name, registry = latency.loaded.target.name, default_registry()
    if name in registry.names() and registry.create(name).availability().available:
        return MeasuredLatency(str(latency.loaded.target), workload)
    note(f"target {name} is not available here; latencies are predicted only")
    return None


class SearchRun:
    """One search job, checked and ready to run; see the module docstring."""

    def __init__(
        self, job: SearchJob, argv: Sequence[str], *, note: Callable[[str], None] = lambda line: None
    ) -> None:
        self.job, self.argv = job, list(argv)
        self.settings = job.settings
        self.space = load_space(job.space)
        self.workload = Workload(job.batch, job.seq)
        self.latency = PredictedLatency(job.predictor, self.workload)
        self.measured = (
            None if job.no_measure else measuring_target(job.target, self.latency, self.workload, note)
        )
        self.out = Path(job.out)
        self.storage = job.storage or f"sqlite:///{self.out.resolve() / 'study.db'}"
        self.final: ProxyDistillation | None = None
        self.objective: AccuracyObjective
        if job.surrogate:
            self.objective = SurrogateAccuracy(seed=self.settings.seed)
        elif job.evaluator == "supernet":
            from latbench.search.oneshot import SupernetAccuracy

            proxy, full = job.distill_configs()
            self.objective = SupernetAccuracy(
                job.supernet, job.teacher, job.data, job.dev,  # type: ignore[arg-type]
                scoring=job.supernet_scoring, steps=job.supernet_steps, examples=job.proxy_examples,
                losses=proxy.losses, seed=self.settings.seed,
            )  # fmt: skip
            if not job.no_final and not job.worker:
                self.final = ProxyDistillation(job.teacher, job.data, job.dev, full, int8=True)  # type: ignore[arg-type]
        else:
            proxy, full = job.distill_configs()
            self.objective = ProxyDistillation(job.teacher, job.data, job.dev, proxy)  # type: ignore[arg-type]
            if not job.no_final and not job.worker:
                self.final = ProxyDistillation(job.teacher, job.data, job.dev, full, int8=True)  # type: ignore[arg-type]
        self.objective.check(extremes(self.space))
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock = MachineLock.for_this_machine()
        self._common: dict[str, Any] = {
            "storage": self.storage,
            "study_name": job.study,
            "measured": self.measured,
            "heartbeat_s": job.heartbeat_s,
        }

    def describe(self) -> str:
        """One line: what is searched, with which sampler, model, budget and workers."""
        job, settings, workers = self.job, self.settings, self.job.workers
        return (
            (f"worker {job.worker}: " if job.worker else "")
            + f"searching {self.space.name} ({self.space.count():,} students) with {settings.sampler}: "
            f"{settings.trials} trials, latency from {self.latency.loaded.predictor.name} for "
            f"{self.latency.loaded.target} at b={self.workload.batch} s={self.workload.seq_len}"
            + (f", budget {settings.budget_ms} ms" if settings.budget_ms else "")
            + (f", measuring on {self.measured.target}" if self.measured else "")
            + (f"; {workers} workers of {threads_per_worker(workers)} threads" if workers > 1 else "")
        )

    def open(self) -> None:
        """Create or resume the study (and its startup design) before any other worker
        starts; a study that exists with other settings is refused here."""
        if self.job.workers > 1:
            import torch

            torch.set_num_threads(threads_per_worker(self.job.workers))
        open_study(
            self.settings, self.space, self.objective, self.latency, worker=self.job.worker, **self._common
        )

    def search(
        self,
        on_trial: OnTrial | None = None,
        *,
        warn: Callable[[str], None] = lambda line: None,
        waiting: Callable[[int], None] = lambda n: None,
    ) -> SearchOutcome:
        """Run trials until the study holds ``settings.trials`` evaluated students; extra
        local workers' failures go to ``warn``, and ``waiting(n)`` is called while n of
        them finish their last trials."""
        job = self.job
        helpers: contextlib.AbstractContextManager[LocalWorkers | None] = contextlib.nullcontext(None)
        if job.workers > 1:
            commands = [worker_command(self.argv, k, self.storage, job.study) for k in range(1, job.workers)]
            helpers = LocalWorkers(commands, self.out, threads_per_worker(job.workers))
        with helpers as local:

            def trial_done(record: TrialRecord, records: Sequence[TrialRecord], hv: float) -> None:
                if on_trial is not None:
                    on_trial(record, records, hv)
                for line in local.failures() if local is not None else ():
                    warn(line)

            outcome = run_search(
                self.settings,
                self.space,
                self.objective,
                self.latency,
                on_trial=trial_done,
                worker=job.worker,
                lock=self.lock,
                **self._common,
            )
            if local is not None and local.running():
                waiting(local.running())
            for line in local.wait() if local is not None else ():
                warn(line)
        if local is not None:  # the other workers' last trials included
            outcome = load_outcome(self.settings, storage=self.storage, study_name=job.study)
        return outcome

    @property
    def finishing_work(self) -> bool:
        """Whether ``finish`` distils or measures (worth a progress display)."""
        return self.final is not None or self.measured is not None

    def teacher_arch(self) -> Arch | None:
        """The teacher on the students' axes, when it can run the workload they were priced at."""
        teacher = None if self.job.surrogate else self.objective.teacher.arch  # type: ignore[attr-defined]
        if teacher is not None and teacher.max_positions < self.workload.seq_len:
            return None
        return teacher

    def finish(
        self, outcome: SearchOutcome, on_member: Callable[[int, int, TrialRecord], None] | None = None
    ) -> SearchOutcome:
        """The Pareto set fully distilled and measured beside the teacher (priced only when
        there is nothing to distil or measure)."""
        teacher = self.teacher_arch()
        if not self.finishing_work:
            return finish(outcome, teacher=teacher, latency=self.latency)
        return finish(
            outcome,
            final=self.final,
            measured=self.measured,
            work_dir=self.out,
            on_member=on_member,
            teacher=teacher,
            latency=self.latency,
        )

    def write(self, outcome: SearchOutcome) -> list[Path]:
        """``search.json`` and ``trials.csv`` in the output folder, with the command, latbench's
        version and the libraries' versions."""
        versions = {"python": platform.python_version(), **dict(library_versions(RECORDED_LIBRARIES))}
        extra = {"command": ["latbench", *self.argv], "latbench": __version__, "libraries": versions}
        return write_results(outcome, self.out, extra=extra)


__all__ = ["SearchRun", "measuring_target"]
