"""Profiling runs: resuming, interruption and work splitting, on a fake backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from latbench.db import MeasurementDB
from latbench.fingerprint import collect
from latbench.plans import Plan, ProfileSpace
from latbench.profile import run_profile
from latbench.target import Target
from latbench.testing.fake_backend import FakeBackend, fake_latency_s
from latbench.timing import ProtocolSettings

SETTINGS = ProtocolSettings(
    warmup_min_s=0.0, warmup_min_iters=1, min_sample_s=0.0, samples=8, min_samples=4, rounds=2
)
PLAN = Plan(
    name="tiny",
    space=ProfileSpace(
        hidden=(32, 64), heads=(2, 4), ffn_ratios=(2.0,), seq_lens=(8, 16), layers=(1, 3), vocab_size=64
    ),
    contexts=("model", "isolated"),
    encoders=3,
)


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    backend = FakeBackend()
    target = backend.normalize(Target("fake-cpu"))
    with MeasurementDB(tmp_path / "m.db") as db:
        yield backend, target, collect(), db


def test_profile_measures_every_spec_once_and_a_rerun_measures_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    backend, target, fingerprint, db = setup
    specs = PLAN.specs()
    first = run_profile(specs, backend, target, fingerprint, db, SETTINGS, chunk_size=5)
    assert first.measured == len(specs) and first.already_measured == 0 and first.unstable == 0
    stored = {m.spec: m for m in db.measurements()}
    assert set(stored) == set(specs)
    for spec, m in stored.items():
        assert m.median_s == pytest.approx(fake_latency_s(spec))
    backend.prepared.clear()
    again = run_profile(specs, backend, target, fingerprint, db, SETTINGS, chunk_size=5)
    assert again.measured == 0 and again.already_measured == len(specs)
    assert backend.prepared == []  # nothing was even built
    assert db.count() == len(specs)


def test_interrupted_profile_keeps_finished_chunks_and_resumes(setup) -> None:  # type: ignore[no-untyped-def]
    backend, target, fingerprint, db = setup
    specs = PLAN.specs()
    chunks_done = []

    def progress(n: int, label: str) -> None:
        chunks_done.append(n)
        if len(chunks_done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_profile(specs, backend, target, fingerprint, db, SETTINGS, chunk_size=4, progress=progress)
    assert db.count() == 8  # two whole chunks, committed
    assert db.claimed() == {}  # the interrupted worker let go of its claims
    result = run_profile(specs, backend, target, fingerprint, db, SETTINGS, chunk_size=4)
    assert result.already_measured == 8 and result.measured == len(specs) - 8
    assert db.count() == len(specs)


def test_a_different_target_or_fingerprint_is_measured_separately(setup) -> None:  # type: ignore[no-untyped-def]
    backend, target, fingerprint, db = setup
    specs = PLAN.specs()[:6]
    run_profile(specs, backend, target, fingerprint, db, SETTINGS)
    other = backend.normalize(Target("fake-cpu", settings=(("threads", 1),)))
    if other == target:
        other = backend.normalize(Target("fake-cpu", settings=(("threads", 2),)))
    assert run_profile(specs, backend, other, fingerprint, db, SETTINGS).measured == 6
    assert db.count() == 12


def test_specs_claimed_by_a_live_worker_are_waited_for_not_duplicated(setup) -> None:  # type: ignore[no-untyped-def]
    backend, target, fingerprint, db = setup
    specs = PLAN.specs()[:6]
    other = "elsewhere:1"  # another host's worker: alive as far as we can tell
    held = db.claim([s.key for s in specs[:3]], target.key, fingerprint.key, other)
    assert len(held) == 3
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        # the other worker finishes while we wait
        sleeps.append(seconds)
        from latbench.profile import measure_specs

        db.add(measure_specs(backend, target, fingerprint, specs[:3], SETTINGS, worker=other), worker=other)

    result = run_profile(specs, backend, target, fingerprint, db, SETTINGS, chunk_size=2, sleep=sleep)
    assert result.measured == 3 and len(sleeps) == 1
    workers = sorted(m.worker for m in db.measurements())
    assert workers.count(other) == 3 and db.count() == 6


class _Flaky(FakeBackend):
    """Fails to build one chosen spec, as a backend out of memory would."""

    def __init__(self, bad_key: str) -> None:
        super().__init__()
        self.bad_key = bad_key

    def prepare(self, spec, target):  # type: ignore[no-untyped-def]
        if spec.key == self.bad_key:
            raise RuntimeError("std::bad_alloc\nmore lines nobody needs")
        return super().prepare(spec, target)


def test_a_spec_that_fails_is_reported_and_the_rest_of_the_plan_is_measured(setup) -> None:  # type: ignore[no-untyped-def]
    _, target, fingerprint, db = setup
    specs = PLAN.specs()
    bad = specs[5]
    result = run_profile(specs, _Flaky(bad.key), target, fingerprint, db, SETTINGS, chunk_size=4)
    assert result.measured == len(specs) - 1 and db.count() == len(specs) - 1
    ((label, reason),) = result.failed
    assert label == bad.label
    assert reason == f"{bad.label} could not be built on fake-cpu: RuntimeError: std::bad_alloc"
    assert db.claimed() == {}
    # a rerun retries only the failed spec, and once it works the plan is complete
    retry = run_profile(specs, FakeBackend(), target, fingerprint, db, SETTINGS)
    assert retry.measured == 1 and retry.failed == () and db.count() == len(specs)


def test_heartbeat_renews_claims_from_its_own_thread(setup) -> None:  # type: ignore[no-untyped-def]
    import time

    from latbench.profile import _Heartbeat

    _, target, fingerprint, db = setup
    keys = [s.key for s in PLAN.specs()[:3]]
    assert db.claim(keys, target.key, fingerprint.key, "w:1") == keys
    renewed: list[list[str]] = []

    def renew() -> None:
        renewed.append(db.claim(keys, target.key, fingerprint.key, "w:1"))

    with _Heartbeat(renew, every_s=0.02) as beat:
        time.sleep(0.3)
    assert beat.renewals >= 2 and all(r == keys for r in renewed)
