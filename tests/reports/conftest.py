"""Search results and predictor files for report tests: a lut-block predictor fitted on a
fake-backend profile (so the report can break latency down by operator), a GP search and
a random baseline on the accuracy surrogate, the Pareto set and the teacher measured on
the fake target."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from latbench.arch import Arch, Workload
from latbench.db import MeasurementDB
from latbench.fingerprint import collect
from latbench.plans import Plan, ProfileSpace
from latbench.profile import run_profile
from latbench.target import Target
from latbench.testing.fake_backend import FakeBackend
from latbench.timing import ProtocolSettings

SETTINGS = ProtocolSettings(
    warmup_min_s=0.0, warmup_min_iters=1, min_sample_s=0.0, samples=4, min_samples=4, rounds=1
)
WORKLOAD = Workload(1, 32)
TEACHER = Arch.uniform(4, 128, 4, 512, vocab_size=500, max_positions=64)


@dataclass(frozen=True)
class Searches:
    gp: Path  # folder with search.json
    random: Path
    predictor: Path


def fit_lut_block(path: Path, tmp: Path) -> Path:
    from latbench.predictors import registry
    from latbench.predictors.io import save_predictor
    from latbench.predictors.table import LatencyTable

    backend = FakeBackend()
    target = backend.normalize(Target("fake-cpu"))
    space = ProfileSpace(hidden=(32, 64, 128), heads=(2, 4), ffn_ratios=(2.0, 4.0), seq_lens=(32,),
                         layers=(1, 4), vocab_size=500)  # fmt: skip
    plan = Plan(name="r", space=space, encoders=12, seed=1)
    with MeasurementDB(tmp / "m.db") as db:
        run_profile(plan.specs(), backend, target, collect(), db, SETTINGS)
        rows = db.measurements()
    table = LatencyTable.from_measurements([m for m in rows if m.spec.kind != "encoder"])
    encoders = [m for m in rows if m.spec.kind == "encoder"]
    predictor = registry.create("lut-block").fit(
        [m.spec for m in encoders], np.array([m.median_s for m in encoders]), table=table
    )
    save_predictor(predictor, path, target=target, fingerprint=collect(), training={"encoders": len(rows)})
    return path


@pytest.fixture(scope="session")
def searches(tmp_path_factory: pytest.TempPathFactory) -> Searches:
    import optuna  # noqa: F401

    from latbench.search.objectives import MeasuredLatency, PredictedLatency, SurrogateAccuracy
    from latbench.search.space import SearchSpace
    from latbench.search.study import SearchSettings, finish, run_search, write_results

    root = tmp_path_factory.mktemp("searches")
    predictor = fit_lut_block(root / "lut-block.json", root)
    latency = PredictedLatency(predictor, WORKLOAD)
    space = SearchSpace(name="report-space", layers=(1, 2, 3, 4), hidden=(32, 64, 128), heads=(2, 4),
                        ffn_ratios=(2.0, 4.0), vocab_size=500, max_positions=64)  # fmt: skip
    budget = 0.6 * latency.estimate([TEACHER])[0].ms
    out = {}
    for sampler in ("gp", "random"):
        settings = SearchSettings(trials=8, sampler=sampler, startup_trials=4, budget_ms=budget, seed=1)
        outcome = run_search(settings, space, SurrogateAccuracy(seed=2), latency,
                             storage=f"sqlite:///{root / 'study.db'}", study_name=sampler)  # fmt: skip
        measured = MeasuredLatency("fake-cpu", WORKLOAD, samples=4, backend=FakeBackend())
        if sampler == "gp":
            outcome = finish(outcome, final=SurrogateAccuracy(seed=3), measured=measured, teacher=TEACHER,
                             latency=latency)  # fmt: skip
        write_results(
            outcome, root / sampler, extra={"command": ["latbench", "search", "--sampler", sampler]}
        )
        out[sampler] = root / sampler
    return Searches(out["gp"], out["random"], predictor)
