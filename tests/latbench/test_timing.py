"""The measurement protocol, driven by a fake clock so every figure is exact."""

from __future__ import annotations

import pytest

from latbench.errors import ConfigError
from latbench.testing.fakes import FakeClock, FakeRun
from latbench.timing import ProtocolSettings, measure_group

FAST = ProtocolSettings(warmup_min_s=0.01, warmup_min_iters=3, min_sample_s=0.002, samples=64, rounds=4)


def test_constant_latency_is_measured_exactly_and_stable() -> None:
    clock = FakeClock()
    run = FakeRun(clock, 1e-3)
    (result,) = measure_group([run], FAST, clock=clock)
    assert result.times_s == pytest.approx([1e-3] * 64)
    assert result.stable
    assert result.rounds == 4
    assert result.stats.median_s == pytest.approx(1e-3)
    assert result.stats.iqr_s == pytest.approx(0.0, abs=1e-15)


def test_calibration_makes_each_sample_last_at_least_min_sample_s() -> None:
    clock = FakeClock()
    run = FakeRun(clock, 10e-6)  # 10 µs per inference, 2 ms per sample wanted
    (result,) = measure_group([run], FAST, clock=clock)
    assert result.iterations_per_sample * 10e-6 >= FAST.min_sample_s
    assert result.iterations_per_sample * 10e-6 < 2 * 1.2 * FAST.min_sample_s  # not wildly over
    assert result.stats.median_s == pytest.approx(10e-6)


def test_slow_specs_run_one_iteration_per_sample() -> None:
    clock = FakeClock()
    (result,) = measure_group([FakeRun(clock, 0.05)], FAST, clock=clock)
    assert result.iterations_per_sample == 1


def test_warm_up_runs_for_min_iterations_and_min_time_and_is_not_sampled() -> None:
    clock = FakeClock()
    # the first 10 calls are slow (cold), the rest fast: warm-up must absorb the cold ones
    durations = [5e-3] * 10 + [1e-3] * 100_000
    run = FakeRun(clock, durations)
    settings = ProtocolSettings(warmup_min_s=0.05, warmup_min_iters=3, min_sample_s=0.0, samples=16, rounds=2)
    (result,) = measure_group([run], settings, clock=clock)
    assert max(result.times_s) == pytest.approx(1e-3)  # no cold call in any sample


def test_rounds_interleave_specs_in_rotated_order() -> None:
    clock = FakeClock()
    log: list[str] = []
    runs = [FakeRun(clock, 0.01, name, log) for name in "abc"]
    settings = ProtocolSettings(
        warmup_min_s=0.0, warmup_min_iters=1, min_sample_s=0.0, samples=3, min_samples=3, rounds=3
    )
    measure_group(runs, settings, clock=clock)
    sampled = log[-9:]  # 3 rounds × 3 specs × 1 sample each
    assert sampled == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_unstable_spec_is_extended_then_flagged_and_stable_one_is_not_extended() -> None:
    clock = FakeClock()
    noisy = FakeRun(clock, [1e-3, 2e-3, 3e-3, 4e-3])  # IQR/median ≈ 0.6
    steady = FakeRun(clock, 1e-3)
    settings = ProtocolSettings(
        warmup_min_s=0.0, warmup_min_iters=1, min_sample_s=0.0, samples=16, rounds=4, max_extensions=2
    )
    noisy_result, steady_result = measure_group([noisy, steady], settings, clock=clock)
    assert not noisy_result.stable
    assert noisy_result.rounds == 4 * 3  # the first rounds plus two extensions
    assert len(noisy_result.times_s) == 16 * 3
    assert steady_result.stable
    assert steady_result.rounds == 4
    assert len(steady_result.times_s) == 16


def test_extension_stops_once_the_spec_becomes_stable() -> None:
    clock = FakeClock()
    # noisy for the first 16 samples, then steady long enough to pull the IQR down
    durations = [1e-3, 3e-3] * 8 + [2e-3] * 10_000
    run = FakeRun(clock, durations)
    settings = ProtocolSettings(
        warmup_min_s=0.0, warmup_min_iters=1, min_sample_s=0.0, samples=16, rounds=1, max_extensions=5
    )
    # warm-up and calibration take 2 calls; with the steady tail the second extension is stable
    (result,) = measure_group([run], settings, clock=clock)
    assert result.stable
    assert result.rounds < 1 + 5


def test_slow_spec_gets_fewer_samples_but_never_below_min_samples() -> None:
    clock = FakeClock()
    settings = ProtocolSettings(
        warmup_min_s=0.0,
        warmup_min_iters=1,
        min_sample_s=0.0,
        samples=64,
        min_samples=16,
        rounds=4,
        max_spec_s=1.0,
    )
    (result,) = measure_group([FakeRun(clock, 0.5)], settings, clock=clock)
    assert len(result.times_s) == 16


def test_custom_timer_replaces_the_clock() -> None:
    calls: list[int] = []

    def timer(fn, iterations):  # type: ignore[no-untyped-def]
        calls.append(iterations)
        return 0.004 * iterations  # e.g. device events: 4 ms per inference

    (result,) = measure_group([lambda: None], FAST, clock=FakeClock(), timers=[timer])
    assert result.stats.median_s == pytest.approx(0.004)
    assert calls


def test_empty_group_and_bad_settings() -> None:
    assert measure_group([], FAST, clock=FakeClock()) == []
    with pytest.raises(ConfigError, match="samples"):
        ProtocolSettings(samples=0)
    with pytest.raises(ConfigError, match="min_samples"):
        ProtocolSettings(samples=8, min_samples=16)
