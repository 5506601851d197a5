"""The built-in demo: every stage of latbench, each as the ``latbench`` command a user
would type, on the demo task, its teacher and the ``onnxruntime-cpu`` target.

``demo_stages`` yields the stages in order; the search's latency budget (half the
teacher's predicted latency) is computed when the search stage is reached, from the
predictor the fit stage wrote. ``latbench demo`` runs each stage through the command line
and times it; rerunning reuses what is done (every stage resumes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from latbench.arch import Workload
from latbench.errors import ConfigError
from latbench.timing import ProtocolSettings

DEMO_TARGET = "onnxruntime-cpu:threads=1"
#: The workload the demo's students are priced and measured at.
DEMO_WORKLOAD = Workload(1, 128)


@dataclass(frozen=True)
class DemoSettings:
    """``latbench demo``'s options (its flags' defaults come from here)."""

    out: str = "latbench-demo"
    plan: str = "demo"
    trials: int = 10
    proxy_steps: int = 150
    final_epochs: float = 1.0
    teacher_steps: int | None = None  # None: the demo task's own default
    baseline: bool = True  # a random search beside the GP one
    samples: int | None = None  # None: the protocol's default samples per spec
    evaluator: str = "proxy"  # proxy: distil each trial; supernet: train a supernet once, read trials off it
    supernet_steps: int = 600  # the supernet's training steps (evaluator supernet)

    def __post_init__(self) -> None:
        if self.evaluator not in ("proxy", "supernet"):
            raise ConfigError(f"--evaluator must be proxy or supernet, got {self.evaluator!r}")
        for name in ("trials", "proxy_steps", "teacher_steps", "samples", "supernet_steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if not self.final_epochs > 0:
            raise ConfigError(f"--final-epochs must be > 0, got {self.final_epochs}")

    @property
    def stage_count(self) -> int:
        return 7 - (not self.baseline) + (self.evaluator == "supernet")

    @property
    def startup_trials(self) -> int:
        """Trials before the GP's model takes over."""
        return max(2, min(5, self.trials // 2))

    @property
    def profile_samples(self) -> int:
        return self.samples or ProtocolSettings().samples


@dataclass(frozen=True)
class Stage:
    name: str
    argv: list[str]


def demo_stages(settings: DemoSettings) -> Iterator[Stage]:
    """The demo's stages in order (see the module docstring)."""
    from latbench.distill.demo_task import DEMO_TEACHER_ARCH
    from latbench.search.objectives import PredictedLatency

    out = Path(settings.out)
    db, task, predictor = out / "latbench.db", out / "task", out / "lut-block.json"
    teacher_steps = [] if settings.teacher_steps is None else ["--teacher-steps", str(settings.teacher_steps)]
    yield Stage("demo task and teacher", ["demo-task", "--out", str(task), *teacher_steps])
    samples = [] if settings.samples is None else ["--samples", str(settings.samples)]
    yield Stage(
        "profile", ["profile", "--target", DEMO_TARGET, "--plan", settings.plan, "--db", str(db), *samples]
    )
    yield Stage(
        "fit the search's cost model",
        [
            "fit",
            "--db",
            str(db),
            "--target",
            DEMO_TARGET,
            "--predictor",
            "lut-block",
            "--out",
            str(predictor),
        ],
    )
    yield Stage(
        "evaluate predictors",
        ["evaluate", "--db", str(db), "--target", DEMO_TARGET, "--out", str(out / "evaluation")],
    )
    teacher_ms = PredictedLatency(predictor, DEMO_WORKLOAD).estimate([DEMO_TEACHER_ARCH])[0].ms
    budget = f"{teacher_ms / 2:.3g}"  # students at least twice as fast as the teacher
    common = ["--space", "demo", "--teacher", str(task / "teacher"), "--data", str(task / "train.jsonl"),
              "--dev", str(task / "dev.jsonl"), "--predictor", str(predictor), "--budget-ms", budget,
              "--trials", str(settings.trials), "--startup-trials", str(settings.startup_trials),
              "--proxy-steps", str(settings.proxy_steps)]  # fmt: skip
    if settings.evaluator == "supernet":
        supernets = out / "supernets"
        yield Stage(
            "train the supernet (one-shot)",
            ["supernet", "train", "--teacher", str(task / "teacher"), "--demo-text", "--space", "demo",
             "--steps", str(settings.supernet_steps), "--out", str(supernets)],
        )  # fmt: skip
        common += ["--evaluator", "supernet", "--supernet", str(supernets)]
    yield Stage(
        "search (GP) and the Pareto set",
        ["search", *common, "--final-epochs", str(settings.final_epochs), "--out", str(out / "search")],
    )
    report = ["report", str(out / "search"), str(out / "evaluation"), "--out", str(out / "report")]
    if settings.baseline:
        yield Stage(
            "baseline search (random)",
            [
                "search",
                *common,
                "--sampler",
                "random",
                "--no-final",
                "--no-measure",
                "--out",
                str(out / "random"),
            ],
        )
        report += ["--baseline", str(out / "random")]
    yield Stage("report", report)
