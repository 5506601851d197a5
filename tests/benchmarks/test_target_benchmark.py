"""The target benchmark (issue 4's figures for a new target) runs end to end: on the fake
backend, whose known law makes every figure checkable, and on the real torch-cpu target
with a tiny plan, so the script a lent GPU machine runs cannot rot on a machine without one."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from latbench.backends.base import Availability, Backend, Prepared
from latbench.backends.registry import Registry, default_registry
from latbench.errors import TargetUnavailableError
from latbench.specs import Spec
from latbench.target import Target
from latbench.testing.fake_backend import FakeBackend

ROOT = Path(__file__).resolve().parents[2]
TINY_PLAN = """
name = "tiny"
contexts = ["model", "isolated"]
encoders = 8
[space]
hidden = [32, 64, 96]
heads = [2]
ffn_ratios = [2.0]
seq_lens = [8]
layers = [1, 3]
"""


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("target_benchmark", ROOT / "benchmarks" / "target_bench.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "target_benchmark", module)
    spec.loader.exec_module(module)
    return module


class NoGpu(Backend):
    """A GPU target that is never available (as torch-cuda on a machine without a GPU)."""

    name = "gpu-stub"
    device = "gpu"

    def availability(self) -> Availability:
        return Availability(False, "no GPU here (test stub)")

    def prepare(self, spec: Spec, target: Target) -> Prepared:
        raise AssertionError("an unavailable target is never prepared")


class RefusesWhilePreparing(FakeBackend):
    """Available, but the backend refuses the target once it builds a spec."""

    name = "refusing-cpu"

    def prepare(self, spec: Spec, target: Target) -> Prepared:
        raise TargetUnavailableError("the provider failed to load (test stub)")


@pytest.fixture
def fake_registry() -> Registry:
    """The default registry, the fake backend (``fake-cpu``) and the two stubs above."""
    registry = default_registry().copy()
    registry.register("fake-cpu", FakeBackend)
    registry.register("gpu-stub", NoGpu)
    registry.register("refusing-cpu", RefusesWhilePreparing)
    return registry


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_PLAN)
    return path


def run(bench: ModuleType, tmp_path: Path, plan_file: Path, *args: str, registry=None) -> tuple[int, dict]:  # type: ignore[no-untyped-def, type-arg]
    out = tmp_path / "targets.json"
    code = bench.main(
        [
            "--plan",
            str(plan_file),
            "--samples",
            "8",
            "--data",
            str(tmp_path / "data"),
            "--json",
            str(out),
            *args,
        ],
        registry=registry,
    )
    return code, json.loads(out.read_text()) if out.exists() else {}


def test_every_figure_on_the_fake_backend(
    bench: ModuleType,
    tmp_path: Path,
    plan_file: Path,
    fake_registry: Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = run(
        bench, tmp_path, plan_file, "--target", "fake-cpu", "--target", "gpu-stub", registry=fake_registry
    )
    assert code == 0
    printed = capsys.readouterr().out
    fake, gpu = report["targets"]
    assert gpu == {
        "target": "gpu-stub",
        "skipped": "target gpu-stub is not available here: no GPU here (test stub)",
    }
    assert "skipped gpu-stub: target gpu-stub is not available here" in printed
    assert [p["measured"] for p in fake["passes"]] == [fake["passes"][0]["measured"]] * 2
    # The fake backend is exact: no spread, no noise floor.
    assert fake["sample_spread"]["all"]["cov_median_pct"] == 0
    assert fake["noise_floor"]["all"]["median_pct"] == 0
    assert fake["noise_floor"]["encoder"]["n"] == report["encoders"] == 8
    # Its encoders cost 2 µs more than their parts: every sum of blocks under-predicts.
    for gaps in fake["additivity"]:
        assert set(gaps) == {"isolated", "model", "operators"}
        assert gaps["model"]["under_prediction_rate"] == 1.0
    random_split = fake["predictors"]["random"]
    assert random_split["test"] == 8 and random_split["noise_floor"]["within_10pct"] == 1.0
    assert set(random_split["predictors"]) == {"lut-block", "lut-op", "xgboost"}
    # The lookup table calibrates the fixed overhead away on the known law.
    assert random_split["predictors"]["lut-block"]["accuracy"]["within_10pct"] == 1.0
    assert "hidden" in fake["predictors"]
    for line in (
        "(a) sample spread",
        "(b) noise floor",
        "(c) additivity",
        "(d) random split",
        "NNLQP",
        "(e) build",
    ):
        assert line in printed


@pytest.mark.slow
def test_a_real_cpu_target_with_a_tiny_plan_resumes(
    bench: ModuleType, tmp_path: Path, plan_file: Path
) -> None:
    code, report = run(bench, tmp_path, plan_file, "--target", "torch-cpu", "--predictors", "lut-block")
    assert code == 0
    (torch_cpu,) = report["targets"]
    assert torch_cpu["target"] == "torch-cpu:threads=1"
    measured = torch_cpu["passes"][0]["measured"]
    assert measured > 8 and torch_cpu["passes"][1]["measured"] == measured
    assert torch_cpu["noise_floor"]["all"]["n"] == measured
    assert torch_cpu["sample_spread"]["all"]["iqr_median_pct"] >= 0
    assert "accuracy" in torch_cpu["predictors"]["random"]["predictors"]["lut-block"]
    assert torch_cpu["build"]["build_median_s"] > 0
    databases = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert databases == ["torch-cpu_threads=1-pass1.db", "torch-cpu_threads=1-pass2.db"]
    # A rerun measures nothing again: both passes come from the databases.
    code, again = run(bench, tmp_path, plan_file, "--target", "torch-cpu", "--predictors", "lut-block")
    assert code == 0 and again["targets"][0]["noise_floor"] == torch_cpu["noise_floor"]


def test_the_budget_stops_before_a_pass_and_keeps_the_json(
    bench: ModuleType,
    tmp_path: Path,
    plan_file: Path,
    fake_registry: Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = run(
        bench, tmp_path, plan_file, "--target", "fake-cpu", "--budget-s", "1e-9", registry=fake_registry
    )
    assert code == 2 and "no target was measured" in capsys.readouterr().err
    (fake,) = report["targets"]
    assert fake["passes"] == [] and fake["stopped"] == "time budget spent before pass 1"


def test_a_target_refused_while_profiling_is_stopped_and_the_next_one_runs(
    bench: ModuleType,
    tmp_path: Path,
    plan_file: Path,
    fake_registry: Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = run(
        bench, tmp_path, plan_file, "--target", "refusing-cpu", "--target", "fake-cpu", registry=fake_registry
    )
    assert code == 0
    refused, fake = report["targets"]
    assert refused["passes"] == [] and refused["stopped"] == "the provider failed to load (test stub)"
    assert len(fake["passes"]) == 2 and "noise_floor" in fake
    assert "1 of 2 targets measured" in capsys.readouterr().out


def test_the_json_has_no_nan_or_infinity(bench: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    bench.write_json(path, {"tau": float("nan"), "rows": [{"iqr": float("inf")}, (1.5, -float("inf"))]})
    assert (
        path.read_text().replace(" ", "").replace("\n", "") == '{"tau":null,"rows":[{"iqr":null},[1.5,null]]}'
    )


def test_no_target_that_runs_is_an_error(
    bench: ModuleType,
    tmp_path: Path,
    plan_file: Path,
    fake_registry: Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = run(bench, tmp_path, plan_file, "--target", "gpu-stub", registry=fake_registry)
    assert code == 2
    assert "no target was measured" in capsys.readouterr().err
    assert "skipped" in report["targets"][0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--predictors", "lut-block,oracle"), "unknown predictor(s) oracle"),
        (("--budget-s", "-1"), "--budget-s must be >= 0"),
        (("--plan", "nonexistent"), "nonexistent"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    bench: ModuleType,
    tmp_path: Path,
    plan_file: Path,
    capsys: pytest.CaptureFixture[str],
    args,
    message,  # type: ignore[no-untyped-def]
) -> None:
    code, report = run(bench, tmp_path, plan_file, "--target", "torch-cpu", *args)
    err = capsys.readouterr().err
    assert code == 2 and report == {}
    assert message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_device_check_script_runs_every_step_and_keeps_its_logs(tmp_path: Path, plan_file: Path) -> None:
    """scripts/device-check, as a lent GPU machine runs it, here without wheels or a GPU:
    the benchmark's GPU targets are replaced by torch-cpu, the backend tests by a small
    file with one passing and one failing test. The failing step fails the script, and
    only after the later steps ran and wrote their logs (one run checks both)."""
    import os
    import subprocess

    out, wheels = tmp_path / "out", tmp_path / "no-wheels"
    wheels.mkdir()
    tests = tmp_path / "test_device_steps.py"
    tests.write_text("def test_passes():\n    pass\n\n\ndef test_fails():\n    assert False\n")
    env = {
        **os.environ,
        "OUT": str(out),
        "PYTHON": sys.executable,
        "LATBENCH_DEVICE_WHEELS": str(wheels),
        "LATBENCH_DEVICE_TESTS": str(tests),
        "TMPDIR": str(tmp_path),
    }
    args = ["--target", "torch-cpu", "--plan", str(plan_file), "--samples", "8", "--predictors", "lut-block"]
    result = subprocess.run(
        [str(ROOT / "scripts" / "device-check"), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1 and "device-check: exit 1" in result.stdout, result.stdout[-2000:]
    names = ["databases.tar.gz", "devices.log", "pytest.log", "targets.json", "targets.log"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert "torch-cuda" in (out / "devices.log").read_text()
    assert "1 failed, 1 passed" in (out / "pytest.log").read_text()
    assert json.loads((out / "targets.json").read_text())["targets"][0]["target"] == "torch-cpu:threads=1"
    assert "\r" not in (out / "targets.log").read_text()  # no progress lines in a log
