"""latbench.distill: making students from a teacher. Knows nothing of search.

The package's public interface, which ``latbench.search`` (and any other user) imports
from here rather than from the modules behind it:

* ``DistillConfig``, ``LossWeights`` (``settings``): how a student is trained; the only
  place the distillation's defaults are written;
* ``load_checkpoint`` (``checkpoint``): a teacher or student from a folder;
* ``load_data``, ``check_settings``, ``distill_student`` (``pipeline``): distil this
  architecture and return its metrics (``DistillOutcome``); ``TaskScorer``: score a
  student on the teacher's task as it is or after a short fine-tune;
* ``SupernetConfig`` (``settings``), ``check_shots``, ``train_shots`` (``agnostic``), ``load_supernet``
  (``supernet``), ``load_texts`` (``data``), ``demo_texts`` (``demo_task``) and
  ``student_for_teacher`` (``extract``): the one-shot path, supernets trained once
  task-agnostically and students read off them.

Modules: ``model`` (the student classifier), ``data`` (labelled text from files and
Hugging Face datasets), ``trainer`` (the losses and the training loop), ``extract``
(teacher-weight extraction, ETD, and layer maps), ``quality`` (accuracy, F1, MCC,
loyalty), ``checkpoint`` (saving and loading), ``export`` (ONNX and INT8),
``demo_task`` (the built-in task and teacher), ``supernet`` (the weight-sharing super
language model and extraction), ``agnostic`` (its task-agnostic training, K shots).

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
    "TaskScorer": "latbench.distill.pipeline",
    "SupernetConfig": "latbench.distill.settings",
    "AGNOSTIC_LOSSES": "latbench.distill.settings",
    "load_supernet": "latbench.distill.supernet",
    "LoadedSupernet": "latbench.distill.supernet",
    "train_shots": "latbench.distill.agnostic",
    "check_shots": "latbench.distill.agnostic",
    "student_for_teacher": "latbench.distill.extract",
    "load_texts": "latbench.distill.data",
    "demo_texts": "latbench.distill.demo_task",
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
