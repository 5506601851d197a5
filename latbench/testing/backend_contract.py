"""The contract every ``Backend`` must pass (see ``latbench.backends.base``).

Reuse it for a new backend by subclassing in a test module and providing the
``backend`` fixture::

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self):
            return MyBackend()

Tests skip (with the backend's reason) where the backend is unavailable.
"""

from __future__ import annotations

import numpy as np
import pytest

from latbench.arch import Arch, LayerShape, Workload
from latbench.backends.base import Availability, Backend, Prepared
from latbench.errors import ConfigError
from latbench.fingerprint import collect
from latbench.models.torch_modules import build
from latbench.profile import measure_specs
from latbench.specs import BlockSpec, EncoderSpec, OpSpec, layer_ops
from latbench.target import Target
from latbench.timing import ProtocolSettings

TINY = ProtocolSettings(
    warmup_min_s=0.0,
    warmup_min_iters=1,
    min_sample_s=0.0005,
    samples=8,
    min_samples=4,
    rounds=2,
    max_extensions=0,
)
W = Workload(1, 16)
LAYER = LayerShape(64, 4, 128)
SPECS = [
    BlockSpec(LAYER, W, "isolated"),
    BlockSpec(LAYER, W, "model"),
    EncoderSpec(Arch.uniform(2, 64, 4, 128, vocab_size=100, max_positions=32), W),
    OpSpec("embedding", W, 64, vocab_size=100),
    *[op for op, _ in layer_ops(LAYER, W)],
]


def _reference(spec, backend: Backend | None = None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """What the backend must compute: the torch module of the graph form it says it loads
    (its fingerprint's ``graph_form``: the deployed form; none, or no backend given:
    ``torch_modules``')."""
    import torch

    from latbench.models.deployed import GRAPH_FORM, build_deployed

    form = backend.fingerprint_extras().get("graph_form") if backend is not None else None
    if form not in (None, GRAPH_FORM):
        raise AssertionError(f"{backend.name} loads graph form {form!r}, which latbench cannot build")
    built = build_deployed(spec) if form == GRAPH_FORM else build(spec)
    with torch.no_grad():
        return built.module(*built.inputs).numpy()


class BackendContract:
    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("provide a `backend` fixture")

    @pytest.fixture
    def target(self, backend: Backend) -> Target:
        availability = backend.availability()
        if not availability.available:
            pytest.skip(f"{backend.name} unavailable: {availability.reason}")
        return backend.normalize(Target(backend.name))

    def test_identity_and_availability(self, backend: Backend) -> None:
        assert backend.name and backend.device
        availability = backend.availability()
        assert isinstance(availability, Availability)
        assert availability.reason, "availability must explain itself, available or not"

    def test_the_default_target_runs_here(self, backend: Backend, target: Target) -> None:
        availability = backend.target_availability(target)
        assert availability.available and availability.reason

    def test_normalize_fills_every_setting_and_is_idempotent(self, backend: Backend, target: Target) -> None:
        assert {k for k, _ in target.settings} == set(backend.SETTINGS)
        assert backend.normalize(target) == target
        assert backend.normalize(Target(backend.name, settings=(("threads", 2),))).get("threads") == 2

    def test_normalize_rejects_unknown_and_ill_typed_settings(self, backend: Backend, target: Target) -> None:
        with pytest.raises(ConfigError, match="unknown setting"):
            backend.normalize(Target(backend.name, settings=(("no_such_setting", 1),)))
        with pytest.raises(ConfigError, match="threads"):
            backend.normalize(Target(backend.name, settings=(("threads", "many"),)))
        with pytest.raises(ConfigError, match="threads"):
            backend.normalize(Target(backend.name, settings=(("threads", 0),)))

    def test_rejects_a_precision_it_does_not_run(self, backend: Backend, target: Target) -> None:
        unsupported = [p for p in ("fp32", "fp16", "bf16", "int8") if p not in backend.PRECISIONS]
        if not unsupported:
            pytest.skip("backend runs every precision")
        spec = BlockSpec(LAYER, Workload(1, 16, unsupported[0]))
        with pytest.raises(ConfigError, match="precision"):
            backend.prepare(spec, target)

    @pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label)
    def test_prepared_runs_the_reference_computation(self, backend: Backend, target: Target, spec) -> None:  # type: ignore[no-untyped-def]
        prepared = backend.prepare(spec, target)
        try:
            assert isinstance(prepared, Prepared)
            assert prepared.build_time_s > 0
            expected = 6 if spec == SPECS[1] else 1  # model-context blocks stack MODEL_CONTEXT_COPIES
            assert prepared.instances_per_call == expected
            assert prepared() is None
            np.testing.assert_allclose(prepared.outputs(), _reference(spec, backend), rtol=1e-3, atol=1e-4)
            extras = dict(prepared.extras())
            assert all(isinstance(k, str) and np.isfinite(float(v)) for k, v in extras.items()), extras
        finally:
            prepared.close()

    def test_measure_specs_gives_complete_measurements(self, backend: Backend, target: Target) -> None:
        fingerprint = collect(backend.fingerprint_extras())
        specs = SPECS[:3]
        measurements = measure_specs(backend, target, fingerprint, specs, TINY, kernel_runs=3)
        assert [m.spec for m in measurements] == specs
        for m in measurements:
            assert m.target == target and m.fingerprint == fingerprint
            assert len(m.times_s) >= TINY.min_samples
            assert all(t > 0 for t in m.times_s)
            assert m.stats.median_s > 0 and m.build_time_s > 0
            for kernel in m.kernels:
                assert kernel.time_s >= 0 and kernel.count >= 1
        # a model-context block is reported per layer, not per stack of copies
        isolated, in_context = measurements[0].median_s, measurements[1].median_s
        assert in_context < 3 * isolated
