"""The contract every latency predictor must pass (see ``latbench.predictors.base``).

``PredictorContract`` is a pytest test class to subclass, like
``latbench.testing.backend_contract.BackendContract`` for backends. It checks
scikit-learn's estimator conventions (``__init__`` stores only its parameters, ``fit``
returns ``self``, learned attributes end in ``_``, ``NotFittedError`` before ``fit``,
clones are equal, refitting is deterministic), the fit/predict round trip, JSON state
and ``save_predictor``/``load_predictor`` round trips, that a batch predicts what its
encoders do one at a time, the prediction interval, and that bad input is refused with
a clear error.

Reuse it for a new predictor by subclassing in a test module and providing the
``make_predictor`` fixture, a factory for fresh, unfitted predictors::

    import pytest

    from latbench.predictors.testing import PredictorContract


    class TestMyPredictor(PredictorContract):
        @pytest.fixture
        def make_predictor(self):
            return lambda: MyPredictor(alpha=0.5)

It needs no data of its own: the ``training`` fixture profiles a small plan on the
fake backend (``fake_training_data``: 30 encoders, their blocks and operators, with
latencies following ``latbench.testing.fake_backend.fake_latency_s``). To fit on other
data, override ``training`` with a ``TrainingData`` of your own (at least
``MIN_ENCODERS`` encoders)::

        @pytest.fixture(scope="class")
        @classmethod
        def training(cls):
            return TrainingData(X=specs, y=latencies, table=LatencyTable.from_measurements(rows))

To run it over several predictors, parametrize the factory (as tests/predictors does
over every registered name)::

        @pytest.fixture(params=["ridge", "lasso"])
        def make_predictor(self, request):
            return lambda: MyPredictor(kind=request.param)

A predictor passes most easily by subclassing ``LatencyPredictor`` (implementing
``_fit``, ``_predict`` and, for learned state beyond the base's, ``get_state`` and
``set_state``): the base's input checks give the error messages the contract expects.
Its ``name`` must be its own: ``load_predictor`` finds a predictor's class by name in
``latbench.predictors.registry``, so the file round trip enters an unregistered
predictor there for the duration of the test (its class must be defined at the top level
of a module) and fails for a name a built-in predictor already has.

The tests that only predict share one fitted predictor per test class and set of
parameters (the contract checks that fitting is deterministic), so ``make_predictor``
should give predictors that differ only in what ``get_params`` shows.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from latbench.arch import Workload
from latbench.fingerprint import Fingerprint
from latbench.plans import ProfileSpace
from latbench.predictors import registry
from latbench.predictors.base import MIN_INTERVAL_ENCODERS, LatencyPredictor, Prediction
from latbench.predictors.batch import EncoderBatch
from latbench.predictors.io import load_predictor, predictor_document, save_predictor
from latbench.predictors.table import LatencyTable
from latbench.specs import EncoderSpec
from latbench.target import Target
from latbench.timing import ProtocolSettings

#: The space ``fake_training_data`` profiles by default: small, so profiling takes ~1 s.
FAKE_SPACE = ProfileSpace(
    hidden=(64, 128, 256),
    heads=(2, 4),
    ffn_ratios=(2.0, 4.0),
    seq_lens=(16, 64),
    layers=(2, 6),
    vocab_size=1000,
)
#: The fake backend's latencies are exact, so a few samples per spec are enough.
FAKE_SETTINGS = ProtocolSettings(
    warmup_min_s=0.0, warmup_min_iters=1, min_sample_s=0.0, samples=4, min_samples=4, rounds=1
)
#: The fewest encoders ``TrainingData`` accepts: the interval check fits on four fifths
#: of them, which must be enough for a prediction interval (``MIN_INTERVAL_ENCODERS``).
MIN_ENCODERS = math.ceil(MIN_INTERVAL_ENCODERS * 5 / 4)
#: The target saved with predictors fitted on ``TrainingData`` that names none.
CONTRACT_TARGET = Target("contract")
#: How many new encoders the batch check samples from ``TrainingData.space``.
POPULATION = 40

PredictorFactory = Callable[[], LatencyPredictor]


@dataclass(frozen=True, eq=False)
class TrainingData:
    """What the contract fits predictors on.

    ``X``: encoders (``EncoderSpec``) with measured latencies ``y`` in seconds; ``table``:
    the measured blocks and operators (``LatencyTable``) the table-based predictors need
    (None for predictors that use none); ``target`` and ``fingerprint``: where they were
    measured, written into saved predictor files; ``space``: where the batch check draws
    new encoders from (None: the training encoders' architectures at the first
    encoder's workload).
    """

    X: Sequence[EncoderSpec]
    y: np.ndarray
    table: LatencyTable | None = None
    target: Target = CONTRACT_TARGET
    fingerprint: Fingerprint | None = None
    space: ProfileSpace | None = None

    def __post_init__(self) -> None:
        if isinstance(self.X, (str, bytes)) or not all(isinstance(s, EncoderSpec) for s in self.X):
            raise TypeError("TrainingData.X must be a sequence of latbench EncoderSpecs")
        y = np.asarray(self.y, dtype=float)
        if y.shape != (len(self.X),):
            raise ValueError(
                f"TrainingData.y must hold one latency per encoder ({len(self.X)}), got {y.shape}"
            )
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ValueError("TrainingData.y must hold finite, positive latencies (seconds)")
        if len(self.X) < MIN_ENCODERS:
            raise ValueError(f"TrainingData needs at least {MIN_ENCODERS} encoders, got {len(self.X)}")
        object.__setattr__(self, "y", y)

    def population(self) -> list[EncoderSpec]:
        """The encoders the batch check predicts together and one at a time."""
        if self.space is None:
            workload = self.X[0].workload
            return [EncoderSpec(spec.arch, workload) for spec in self.X]
        rng = np.random.default_rng(1)
        archs = [self.space.sample_arch(random.Random(i)) for i in range(POPULATION)]
        workload = Workload(1, int(rng.choice(self.space.seq_lens)), self.space.precision)
        return [EncoderSpec(arch, workload) for arch in archs]


def fake_training_data(
    path: str | Path, *, space: ProfileSpace = FAKE_SPACE, encoders: int = 30, seed: int = 3
) -> TrainingData:
    """Profile ``encoders`` encoders sampled from ``space``, with their blocks (in model and
    isolated context) and operators, on ``latbench.testing.fake_backend.FakeBackend`` into
    a new database at ``path``, and return them as ``TrainingData``. The latencies follow
    ``fake_latency_s`` exactly (an additive law), so accuracy can be checked exactly too."""
    from latbench.db import MeasurementDB
    from latbench.fingerprint import collect
    from latbench.plans import Plan
    from latbench.profile import run_profile
    from latbench.testing.fake_backend import FakeBackend

    backend = FakeBackend()
    target = backend.normalize(Target(backend.name))
    fingerprint = collect()
    plan = Plan(name="contract", space=space, contexts=("model", "isolated"), encoders=encoders, seed=seed)
    with MeasurementDB(path) as db:
        run_profile(plan.specs(), backend, target, fingerprint, db, FAKE_SETTINGS)
        rows = db.measurements()
    measured = [(m.spec, m.latency_s) for m in rows if isinstance(m.spec, EncoderSpec)]
    return TrainingData(
        X=[spec for spec, _ in measured],
        y=np.array([latency for _, latency in measured]),
        table=LatencyTable.from_measurements([m for m in rows if m.spec.kind != "encoder"]),
        target=target,
        fingerprint=fingerprint,
        space=space,
    )


def _fit(predictor: LatencyPredictor, data: TrainingData, X: Any = None, y: Any = None) -> LatencyPredictor:
    return predictor.fit(data.X if X is None else X, data.y if y is None else y, table=data.table)


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (where a tuple parameter comes back a list)."""
    return json.loads(json.dumps(value, allow_nan=False))


def _with_first(y: np.ndarray, value: float) -> np.ndarray:
    changed = y.copy()
    changed[0] = value
    return changed


def _assert_same_prediction(a: Prediction, b: Prediction, rtol: float) -> None:
    np.testing.assert_allclose(a.latency_s, b.latency_s, rtol=rtol)
    for low_or_high in ("low_s", "high_s"):
        first, second = getattr(a, low_or_high), getattr(b, low_or_high)
        assert (first is None) == (second is None), f"{low_or_high} is None in only one prediction"
        if first is not None:
            np.testing.assert_allclose(first, second, rtol=rtol)
    np.testing.assert_array_equal(a.extrapolated, b.extrapolated)


class PredictorContract:
    """Subclass with a ``make_predictor`` fixture (see the module's docstring)."""

    @pytest.fixture
    def make_predictor(self) -> PredictorFactory:
        """Override: a callable giving a fresh, unfitted predictor at each call."""
        raise NotImplementedError("provide a `make_predictor` fixture: a factory of unfitted predictors")

    @pytest.fixture(scope="class")
    @classmethod
    def training(cls, tmp_path_factory: pytest.TempPathFactory) -> TrainingData:
        """What the predictors are fitted on; by default ``fake_training_data``, once per class."""
        return fake_training_data(tmp_path_factory.mktemp("predictor-contract") / "measurements.db")

    @pytest.fixture(scope="class")
    @classmethod
    def fitted_once(cls) -> dict[tuple[type, str], tuple[TrainingData, LatencyPredictor]]:
        """The predictors ``fitted`` has fitted in this class, by class and parameters."""
        return {}

    @pytest.fixture
    def fitted(
        self,
        make_predictor: PredictorFactory,
        training: TrainingData,
        fitted_once: dict[tuple[type, str], tuple[TrainingData, LatencyPredictor]],
    ) -> LatencyPredictor:
        """``make_predictor()`` fitted on ``training``. Fitting is deterministic (the
        contract checks it), so a predictor of the same class and parameters is fitted on
        the same data once per test class and shared by the tests that only predict with
        it: they must leave it as it is (and those that fit start from ``make_predictor``
        or a clone)."""
        predictor = make_predictor()
        key = (type(predictor), repr(sorted(predictor.get_params(deep=False).items())))
        cached = fitted_once.get(key)
        if cached is None or cached[0] is not training:
            cached = fitted_once[key] = (training, _fit(predictor, training))
        return cached[1]

    # --- scikit-learn's estimator conventions -----------------------------------------
    def test_init_stores_its_params_and_nothing_else(self, make_predictor: PredictorFactory) -> None:
        predictor = make_predictor()
        assert isinstance(predictor.name, str) and predictor.name, "a predictor needs a name"
        assert not [k for k in vars(predictor) if k.endswith("_")], "__init__ learns nothing"
        assert set(vars(predictor)) == set(predictor.get_params()), "__init__ sets exactly its parameters"

    def test_an_unfitted_clone_has_equal_params(self, make_predictor: PredictorFactory) -> None:
        predictor = make_predictor()
        copy = clone(predictor)
        assert type(copy) is type(predictor) and copy is not predictor
        assert copy.get_params() == predictor.get_params()

    def test_predicting_before_fit_raises_not_fitted_error(
        self, make_predictor: PredictorFactory, training: TrainingData
    ) -> None:
        predictor = make_predictor()
        with pytest.raises(NotFittedError):
            predictor.predict(training.X[:1])
        with pytest.raises(NotFittedError):
            predictor.predict_detail(training.X[:1])
        with pytest.raises(NotFittedError):
            predictor.get_state()

    def test_fit_returns_self_and_learns_only_attributes_ending_in_underscore(
        self, make_predictor: PredictorFactory, training: TrainingData
    ) -> None:
        predictor = make_predictor()
        params = predictor.get_params()
        X, y = list(training.X), training.y.copy()
        assert _fit(predictor, training) is predictor
        learned = [k for k in vars(predictor) if k not in params]
        assert learned and all(k.endswith("_") for k in learned), learned
        assert predictor.get_params() == params, "fit must not change the parameters"
        assert list(training.X) == X and np.array_equal(training.y, y), "fit must not change its input"
        unfitted = clone(predictor)
        assert unfitted.get_params() == params
        assert not [k for k in vars(unfitted) if k.endswith("_")], "a clone forgets what was learned"

    def test_refitting_is_deterministic(self, fitted: LatencyPredictor, training: TrainingData) -> None:
        first = fitted.predict(training.X)
        again = _fit(clone(fitted), training)
        np.testing.assert_array_equal(again.predict(training.X), first)
        np.testing.assert_array_equal(_fit(again, training).predict(training.X), first)  # a second fit

    # --- fit and predict ---------------------------------------------------------------
    def test_fit_then_predict_gives_one_positive_latency_per_encoder(
        self, fitted: LatencyPredictor, training: TrainingData
    ) -> None:
        X = training.X
        latency = fitted.predict(X)
        assert isinstance(latency, np.ndarray) and latency.dtype.kind == "f"
        assert latency.shape == (len(X),) and np.all(np.isfinite(latency)) and np.all(latency > 0)
        detail = fitted.predict_detail(X)
        assert isinstance(detail, Prediction)
        np.testing.assert_array_equal(detail.latency_s, latency)
        np.testing.assert_array_equal(fitted.predict(X), latency)  # predicting changes nothing
        assert fitted.predict(X[:1]).shape == (1,)

    def test_a_batch_predicts_what_its_encoders_do_one_at_a_time(
        self, fitted: LatencyPredictor, training: TrainingData
    ) -> None:
        X = training.X
        np.testing.assert_allclose(fitted.predict(EncoderBatch.from_specs(X)), fitted.predict(X), rtol=1e-12)
        population = training.population()
        together = fitted.predict(EncoderBatch.from_specs(population))
        alone = np.array([fitted.predict([spec])[0] for spec in population])
        np.testing.assert_allclose(together, alone, rtol=1e-9)

    def test_interval_brackets_the_prediction_and_mostly_the_truth(
        self, make_predictor: PredictorFactory, training: TrainingData
    ) -> None:
        X = training.X
        y = training.y * np.exp(np.random.default_rng(0).normal(0.0, 0.03, len(X)))  # measurement noise
        n = len(X) - len(X) // 5
        detail = _fit(make_predictor(), training, X[:n], y[:n]).predict_detail(X)
        assert detail.low_s is not None and detail.high_s is not None
        assert np.all(detail.low_s <= detail.latency_s) and np.all(detail.latency_s <= detail.high_s)
        inside = (detail.low_s <= y) & (y <= detail.high_s)
        assert inside.mean() >= 0.6  # a 90% interval; loose because the training sets are small

    # --- saving and loading ------------------------------------------------------------
    def test_state_round_trips_through_json(self, fitted: LatencyPredictor, training: TrainingData) -> None:
        document = _as_json(predictor_document(fitted))
        assert document["predictor"] == fitted.name
        rebuilt = type(fitted)(**document["params"]).set_state(document["state"])
        assert _as_json(rebuilt.get_params()) == _as_json(fitted.get_params())
        _assert_same_prediction(rebuilt.predict_detail(training.X), fitted.predict_detail(training.X), 1e-9)

    def test_save_and_load_give_identical_predictions_and_params(
        self,
        fitted: LatencyPredictor,
        training: TrainingData,
        tmp_path: Path,
        request: pytest.FixtureRequest,
    ) -> None:
        cls = type(fitted)
        if fitted.name in registry.names():
            known = registry.predictor_class(fitted.name)
            assert known is cls, (
                f"{fitted.name!r} names {known.__name__}; give {cls.__name__} a name of its own"
            )
        else:  # load_predictor finds classes by name in the registry: enter this one for the test
            registry.register(fitted.name, cls)
            request.addfinalizer(lambda: registry.unregister(fitted.name))
        target, fingerprint = training.target, training.fingerprint
        path = tmp_path / "predictor.json"
        training_summary = {"encoders": len(training.X)}
        save_predictor(fitted, path, target=target, fingerprint=fingerprint, training=training_summary)
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document["predictor"] == fitted.name
        if fingerprint is not None:
            assert document["fingerprint"]["cpu_model"] == fingerprint.cpu_model
        loaded = load_predictor(path, target=target, fingerprint=fingerprint)
        assert type(loaded.predictor) is type(fitted)
        assert _as_json(loaded.predictor.get_params()) == _as_json(fitted.get_params())
        assert loaded.target == target and loaded.training == training_summary
        _assert_same_prediction(
            loaded.predictor.predict_detail(training.X), fitted.predict_detail(training.X), 1e-9
        )

    # --- bad input ---------------------------------------------------------------------
    def test_fit_refuses_a_wrong_number_of_latencies(
        self, make_predictor: PredictorFactory, training: TrainingData
    ) -> None:
        y = training.y
        with pytest.raises(ValueError, match="one latency per encoder"):
            _fit(make_predictor(), training, y=y[:-1])
        with pytest.raises(ValueError, match="one latency per encoder"):
            _fit(make_predictor(), training, y=np.append(y, y[0]))

    def test_fit_refuses_latencies_that_are_not_positive(
        self, make_predictor: PredictorFactory, training: TrainingData
    ) -> None:
        for y in (-training.y, *(_with_first(training.y, bad) for bad in (0.0, np.nan, np.inf))):
            with pytest.raises(ValueError, match="finite and positive"):
                _fit(make_predictor(), training, y=y)

    def test_fit_refuses_what_is_not_encoder_specs(
        self, make_predictor: PredictorFactory, training: TrainingData
    ) -> None:
        X, y = training.X, training.y
        with pytest.raises(TypeError, match="EncoderSpecs"):
            _fit(make_predictor(), training, X=[spec.arch for spec in X])
        with pytest.raises(TypeError, match="EncoderSpecs"):
            _fit(make_predictor(), training, X="encoder", y=y[: len("encoder")])  # only X is wrong

    def test_predict_refuses_what_is_not_encoder_specs(
        self, fitted: LatencyPredictor, training: TrainingData
    ) -> None:
        spec = training.X[0]
        for bad in ([spec.arch], [spec, spec.arch], "encoder", b"encoder", 42, None):
            with pytest.raises(TypeError, match="EncoderSpecs"):
                fitted.predict(bad)
