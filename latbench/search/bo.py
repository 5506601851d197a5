"""Predictor-guided Bayesian optimisation: the search's default sampler (``gp``).

A generic multi-objective sampler (Optuna's ``GPSampler``) models *both* objectives with
Gaussian processes and has to learn the latency of the space from the few students it
has distilled. Here latency is already known: the predictor gives it for thousands of
students in milliseconds. So only accuracy is modelled, and every proposal is chosen
among many students whose latency is known:

1. **Pool**: ``pool`` students drawn at random from the space, plus neighbours of the
   current front (one or two choices one step away, and in a per-layer space one layer's
   choices given to all), plus in a per-layer space every homogeneous student (when
   there are at most 5,000), minus those already evaluated or running; their latency is
   predicted, and students predicted over the budget are dropped.
2. **Model**: a ridge trend plus a Gaussian process (Matérn 5/2 with one length scale
   per feature, plus a noise term; scikit-learn) fitted on the evaluated students'
   accuracy (``AccuracyModel``). A student's features are its choice indices scaled to
   [0, 1] (in a per-layer space the depth, the width and the mean of the per-layer
   choices over its layers) and its log predicted latency and log parameter count, both
   scaled to [0, 1] over the pool.
3. **Acquisition**: the expected hypervolume improvement of each pooled student (over the
   model's uncertainty about its accuracy, without the evaluation noise), which
   is exact and cheap when latency is known: with the front as a step function F(x) (the
   best accuracy at latency <= x), a student at latency l and accuracy ~ N(mu, sigma^2)
   adds E[max(0, a - F(x))] at every x in [l, reference latency], the expected
   improvement over F(x), so its EHVI is a sum of expected improvements weighted by the
   widths of the front's steps.
4. Trials still running on other workers are "believed": their predicted accuracy joins
   the front, so parallel workers do not all propose the same region.

The student with the largest EHVI is proposed (the first ``startup_trials`` come from the
predictor's startup design in ``latbench.search.study``, or at random).
"""

from __future__ import annotations

import itertools
import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latbench.arch import Arch
from latbench.search.objectives import LatencyCost
from latbench.search.space import SearchSpace

NEIGHBOURS_PER_MEMBER = 48
HOMOGENEOUS_LIMIT = 5000


@dataclass(frozen=True)
class Observation:
    """An evaluated (or, for running trials, pending) student."""

    arch: Arch
    latency_ms: float
    accuracy: float | None  # None: still running
    feasible: bool = True


class LatencyCache:
    """Predicted latency (ms) per student, computed once per student."""

    def __init__(self, latency: LatencyCost) -> None:
        self.latency = latency
        self.ms: dict[Arch, float] = {}

    def __call__(self, archs: Sequence[Arch]) -> np.ndarray:
        missing = list(dict.fromkeys(a for a in archs if a not in self.ms))
        for arch, estimate in zip(missing, self.latency.estimate(missing), strict=True):
            self.ms[arch] = estimate.ms
        return np.array([self.ms[a] for a in archs], dtype=float)


def expected_hypervolume_improvement(
    mean: np.ndarray,
    std: np.ndarray,
    latency_ms: np.ndarray,
    front: Sequence[tuple[float, float]],
    reference: tuple[float, float],
) -> np.ndarray:
    """EHVI of candidates with accuracy ~ N(mean, std^2) and known latency, for the 2-D
    front of (accuracy, latency) points (accuracy maximised, latency minimised)."""
    acc_ref, lat_ref = reference
    points = sorted((lat, acc) for acc, lat in front if acc > acc_ref and lat < lat_ref)
    # The front as steps: on [lower[k], upper[k]) the best accuracy so far is level[k].
    lower, level = [-math.inf], [acc_ref]
    for lat, acc in points:
        if acc > level[-1]:
            lower.append(lat)
            level.append(acc)
    upper = [*lower[1:], lat_ref]
    lo = np.maximum(np.array(lower)[None, :], latency_ms[:, None])
    width = np.clip(np.array(upper)[None, :] - lo, 0.0, None)
    sigma = np.maximum(std, 1e-9)[:, None]
    gap = mean[:, None] - np.array(level)[None, :]
    z = gap / sigma
    improvement = gap * _normal_cdf(z) + sigma * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return (width * np.maximum(improvement, 0.0)).sum(axis=1)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z)


def features(space: SearchSpace, archs: Sequence[Arch], latency_ms: np.ndarray) -> np.ndarray:
    """The model's inputs: choice indices scaled to [0, 1] (in a per-layer space, the depth,
    the width and the per-layer choices' mean over the student's layers), log latency and
    log parameters.

    A per-layer space is described by its layers' mean choices because a search distils
    tens of students, far too few to learn what each layer's position adds: one column
    per layer slot gave the Gaussian process a dozen dimensions it could not fit and
    made it chase noise (benchmarks/search_bench.py)."""
    rows = []
    for arch in archs:
        vector = space.encode(arch)
        if space.per_layer:
            slots = vector[2:].reshape(space.max_layers, 2)
            vector = np.concatenate([vector[:2], slots[: arch.num_layers].mean(axis=0)])
        rows.append(vector)
    logs = np.column_stack([np.log(latency_ms), np.log([float(a.params) for a in archs])])
    return np.hstack([np.array(rows), logs])


def _log_scaler(*blocks: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function scaling the last two (log) columns to [0, 1] over ``blocks`` together."""
    both = np.vstack(blocks)
    low, high = both[:, -2:].min(axis=0), both[:, -2:].max(axis=0)
    span = np.where(high > low, high - low, 1.0)

    def scale(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        x[:, -2:] = (x[:, -2:] - low) / span
        return x

    return scale


class AccuracyModel:
    """Accuracy as a trend plus a Gaussian process on what the trend misses.

    The trend is a ridge regression on every feature (each choice, log latency, log
    parameters) and the squares of the two logs: accuracy grows with each kind of
    capacity and saturates with size, so the model extrapolates sensibly from a handful
    of students and already tells which choices buy accuracy at a given latency. The GP
    (Matérn 5/2, one length scale per feature, plus a noise term) learns the rest and
    gives the uncertainty. ``predict`` gives the uncertainty of the accuracy itself, not
    of a new noisy evaluation of it: the search wants students that are good, not ones
    that might draw a lucky evaluation."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    @staticmethod
    def _trend_inputs(x: np.ndarray) -> np.ndarray:
        logs = x[:, -2:]
        return np.hstack([x, logs**2])

    def fit(self, x: np.ndarray, y: np.ndarray) -> AccuracyModel:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
        from sklearn.linear_model import Ridge

        self.trend = Ridge(alpha=1e-2).fit(self._trend_inputs(x), y)
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            length_scale=np.ones(x.shape[1]), length_scale_bounds=(5e-2, 20.0), nu=2.5
        ) + WhiteKernel(1e-2, (1e-6, 1.0))
        self.gp = GaussianProcessRegressor(
            kernel, normalize_y=True, n_restarts_optimizer=2, random_state=self.seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning when a length scale reaches its bound
            self.gp.fit(x, y - self.trend.predict(self._trend_inputs(x)))
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the (noise-free) accuracy at ``x``."""
        mean, std = self.gp.predict(x, return_std=True)
        # sklearn's std includes the fitted noise term (in units of the normalised target)
        noise = self.gp.kernel_.k2.noise_level * float(np.ravel(self.gp._y_train_std)[0]) ** 2
        latent = np.sqrt(np.maximum(std**2 - noise, 0.0))
        return self.trend.predict(self._trend_inputs(x)) + mean, latent


class PredictorGuidedProposer:
    """Proposes the next student (see the module docstring); ``propose`` returns ``None``
    while fewer than ``min_observations`` students are evaluated (the caller then samples
    at random)."""

    def __init__(
        self,
        space: SearchSpace,
        latency: LatencyCost,
        *,
        seed: int = 0,
        budget_ms: float | None = None,
        pool: int = 2000,
        min_observations: int = 4,
    ) -> None:
        self.space = space
        self.latency = LatencyCache(latency)
        self.seed = seed
        self.budget_ms = budget_ms
        self.pool = pool
        self.min_observations = min_observations

    def propose(
        self, observations: Sequence[Observation], reference: tuple[float, float], step: int
    ) -> Arch | None:
        done = [o for o in observations if o.accuracy is not None]
        if len(done) < self.min_observations:
            return None
        rng = random.Random(self.seed * 100_003 + step)
        front = self._front([o for o in done if o.feasible], reference)
        taken = {o.arch for o in observations}
        candidates = self._pool(rng, front, taken)
        if not candidates:
            return None
        cand_ms = self.latency(candidates)
        if self.budget_ms is not None:
            fits = cand_ms <= self.budget_ms
            if fits.any():
                candidates = [a for a, ok in zip(candidates, fits, strict=True) if ok]
                cand_ms = cand_ms[fits]
        train_archs = [o.arch for o in done]
        train_x = features(self.space, train_archs, self.latency(train_archs))
        pool_x = features(self.space, candidates, cand_ms)
        scale = _log_scaler(train_x, pool_x)
        model = AccuracyModel(self.seed + step).fit(
            scale(train_x), np.array([o.accuracy for o in done], dtype=float)
        )
        points = [(o.accuracy, o.latency_ms) for o in done if o.feasible and o.accuracy is not None]
        pending = [o for o in observations if o.accuracy is None]
        if pending:  # believe the running trials' predicted accuracy
            archs = [o.arch for o in pending]
            believed, _ = model.predict(scale(features(self.space, archs, self.latency(archs))))
            points += [(float(a), o.latency_ms) for a, o in zip(believed, pending, strict=True)]
        mean, std = model.predict(scale(pool_x))
        score = expected_hypervolume_improvement(mean, std, cand_ms, points, reference)
        if not np.any(score > 0):
            return None
        return candidates[int(np.argmax(score))]

    def _front(self, done: Sequence[Observation], reference: tuple[float, float]) -> list[Observation]:
        best, front = -math.inf, []
        for o in sorted(done, key=lambda o: (o.latency_ms, -(o.accuracy or 0.0))):
            assert o.accuracy is not None
            if o.accuracy > best and o.latency_ms < reference[1]:
                front.append(o)
                best = o.accuracy
        return front

    def _pool(self, rng: random.Random, front: Sequence[Observation], taken: set[Arch]) -> list[Arch]:
        found: dict[Arch, None] = {}
        space, counts = self.space, self.space.choice_counts
        if space.per_layer:  # every homogeneous student (AutoDistil's kind), when they are few
            per = len(space.heads) * len(space.ffn_ratios or space.ffn)
            if len(space.layers) * len(space.hidden) * per <= HOMOGENEOUS_LIMIT:
                for n, h, a, f in itertools.product(
                    range(len(space.layers)),
                    range(len(space.hidden)),
                    range(len(space.heads)),
                    range(len(space.ffn_ratios or space.ffn)),
                ):
                    found.setdefault(space.from_indices([n, h, *([a, f] * space.max_layers)]), None)
        for member in front:
            base = list(space.indices(member.arch))
            for _ in range(NEIGHBOURS_PER_MEMBER):  # one or two choices one step away
                indices = list(base)
                for coordinate in rng.sample(range(len(counts)), k=rng.choice((1, 1, 2))):
                    step = rng.choice((-1, 1))
                    indices[coordinate] = min(counts[coordinate] - 1, max(0, indices[coordinate] + step))
                found.setdefault(space.from_indices(indices), None)
            if space.per_layer:  # one layer's choices given to every layer
                for layer in range(member.arch.num_layers):
                    slot = base[2 + 2 * layer : 4 + 2 * layer]
                    found.setdefault(space.from_indices([*base[:2], *(slot * space.max_layers)]), None)
        for _ in range(self.pool):
            found.setdefault(space.sample(rng), None)
        return [a for a in found if a not in taken]


def optuna_sampler(
    proposer: PredictorGuidedProposer,
    observe: Callable[[Any, Any], tuple[list[Observation], tuple[float, float]]],
    seed: int,
):  # type: ignore[no-untyped-def]
    """``proposer`` as an Optuna sampler: ``observe(study, trial)`` gives the observations
    (evaluated and running students) and the reference point; choices it does not propose
    (before enough students are evaluated) are drawn at random. Enqueued trials (the
    startup design, retried trials) keep their parameters, as with any Optuna sampler."""
    import optuna

    class PredictorGuidedSampler(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._random = optuna.samplers.RandomSampler(seed=seed)

        def reseed_rng(self) -> None:
            self._random.reseed_rng()

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            from optuna.distributions import IntDistribution

            counts = proposer.space.choice_counts
            return {
                d: IntDistribution(0, n - 1) for d, n in zip(proposer.space.dimensions, counts, strict=True)
            }

        def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
            if not search_space:
                return {}
            observations, reference = observe(study, trial)
            arch = proposer.propose(observations, reference, step=trial.number)
            if arch is None:
                return {}
            indices = proposer.space.indices(arch)
            return {d: int(i) for d, i in zip(proposer.space.dimensions, indices, strict=True)}

        def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
            return self._random.sample_independent(study, trial, name, distribution)

    return PredictorGuidedSampler()
