"""latbench.distill: making students from a teacher. Knows nothing of search.

The package's public interface, which ``latbench.search`` (and any other user) imports
from here rather than from the modules behind it:

* ``DistillConfig``, ``LossWeights`` (``settings``): how a student is trained; the only
  place the distillation's defaults are written;
* ``load_checkpoint`` (``checkpoint``): a teacher or student from a folder;
* ``load_data``, ``check_settings``, ``distill_student`` (``pipeline``): distil this
  architecture and return its metrics (``DistillOutcome``).

Modules: ``model`` (the student classifier), ``data`` (labelled text from files and
Hugging Face datasets), ``trainer`` (the losses and the training loop), ``extract``
(teacher-weight extraction, ETD, and layer maps), ``quality`` (accuracy, F1, MCC,
loyalty), ``checkpoint`` (saving and loading), ``export`` (ONNX and INT8),
``demo_task`` (the built-in task and teacher).

Names are imported on first use (PEP 562), so importing the package costs nothing until
torch is needed.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "DistillConfig": "latbench.distill.settings",
    "LossWeights": "latbench.distill.settings",
    "PROXY_EXAMPLES": "latbench.distill.settings",
    "PROXY_STEPS": "latbench.distill.settings",
    "load_checkpoint": "latbench.distill.checkpoint",
    "check_settings": "latbench.distill.pipeline",
    "distill_student": "latbench.distill.pipeline",
    "load_data": "latbench.distill.pipeline",
    "DistillOutcome": "latbench.distill.pipeline",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    try:
        module = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'latbench.distill' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
