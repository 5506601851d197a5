"""Profiling: measure specs on a target and store them, resumably.

``measure_specs`` runs the timing protocol over one group of specs (interleaved, see
``latbench.timing``). ``run_profile`` walks a plan in chunks: it skips what the database
already holds for this target and fingerprint, claims each chunk (so several processes
profiling into one database split the work instead of repeating it), measures it, and
commits the chunk's rows in one transaction. Ctrl-C or ``kill -9`` therefore loses at
most the chunk in flight, and a rerun measures only what is missing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from latbench.backends.base import Backend, Prepared
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
    """Prepare ``specs`` on ``target`` and time them together with the shared protocol."""
    prepared: list[Prepared] = []
    try:
        for spec in specs:
            prepared.append(backend.prepare(spec, target))
        sampled = measure_group(prepared, settings, clock=clock, timers=[p.timer() for p in prepared])
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
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
                kernels=prep.kernels(kernel_runs),
                worker=worker,
            )
            for spec, prep, result in zip(specs, prepared, sampled, strict=True)
        ]
    finally:
        for prep in prepared:
            prep.close()


@dataclass(frozen=True)
class ProfileResult:
    planned: int
    already_measured: int
    measured: int
    unstable: int
    elapsed_s: float


def run_profile(
    specs: Sequence[Spec],
    backend: Backend,
    target: Target,
    fingerprint: Fingerprint,
    db,  # latbench.db.MeasurementDB (not imported: keeps this module free of SQLAlchemy)
    settings: ProtocolSettings | None = None,
    *,
    chunk_size: int = 8,
    progress: Progress | None = None,
    clock: Clock = time.perf_counter,
    lease_s: float = 900.0,
    poll_s: float = 2.0,
    shuffle_seed: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> ProfileResult:
    """Measure every spec of ``specs`` not yet in ``db`` for this target and fingerprint."""
    start = time.perf_counter()
    from latbench.db import default_worker

    worker = default_worker()
    done = db.measured_keys(target.key, fingerprint.key)
    already = sum(1 for s in specs if s.key in done)
    # Measure in a shuffled (seeded, so every worker agrees) order: each chunk mixes
    # operators, blocks and encoders, so a slow spell of the machine shifts a little of
    # everything instead of, say, every encoder against the blocks it is compared with.
    order = list(specs)
    random.Random(shuffle_seed).shuffle(order)
    measured = unstable = 0
    try:
        while True:
            done = db.measured_keys(target.key, fingerprint.key)
            pending = [s for s in order if s.key not in done]
            if not pending:
                break
            progressed = False
            for i in range(0, len(pending), chunk_size):
                chunk = pending[i : i + chunk_size]
                mine = set(
                    db.claim([s.key for s in chunk], target.key, fingerprint.key, worker, lease_s=lease_s)
                )
                chunk = [s for s in chunk if s.key in mine]
                if not chunk:
                    continue
                results = measure_specs(
                    backend, target, fingerprint, chunk, settings, clock=clock, worker=worker
                )
                db.add(results, worker=worker)
                measured += len(results)
                unstable += sum(not m.stable for m in results)
                progressed = True
                if progress is not None:
                    progress(len(results), chunk[-1].label)
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
    )
