"""A backend that runs nothing: each spec 'takes' a latency computed from its FLOPs.

For testing what sits above backends (profiling, resuming, databases, CLI wiring)
quickly and deterministically. Its ``Prepared.timer`` reports the scripted latency, so
no real time passes and no clock needs patching.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from latbench.backends.base import Availability, Backend, Prepared
from latbench.specs import BlockSpec, EncoderSpec, OpSpec, Spec, block_flops
from latbench.target import Target
from latbench.timing import Timer


def fake_latency_s(spec: Spec) -> float:
    """An additive law, as real hardware roughly is: an operator or block costs 0.1 µs
    plus 0.5 ps per FLOP; an encoder costs 2 µs of fixed overhead plus its embedding plus
    its layers (blocks). Deterministic and shape-dependent."""
    w = spec.workload
    if isinstance(spec, EncoderSpec):
        embedding = OpSpec("embedding", w, spec.arch.hidden, vocab_size=spec.arch.vocab_size)
        layers = sum(fake_latency_s(BlockSpec(layer, w)) for layer in spec.arch.layers)
        return 2e-6 + fake_latency_s(embedding) + layers
    if isinstance(spec, BlockSpec):
        return 1e-7 + block_flops(spec) * 0.5e-12
    assert isinstance(spec, OpSpec)
    return 1e-7 + spec.flops * 0.5e-12


class FakePrepared(Prepared):
    def __init__(self, spec: Spec, on_call: Callable[[Spec], None] | None) -> None:
        self.spec = spec
        self.latency_s = fake_latency_s(spec)
        self.build_time_s = 1e-3
        self.on_call = on_call

    def __call__(self) -> None:
        if self.on_call is not None:
            self.on_call(self.spec)

    def outputs(self) -> np.ndarray:
        return np.zeros(1)

    def timer(self) -> Timer:
        def timer(fn: Callable[[], object], iterations: int) -> float:
            # The fake's own inference does nothing unless someone listens: then it is
            # not run a million times for a 0.1 µs operator.
            if fn is not self or self.on_call is not None:
                for _ in range(iterations):
                    fn()
            return self.latency_s * iterations

        return timer


class FakeBackend(Backend):
    name = "fake-cpu"
    description = "a backend for tests: latency from FLOPs, no real work"

    def __init__(self, on_call: Callable[[Spec], None] | None = None) -> None:
        self.on_call = on_call
        self.prepared: list[Spec] = []

    def availability(self) -> Availability:
        return Availability(True, "always (test double)")

    def prepare(self, spec: Spec, target: Target) -> Prepared:
        self.check_spec(spec)
        self.prepared.append(spec)
        return FakePrepared(spec, self.on_call)
