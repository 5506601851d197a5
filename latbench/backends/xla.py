"""``xla``: the reference blocks and encoders written in JAX, compiled ahead of time by XLA.

It runs wherever JAX runs: the CPU (what the tests profile), NVIDIA GPUs with a CUDA
jaxlib (``pip install 'jax[cuda12]'``), TPUs with ``pip install 'jax[tpu]'``.

* Each spec is the torch reference module rewritten in JAX with the same weights
  (``latbench.models.jax_modules``). ``prepare`` puts weights and inputs on the device,
  then lowers and compiles the function for them (``jax.jit(f).lower(...).compile()``):
  all of that is ``build_time_s``, and the compile alone is stored as the measurement
  extra ``xla_compile_s``. A timed call runs the compiled executable and waits for its
  result with ``block_until_ready`` (JAX dispatches asynchronously, on the CPU too), so it
  measures the inference and never a compile or a transfer of its inputs.
* XLA's own cost model of the compiled program (``compiled.cost_analysis()``) is stored
  with every measurement: ``xla_flops``, ``xla_bytes_accessed`` and, where XLA counts them,
  ``xla_transcendentals`` (see :func:`cost_extras`).
* The device is fingerprinted: JAX's platform, device kind (``TPU v5 lite``, the GPU's
  name), device count, and the TPU generation (``v5e``, see :func:`tpu_generation`).

Settings:

``platform``
    ``auto`` (default: JAX's default device, a TPU or GPU when JAX has one, else the CPU),
    ``cpu``, ``gpu`` or ``tpu``. A platform JAX has no device for is unavailable, with
    the reason JAX gives.
``threads``
    XLA's intra-op threads on the CPU. XLA's CPU runtime runs one thread per CPU the
    process may run on, fixed when JAX starts, and has no setting for another count: in
    jaxlib 0.10 ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` no longer changes it, and
    an unknown flag aborts the process. So ``threads`` defaults to the usable CPUs here,
    and another value is refused on the CPU with how to get it: start latbench under
    ``taskset -c`` (e.g. ``taskset -c 0 latbench profile --target xla:threads=1 ...``).
    latbench sets no environment variable and no CPU affinity itself. On GPUs and TPUs
    the setting only names the host's CPUs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from latbench.backends.base import Availability, Backend, Prepared, Setting, import_for_availability
from latbench.errors import ConfigError, TargetUnavailableError, first_line
from latbench.fingerprint import usable_cpus
from latbench.specs import Spec
from latbench.target import SettingValue, Target

PLATFORMS = ("auto", "cpu", "gpu", "tpu")
INSTALL_HINT = (
    "pip install 'latbench[tpu]' (JAX for the CPU; TPUs need 'jax[tpu]', NVIDIA GPUs 'jax[cuda12]')"
)

#: XLA cost-analysis keys stored with a measurement, and the names they are stored under.
COST_KEYS = {
    "flops": "xla_flops",
    "bytes accessed": "xla_bytes_accessed",
    "transcendentals": "xla_transcendentals",
}


class XlaBackend(Backend):
    name = "xla"
    device = "cpu/gpu/tpu"
    description = "JAX, compiled ahead of time by XLA (CPU here; GPUs and TPUs where JAX has them)"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "platform": Setting(str, "auto", "JAX platform [auto: JAX's default device]", PLATFORMS),
        "threads": Setting(
            int,
            None,
            "XLA CPU threads: one per usable CPU [default: the usable CPUs; fewer: run under taskset -c]",
        ),
    }
    PRECISIONS = ("fp32", "bf16")

    def availability(self) -> Availability:
        jax, missing = import_for_availability("jax", INSTALL_HINT)
        if missing:
            return missing
        try:
            devices = jax.devices()
        except Exception as exc:
            return Availability(False, f"jax {jax.__version__} finds no device: {first_line(exc)}")
        return Availability(
            True, f"jax {jax.__version__}, default platform {devices[0].platform}: {_describe(devices)}"
        )

    def target_availability(self, target: Target) -> Availability:
        availability = self.availability()
        if not availability.available:
            return availability
        devices, reason = _find_devices(str(target.get("platform", "auto")))
        if not devices:
            return Availability(False, reason)
        if devices[0].platform == "cpu":
            reason = _cpu_threads_problem(int(target.get("threads", usable_cpus())))  # type: ignore[arg-type]
            if reason:
                return Availability(False, reason)
        return Availability(True, f"{devices[0].platform}: {_describe(devices)}")

    def default_setting(self, key: str) -> SettingValue:
        if key == "threads":
            return usable_cpus()
        return super().default_setting(key)

    def fingerprint_extras(self) -> dict[str, Any]:
        """The device of JAX's default platform (what ``platform=auto`` runs on)."""
        try:
            import jax

            devices = jax.devices()
        except Exception:
            return {}
        return device_fields(devices)

    def prepare(self, spec: Spec, target: Target) -> Prepared:
        self.check_spec(spec)
        import jax

        from latbench.models.jax_modules import JAX_DTYPES, cast, from_torch, input_array
        from latbench.models.torch_modules import build

        device = _platform_devices(str(target.get("platform")))[0]
        if device.platform == "cpu":
            problem = _cpu_threads_problem(int(target.get("threads")))  # type: ignore[arg-type]
            if problem:
                raise ConfigError(f"{target} cannot run here: {problem}")
        start = time.perf_counter()
        built = build(spec)
        model = from_torch(built.module)
        dtype = JAX_DTYPES[spec.workload.precision]
        params = jax.device_put(cast(model.params, dtype), device)
        inputs = tuple(jax.device_put(input_array(x, dtype), device) for x in built.inputs)
        jax.block_until_ready((params, inputs))  # transfers finish here, not in the first timed call
        compile_start = time.perf_counter()
        compiled = jax.jit(model.apply).lower(params, *inputs).compile()
        compile_s = time.perf_counter() - compile_start
        build_time_s = time.perf_counter() - start
        try:
            cost = compiled.cost_analysis()
        except Exception:  # not every backend of every JAX version has a cost model
            cost = None
        extras = {**cost_extras(cost), "xla_compile_s": compile_s}
        return XlaPrepared(compiled, params, inputs, build_time_s, built.instances_per_call, extras)


class XlaPrepared(Prepared):
    def __init__(  # type: ignore[no-untyped-def]
        self, compiled, params, inputs, build_time_s: float, instances_per_call: int, extras
    ) -> None:
        self.compiled = compiled
        self.params = params
        self.inputs = inputs
        self.build_time_s = build_time_s
        self.instances_per_call = instances_per_call
        self._extras = dict(extras)

    def __call__(self) -> None:
        self.compiled(self.params, *self.inputs).block_until_ready()

    def outputs(self) -> np.ndarray:
        out = self.compiled(self.params, *self.inputs)
        return np.asarray(out).astype(np.float32)

    def extras(self) -> Mapping[str, float]:
        return dict(self._extras)

    def close(self) -> None:
        self.compiled = None
        self.params = None
        self.inputs = ()


def cost_extras(cost: Any) -> dict[str, float]:
    """XLA's cost analysis as measurement extras (``xla_flops``, ``xla_bytes_accessed``...).

    ``Compiled.cost_analysis()`` returns a dict in recent JAX, a list holding one dict per
    program in older versions (the first is the one run), and None where the backend has
    no cost model; negative or non-finite figures (XLA's "unknown") are left out.
    """
    if isinstance(cost, Sequence) and not isinstance(cost, str | bytes):
        cost = cost[0] if cost else None
    if not isinstance(cost, Mapping):
        return {}
    extras: dict[str, float] = {}
    for key, name in COST_KEYS.items():
        value = cost.get(key)
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if np.isfinite(number) and number >= 0:
            extras[name] = number
    return extras


_TPU_KIND = re.compile(r"^TPU\s*v?(\d+)([a-z]?)(?:\s+(lite))?\b", re.IGNORECASE)


def tpu_generation(device_kind: str) -> str:
    """The TPU generation of a JAX ``device_kind``: ``TPU v4`` → ``v4``, ``TPU v4 lite`` →
    ``v4i``, ``TPU v5 lite`` → ``v5e``, ``TPU v5`` (how JAX names a v5p) → ``v5p``, ``TPU
    v6 lite`` → ``v6e``, ``TPU7x`` → ``v7x``; ``""`` for a device kind that is no TPU."""
    match = _TPU_KIND.match(device_kind.strip())
    if not match:
        return ""
    number, suffix, lite = int(match.group(1)), match.group(2).lower(), match.group(3)
    if lite:
        suffix = "i" if number == 4 else "e"
    elif not suffix and number == 5:
        suffix = "p"  # v5p reports itself as "TPU v5"; the v5e as "TPU v5 lite"
    return f"v{number}{suffix}"


def device_fields(devices: Sequence[Any]) -> dict[str, Any]:
    """``Fingerprint`` fields for the JAX devices of one platform."""
    first = devices[0]
    fields: dict[str, Any] = {
        "device_platform": str(first.platform),
        "device_kind": str(first.device_kind),
        "device_count": len(devices),
    }
    if first.platform == "gpu":
        fields["gpu"] = str(first.device_kind)
    elif first.platform == "tpu":
        fields["tpu"] = tpu_generation(str(first.device_kind)) or str(first.device_kind)
    return fields


def _find_devices(platform: str) -> tuple[list[Any], str]:
    """JAX's devices of ``platform`` (``auto``: its default), or none and why."""
    import jax

    try:
        devices = jax.devices() if platform == "auto" else jax.devices(platform)
    except RuntimeError as exc:
        return [], f"JAX finds no {platform} device ({first_line(exc)[:200]})"
    return list(devices), ""


def _platform_devices(platform: str) -> list[Any]:
    """JAX's devices of ``platform``, or a one-line error saying why there are none."""
    devices, reason = _find_devices(platform)
    if not devices:
        raise TargetUnavailableError(f"target xla:platform={platform} is not available here: {reason}")
    return devices


def _cpu_threads_problem(threads: int) -> str:
    """Why XLA's CPU runtime cannot run ``threads`` intra-op threads here ("" if it can)."""
    usable = usable_cpus()
    if threads == usable:
        return ""
    cpus = "0" if threads == 1 else f"0-{threads - 1}"
    how = f"start latbench under `taskset -c {cpus}`, or " if threads < usable else ""
    return (
        f"XLA's CPU runtime uses one thread per CPU this process may run on ({usable} here) and "
        f"has no setting for {threads}; {how}use threads={usable}"
    )


def _describe(devices: Sequence[Any]) -> str:
    kinds = sorted({str(d.device_kind) for d in devices})
    return f"{len(devices)} × {', '.join(kinds)}"
