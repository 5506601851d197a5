"""Several `latbench search` workers share one study on a real PostgreSQL server: no trial
is lost or duplicated, and a worker killed mid-trial leaves a trial that is failed and
retried, not a study that is stuck."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.postgres


def worker(args: list[str], out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "latbench.cli", "search", *args, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished(process: subprocess.Popen[str], timeout_s: float = 240) -> str:
    output, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, output
    return output


def trials(url: str, study: str) -> list:  # type: ignore[type-arg]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=study, storage=storage).get_trials()
    finally:
        storage.engine.dispose()  # no connection left open for the database to be dropped


@pytest.fixture
def common(
    student_search_files: tuple[Path, Path], teacher_dir: Path, data_files: tuple[Path, Path]
) -> list[str]:
    space, predictor = student_search_files
    return ["--space", str(space), "--predictor", str(predictor), "--teacher", str(teacher_dir),
            "--data", str(data_files[0]), "--dev", str(data_files[1]), "--no-final", "--sampler", "tpe",
            "--startup-trials", "2"]  # fmt: skip


def test_two_workers_share_one_study_without_losing_or_repeating_a_trial(
    postgres_db_url: str, common: list[str], tmp_path: Path
) -> None:
    args = [*common, "--storage", postgres_db_url, "--study", "shared", "--trials", "8", "--proxy-steps", "2"]
    a, b = worker(args, tmp_path / "a"), worker(args, tmp_path / "b")
    finished(a), finished(b)
    all_trials = trials(postgres_db_url, "shared")
    numbers = [t.number for t in all_trials]
    assert numbers == list(range(len(numbers)))  # none lost, none twice
    complete = [t for t in all_trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(all_trials)
    assert 8 <= len(complete) <= 9  # the two may each finish one trial when the study holds 7
    workers = {t.user_attrs["worker"] for t in complete}
    assert len(workers) == 2, "both workers took trials"
    assert len({t._trial_id for t in all_trials}) == len(all_trials)


def test_a_worker_killed_mid_trial_leaves_a_failed_trial_that_is_retried(
    postgres_db_url: str, common: list[str], tmp_path: Path
) -> None:
    args = [*common, "--storage", postgres_db_url, "--study", "killed", "--heartbeat-s", "1",
            "--trials", "3", "--proxy-steps", "150"]  # fmt: skip
    victim = worker(args, tmp_path / "victim")
    try:
        deadline = time.monotonic() + 120
        running = []
        while not running:
            assert time.monotonic() < deadline and victim.poll() is None, "the worker never started a trial"
            time.sleep(0.5)
            try:
                running = [t for t in trials(postgres_db_url, "killed") if t.state.name == "RUNNING"]
            except KeyError:  # the study is not created yet
                continue
        time.sleep(1.5)  # a heartbeat or two
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.communicate()
    stale = running[0]
    time.sleep(5)  # past the grace period of 4 heartbeats
    rescuer = worker(args, tmp_path / "rescuer")
    finished(rescuer)
    after = {t.number: t for t in trials(postgres_db_url, "killed")}
    assert after[stale.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in after.values() if t.system_attrs.get("failed_trial") == stale.number]
    assert len(retries) == 1 and retries[0].params == after[stale.number].params
    assert retries[0].state == optuna.trial.TrialState.COMPLETE
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in after.values()) == 3
