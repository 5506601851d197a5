"""The backend registry: target names to backend factories.

Built-in backends are registered by import path and imported only when asked for, so
importing latbench loads neither torch, onnxruntime nor jax. ``Registry.copy()`` gives tests
their own registry to add fakes to without touching the default one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

from latbench.backends.base import Availability, Backend
from latbench.errors import TargetUnavailableError
from latbench.target import Target

BUILTIN: dict[str, str] = {
    "torch-cpu": "latbench.backends.torch_cpu:TorchCPUBackend",
    "onnxruntime-cpu": "latbench.backends.onnxruntime_cpu:OnnxRuntimeCPUBackend",
    "xla": "latbench.backends.xla:XlaBackend",
    "onnxruntime-cuda": "latbench.backends.onnxruntime_gpu:OnnxRuntimeCudaBackend",
    "onnxruntime-tensorrt": "latbench.backends.onnxruntime_gpu:OnnxRuntimeTensorRTBackend",
    "tensorrt": "latbench.backends.tensorrt:TensorRTBackend",
    "torch-cuda": "latbench.backends.torch_cuda:TorchCudaBackend",
}


class Registry:
    def __init__(self, entries: dict[str, str | Callable[[], Backend]] | None = None) -> None:
        self._entries: dict[str, str | Callable[[], Backend]] = dict(BUILTIN if entries is None else entries)

    def copy(self) -> Registry:
        return Registry(dict(self._entries))

    def register(self, name: str, factory: str | Callable[[], Backend]) -> None:
        self._entries[name] = factory

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def create(self, name: str) -> Backend:
        """A new backend instance (import errors become an unavailable stub's reason)."""
        if name not in self._entries:
            raise TargetUnavailableError(
                f"unknown target {name!r}; known targets: {', '.join(self.names())} (see `latbench devices`)"
            )
        factory = self._entries[name]
        if isinstance(factory, str):
            module_name, _, attr = factory.partition(":")
            try:
                factory = getattr(importlib.import_module(module_name), attr)
            except ImportError as exc:
                return _Missing(name, f"cannot import its backend ({exc})")
        return factory()

    def get_available(self, name: str) -> Backend:
        """The backend for ``name``, or a one-line error saying why it cannot run here."""
        backend = self.create(name)
        availability = backend.availability()
        if not availability.available:
            raise TargetUnavailableError(f"target {name} is not available here: {availability.reason}")
        return backend

    def resolve(self, target: Target) -> tuple[Backend, Target]:
        """The backend and normalized ``target``, or a one-line error saying why it cannot run
        here: its backend, or one of its settings (``xla:platform=tpu`` without a TPU)."""
        backend = self.get_available(target.name)
        normalized = backend.normalize(target)
        availability = backend.target_availability(normalized)
        if not availability.available:
            raise TargetUnavailableError(f"target {normalized} is not available here: {availability.reason}")
        return backend, normalized

    def __iter__(self) -> Iterator[Backend]:
        return (self.create(name) for name in self.names())


class _Missing(Backend):
    def __init__(self, name: str, reason: str) -> None:
        self.name = name  # type: ignore[misc]
        self._reason = reason

    def availability(self) -> Availability:
        return Availability(False, self._reason)

    def prepare(self, spec, target):  # type: ignore[no-untyped-def]
        raise TargetUnavailableError(f"target {self.name} is not available here: {self._reason}")


_default: Registry | None = None


def default_registry() -> Registry:
    global _default
    if _default is None:
        _default = Registry()
    return _default
