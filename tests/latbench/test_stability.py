"""`latbench stability`: the system checks on made-up /proc files, the estimators'
pass-to-pass agreement on known samples, and a real probe on onnxruntime-cpu."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from latbench.cli import main
from latbench.errors import ConfigError
from latbench.fingerprint import collect
from latbench.measurement import ESTIMATORS, Measurement, interquartile_mean
from latbench.specs import EncoderSpec
from latbench.stability import (
    CpuTimes,
    StabilityReport,
    StabilitySettings,
    agreement,
    probe,
    system_checks,
)
from latbench.target import Target
from latbench.testing.cli import assert_user_error

STAT = "cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8\n"


def fake_proc(before: dict[str, int], after: dict[str, int], **files: str):  # type: ignore[no-untyped-def]
    """A ``read`` whose /proc/stat moves from ``before`` to ``after`` between two reads."""
    stats = iter([STAT.format(**before), STAT.format(**after)])

    def read(path: str) -> str | None:
        if path == "/proc/stat":
            return next(stats)
        return files.get(path)

    return read


QUIET = (
    {"user": 100, "system": 50, "idle": 1000, "steal": 0},
    {"user": 101, "system": 50, "idle": 1199, "steal": 0},
)


def test_a_quiet_machine_passes_every_check_it_exposes() -> None:
    files = {
        "/proc/loadavg": "0.10 0.20 0.30 1/100 42\n",
        "/proc/cpuinfo": "cpu MHz\t\t: 2600.0\ncpu MHz\t\t: 2590.0\n",
        "/proc/meminfo": "MemTotal: 24000000 kB\nMemAvailable: 20000000 kB\n",
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "performance\n",
        "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor": "performance\n",
    }
    slept: list[float] = []
    checks = {
        c.name: c for c in system_checks(0.5, read=fake_proc(*QUIET, **files), sleep=slept.append, cpus=2)
    }
    assert slept == [0.5]
    assert all(c.ok for c in checks.values()), checks
    assert checks["other processes"].value.startswith("0% of the CPUs busy")
    assert checks["memory"].value == "19.1 GiB available"


def test_busy_neighbours_steal_and_power_saving_are_flagged_with_advice() -> None:
    before = {"user": 0, "system": 0, "idle": 0, "steal": 0}
    after = {"user": 60, "system": 20, "idle": 100, "steal": 20}  # 40% busy, 10% stolen
    files = {
        "/proc/loadavg": "3.5 1 1 1/1 1\n",
        "/proc/cpuinfo": "cpu MHz : 3500.0\ncpu MHz : 1200.0\n",
        "/proc/meminfo": "MemAvailable: 500000 kB\n",
        "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor": "powersave\n",
    }
    checks = {
        c.name: c
        for c in system_checks(1.0, read=fake_proc(before, after, **files), sleep=lambda s: None, cpus=2)
    }
    assert not any(c.ok for c in checks.values())
    assert checks["steal time"].value == "10.0% taken by the hypervisor"
    assert "cpupower frequency-set -g performance" in checks["frequency governor"].advice
    assert all(c.advice for c in checks.values())


def test_a_machine_without_proc_files_says_not_available() -> None:
    checks = system_checks(1.0, read=lambda path: None, sleep=lambda s: None, cpus=2)
    assert {c.name: c.ok for c in checks} == {
        "other processes": None, "steal time": None, "load average": None, "frequency governor": None,
    }  # fmt: skip
    with pytest.raises(ValueError, match="no aggregate cpu line"):
        CpuTimes.parse("cpu0 1 2 3\n")


def measurement(spec: EncoderSpec, times: tuple[float, ...]) -> Measurement:
    return Measurement(spec, Target("onnxruntime-cpu"), collect(), times, 1, 1, True, 0.1, "now")


def test_estimators_are_compared_by_how_far_two_passes_disagree() -> None:
    settings = StabilitySettings()
    specs = settings.specs()
    quiet = [measurement(s, (1.0, 1.0, 1.0, 1.0, 1.1)) for s in specs]
    # the second pass's median moved 20% (a loaded neighbour), its minimum 1%
    loaded = [measurement(s, (0.99, 1.2, 1.2, 1.2, 1.4)) for s in specs]
    by_name = {a.estimator: a for a in agreement([quiet, loaded])}
    assert set(by_name) == set(ESTIMATORS)
    assert by_name["min"].differences == pytest.approx([0.01 / 0.99] * len(specs))
    assert by_name["median"].within_10 == 0.0 and by_name["min"].within_5 == 1.0
    assert agreement([quiet, loaded])[0].estimator == "min"  # best first
    report = StabilityReport(settings, (), tuple(agreement([quiet, loaded])))
    assert report.verdict == "quiet" and report.to_dict()["estimators"][0]["estimator"] == "min"
    assert interquartile_mean((1.0, 2.0, 3.0, 4.0, 100.0)) == pytest.approx(3.0)


def test_the_probe_pauses_between_passes_and_varies_their_order() -> None:
    settings = StabilitySettings(passes=3, pause_s=7.0)
    orders: list[list[str]] = []
    slept: list[float] = []

    def measure(specs):  # type: ignore[no-untyped-def]
        orders.append([s.label for s in specs])
        return [measurement(s, (1.0,)) for s in specs]

    passes, _ = probe(settings, measure, sleep=slept.append, clock=lambda: 0.0)
    assert len(passes) == 3 and slept == [7.0, 7.0]
    assert len({tuple(o) for o in orders}) == 3 and all(sorted(o) == sorted(orders[0]) for o in orders)


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="--passes must be at least 2"):
        StabilitySettings(passes=1)
    with pytest.raises(ConfigError, match="--samples must be a positive integer"):
        StabilitySettings(samples=0)
    assert replace(StabilitySettings(), seq=64).specs()[0].workload.seq_len == 64


def test_the_command_probes_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["stability", "--passes", "2", "--pause-s", "0", "--samples", "8", "--seq", "16", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == (1 if report["verdict"] == "noisy" else 0)
    assert {e["estimator"] for e in report["estimators"]} == set(ESTIMATORS)
    assert all(e["pairs"] == 4 for e in report["estimators"]) and len(report["pass_times"]) == 2
    assert any(c["name"] == "steal time" for c in report["checks"])
    assert_user_error(
        (main(["stability", "--passes", "1"]), capsys.readouterr().err), "--passes must be at least 2"
    )


def test_a_measurement_gives_every_figure_and_its_latency_is_the_chosen_one() -> None:
    from latbench.measurement import LATENCY_FIGURE

    spec = StabilitySettings().specs()[0]
    m = measurement(spec, (3.0, 1.0, 2.0, 10.0, 2.5))
    assert (
        m.figure_s("min") == 1.0 and m.figure_s("median") == 2.5 and m.figure_s("p10") == pytest.approx(1.4)
    )
    assert m.latency_s == m.figure_s(LATENCY_FIGURE) and m.latency_ms == pytest.approx(m.latency_s * 1e3)
    with pytest.raises(ValueError, match="unknown latency figure 'mode'"):
        m.figure_s("mode")
