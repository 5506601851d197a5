"""The one CUDA-event ``Timer`` every GPU backend times with (torch-cuda, onnxruntime-cuda
and -tensorrt, tensorrt). It needs no CUDA to import: events come from ``make_event``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from latbench.timing import Timer


def cuda_event_timer(
    make_event: Callable[[], Any],
    stream: Any = None,
    flush: Callable[[], Any] | None = None,
    *,
    launch: Callable[[], object] | None = None,
    context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> Timer:
    """A ``Timer`` that measures ``iterations`` calls with CUDA events.

    Without ``flush``: record start, launch the calls, record end, then wait for the end
    event (the only synchronisation) and return ``start.elapsed_time(end)`` in seconds.
    With ``flush``: every call gets its own event pair and ``flush()`` is launched before
    each pair, outside it; the host waits once, after the last end event, and the sample is
    the sum of the pairs' times. Events are recorded on ``stream`` (None: the current
    stream) and reused from one timing to the next (every one has completed by then).

    ``launch`` is called instead of the timed function when that function is synchronous
    but the work can be enqueued without waiting (ORT's IO binding, TensorRT's enqueue);
    ``context`` is entered around the recording (e.g. ``torch.cuda.stream(stream)``, so
    the launches go to the stream the events are recorded on).
    """
    pool: list[tuple[Any, Any]] = []

    def pairs(count: int) -> list[tuple[Any, Any]]:
        while len(pool) < count:
            pool.append((make_event(), make_event()))
        return pool[:count]

    def timer(fn: Callable[[], object], iterations: int) -> float:
        call = launch or fn
        with context() if context is not None else contextlib.nullcontext():
            if flush is None:
                ((start, end),) = pairs(1)
                start.record(stream)
                for _ in range(iterations):
                    call()
                end.record(stream)
                end.synchronize()
                return float(start.elapsed_time(end)) / 1000.0
            timed = pairs(iterations)
            for start, end in timed:
                flush()
                start.record(stream)
                call()
                end.record(stream)
            timed[-1][1].synchronize()  # events on one stream complete in order
            return sum(float(start.elapsed_time(end)) for start, end in timed) / 1000.0

    return timer


def torch_stream_timer(launch: Callable[[], object], stream: Any) -> Timer:
    """``cuda_event_timer`` for work that ``launch`` enqueues on the torch CUDA ``stream``
    (torch's events, recorded on that stream, with it made current around the launches)."""
    import torch

    return cuda_event_timer(
        lambda: torch.cuda.Event(enable_timing=True),
        stream,
        launch=launch,
        context=lambda: torch.cuda.stream(stream),
    )
