"""The predictor-guided search loop on Optuna: samplers, budget, measurement of uncertain
candidates, resuming, reuse of evaluations, results files and the hypervolume."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import optuna  # noqa: F401
import pytest

from latbench.arch import Arch, Workload
from latbench.errors import ConfigError
from latbench.search.objectives import Evaluation, MeasuredLatency, PredictedLatency, SurrogateAccuracy
from latbench.search.space import SearchSpace
from latbench.search.study import (
    SAMPLERS,
    SearchSettings,
    TrialRecord,
    finish,
    hypervolume,
    pareto_front,
    run_search,
    startup_design,
    write_results,
)
from latbench.specs import EncoderSpec
from latbench.testing.fake_backend import FakeBackend, fake_latency_s

SPACE = SearchSpace(name="t", layers=(1, 2, 3, 4), hidden=(32, 64), heads=(2, 4), ffn_ratios=(2.0, 4.0))
WORKLOAD = Workload(1, 32)


@pytest.fixture(scope="module")
def latency(tmp_path_factory: pytest.TempPathFactory, fit_predictor) -> PredictedLatency:  # type: ignore[no-untyped-def]
    return PredictedLatency(fit_predictor(tmp_path_factory.mktemp("p") / "p.json", SPACE, WORKLOAD), WORKLOAD)


class Counting:
    """The surrogate, counting the evaluations it was asked for (and failing on request)."""

    name = "surrogate"

    def __init__(self, fail_at: int | None = None) -> None:
        self.inner = SurrogateAccuracy(seed=3)
        self.calls: list[Arch] = []
        self.fail_at = fail_at

    def evaluate(self, arch: Arch, work_dir: Path | None = None) -> Evaluation:
        self.calls.append(arch)
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise KeyboardInterrupt
        return self.inner.evaluate(arch, work_dir)

    def describe(self) -> dict[str, object]:
        return self.inner.describe()

    def check(self, archs: object) -> None:
        return None


def storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def test_hypervolume_is_the_area_the_front_dominates() -> None:
    ref = (0.5, 10.0)
    assert hypervolume([], ref) == 0.0
    assert hypervolume([(0.9, 2.0)], ref) == pytest.approx(0.4 * 8.0)
    # two steps: (0.7 from 1 ms) and (0.9 from 4 ms); a dominated point adds nothing
    two = hypervolume([(0.7, 1.0), (0.9, 4.0)], ref)
    assert two == pytest.approx(0.2 * 3.0 + 0.4 * 6.0)
    assert hypervolume([(0.7, 1.0), (0.9, 4.0), (0.6, 5.0)], ref) == pytest.approx(two)
    assert hypervolume([(0.4, 1.0), (0.9, 11.0)], ref) == 0.0  # beyond the reference point


def record(n: int, acc: float, ms: float, **kw: object) -> TrialRecord:
    return TrialRecord(n, "COMPLETE", Arch.uniform(1 + n, 32, 2, 64), accuracy=acc, latency_ms=ms, **kw)  # type: ignore[arg-type]


def test_the_pareto_front_keeps_feasible_undominated_trials_fastest_first() -> None:
    records = [
        record(0, 0.80, 3.0),
        record(1, 0.85, 5.0),
        record(2, 0.79, 4.0),  # dominated by 0
        record(3, 0.95, 9.0, feasible=False),  # over the budget
        record(4, 0.0, 0.5, skipped=True, feasible=False),
        record(5, 0.70, 1.0),
    ]
    assert [r.number for r in pareto_front(records)] == [5, 0, 1]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_fills_the_study_with_evaluated_students(
    sampler: str, latency: PredictedLatency, tmp_path: Path
) -> None:
    settings = SearchSettings(trials=6, sampler=sampler, startup_trials=3, seed=1)
    objective = Counting()
    outcome = run_search(settings, SPACE, objective, latency, storage=storage(tmp_path), study_name=sampler)
    assert outcome.evaluated == 6
    evaluated = [t for t in outcome.trials if t.evaluated]
    assert len({t.arch for t in evaluated}) == len(objective.calls)  # repeats are not re-evaluated
    for t in evaluated:
        assert t.arch is not None and SPACE.contains(t.arch)
        assert t.accuracy == pytest.approx(SurrogateAccuracy(seed=3).accuracy(t.arch))
        assert t.latency_ms == t.predicted_ms and t.predicted_low_ms <= t.predicted_ms <= t.predicted_high_ms
    assert len(outcome.hypervolume) == len(outcome.trials)
    assert all(b >= a for a, b in zip(outcome.hypervolume, outcome.hypervolume[1:], strict=False))
    assert outcome.hypervolume[-1] == pytest.approx(
        hypervolume([(t.accuracy, t.latency_ms) for t in evaluated], outcome.reference)
    )
    # the reference latency is 1.1 x the space's largest student's
    largest = SPACE.from_indices([n - 1 for n in SPACE.choice_counts])
    assert outcome.reference[1] == pytest.approx(1.1 * latency.estimate([largest])[0].ms)


def test_the_predictor_chooses_startup_trials_spread_over_latency_under_the_budget(
    latency: PredictedLatency,
) -> None:
    all_ms = sorted(e.ms for e in latency.estimate([SPACE.from_indices(i) for i in _all_indices()]))
    budget = float(np.median(all_ms))
    settings = SearchSettings(startup_trials=5, budget_ms=budget, startup_pool=500)
    design = startup_design(SPACE, latency, settings)
    ms = [latency.estimate([SPACE.from_indices(i)])[0].ms for i in design]
    assert len(design) == 5 and ms == sorted(ms) and max(ms) <= budget
    assert ms[0] == pytest.approx(all_ms[0]) and ms[-1] > all_ms[len(all_ms) // 3]  # it spans the range


def _all_indices() -> list[tuple[int, ...]]:
    import itertools

    return list(itertools.product(*(range(n) for n in SPACE.choice_counts)))


def test_a_budget_skips_students_predicted_over_it_without_evaluating_them(
    latency: PredictedLatency, tmp_path: Path
) -> None:
    all_ms = sorted(e.ms for e in latency.estimate([SPACE.from_indices(i) for i in _all_indices()]))
    budget = all_ms[len(all_ms) // 3]
    objective = Counting()
    settings = SearchSettings(trials=8, sampler="random", budget_ms=budget, seed=4)
    outcome = run_search(settings, SPACE, objective, latency, storage=storage(tmp_path), study_name="b")
    skipped = [t for t in outcome.trials if t.skipped]
    assert skipped, "a third of the space fits: random sampling must hit students over the budget"
    assert all(not t.feasible and t.predicted_low_ms > budget for t in skipped)
    assert set(objective.calls) <= {t.arch for t in outcome.trials if t.evaluated}
    assert outcome.evaluated == 8 and len(objective.calls) <= 8
    assert all(m.trial.latency_ms <= budget for m in outcome.pareto)
    assert outcome.reference[1] == budget


def test_a_budget_no_student_fits_is_a_clear_error(latency: PredictedLatency, tmp_path: Path) -> None:
    settings = SearchSettings(trials=3, sampler="random", budget_ms=1e-6, max_skipped=5)
    with pytest.raises(ConfigError, match="budget is too tight"):
        run_search(settings, SPACE, Counting(), latency, storage=storage(tmp_path), study_name="tight")


def test_students_whose_interval_straddles_the_budget_are_measured(tmp_path: Path, fit_predictor) -> None:  # type: ignore[no-untyped-def]
    noisy = PredictedLatency(fit_predictor(tmp_path / "noisy.json", SPACE, WORKLOAD, noise=0.4), WORKLOAD)
    estimates = noisy.estimate([SPACE.from_indices(i) for i in _all_indices()])
    budget = float(np.median([e.ms for e in estimates]))
    assert sum(e.straddles(budget) for e in estimates) > 4  # the wide interval makes many uncertain
    measured = MeasuredLatency("fake-cpu", WORKLOAD, samples=4, backend=FakeBackend())
    settings = SearchSettings(trials=10, sampler="random", budget_ms=budget, seed=2)
    outcome = run_search(
        settings, SPACE, Counting(), noisy, storage=storage(tmp_path), study_name="m", measured=measured
    )
    checked = [t for t in outcome.trials if t.measured_ms is not None]
    assert checked, "some sampled students straddle the budget"
    for t in outcome.trials:
        assert (t.measured_ms is not None) == (
            not t.skipped and t.predicted_low_ms <= budget < t.predicted_high_ms
        )
    for t in checked:
        assert t.latency_ms == t.measured_ms  # the measurement decides
        assert t.measured_ms == pytest.approx(fake_latency_s(EncoderSpec(t.arch, WORKLOAD)) * 1e3, rel=0.05)
        assert t.feasible == (t.measured_ms <= budget)


def test_an_interrupted_search_resumes_where_it_stopped(latency: PredictedLatency, tmp_path: Path) -> None:
    settings = SearchSettings(trials=7, sampler="tpe", startup_trials=3, seed=5)
    broken = Counting(fail_at=4)
    with pytest.raises(KeyboardInterrupt):
        run_search(settings, SPACE, broken, latency, storage=storage(tmp_path), study_name="r")
    objective = Counting()
    outcome = run_search(settings, SPACE, objective, latency, storage=storage(tmp_path), study_name="r")
    failed = [t for t in outcome.trials if t.state == "FAIL"]
    assert len(failed) == 1 and "KeyboardInterrupt" in failed[0].error
    assert outcome.evaluated == 7
    assert len(broken.calls) - 1 + len(objective.calls) <= 7  # nothing evaluated twice
    more = run_search(
        SearchSettings(trials=9, sampler="tpe", startup_trials=3, seed=5),
        SPACE, objective, latency, storage=storage(tmp_path), study_name="r",
    )  # fmt: skip
    assert more.evaluated == 9 and [t.number for t in more.trials[: len(outcome.trials)]] == [
        t.number for t in outcome.trials
    ]


def test_resuming_with_other_objectives_is_refused(latency: PredictedLatency, tmp_path: Path) -> None:
    run_search(
        SearchSettings(trials=2, sampler="random"),
        SPACE,
        Counting(),
        latency,
        storage=storage(tmp_path),
        study_name="x",
    )
    # the message says what differs, so the user can resume with the study's own settings
    with pytest.raises(
        ConfigError, match=r"exists with another settings \(settings.budget_ms: null in the study, 1.0 now\)"
    ):
        run_search(
            SearchSettings(trials=3, sampler="random", budget_ms=1.0),
            SPACE, Counting(), latency, storage=storage(tmp_path), study_name="x",
        )  # fmt: skip
    other = SearchSpace(name="u", layers=(1, 2), hidden=(32,), heads=(2,), ffn=(64,))
    with pytest.raises(ConfigError, match="exists with another space"):
        run_search(
            SearchSettings(trials=3), other, Counting(), latency, storage=storage(tmp_path), study_name="x"
        )


def test_bad_settings_and_storage_fail_before_any_work(latency: PredictedLatency, tmp_path: Path) -> None:
    for kwargs, message in (
        ({"sampler": "cma"}, "sampler must be one of"),
        ({"trials": 0}, "trials must be a positive integer"),
        ({"budget_ms": -1.0}, "budget_ms must be a positive"),
        ({"startup": "lhs"}, "startup must be one of"),
    ):
        with pytest.raises(ConfigError, match=message):
            SearchSettings(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="database URL"):
        run_search(
            SearchSettings(), SPACE, Counting(), latency, storage=str(tmp_path / "x.db"), study_name="s"
        )


def test_results_files_hold_every_trial_and_the_pareto_set(latency: PredictedLatency, tmp_path: Path) -> None:
    objective = Counting()
    outcome = run_search(
        SearchSettings(trials=5, sampler="gp", startup_trials=3), SPACE, objective, latency,
        storage=storage(tmp_path), study_name="w",
    )  # fmt: skip
    measured = MeasuredLatency("fake-cpu", WORKLOAD, samples=4, backend=FakeBackend())
    final = finish(outcome, final=SurrogateAccuracy(seed=9), measured=measured)
    paths = write_results(final, tmp_path / "out", extra={"command": "latbench search …"})
    document = json.loads(paths[0].read_text())
    assert document["format"] == "latbench-search" and document["evaluated_trials"] == 5
    assert document["space"]["name"] == "t" and document["latency"]["predictor"] == "flops"
    assert document["command"] == "latbench search …"
    assert len(document["pareto"]) == len(final.pareto) >= 1
    for member in document["pareto"]:
        assert member["final"]["accuracy"] == pytest.approx(
            SurrogateAccuracy(seed=9).accuracy(Arch.from_dict(member["arch"]))
        )
        assert member["final_latency"]["measured"] is True and member["final_latency"]["ms"] > 0
    with open(paths[1], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(final.trials) and rows[0]["arch"].endswith("F")
    assert math.isclose(float(rows[0]["accuracy"]), final.trials[0].accuracy or 0.0)


def test_the_surrogate_is_deterministic_and_rewards_capacity() -> None:
    s = SurrogateAccuracy(seed=0, noise=0.0)
    small, big = Arch.uniform(2, 128, 2, 256), Arch.uniform(6, 256, 4, 1024)
    assert 0.5 < s.accuracy(small) < s.accuracy(big) < 0.92
    noisy = SurrogateAccuracy(seed=0)
    assert noisy.accuracy(small) == noisy.accuracy(small) != SurrogateAccuracy(seed=1).accuracy(small)


def test_the_teacher_is_priced_and_measured_beside_the_pareto_set(
    latency: PredictedLatency, tmp_path: Path
) -> None:
    outcome = run_search(
        SearchSettings(trials=4, sampler="random"), SPACE, Counting(), latency,
        storage=storage(tmp_path), study_name="t",
    )  # fmt: skip
    teacher = Arch.uniform(4, 64, 4, 256)
    measured = MeasuredLatency("fake-cpu", WORKLOAD, samples=4, backend=FakeBackend())
    final = finish(outcome, measured=measured, teacher=teacher, latency=latency)
    assert final.teacher is not None and final.teacher.arch == teacher
    assert final.teacher.accuracy is None  # the surrogate has no teacher
    assert final.teacher.predicted.ms == latency.estimate([teacher])[0].ms
    assert final.teacher.measured is not None and final.teacher.measured.measured
    assert final.teacher.measured.ms == pytest.approx(
        fake_latency_s(EncoderSpec(teacher, WORKLOAD)) * 1e3, rel=0.2
    )
    assert all(m.final_latency is not None for m in final.pareto)
    document = json.loads(write_results(final, tmp_path / "out")[0].read_text())
    assert document["teacher"]["arch"] == teacher.to_dict() and document["teacher"]["measured"]["ms"] > 0
    predicted_only = finish(outcome, teacher=teacher, latency=latency)
    assert predicted_only.teacher is not None and predicted_only.teacher.measured is None
