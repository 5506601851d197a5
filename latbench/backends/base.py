"""The ``Backend`` protocol every target implements, and the ``Prepared`` object it returns.

Contract (checked for every backend by ``latbench.testing.backend_contract``):

* ``name`` is the target name users type (``onnxruntime-cpu``); ``device`` its device kind.
* ``availability()`` never raises: it says whether the backend can run here and, if not,
  why (a missing package, no GPU), in one line. ``target_availability(target)`` says the
  same of one normalized target, whose settings may ask for more (``xla:platform=tpu``);
  ``prepare`` raises ``TargetUnavailableError`` for such a target.
* ``normalize(target)`` validates the target's settings against ``SETTINGS`` and fills in
  every default, so equal targets have equal keys; unknown or ill-typed settings raise
  ``ConfigError`` naming the valid ones.
* ``prepare(spec, target)`` builds everything a run needs (model, session, compiled
  graph, inputs) and returns a ``Prepared`` whose ``build_time_s`` records that cost;
  calling the ``Prepared`` object then runs exactly one inference of
  ``instances_per_call`` spec instances and nothing else. A spec the backend cannot run
  (an unsupported precision) raises ``ConfigError`` before anything is built.
* ``Prepared.outputs()`` returns the output as a numpy array, for correctness checks
  against the torch reference; ``Prepared.kernels(runs)`` returns per-kernel times from
  the backend's own profiler, or ``()`` if it has none; ``extras()`` returns figures the
  backend knows about the program it built (XLA's compiled cost analysis), stored with
  the measurement, or ``{}``; ``close()`` frees it.
* ``fingerprint_extras()`` returns device fields for ``Fingerprint`` (GPU name...).

Missing methods fail at instantiation (ABC), never silently at run time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from latbench.errors import ConfigError, first_line
from latbench.fingerprint import usable_cpus
from latbench.measurement import KernelTime
from latbench.specs import Spec
from latbench.target import SettingValue, Target
from latbench.timing import Timer


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""


def import_for_availability(module: str, hint: str) -> tuple[Any, Availability | None]:
    """``(module, None)``, or ``(None, why not)`` when ``module`` is not installed or its
    import fails: a broken install of one target's library must not break `latbench devices`."""
    import importlib

    try:
        return importlib.import_module(module), None
    except ImportError as exc:
        return None, Availability(False, f"{module} is not installed ({exc}); {hint}")
    except Exception as exc:
        return None, Availability(False, f"{module} cannot be imported ({first_line(exc)}); {hint}")


@dataclass(frozen=True)
class Setting:
    """A target setting: its type, default (``None``: computed) and what it does."""

    type: type
    default: SettingValue | None
    help: str
    choices: tuple[SettingValue, ...] = ()


class Prepared(ABC):
    """One spec ready to run on one target."""

    build_time_s: float = 0.0
    instances_per_call: int = 1

    @abstractmethod
    def __call__(self) -> None:
        """Run one inference (of ``instances_per_call`` spec instances), synchronously."""

    @abstractmethod
    def outputs(self) -> np.ndarray:
        """Run once and return the output, for correctness checks."""

    def timer(self) -> Timer | None:
        """A device-specific timer, or None for the host clock around synchronous calls."""
        return None

    def kernels(self, runs: int = 20) -> tuple[KernelTime, ...]:
        """Per-kernel time per spec instance from the backend's profiler; () if none."""
        return ()

    def extras(self) -> Mapping[str, float]:
        """Backend figures about the built program, names with their unit (``xla_flops``,
        ``xla_bytes_accessed``), stored in ``Measurement.extras``; {} if none."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, most backends free on GC
        """Free what ``prepare`` allocated."""


#: Intra-op threads default to 1: on a shared machine a multi-threaded op waits for its
#: slowest thread, and any other runnable process delays one. Measured on a 2-core VM
#: (onnxruntime-cpu, a 384-wide layer at seq 128): with 2 threads the samples were
#: bimodal (p50 21 ms, p75 22-30 ms: the second thread sometimes had no core), with 1
#: thread p5-p95 stayed within ±6% of the median. Set threads=N to model a multi-threaded
#: deployment; the noise floor the benchmark reports tells what that costs in trust.
THREADS = Setting(int, 1, "intra-op threads [1: the most reproducible on a shared machine]")


class Backend(ABC):
    name: ClassVar[str]
    device: ClassVar[str] = "cpu"
    description: ClassVar[str] = ""
    SETTINGS: ClassVar[Mapping[str, Setting]] = {"threads": THREADS}
    PRECISIONS: ClassVar[tuple[str, ...]] = ("fp32",)

    @abstractmethod
    def availability(self) -> Availability:
        """Whether this backend can run here, and why not. Never raises."""

    @abstractmethod
    def prepare(self, spec: Spec, target: Target) -> Prepared:
        """Build what running ``spec`` on (normalized) ``target`` needs."""

    def target_availability(self, target: Target) -> Availability:
        """Whether the (normalized) ``target`` can run here: ``availability()``, unless one of
        its settings asks for what this machine lacks (a platform, a device). Never raises."""
        return self.availability()

    def fingerprint_extras(self) -> dict[str, Any]:
        return {}

    def normalize(self, target: Target) -> Target:
        if target.name != self.name:
            raise ConfigError(f"target {target.name!r} is not handled by backend {self.name!r}")
        values: dict[str, SettingValue] = {}
        given = dict(target.settings)
        unknown = sorted(set(given) - set(self.SETTINGS))
        if unknown:
            valid = ", ".join(sorted(self.SETTINGS)) or "none"
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)} for target {self.name}; valid: {valid}"
            )
        for key, setting in self.SETTINGS.items():
            value = given.get(key, setting.default)
            if value is None:
                value = self.default_setting(key)
            values[key] = self._check_setting(key, setting, value)
        return Target(self.name, self.device, tuple(values.items()))

    def default_setting(self, key: str) -> SettingValue:
        raise AssertionError(f"{self.name}: setting {key} has no default")

    def _check_setting(self, key: str, setting: Setting, value: SettingValue) -> SettingValue:
        if setting.type is bool and not isinstance(value, bool):
            raise ConfigError(f"setting {key} of {self.name} must be true or false, got {value!r}")
        if setting.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"setting {key} of {self.name} must be an integer, got {value!r}")
        if setting.type is str:
            value = str(value)
        if setting.choices and value not in setting.choices:
            choices = ", ".join(map(str, setting.choices))
            raise ConfigError(f"setting {key} of {self.name} must be one of {choices}, got {value!r}")
        if key == "threads":
            usable = usable_cpus()
            if not 1 <= int(value) <= 4 * usable:
                raise ConfigError(f"threads must be between 1 and {4 * usable} here, got {value}")
        return value

    def check_spec(self, spec: Spec) -> None:
        if spec.workload.precision not in self.PRECISIONS:
            raise ConfigError(
                f"target {self.name} does not run {spec.workload.precision}; "
                f"supported precisions: {', '.join(self.PRECISIONS)}"
            )
