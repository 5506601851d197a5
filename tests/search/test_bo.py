"""The predictor-guided GP sampler: its expected hypervolume improvement is exact, its
features fill a per-layer student's missing layers, and it proposes new students that
fit the budget, avoids students other workers are evaluating, and needs no evaluation
beyond what the budget allows."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import optuna  # noqa: F401
import pytest

from latbench.arch import Arch, Workload
from latbench.errors import ConfigError
from latbench.search.bo import (
    Observation,
    PredictorGuidedProposer,
    expected_hypervolume_improvement,
    features,
)
from latbench.search.objectives import PredictedLatency, SurrogateAccuracy
from latbench.search.space import SearchSpace
from latbench.search.study import SearchSettings, hypervolume, make_sampler, run_search

SPACE = SearchSpace(
    name="bo", layers=(1, 2, 3), hidden=(32, 64), heads=(2, 4), ffn_ratios=(2.0, 4.0), per_layer=True
)
WORKLOAD = Workload(1, 32)
REFERENCE = (0.5, 10.0)
FRONT = [(0.7, 1.0), (0.8, 3.0), (0.9, 6.0)]


@pytest.fixture(scope="module")
def latency(tmp_path_factory: pytest.TempPathFactory, fit_predictor) -> PredictedLatency:  # type: ignore[no-untyped-def]
    return PredictedLatency(fit_predictor(tmp_path_factory.mktemp("p") / "p.json", SPACE, WORKLOAD), WORKLOAD)


def test_with_no_uncertainty_ehvi_is_the_hypervolume_a_point_adds() -> None:
    rng = np.random.default_rng(0)
    acc, ms = rng.uniform(0.5, 1.0, 50), rng.uniform(0.0, 11.0, 50)
    ehvi = expected_hypervolume_improvement(acc, np.full(50, 1e-12), ms, FRONT, REFERENCE)
    base = hypervolume(FRONT, REFERENCE)
    exact = [hypervolume([*FRONT, (a, m)], REFERENCE) - base for a, m in zip(acc, ms, strict=True)]
    np.testing.assert_allclose(ehvi, exact, atol=1e-9)


def test_ehvi_is_the_mean_improvement_over_the_accuracy_distribution() -> None:
    mean, std, ms = np.array([0.78, 0.95]), np.array([0.05, 0.02]), np.array([2.0, 9.0])
    ehvi = expected_hypervolume_improvement(mean, std, ms, FRONT, REFERENCE)
    draws = np.random.default_rng(1).normal(size=20_000)
    base = hypervolume(FRONT, REFERENCE)
    for i in range(2):
        sampled = [hypervolume([*FRONT, (a, ms[i])], REFERENCE) - base for a in mean[i] + std[i] * draws]
        assert ehvi[i] == pytest.approx(np.mean(sampled), rel=0.02)
    # beyond the reference latency nothing can be gained, however good the accuracy
    far = expected_hypervolume_improvement(
        np.array([0.99]), np.array([0.1]), np.array([10.5]), FRONT, REFERENCE
    )
    assert far[0] == 0.0
    # an empty front: the whole rectangle up to the reference point
    alone = expected_hypervolume_improvement(
        np.array([0.9]), np.array([1e-12]), np.array([2.0]), [], REFERENCE
    )
    assert alone[0] == pytest.approx(0.4 * 8.0)


def test_a_per_layer_student_is_described_by_its_layers_mean_choices() -> None:
    one = Arch(hidden=64, heads=(4,), ffn=(128,))
    two = Arch(hidden=64, heads=(2, 4), ffn=(256, 128))
    x = features(SPACE, [one, two], np.array([2.0, 3.0]))
    # layers, hidden, mean heads, mean ffn, log ms, log params
    assert x.shape == (2, 2 + 2 + 2)
    assert list(x[0, :4]) == [0.0, 1.0, 1.0, 0.0]
    assert list(x[1, :4]) == [0.5, 1.0, 0.5, 0.5]
    assert x[0, -2] == pytest.approx(np.log(2.0)) and x[0, -1] == pytest.approx(np.log(one.params))


def test_the_model_learns_a_noisy_accuracy_and_its_uncertainty_leaves_the_noise_out() -> None:
    from latbench.search.bo import AccuracyModel

    rng = np.random.default_rng(0)

    def accuracy(x: np.ndarray) -> np.ndarray:
        return 0.8 + 0.05 * x[:, 0] + 0.02 * np.sin(3 * x[:, 1])

    x = rng.uniform(size=(80, 2))
    model = AccuracyModel(seed=0).fit(x, accuracy(x) + rng.normal(0, 0.01, size=80))
    test = rng.uniform(size=(200, 2))
    mean, _ = model.predict(test)
    assert np.sqrt(np.mean((mean - accuracy(test)) ** 2)) < 0.005  # half one evaluation's noise
    _, latent = model.predict(x)
    _, with_noise = model.gp.predict(x, return_std=True)  # what a new evaluation would scatter by
    assert np.median(with_noise) > 0.005 and np.median(latent) < 0.002


def observations(latency: PredictedLatency, n: int, seed: int = 0) -> list[Observation]:
    rng, truth = random.Random(seed), SurrogateAccuracy(seed=1)
    archs = list(dict.fromkeys(SPACE.sample(rng) for _ in range(4 * n)))[:n]
    return [
        Observation(a, e.ms, truth.accuracy(a)) for a, e in zip(archs, latency.estimate(archs), strict=True)
    ]


def test_the_proposal_is_a_new_student_under_the_budget(latency: PredictedLatency) -> None:
    seen = observations(latency, 8)
    budget = float(np.median([o.latency_ms for o in seen]))
    proposer = PredictorGuidedProposer(SPACE, latency, seed=0, budget_ms=budget, pool=300, min_observations=4)
    reference = (0.5, 2 * max(o.latency_ms for o in seen))
    assert proposer.propose(seen[:3], reference, step=3) is None  # too few to model
    proposals = {proposer.propose(seen, reference, step=s) for s in range(5)}
    for arch in proposals:
        assert arch is not None and SPACE.contains(arch)
        assert arch not in {o.arch for o in seen}
        assert latency.estimate([arch])[0].ms <= budget
    # a student another worker is evaluating is not proposed again
    first = proposer.propose(seen, reference, step=0)
    assert first is not None
    pending = Observation(first, latency.estimate([first])[0].ms, None)
    assert proposer.propose([*seen, pending], reference, step=0) != first


def test_the_gp_search_never_spends_a_trial_over_the_budget(
    latency: PredictedLatency, tmp_path: Path
) -> None:
    all_ms = sorted(e.ms for e in latency.estimate([SPACE.sample(random.Random(i)) for i in range(200)]))
    budget = all_ms[len(all_ms) // 3]
    settings = SearchSettings(trials=8, sampler="gp", startup_trials=4, budget_ms=budget, seed=2)
    outcome = run_search(
        settings,
        SPACE,
        SurrogateAccuracy(seed=1),
        latency,
        storage=f"sqlite:///{tmp_path / 's.db'}",
        study_name="b",
    )
    assert outcome.evaluated == 8
    assert not any(t.skipped for t in outcome.trials)  # nothing proposed over the budget
    assert all(t.feasible and t.predicted_ms is not None and t.predicted_ms <= budget for t in outcome.trials)
    assert len({t.arch for t in outcome.trials if t.reused is None}) == 8


def test_the_gp_sampler_needs_the_space_and_the_cost_model() -> None:
    with pytest.raises(ConfigError, match="needs the search space"):
        make_sampler("gp", 0, 4)
