"""``torch-cpu``: PyTorch eager mode on the CPU, intra-op threads explicit, inter-op 1."""

from __future__ import annotations

import contextlib
import time
from typing import ClassVar

import numpy as np

from latbench.backends.base import THREADS, Availability, Backend, Prepared, Setting
from latbench.specs import Spec
from latbench.target import Target


class TorchCPUBackend(Backend):
    name = "torch-cpu"
    description = "PyTorch eager mode on the CPU"
    SETTINGS: ClassVar[dict[str, Setting]] = {"threads": THREADS}
    PRECISIONS = ("fp32", "bf16")

    def availability(self) -> Availability:
        try:
            import torch
        except ImportError as exc:
            return Availability(False, f"torch is not installed ({exc})")
        return Availability(True, f"torch {torch.__version__}, {torch.get_num_threads()} threads by default")

    def prepare(self, spec: Spec, target: Target) -> Prepared:
        import torch

        from latbench.models.torch_modules import TORCH_DTYPES, build

        self.check_spec(spec)
        torch.set_num_threads(int(target.get("threads")))  # type: ignore[arg-type]
        # Inter-op threads can only be set before the first inter-op parallel work; when that
        # has happened already, what was set first (1, by an earlier prepare) stays.
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
        start = time.perf_counter()
        built = build(spec)
        module = built.module.requires_grad_(False)  # no autograd bookkeeping, no context needed
        inputs = built.inputs
        dtype = TORCH_DTYPES[spec.workload.precision]
        if dtype != torch.float32:
            module = module.to(dtype)
            inputs = tuple(x.to(dtype) if x.is_floating_point() else x for x in inputs)
        return TorchPrepared(module, inputs, time.perf_counter() - start, built.instances_per_call)


class TorchPrepared(Prepared):
    def __init__(self, module, inputs, build_time_s: float, instances_per_call: int) -> None:  # type: ignore[no-untyped-def]
        self.module = module
        self.inputs = inputs
        self.build_time_s = build_time_s
        self.instances_per_call = instances_per_call

    def __call__(self) -> None:
        self.module(*self.inputs)

    def outputs(self) -> np.ndarray:
        import torch

        return self.module(*self.inputs).to(torch.float32).numpy()

    def close(self) -> None:
        self.module = None
        self.inputs = ()
