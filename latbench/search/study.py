"""Predictor-guided Bayesian multi-objective architecture search on Optuna's ask/tell interface.

Each trial asks the sampler for one choice index per coordinate of the search space,
decodes the student, and

1. estimates its latency with the cost model (a predictor: cheap) — a student whose whole
   interval lies over the latency budget is told as infeasible at once, without any
   distillation, so the sampler learns the budget for free;
2. measures it on the real target when the interval straddles the budget (and a target is
   available here), so the constraint is decided by a measurement, not a guess;
3. evaluates its accuracy (proxy distillation, or the surrogate in benchmarks) — a student
   already evaluated in this study is not trained again;
4. tells Optuna both objectives: accuracy (maximised) and latency in ms (minimised), with
   the budget as a constraint (``latency - budget <= 0``).

Samplers: ``gp`` (the default for small budgets: a Gaussian process on accuracy alone,
proposing the student of largest expected hypervolume improvement among thousands whose
latency the predictor gives; ``latbench.search.bo``), ``optuna-gp`` (Optuna's GP BO, which models
both objectives), ``tpe`` (multivariate TPE with the constant liar, for many parallel
workers), ``nsga2``, and ``random`` (the baseline). Unless ``startup="sampler"``, the
first trials of a new study are chosen with the predictor: many students are sampled,
their latency predicted, and the startup trials spread evenly over the predicted
latencies that fit the budget (a Latin design along the axis that matters), instead of
the sampler's random start.

The study lives in Optuna's RDB storage (SQLite by default, PostgreSQL for many machines);
running the same command again resumes it. Workers record a heartbeat while a trial runs,
so a trial whose worker died is marked failed (``fail_stale_trials``) and retried once.

Results (``write_results``): ``search.json`` — settings, the space, objective and cost
model, reference point, hypervolume after each trial, the Pareto set (with its full
distillation and measured latency) and the teacher on the same axes — and ``trials.csv``
(one row per trial). ``latbench report`` turns them into HTML and PNG.
"""

from __future__ import annotations

import contextlib
import csv
import json
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from latbench.arch import Arch
from latbench.db import default_worker, redact_url, resolve_url
from latbench.errors import ConfigError
from latbench.files import atomic_output
from latbench.search.objectives import AccuracyObjective, Evaluation, LatencyCost, LatencyEstimate
from latbench.search.settings import HEARTBEAT_INTERVAL_S, SAMPLERS, SearchSettings
from latbench.search.space import SearchSpace
from latbench.search.workers import MachineLock

RESULTS_FILE = "search.json"
RESULTS_FORMAT = "latbench-search"
TRIALS_FILE = "trials.csv"
FORMAT_VERSION = 1
_ATTR = "latbench"
WORKER_SEED_STRIDE = 7919  # worker k samples with seed + k * this
SQLITE_TIMEOUT_S = 120  # how long a worker waits for another one's SQLite write


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial, as saved and reported."""

    number: int
    state: str
    arch: Arch | None
    accuracy: float | None = None
    latency_ms: float | None = None  # what the objective used: measured when measured
    predicted_ms: float | None = None
    predicted_low_ms: float | None = None
    predicted_high_ms: float | None = None
    measured_ms: float | None = None
    measured_iqr_ms: float | None = None
    feasible: bool = True
    skipped: bool = False  # told infeasible by the predictor, not evaluated
    reused: int | None = None  # the trial whose evaluation this one repeats
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    outside_table: tuple[str, ...] = ()
    error: str = ""

    @property
    def evaluated(self) -> bool:
        return self.state == "COMPLETE" and not self.skipped

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["arch"] = None if self.arch is None else self.arch.to_dict()
        data["outside_table"] = list(self.outside_table)
        return data


@dataclass(frozen=True)
class ParetoMember:
    trial: TrialRecord
    final: Evaluation | None = None  # full distillation, when run
    final_latency: LatencyEstimate | None = None  # measured on the target, when available


@dataclass(frozen=True)
class TeacherPoint:
    """The teacher on the same axes as its students, for reports: its development-set
    accuracy (as the students' evaluations saw it), predicted latency and, when the
    target is available, measured latency (side by side with the Pareto set)."""

    arch: Arch
    accuracy: float | None
    predicted: LatencyEstimate
    measured: LatencyEstimate | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch.to_dict(),
            "accuracy": self.accuracy,
            "predicted": asdict(self.predicted),
            "measured": None if self.measured is None else asdict(self.measured),
        }


@dataclass(frozen=True)
class SearchOutcome:
    study_name: str
    storage: str
    trials: tuple[TrialRecord, ...]
    pareto: tuple[ParetoMember, ...]
    reference: tuple[float, float]
    hypervolume: tuple[float, ...]  # after each trial, in trial order
    settings: SearchSettings
    description: dict[str, Any]
    teacher: TeacherPoint | None = None

    @property
    def evaluated(self) -> int:
        return sum(t.evaluated for t in self.trials)


# --- hypervolume ----------------------------------------------------------------------------
def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` (accuracy ↑, latency ↓) and bounded by ``reference``
    (accuracy_ref, latency_ref): the union of the rectangles [acc_ref, acc] × [lat, lat_ref]."""
    acc_ref, lat_ref = reference
    kept = sorted((lat, acc) for acc, lat in points if acc > acc_ref and lat < lat_ref)
    area, best = 0.0, acc_ref
    for i, (lat, acc) in enumerate(kept):
        best = max(best, acc)
        right = kept[i + 1][0] if i + 1 < len(kept) else lat_ref
        area += (right - lat) * (best - acc_ref)
    return area


def pareto_front(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The evaluated, feasible trials no other one beats on both accuracy and latency
    (one per architecture), fastest first."""
    seen: dict[Arch, TrialRecord] = {}
    for r in records:
        if r.evaluated and r.feasible and r.arch is not None and r.reused is None:
            seen.setdefault(r.arch, r)
    candidates = sorted(seen.values(), key=lambda r: (r.latency_ms, -(r.accuracy or 0.0)))
    front: list[TrialRecord] = []
    best = -1.0
    for r in candidates:
        assert r.accuracy is not None
        if r.accuracy > best:
            front.append(r)
            best = r.accuracy
    return front


def hypervolume_history(records: Sequence[TrialRecord], reference: tuple[float, float]) -> list[float]:
    """Hypervolume of the feasible evaluated trials after each trial (in trial order)."""
    ordered = sorted(records, key=lambda r: r.number)
    return [hypervolume(_front_points(ordered[: i + 1]), reference) for i in range(len(ordered))]


def _front_points(records: Sequence[TrialRecord]) -> list[tuple[float, float]]:
    """(accuracy, latency) of the trials that count for the front: evaluated and feasible."""
    return [
        (r.accuracy, r.latency_ms)
        for r in records
        if r.evaluated and r.feasible and r.accuracy is not None and r.latency_ms is not None
    ]


# --- samplers and storage -------------------------------------------------------------------
def make_sampler(
    name: str,
    seed: int,
    startup_trials: int,
    *,
    space: SearchSpace | None = None,
    latency: LatencyCost | None = None,
    budget_ms: float | None = None,
):  # type: ignore[no-untyped-def]
    """The sampler called ``name``: ``gp`` is latbench's predictor-guided GP (``latbench.search.bo``:
    it needs the space and the latency cost), the others are Optuna's. A budget reaches
    them through each trial's constraint (``Trial.set_constraint``), which every sampler but
    random respects (``gp`` also never proposes a student predicted over it)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "gp":
            from latbench.search.bo import PredictorGuidedProposer, optuna_sampler

            if space is None or latency is None:
                raise ConfigError("the gp sampler needs the search space and the latency cost model")
            proposer = PredictorGuidedProposer(
                space, latency, seed=seed, budget_ms=budget_ms, min_observations=startup_trials
            )
            return optuna_sampler(proposer, _observe, seed)
        if name == "optuna-gp":
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup_trials)
        if name == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=startup_trials, multivariate=True, constant_liar=True
            )
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, startup_trials))
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")


def _observe(study: Any, trial: Any) -> tuple[list[Any], tuple[float, float]]:
    """What the ``gp`` sampler learns from: every evaluated student of the study (a student
    skipped over the budget or reused adds nothing) and the students other workers are
    evaluating now (at their predicted latency), with the study's reference point."""
    import optuna

    from latbench.search.bo import Observation

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    observations = []
    for t in study.get_trials(deepcopy=False, states=states):
        attrs = t.user_attrs
        if t.number == trial.number or "arch" not in attrs or attrs.get("skipped") or "reused" in attrs:
            continue
        arch = Arch.from_dict(attrs["arch"])
        if t.state == optuna.trial.TrialState.RUNNING:
            predicted = (attrs.get("predicted") or {}).get("ms")
            if predicted is not None:
                observations.append(Observation(arch, float(predicted), None))
            continue
        constraint = attrs.get("constraint")
        feasible = constraint is None or float(constraint) <= 0.0
        observations.append(Observation(arch, float(t.values[1]), float(t.values[0]), feasible))
    reference = study.user_attrs[_ATTR]["reference"]
    return observations, (float(reference[0]), float(reference[1]))


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna warns that heartbeats are "supposed to be used with Study.optimize" and that
    ``fail_stale_trials`` is experimental; this loop records heartbeats itself (``_Heartbeat``)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed", category=UserWarning)
        yield


def _constrain(trial: Any, excess_ms: float) -> None:
    """The budget constraint (feasible when <= 0), for the sampler and for the records."""
    with warnings.catch_warnings():
        # A retried trial (its worker died) inherits the constraint of the same student.
        warnings.filterwarnings("ignore", message="The constraint value is ignored")
        trial.set_constraint("latency_budget", excess_ms)
    trial.set_user_attr("constraint", excess_ms)


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_INTERVAL_S):  # type: ignore[no-untyped-def]
    """Optuna RDB storage at ``url`` (``sqlite:///file.db``, ``postgresql://…``) with
    heartbeats every ``heartbeat_s``: a running trial silent for four beats belongs to a
    worker that died, and is failed and retried once."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if "://" not in url:
        raise ConfigError(f"storage must be a database URL such as sqlite:///search.db, got {url!r}")
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                resolved = resolve_url(url)
                # several processes on one SQLite file: a writer waits for the others' writes
                sqlite = resolved.startswith("sqlite")
                engine = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if sqlite else {}
                return RDBStorage(
                    resolved,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat_s,
                    grace_period=4 * heartbeat_s,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                )
        except Exception as exc:  # SQLAlchemy raises many kinds; the user needs one line
            # Workers starting together on a new database race to create Optuna's tables
            # (and to stamp their schema version); the loser finds them on its next try.
            racing = ("already exists", "UNIQUE constraint failed: alembic_version")
            if any(text in str(exc) for text in racing) and attempt < 4:
                time.sleep(0.2 * (attempt + 1))
                continue
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ConfigError(
                f"cannot open study storage {redact_url(url)}: {type(exc).__name__}: {first}"
            ) from None
    raise AssertionError("unreachable")


# --- the loop --------------------------------------------------------------------------------
def extremes(space: SearchSpace) -> tuple[Arch, Arch]:
    """The space's smallest and largest students (every choice first, every choice last):
    if the objective can evaluate both, it can evaluate all."""
    return space.smallest(), space.largest()


def open_study(
    settings: SearchSettings,
    space: SearchSpace,
    objective: AccuracyObjective,
    latency: LatencyCost,
    *,
    storage: str,
    study_name: str,
    measured: LatencyCost | None = None,
    heartbeat_s: int = HEARTBEAT_INTERVAL_S,
    worker: int = 0,
):  # type: ignore[no-untyped-def]
    """The Optuna study ``study_name`` in ``storage``: created with its description, reference
    point and startup design, or, when it exists, checked to be the same search.

    ``worker`` (0 for the first or only worker) varies the sampler's seed, so workers
    sharing a study do not all draw the same students."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    smallest, largest = extremes(space)
    objective.check([smallest, largest])
    description = {
        "space": space.to_dict(),
        "objective": objective.describe(),
        "latency": latency.describe(),
        "measured": None if measured is None else measured.describe(),
        "settings": settings.identity(),
    }
    study = optuna.create_study(
        storage=open_storage(storage, heartbeat_s),
        study_name=study_name,
        directions=["maximize", "minimize"],
        sampler=make_sampler(
            settings.sampler,
            settings.seed + WORKER_SEED_STRIDE * worker,
            settings.startup_trials,
            space=space,
            latency=latency,
            budget_ms=settings.budget_ms,
        ),
        load_if_exists=True,
    )
    saved = study.user_attrs.get(_ATTR)
    if saved is None:
        reference_ms = settings.reference_latency_ms or settings.budget_ms
        if reference_ms is None:
            reference_ms = 1.1 * latency.estimate([largest])[0].ms
        description["reference"] = [settings.reference_accuracy, reference_ms]
        study.set_user_attr(_ATTR, description)
        if settings.startup == "predictor" and settings.sampler != "random":
            for indices in startup_design(space, latency, settings):
                study.enqueue_trial(_params(space, indices), skip_if_exists=True)
    else:
        _check_same_study(saved, description, study_name)
        wanted_ms = settings.reference_latency_ms
        if wanted_ms is not None and not np.isclose(float(saved["reference"][1]), wanted_ms):
            raise ConfigError(
                f"study {study_name!r} exists with the reference latency {saved['reference'][1]:g} ms, "
                f"not {wanted_ms:g} ms; resume it with the same reference, or give a new --study name"
            )
    return study


def run_search(
    settings: SearchSettings,
    space: SearchSpace,
    objective: AccuracyObjective,
    latency: LatencyCost,
    *,
    storage: str,
    study_name: str,
    measured: LatencyCost | None = None,
    on_trial: Callable[[TrialRecord, list[TrialRecord], float], None] | None = None,
    work_dir: Path | None = None,
    heartbeat_s: int = HEARTBEAT_INTERVAL_S,
    worker: int = 0,
    lock: MachineLock | None = None,
) -> SearchOutcome:
    """Run (or resume) the study (``open_study``) until it holds ``settings.trials``
    evaluated students, other workers' included (with several workers, up to one more per
    other worker). ``lock`` keeps this worker's measurements apart from the training of
    other workers on the same machine (``latbench.search.workers``)."""
    import optuna

    study = open_study(
        settings, space, objective, latency, storage=storage, study_name=study_name,
        measured=measured, heartbeat_s=heartbeat_s, worker=worker,
    )  # fmt: skip
    description = study.user_attrs[_ATTR]
    reference = (float(description["reference"][0]), float(description["reference"][1]))
    distributions = _distributions(space)
    skipped = 0
    records = collect_records(study)
    while sum(r.evaluated for r in records) < settings.trials:
        with _quiet_optuna():
            optuna.storages.fail_stale_trials(study)
            trial = study.ask(distributions)
        arch = space.from_indices([trial.params[d] for d in space.dimensions])
        try:
            record = _run_trial(trial, arch, settings, objective, latency, measured, records, work_dir, lock)
        except BaseException as exc:  # the trial must not stay RUNNING
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            with _quiet_optuna():
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        with _quiet_optuna():
            study.tell(trial, [record.accuracy, record.latency_ms])
        if record.skipped:
            skipped += 1
            if skipped > settings.max_skipped:
                raise ConfigError(
                    f"{skipped} students in a row were predicted over the {settings.budget_ms} ms budget; "
                    "the budget is too tight for this space (or the predictor's target is another machine)"
                )
        else:
            skipped = 0
        records = collect_records(study)  # other workers' trials included
        if on_trial is not None:
            on_trial(record, records, hypervolume(_front_points(records), reference))
    return _outcome(study, settings, storage, study_name)


def load_outcome(settings: SearchSettings, *, storage: str, study_name: str) -> SearchOutcome:
    """The study as it is now (e.g. once every worker has finished), as a ``SearchOutcome``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        raise ConfigError(f"no study {study_name!r} in {redact_url(storage)}") from None
    if _ATTR not in study.user_attrs:
        raise ConfigError(f"study {study_name!r} in {redact_url(storage)} is not a latbench search")
    return _outcome(study, settings, storage, study_name)


def _outcome(study: Any, settings: SearchSettings, storage: str, study_name: str) -> SearchOutcome:
    description = study.user_attrs[_ATTR]
    reference = (float(description["reference"][0]), float(description["reference"][1]))
    records = collect_records(study)
    return SearchOutcome(
        study_name=study_name,
        storage=redact_url(storage),
        trials=tuple(records),
        pareto=tuple(ParetoMember(r) for r in pareto_front(records)),
        reference=reference,
        hypervolume=tuple(hypervolume_history(records, reference)),
        settings=settings,
        description=description,
    )


def _run_trial(
    trial: Any,
    arch: Arch,
    settings: SearchSettings,
    objective: AccuracyObjective,
    latency: LatencyCost,
    measured: LatencyCost | None,
    records: list[TrialRecord],
    work_dir: Path | None,
    lock: MachineLock | None,
) -> TrialRecord:
    (predicted,) = latency.estimate([arch])
    trial.set_user_attr("arch", arch.to_dict())
    trial.set_user_attr("worker", default_worker())
    trial.set_user_attr(
        "predicted", {"ms": predicted.ms, "low_ms": predicted.low_ms, "high_ms": predicted.high_ms}
    )
    if predicted.outside_table:
        trial.set_user_attr("outside_table", list(predicted.outside_table))
    budget = settings.budget_ms
    used = predicted
    if budget is not None and predicted.low_ms > budget:
        trial.set_user_attr("skipped", True)
        _constrain(trial, predicted.low_ms - budget)
        return _record_from(trial.number, "COMPLETE", arch, dict(trial.user_attrs), 0.0, predicted.ms)
    with _Heartbeat(trial):  # from here on the trial may wait (for the lock) and work for long
        if budget is not None and measured is not None and predicted.straddles(budget):
            with lock.measuring() if lock else contextlib.nullcontext():
                (used,) = measured.estimate([arch])
            trial.set_user_attr("measured", {"ms": used.ms, "iqr_ms": used.iqr_ms})
        if budget is not None:
            _constrain(trial, used.ms - budget)
        same = next((r for r in records if r.evaluated and r.reused is None and r.arch == arch), None)
        if same is not None:
            assert same.accuracy is not None
            evaluation = Evaluation(same.accuracy, dict(same.metrics))
            trial.set_user_attr("reused", same.number)
        else:
            with lock.training() if lock else contextlib.nullcontext():
                out = None if work_dir is None else work_dir / f"trial-{trial.number:04d}"
                evaluation = objective.evaluate(arch, out)
    trial.set_user_attr("metrics", evaluation.metrics)
    trial.set_user_attr("seconds", evaluation.seconds)
    return _record_from(trial.number, "COMPLETE", arch, dict(trial.user_attrs), evaluation.accuracy, used.ms)


class _Heartbeat:
    """Records the trial's heartbeat while it runs, so other workers can tell it is alive
    (Optuna only does this itself inside ``study.optimize``)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        storage = self.trial.study._storage
        interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
        if interval:
            trial_id = self.trial._trial_id

            def beat() -> None:
                while True:
                    storage.record_heartbeat(trial_id)
                    if self.stop.wait(interval):
                        return

            self.thread = threading.Thread(target=beat, daemon=True, name="latbench-heartbeat")
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def startup_design(
    space: SearchSpace, latency: LatencyCost, settings: SearchSettings
) -> list[tuple[int, ...]]:
    """``startup_trials`` students spread evenly over the predicted latencies of a large
    random sample of the space (those that fit the budget)."""
    rng = random.Random(settings.seed)
    pool: dict[tuple[int, ...], Arch] = {}
    for _ in range(settings.startup_pool):
        arch = space.sample(rng)
        pool.setdefault(space.indices(arch), arch)
    keys = list(pool)
    estimates = latency.estimate([pool[k] for k in keys])
    order = sorted(range(len(keys)), key=lambda i: estimates[i].ms)
    if settings.budget_ms is not None:
        order = [i for i in order if estimates[i].ms <= settings.budget_ms] or order[:1]
    n = min(settings.startup_trials, len(order))
    picks = np.unique(np.round(np.linspace(0, len(order) - 1, n)).astype(int))
    return [keys[order[int(p)]] for p in picks]


def _distributions(space: SearchSpace) -> dict[str, Any]:
    from optuna.distributions import IntDistribution

    return {d: IntDistribution(0, n - 1) for d, n in zip(space.dimensions, space.choice_counts, strict=True)}


def _params(space: SearchSpace, indices: Sequence[int]) -> dict[str, int]:
    return {d: int(i) for d, i in zip(space.dimensions, indices, strict=True)}


def _check_same_study(saved: dict[str, Any], wanted: dict[str, Any], name: str) -> None:
    for key in ("space", "objective", "latency", "settings"):
        if _canonical(saved.get(key)) != _canonical(wanted.get(key)):
            differ = _differences(saved.get(key), wanted.get(key), key)
            raise ConfigError(
                f"study {name!r} exists with another {key} ({'; '.join(differ[:3])}); resume it with "
                "the same settings, or give a new --study name"
            )


def _differences(saved: Any, wanted: Any, where: str) -> list[str]:
    """Where two saved descriptions differ, as ``path: saved -> wanted`` lines."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        return [
            line
            for k in sorted(set(saved) | set(wanted), key=str)
            if _canonical(saved.get(k)) != _canonical(wanted.get(k))
            for line in _differences(saved.get(k), wanted.get(k), f"{where}.{k}")
        ]
    return [f"{where}: {_canonical(saved)} in the study, {_canonical(wanted)} now"]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# --- reading the study back ------------------------------------------------------------------
def collect_records(study: Any) -> list[TrialRecord]:
    """The study's finished trials (complete or failed) as ``TrialRecord``s."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    out = []
    for t in study.get_trials(deepcopy=False, states=states):
        attrs = dict(t.user_attrs)
        arch = Arch.from_dict(attrs["arch"]) if "arch" in attrs else None
        values = t.values or [None, None]
        out.append(_record_from(t.number, t.state.name, arch, attrs, values[0], values[1]))
    return sorted(out, key=lambda r: r.number)


def _record_from(
    number: int,
    state: str,
    arch: Arch | None,
    attrs: dict[str, Any],
    accuracy: float | None,
    latency_ms: float | None,
) -> TrialRecord:
    predicted = attrs.get("predicted") or {}
    measured = attrs.get("measured") or {}
    constraint = attrs.get("constraint")
    return TrialRecord(
        number=number,
        state=state,
        arch=arch,
        accuracy=None if accuracy is None else float(accuracy),
        latency_ms=None if latency_ms is None else float(latency_ms),
        predicted_ms=predicted.get("ms"),
        predicted_low_ms=predicted.get("low_ms"),
        predicted_high_ms=predicted.get("high_ms"),
        measured_ms=measured.get("ms"),
        measured_iqr_ms=measured.get("iqr_ms"),
        feasible=constraint is None or float(constraint) <= 0.0,
        skipped=bool(attrs.get("skipped", False)),
        reused=attrs.get("reused"),
        seconds=float(attrs.get("seconds", 0.0)),
        metrics={k: float(v) for k, v in (attrs.get("metrics") or {}).items()},
        outside_table=tuple(attrs.get("outside_table", ())),
        error=str(attrs.get("error", "")),
    )


# --- the end: final evaluation and results ------------------------------------------------
def finish(
    outcome: SearchOutcome,
    *,
    final: AccuracyObjective | None = None,
    measured: LatencyCost | None = None,
    work_dir: Path | None = None,
    on_member: Callable[[int, int, TrialRecord], None] | None = None,
    teacher: Arch | None = None,
    latency: LatencyCost | None = None,
) -> SearchOutcome:
    """Fully evaluate the Pareto set (``final``: e.g. full distillation, students kept in
    ``work_dir/pareto-NNNN``) and measure it on the target, side by side in one run.

    With ``teacher`` (and ``latency``, the search's cost model) the teacher is priced and
    measured with the Pareto set, so a report can place it on the same axes."""
    members = list(outcome.pareto)
    archs = [m.trial.arch for m in members if m.trial.arch is not None]
    measuring = archs + ([teacher] if teacher is not None else [])
    latencies: list[LatencyEstimate | None] = [None] * len(members)
    teacher_measured = None
    if measured is not None and measuring:
        timed = list(measured.estimate(measuring))
        latencies = list(timed[: len(members)])
        teacher_measured = timed[len(members)] if teacher is not None else None
    done = []
    for i, (member, lat) in enumerate(zip(members, latencies, strict=True)):
        if on_member is not None:
            on_member(i, len(members), member.trial)
        evaluation = None
        if final is not None and member.trial.arch is not None:
            out = None if work_dir is None else work_dir / f"pareto-{member.trial.number:04d}"
            evaluation = final.evaluate(member.trial.arch, out)
        done.append(replace(member, final=evaluation, final_latency=lat))
    point = outcome.teacher
    if teacher is not None and latency is not None:
        predicted = latency.estimate([teacher])[0]
        point = TeacherPoint(teacher, teacher_accuracy(done, outcome.trials), predicted, teacher_measured)
    return replace(outcome, pareto=tuple(done), teacher=point)


def teacher_accuracy(pareto: Sequence[ParetoMember], trials: Sequence[TrialRecord]) -> float | None:
    """The teacher's accuracy as the evaluations saw it: on the full development set when
    the Pareto set was fully distilled, else on the proxy's (``None`` for the surrogate)."""
    for member in pareto:
        if member.final is not None and "teacher_accuracy" in member.final.metrics:
            return float(member.final.metrics["teacher_accuracy"])
    for record in trials:
        if "teacher_accuracy" in record.metrics:
            return float(record.metrics["teacher_accuracy"])
    return None


def write_results(
    outcome: SearchOutcome, out_dir: str | Path, extra: dict[str, Any] | None = None
) -> list[Path]:
    """Write ``search.json`` and ``trials.csv`` into ``out_dir`` (see the module docstring)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "format": RESULTS_FORMAT,
        "version": FORMAT_VERSION,
        "study": outcome.study_name,
        "storage": outcome.storage,
        "settings": asdict(outcome.settings),
        **{k: v for k, v in outcome.description.items() if k != "settings"},
        "reference": list(outcome.reference),
        "evaluated_trials": outcome.evaluated,
        "hypervolume": list(outcome.hypervolume),
        "pareto": [
            {
                **m.trial.to_dict(),
                "final": None
                if m.final is None
                else {"accuracy": m.final.accuracy, "metrics": m.final.metrics, "seconds": m.final.seconds},
                "final_latency": None if m.final_latency is None else asdict(m.final_latency),
            }
            for m in outcome.pareto
        ],
        "trials": [t.to_dict() for t in outcome.trials],
        "teacher": None if outcome.teacher is None else outcome.teacher.to_dict(),
        **(extra or {}),
    }
    results = out / RESULTS_FILE
    with atomic_output(results) as tmp:
        Path(tmp).write_text(json.dumps(document, indent=2, default=_json_default) + "\n", encoding="utf-8")
    trials = out / TRIALS_FILE
    columns = [
        "number",
        "state",
        "arch",
        "accuracy",
        "latency_ms",
        "predicted_ms",
        "predicted_low_ms",
        "predicted_high_ms",
        "measured_ms",
        "measured_iqr_ms",
        "feasible",
        "skipped",
        "reused",
        "seconds",
        "error",
    ]
    with atomic_output(trials) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for t in outcome.trials:
            row = t.to_dict()
            row["arch"] = "" if t.arch is None else t.arch.short_label
            writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return [results, trials]


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
