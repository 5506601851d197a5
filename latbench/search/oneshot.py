"""The one-shot path's search side: a bank of supernets, one per shot of a space, and
the accuracy objective that reads students off it.

``train_bank`` trains the supernets of a space's shots (K >= 1; ``SearchSpace.shots``)
through ``latbench.distill``'s interface, and ``load_bank`` reads a folder written by it
back: ``bank.extract(arch)`` finds the shot whose sub-space holds ``arch`` and returns the
student read off that shot's supernet, a plain classifier to measure, fine-tune or export.

``SupernetAccuracy`` is ``latbench search --evaluator supernet``'s objective: a trial's
accuracy is that of the student read off the supernet, on the teacher's development set,
either as it is (``direct``: milliseconds, the supernet keeps the teacher's head) or after
``steps`` of distillation from its supernet weights (``finetune``). No trial distils a
student from scratch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from latbench.arch import Arch
from latbench.errors import ConfigError
from latbench.search.objectives import Evaluation
from latbench.search.space import SearchSpace, space_from_dict

SHOTS_FILE = "shots.json"
SCORINGS = ("direct", "finetune")


@dataclass
class SupernetBank:
    """The trained supernets of one space's shots."""

    path: Path
    shots: tuple[tuple[SearchSpace, Any], ...]  # (the shot's sub-space, its LoadedSupernet)

    def find(self, arch: Arch) -> tuple[SearchSpace, Any]:
        """The shot (sub-space, loaded supernet) that serves ``arch``; vocabulary and
        positions are read as the space's, so an architecture written by hand matches."""
        reasons = []
        for space, loaded in self.shots:
            problem = space.why_not(
                replace(arch, vocab_size=space.vocab_size, max_positions=space.max_positions)
            )
            if not problem:
                return space, loaded
            reasons.append(f"{space.name}: {problem}")
        raise ConfigError(f"no supernet in {self.path} serves this architecture ({'; '.join(reasons)})")

    def extract(self, arch: Arch) -> tuple[str, Any]:
        """``(shot name, student classifier)`` for ``arch``."""
        from latbench.distill import student_for_teacher

        space, loaded = self.find(arch)
        student = loaded.net.extract(student_for_teacher(arch, loaded.net.max_arch))
        return space.name, student


def train_bank(
    teacher: Any,
    space: SearchSpace,
    texts: Sequence[str],
    out_dir: str | Path,
    config: Any,
    *,
    teacher_name: str = "",
    on_shot: Callable[[int, str], None] | None = None,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
) -> list[Any]:
    """Train one supernet per shot of ``space`` into ``out_dir`` (see
    ``latbench.distill.agnostic.train_shots``); ``shots.json`` also records the space."""
    from latbench.distill import train_shots

    outcomes = train_shots(
        teacher, space.shot_spaces(), texts, out_dir, config,
        teacher_name=teacher_name, on_shot=on_shot, on_step=on_step,
    )  # fmt: skip
    path = Path(out_dir) / SHOTS_FILE
    document = json.loads(path.read_text(encoding="utf-8"))
    document["space"] = space.to_dict()
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return outcomes


def check_bank(teacher: Any, space: SearchSpace, config: Any) -> None:
    """Raise ``ConfigError`` now when ``space``'s shots cannot be trained from ``teacher``."""
    from latbench.distill import check_shots

    check_shots(teacher.model, space.shot_spaces(), config)


def load_bank(directory: str | Path) -> SupernetBank:
    """The supernets in a folder written by ``train_bank`` (``latbench supernet train``),
    or a single supernet's folder."""
    from latbench.distill import load_supernet

    path = Path(directory)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a folder; give the --out folder of `latbench supernet train`")
    if (path / SHOTS_FILE).is_file():
        try:
            document = json.loads((path / SHOTS_FILE).read_text(encoding="utf-8"))
            folders = [path / str(shot["path"]) for shot in document["shots"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path / SHOTS_FILE} is malformed: {exc}") from None
    else:
        folders = [path]
    shots = []
    for folder in folders:
        loaded = load_supernet(folder)
        space = space_from_dict(loaded.info.space)
        shots.append((space, loaded))
    return SupernetBank(path, tuple(shots))


class SupernetAccuracy:
    """Accuracy of students read off trained supernets (see the module docstring)."""

    name = "supernet"

    def __init__(
        self,
        supernets: str | Path,
        teacher: str | Path,
        train: str | Path,
        dev: str | Path | None = None,
        *,
        scoring: str = "direct",
        steps: int = 50,
        examples: int = 2000,
        losses: Any = None,
        seed: int = 0,
    ) -> None:
        from latbench.distill import DistillConfig, TaskScorer, load_checkpoint, load_data

        if scoring not in SCORINGS:
            raise ConfigError(f"unknown supernet scoring {scoring!r}; use {' or '.join(SCORINGS)}")
        self.bank = load_bank(supernets)
        self.teacher_path, self.train_path, self.dev_path = Path(teacher), Path(train), dev
        self.scoring = scoring
        self.teacher = load_checkpoint(teacher)
        self.config = DistillConfig(
            steps=steps,
            max_examples=examples,
            checkpoint_every=0,
            seed=seed,
            warmup_fraction=0.0,
            **({} if losses is None else {"losses": losses}),
        )
        self.scorer = TaskScorer(self.teacher, load_data(train, dev, self.teacher, 0.1, seed), seed=seed)

    def check(self, archs: Sequence[Arch]) -> None:
        for arch in archs:
            self.bank.find(arch)

    def evaluate(self, arch: Arch, work_dir: Path | None = None) -> Evaluation:
        start = time.perf_counter()
        _, student = self.bank.extract(arch)
        if self.scoring == "direct":
            quality = self.scorer.direct(student)
        else:
            quality = self.scorer.finetuned(student, self.config)
        metrics = {
            "label_loyalty": quality.label_loyalty,
            "probability_loyalty": quality.probability_loyalty,
            "params": float(sum(p.numel() for p in student.parameters())),
            "teacher_accuracy": self.scorer.teacher_quality.accuracy,
            "steps": float(self.config.steps if self.scoring == "finetune" else 0),
        }
        return Evaluation(
            quality.accuracy,
            {k: float(v) for k, v in metrics.items() if v is not None},
            time.perf_counter() - start,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "objective": self.name,
            "supernets": str(self.bank.path),
            "shots": [space.name for space, _ in self.bank.shots],
            "scoring": self.scoring,
            "finetune": self.config.to_dict() if self.scoring == "finetune" else None,
            "teacher": str(self.teacher_path),
            "teacher_arch": self.teacher.arch.to_dict(),
            "train": str(self.train_path),
            "dev": None if self.dev_path is None else str(self.dev_path),
        }
