"""Several search workers on one machine (``latbench search --workers N``).

The first process creates the study (so its startup design is enqueued once), starts
``N - 1`` more ``latbench search --worker K`` processes on the same storage and study,
evaluates trials itself with the live display, waits for the others, and then distils and
measures the Pareto set alone. Each extra worker's output goes to ``OUT/worker-K.log``.

Two things keep workers from spoiling each other's numbers:

* **Threads**: the machine's cores are shared out: each worker's torch gets
  ``cores // N`` threads (``OMP_NUM_THREADS`` for the extra ones).
* **Quiet measurements** (:class:`MachineLock`): a latency measured while another worker
  trains on the same cores measures the contention, not the student. Training holds a
  shared lock, measuring an exclusive one, and a gate lock makes a waiting measurement go
  first (new trainings wait behind it), so a measurement starts when the trainings running
  then have finished and runs alone. Every search on the machine (any ``--out``, any
  ``--worker``) takes the same lock, in the temporary folder.

The extra workers run in their own sessions, so a Ctrl-C reaches only the first process,
which passes one interrupt on to each of them: they mark their running trials failed and
exit, and running the command again resumes the study.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

try:  # POSIX; elsewhere the lock does nothing (and says so in its docstring)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".latbench-machine.lock"
INTERRUPT_GRACE_S = 150.0  # an interrupted worker may wait for SQLite (study.SQLITE_TIMEOUT_S)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Torch threads for each of ``workers`` processes sharing ``cores`` (at least 1)."""
    return max(1, (usable_cores() if cores is None else cores) // max(1, workers))


class MachineLock:
    """A readers-writer lock between processes of one machine, on two files in ``folder``:
    :meth:`training` is shared, :meth:`measuring` exclusive, and a waiting measurement
    is served before trainings that ask after it. Without ``fcntl`` (not POSIX) both are
    no-ops."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.data = self.folder / LOCK_FILE
        self.gate = self.folder / (LOCK_FILE + ".gate")

    @classmethod
    def for_this_machine(cls) -> MachineLock:
        """The lock every search of this user on this machine shares."""
        uid = os.getuid() if hasattr(os, "getuid") else 0
        return cls(Path(tempfile.gettempdir()) / f"latbench-{uid}")

    @contextlib.contextmanager
    def _locked(self, path: Path, mode: int) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as fh:
            fcntl.flock(fh.fileno(), mode)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        shared = 0 if fcntl is None else fcntl.LOCK_SH
        exclusive = 0 if fcntl is None else fcntl.LOCK_EX
        with contextlib.ExitStack() as stack:
            with self._locked(self.gate, exclusive):  # wait behind a measurement that is waiting
                stack.enter_context(self._locked(self.data, shared))
            yield

    @contextlib.contextmanager
    def measuring(self) -> Iterator[None]:
        exclusive = 0 if fcntl is None else fcntl.LOCK_EX
        with self._locked(self.gate, exclusive), self._locked(self.data, exclusive):
            yield


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]


class LocalWorkers:
    """One extra worker process per command (worker k runs ``commands[k - 1]``), each
    logging to ``out/worker-k.log``, with ``threads`` torch threads each. Use as a context
    manager: leaving it early (an error, Ctrl-C) interrupts the workers, which mark their
    running trials failed and exit; running the search again resumes the study."""

    def __init__(self, commands: Sequence[Sequence[str]], out: str | Path, threads: int) -> None:
        self.commands = [list(c) for c in commands]
        self.out = Path(out)
        self.threads = threads
        self.workers: list[_Worker] = []
        self.reported: set[int] = set()

    def __enter__(self) -> LocalWorkers:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        with _interruptible_children():
            self._start(env)
        return self

    def _start(self, env: dict[str, str]) -> None:
        try:
            for k, command in enumerate(self.commands, start=1):
                log_path = self.out / f"worker-{k}.log"
                log = open(log_path, "ab")  # noqa: SIM115 - closed in __exit__
                try:
                    # its own session: the terminal's Ctrl-C reaches only this process
                    process = subprocess.Popen(
                        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                    )
                except BaseException:
                    log.close()
                    raise
                self.workers.append(_Worker(k, process, log_path, log))
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise

    def failures(self) -> list[str]:
        """One line per worker that exited with an error since the last call."""
        lines = []
        for w in self.workers:
            code = w.process.poll()
            if code not in (None, 0) and w.index not in self.reported:
                self.reported.add(w.index)
                lines.append(f"worker {w.index} exited with code {code}; its log: {w.log_path}")
        return lines

    def running(self) -> int:
        return sum(w.process.poll() is None for w in self.workers)

    def wait(self, poll_s: float = 0.5) -> list[str]:
        """Wait for every worker to end (each stops once the study holds its trials);
        return the failures not reported yet."""
        while self.running():
            time.sleep(poll_s)
        return self.failures()

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is not None:
                self._interrupt()
        finally:
            for w in self.workers:
                w.log.close()

    def _interrupt(self, grace_s: float = INTERRUPT_GRACE_S) -> None:
        for w in self.workers:
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGINT)  # the worker fails its trial and exits
        deadline = time.monotonic() + grace_s
        for w in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.poll() is None:
                w.process.kill()
                w.process.wait()


@contextlib.contextmanager
def _interruptible_children() -> Iterator[None]:
    """Start children that take SIGINT (the workers' "fail your trial and exit") even when
    this process ignores it, as a background job of a shell script or a nohup'ed run does: an
    ignored signal stays ignored across exec, and Python then installs no KeyboardInterrupt
    handler, so a worker would finish its trial first. A handled signal is reset to the
    default at exec, so while the children start, SIGINT is handled here (only the main
    thread may change it; elsewhere the children inherit what there is)."""
    try:
        ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        if ignored:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread
        ignored = False
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_command(argv: Sequence[str], index: int, storage: str, study: str) -> list[str]:
    """The command of extra worker ``index``: this search's own command line, as a worker of
    the same study (later options win over earlier ones in argparse)."""
    return [
        sys.executable,
        "-m",
        "latbench.cli",
        *argv,
        "--workers",
        "1",
        "--worker",
        str(index),
        "--storage",
        storage,
        "--study",
        study,
    ]
