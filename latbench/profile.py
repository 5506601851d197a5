"""Profiling: measure specs on a target and store them, resumably.

``measure_specs`` runs the timing protocol over one group of specs (interleaved, see
``latbench.timing``). ``run_profile`` walks a plan in chunks: it skips what the database
already holds for this target and fingerprint, claims each chunk (so several processes
profiling into one database split the work instead of repeating it), measures it, and
commits the chunk's rows in one transaction. Ctrl-C or ``kill -9`` therefore loses at
most the chunk in flight, and a rerun measures only what is missing. A spec that cannot
be built or run (out of memory, a runtime error) is reported and skipped, never allowed
to stop the rest of the plan.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from latbench.backends.base import Backend, Prepared
from latbench.errors import LatbenchError, MeasurementError
from latbench.fingerprint import Fingerprint
from latbench.measurement import Measurement
from latbench.specs import Spec
from latbench.target import Target
from latbench.timing import Clock, ProtocolSettings, measure_group

#: Called after each chunk with (specs done in this chunk, label of the last one).
Progress = Callable[[int, str], None]


def measure_specs(
    backend: Backend,
    target: Target,
    fingerprint: Fingerprint,
    specs: Sequence[Spec],
    settings: ProtocolSettings | None = None,
    *,
    clock: Clock = time.perf_counter,
    kernel_runs: int = 20,
    worker: str = "",
) -> list[Measurement]:
    """Prepare ``specs`` on ``target`` and time them together with the shared protocol.

    Raises ``MeasurementError`` (one line, naming the spec) when the backend fails.
    """
    settings = settings or ProtocolSettings()
    prepared: list[Prepared] = []
    try:
        for spec in specs:
            with _as_measurement_error(f"{spec.label} could not be built on {target.name}"):
                prepared.append(backend.prepare(spec, target))
        labels = ", ".join(s.label for s in specs)
        with _as_measurement_error(f"running {labels} on {target.name} failed"):
            timers = [p.timer() for p in prepared]
            sampled = measure_group(prepared, settings, clock=clock, timers=timers)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            return [
                Measurement(
                    spec=spec,
                    target=target,
                    fingerprint=fingerprint,
                    times_s=tuple(t / prep.instances_per_call for t in result.times_s),
                    iterations_per_sample=result.iterations_per_sample,
                    rounds=result.rounds,
                    stable=result.stable,
                    build_time_s=prep.build_time_s,
                    measured_at=now,
                    kernels=prep.kernels(_kernel_runs(result.stats.median_s, settings, kernel_runs)),
                    worker=worker,
                    extras=prep.extras(),
                )
                for spec, prep, result in zip(specs, prepared, sampled, strict=True)
            ]
    finally:
        for prep in prepared:
            prep.close()


def _kernel_runs(call_s: float, settings: ProtocolSettings, most: int) -> int:
    """Profiler runs are extra work: at most a quarter of a spec's time budget, at least 3."""
    affordable = int(settings.max_spec_s / 4 / call_s) if call_s > 0 else most
    return max(3, min(most, affordable))


@contextmanager
def _as_measurement_error(what: str) -> Iterator[None]:
    """Backend failures (out of memory, a runtime error) become one-line MeasurementErrors."""
    try:
        yield
    except LatbenchError:
        raise
    except (Exception, MemoryError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise MeasurementError(f"{what}: {type(exc).__name__}: {first}") from exc


@dataclass(frozen=True)
class ProfileResult:
    planned: int
    already_measured: int
    measured: int
    unstable: int
    elapsed_s: float
    failed: tuple[tuple[str, str], ...] = ()  # (spec label, reason) of specs that could not run


#: Specs measured together, interleaved in rounds (``run_profile``'s chunk).
DEFAULT_CHUNK = 8


def run_profile(
    specs: Sequence[Spec],
    backend: Backend,
    target: Target,
    fingerprint: Fingerprint,
    db,  # latbench.db.MeasurementDB (not imported: keeps this module free of SQLAlchemy)
    settings: ProtocolSettings | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
    clock: Clock = time.perf_counter,
    lease_s: float = 900.0,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    shuffle_seed: int = 0,
) -> ProfileResult:
    """Measure every spec of ``specs`` not yet in ``db`` for this target and fingerprint."""
    from latbench.db import default_worker

    start = time.perf_counter()
    worker = default_worker()
    done = db.measured_keys(target.key, fingerprint.key)
    already = sum(1 for s in specs if s.key in done)
    # Measure in a shuffled (seeded, so every worker agrees) order: each chunk mixes
    # operators, blocks and encoders, so a slow spell of the machine shifts a little of
    # everything instead of, say, every encoder against the blocks it is compared with.
    order = list(specs)
    random.Random(shuffle_seed).shuffle(order)
    failed: dict[str, tuple[str, str]] = {}  # skipped for the rest of this run

    def measure(chunk: list[Spec]) -> list[Measurement]:
        # A failing spec must not take its chunk down with it (nor the plan: the order is
        # seeded, so a rerun would meet it again): retry the chunk's specs one by one.
        try:
            return measure_specs(backend, target, fingerprint, chunk, settings, clock=clock, worker=worker)
        except MeasurementError as exc:
            if len(chunk) == 1:
                failed[chunk[0].key] = (chunk[0].label, str(exc))
                return []
        return [m for spec in chunk for m in measure([spec])]

    measured = unstable = 0
    try:
        while True:
            done = db.measured_keys(target.key, fingerprint.key)
            pending = [s for s in order if s.key not in done and s.key not in failed]
            if not pending:
                break
            progressed = False
            for i in range(0, len(pending), chunk_size):
                chunk = pending[i : i + chunk_size]
                keys = [s.key for s in chunk]
                mine = set(db.claim(keys, target.key, fingerprint.key, worker, lease_s=lease_s))
                chunk = [s for s in chunk if s.key in mine]
                if not chunk:
                    continue

                def renew(keys: list[str] = [s.key for s in chunk]) -> None:  # noqa: B006
                    db.claim(keys, target.key, fingerprint.key, worker, lease_s=lease_s)

                with _Heartbeat(renew, every_s=lease_s / 4):
                    results = measure(chunk)
                db.add(results, worker=worker)
                measured += len(results)
                unstable += sum(not m.stable for m in results)
                progressed = True
                if progress is not None:
                    progress(len(chunk), chunk[-1].label)
            if not progressed:
                # Everything left is claimed by other live workers: wait for them. A claim
                # of a worker that died is taken over once its lease expires (at once
                # when it ran on this host), so nothing is lost.
                sleep(poll_s)
    finally:
        db.release(worker)
    return ProfileResult(
        planned=len(specs),
        already_measured=already,
        measured=measured,
        unstable=unstable,
        elapsed_s=time.perf_counter() - start,
        failed=tuple(failed.values()),
    )


class _Heartbeat:
    """Renews a chunk's claims every ``every_s`` seconds while it is measured, so a slow
    chunk (a long standard-plan encoder) is not mistaken for the work of a dead worker."""

    def __init__(self, renew: Callable[[], None], every_s: float) -> None:
        self._renew = renew
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latbench-claims", daemon=True)
        self.renewals = 0

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self._renew()
                self.renewals += 1
            except Exception:
                pass  # a missed renewal risks only repeated work, never lost or duplicated rows

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
