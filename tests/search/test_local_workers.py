"""`latbench search --workers N` on one machine: extra worker processes share the SQLite
study, the cores are shared out, and measurements never overlap a worker's training."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import pytest

from latbench.cli import build_parser, main
from latbench.db import default_worker
from latbench.search.workers import LocalWorkers, MachineLock, threads_per_worker, worker_command
from latbench.testing.cli import assert_user_error


def test_threads_are_shared_out_among_workers() -> None:
    assert threads_per_worker(2, cores=16) == 8
    assert threads_per_worker(3, cores=16) == 5
    assert threads_per_worker(4, cores=2) == 1  # never zero
    assert threads_per_worker(1, cores=2) == 2


def test_an_extra_worker_runs_this_search_as_a_worker_of_the_same_study() -> None:
    command = worker_command(["search", "--workers", "3", "--trials", "9"], 2, "sqlite:///s.db", "mine")
    assert command[:3] == [sys.executable, "-m", "latbench.cli"]
    args = build_parser().parse_args(command[3:])
    assert (args.workers, args.worker, args.storage, args.study) == (1, 2, "sqlite:///s.db", "mine")
    assert args.trials == 9


def test_a_waiting_measurement_goes_before_later_training_and_runs_alone(tmp_path: Path) -> None:
    lock = MachineLock(tmp_path)
    events: list[str] = []
    release_first = threading.Event()

    def first_training() -> None:
        with lock.training():
            events.append("train-1 start")
            release_first.wait(10)
            events.append("train-1 end")

    def measurement() -> None:
        with lock.measuring():
            events.append("measure start")
            time.sleep(0.3)
            events.append("measure end")

    def second_training() -> None:
        with lock.training():
            events.append("train-2 start")

    threads = [threading.Thread(target=f) for f in (first_training, measurement, second_training)]
    threads[0].start()
    wait_for(lambda: events == ["train-1 start"])
    threads[1].start()  # waits for training 1, holding the gate
    wait_for(lambda: gate_held(lock))
    threads[2].start()  # asks after the measurement: waits behind it
    time.sleep(0.2)
    assert events == ["train-1 start"]
    release_first.set()
    for t in threads:
        t.join(10)
    assert events == ["train-1 start", "train-1 end", "measure start", "measure end", "train-2 start"]


def wait_for(condition, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def gate_held(lock: MachineLock) -> bool:
    import fcntl

    with open(lock.gate, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False


def test_every_search_on_the_machine_shares_one_lock(tmp_path: Path) -> None:
    assert MachineLock.for_this_machine().data == MachineLock.for_this_machine().data
    assert str(MachineLock.for_this_machine().folder).startswith(tempfile.gettempdir())


def test_a_measurement_leaves_the_training_threads_as_they_were() -> None:
    import torch

    from latbench.arch import Arch, Workload
    from latbench.search.objectives import MeasuredLatency

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        measured = MeasuredLatency("torch-cpu:threads=1", Workload(1, 8), samples=3)
        (estimate,) = measured.estimate([Arch(hidden=16, heads=(2,), ffn=(32,), vocab_size=32)])
        assert estimate.measured and estimate.ms > 0
        assert torch.get_num_threads() == 2  # the target ran on 1 thread, training keeps 2
    finally:
        torch.set_num_threads(before)


def test_trainings_share_the_lock(tmp_path: Path) -> None:
    lock = MachineLock(tmp_path)
    inside = threading.Barrier(2, timeout=5)

    def train() -> None:
        with lock.training():
            inside.wait()  # both are inside at once, or this times out

    threads = [threading.Thread(target=train) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not inside.broken


def test_workers_get_their_share_of_threads_log_apart_and_failures_are_reported(tmp_path: Path) -> None:
    ok = [sys.executable, "-c", "import os; print('threads', os.environ['OMP_NUM_THREADS'])"]
    bad = [sys.executable, "-c", "raise SystemExit(3)"]
    with LocalWorkers([ok, bad], tmp_path, threads=4) as workers:
        failures = workers.wait(poll_s=0.05)
    assert (tmp_path / "worker-1.log").read_text().strip() == "threads 4"
    assert failures == [f"worker 2 exited with code 3; its log: {tmp_path / 'worker-2.log'}"]
    assert workers.failures() == []  # reported once


@pytest.mark.parametrize("parent_sigint", ["handled", "ignored"])
def test_leaving_early_interrupts_the_workers(tmp_path: Path, parent_sigint: str) -> None:
    """Also when this process ignores SIGINT, as a background job of a shell script or a
    nohup'ed run does: the workers would inherit that and sleep on through the interrupt."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if parent_sigint == "ignored" else None
    try:
        _leave_early(tmp_path)
        if previous is not None:
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # given back as it was
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _leave_early(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"]
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), LocalWorkers([sleeper], tmp_path, threads=1) as workers:
        deadline = time.monotonic() + 30
        while "up" not in (tmp_path / "worker-1.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise KeyboardInterrupt
    assert workers.running() == 0
    assert time.monotonic() - start < 30
    assert "KeyboardInterrupt" in (tmp_path / "worker-1.log").read_text()


def test_two_local_workers_share_the_sqlite_study(
    student_search_files: tuple[Path, Path],
    teacher_dir: Path,
    data_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    space, predictor = student_search_files
    out = tmp_path / "out"
    code = main(["search", "--space", str(space), "--predictor", str(predictor),
                 "--teacher", str(teacher_dir), "--data", str(data_files[0]), "--dev", str(data_files[1]),
                 "--no-final", "--sampler", "tpe", "--startup-trials", "2", "--trials", "10",
                 "--proxy-steps", "60", "--workers", "2", "--out", str(out)])  # fmt: skip
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "2 workers of" in stdout
    log = (out / "worker-1.log").read_text()
    assert "worker 1: searching" in log and "worker 1: the study holds" in log, log
    document = json.loads((out / "search.json").read_text())
    trials = study_trials(out / "study.db")
    assert [t.number for t in trials] == list(range(len(trials)))  # none lost, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert 10 <= len(trials) <= 11 and document["evaluated_trials"] == len(trials)  # the last ones included
    # Which process took how many depends on how fast worker 1 starts (it loads torch and the
    # teacher while this one already runs trials); both taking trials is checked below.
    takers = {t.user_attrs["worker"] for t in trials}
    assert default_worker() in takers and len(takers) <= 2


def test_workers_started_together_on_one_sqlite_study_both_take_trials(
    student_search_files: tuple[Path, Path],
    teacher_dir: Path,
    data_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    space, predictor = student_search_files
    out = tmp_path / "out"
    out.mkdir()
    args = ["search", "--space", str(space), "--predictor", str(predictor), "--teacher", str(teacher_dir),
            "--data", str(data_files[0]), "--dev", str(data_files[1]), "--no-final", "--sampler", "tpe",
            "--startup-trials", "2", "--trials", "8", "--proxy-steps", "2", "--out", str(out)]  # fmt: skip
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "latbench.cli", *args, "--worker", str(k)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for k in (1, 2)
    ]
    for process in processes:
        output, _ = process.communicate(timeout=240)
        assert process.returncode == 0, output
    trials = study_trials(out / "study.db")
    assert [t.number for t in trials] == list(range(len(trials)))  # none lost, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials) and 8 <= len(trials) <= 9
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "both workers took trials"
    assert not (out / "search.json").exists()  # extra workers leave the results to the first


def study_trials(db: Path) -> list:  # type: ignore[type-arg]
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    try:
        return optuna.load_study(study_name="search", storage=storage).get_trials()
    finally:
        storage.engine.dispose()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--workers", "0"], "workers must be a positive integer"),
        (["--worker", "-1"], "worker must be a positive integer"),
        (["--worker", "1", "--workers", "2"], "cannot start --workers of its own"),
    ],
)
def test_bad_worker_options_are_one_line_errors(
    student_search_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    space, predictor = student_search_files
    code = main(["search", "--surrogate", "--space", str(space), "--predictor", str(predictor),
                 "--out", str(tmp_path / "o"), *extra])  # fmt: skip
    assert_user_error((code, capsys.readouterr().err), needle)
    assert not (tmp_path / "o").exists()


def test_an_extra_worker_evaluates_trials_and_leaves_the_results_to_the_first(
    student_search_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space, predictor = student_search_files
    out = tmp_path / "o"
    common = ["search", "--surrogate", "--space", str(space), "--predictor", str(predictor)]
    common += ["--out", str(out)]
    assert main([*common, "--worker", "1", "--trials", "4"]) == 0
    stdout = capsys.readouterr().out
    assert "worker 1: the study holds 4 evaluated students" in stdout
    assert not (out / "search.json").exists() and (out / "study.db").is_file()
    assert main([*common, "--trials", "4"]) == 0  # the first worker: nothing left but the results
    assert json.loads((out / "search.json").read_text())["evaluated_trials"] == 4
