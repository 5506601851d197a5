"""What a search is asked to do: the only place its defaults are written.

``SearchSettings`` is the study's part (what Optuna and the objectives see); ``SearchJob``
is everything ``latbench search`` takes (the space, teacher, data, predictor, workload,
storage, workers, proxy and final distillation), with ``SearchSettings`` inside it. The
command line and ``--config`` TOML files fill a ``SearchJob`` (``SearchJob.from_options``);
``--help`` shows the defaults read from here. Importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from latbench.distill import PROXY_EXAMPLES, PROXY_STEPS, DistillConfig, LossWeights
from latbench.errors import ConfigError
from latbench.files import check_fields

SAMPLERS = ("gp", "optuna-gp", "tpe", "nsga2", "random")
STARTUPS = ("predictor", "sampler")
EVALUATORS = ("proxy", "supernet")
HEARTBEAT_INTERVAL_S = 30


@dataclass(frozen=True)
class SearchSettings:
    """What a search is asked to do. ``trials`` counts evaluated students (a student told
    infeasible by the predictor costs nothing and is not counted)."""

    trials: int = 30
    sampler: str = "gp"
    seed: int = 0
    budget_ms: float | None = None
    startup: str = "predictor"
    startup_trials: int = 8
    startup_pool: int = 2000
    reference_accuracy: float = 0.0
    reference_latency_ms: float | None = None
    max_skipped: int = 1000

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.startup not in STARTUPS:
            raise ConfigError(f"startup must be one of {', '.join(STARTUPS)}, got {self.startup!r}")
        for name in ("trials", "startup_trials", "startup_pool", "max_skipped"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("budget_ms", "reference_latency_ms"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not value > 0):
                raise ConfigError(f"{name} must be a positive number of milliseconds, got {value!r}")
        if not 0.0 <= self.reference_accuracy < 1.0:
            raise ConfigError(f"reference_accuracy must be in [0, 1), got {self.reference_accuracy!r}")

    def identity(self) -> dict[str, Any]:
        """What a resumed study must share with the one it resumes (the objectives)."""
        return {"budget_ms": self.budget_ms, "reference_accuracy": self.reference_accuracy}


#: SearchJob's option names that fill SearchSettings, and the settings' field each fills.
_SETTINGS_OPTIONS = {
    "trials": "trials",
    "sampler": "sampler",
    "seed": "seed",
    "budget_ms": "budget_ms",
    "startup": "startup",
    "startup_trials": "startup_trials",
    "reference_accuracy": "reference_accuracy",
    "reference_ms": "reference_latency_ms",
}


@dataclass(frozen=True)
class SearchJob:
    """A whole ``latbench search`` run. Its option names are the command line's long
    options with underscores (and a ``--config`` file's keys); ``settings`` holds the
    study's part (``trials``, ``sampler``, ``seed``, ``budget_ms``, ``startup``,
    ``startup_trials``, ``reference_accuracy``, ``reference_ms``)."""

    space: str
    predictor: str
    out: str
    teacher: str | None = None
    data: str | None = None
    dev: str | None = None
    target: str | None = None  # None: the predictor's target when it runs here
    no_measure: bool = False
    batch: int = 1
    seq: int = 128
    storage: str | None = None  # None: sqlite:///OUT/study.db
    study: str = "search"
    heartbeat_s: int = HEARTBEAT_INTERVAL_S
    workers: int = 1
    worker: int = 0  # > 0: an extra worker of a shared study
    proxy_steps: int = PROXY_STEPS
    proxy_examples: int = PROXY_EXAMPLES
    final_epochs: float = DistillConfig().epochs
    losses: str = DistillConfig().losses.format()  # of the proxy and the final distillation
    no_final: bool = False
    surrogate: bool = False
    evaluator: str = "proxy"  # proxy: distil every trial; supernet: read trials off --supernet
    supernet: str | None = None  # the --out folder of `latbench supernet train`
    supernet_scoring: str = "direct"  # direct | finetune
    supernet_steps: int = 50  # fine-tuning steps of a student read off the supernet
    settings: SearchSettings = field(default_factory=SearchSettings)

    def __post_init__(self) -> None:
        missing = [f"--{k}" for k in ("space", "predictor", "out") if not getattr(self, k)]
        if not self.surrogate:
            missing += [f"--{k}" for k in ("teacher", "data") if not getattr(self, k)]
        if missing:
            raise ConfigError(
                f"latbench search needs {', '.join(missing)} (on the command line or in --config)"
            )
        if self.evaluator not in EVALUATORS:
            raise ConfigError(f"unknown evaluator {self.evaluator!r}; use {' or '.join(EVALUATORS)}")
        if self.evaluator == "supernet" and not self.supernet and not self.surrogate:
            raise ConfigError(
                "--evaluator supernet needs --supernet, the folder of `latbench supernet train`"
            )
        if self.supernet_scoring not in ("direct", "finetune"):
            raise ConfigError(f"unknown supernet scoring {self.supernet_scoring!r}; use direct or finetune")
        positive = (
            "batch",
            "seq",
            "proxy_steps",
            "proxy_examples",
            "heartbeat_s",
            "workers",
            "supernet_steps",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.worker, bool) or not isinstance(self.worker, int) or self.worker < 0:
            raise ConfigError(
                f"worker must be a positive integer (an extra worker's number), got {self.worker!r}"
            )
        if self.worker and self.workers > 1:
            raise ConfigError("--worker K runs one extra worker; it cannot start --workers of its own")
        if not isinstance(self.final_epochs, (int, float)) or not self.final_epochs > 0:
            raise ConfigError(f"final_epochs must be > 0, got {self.final_epochs!r}")
        if not isinstance(self.losses, str):
            raise ConfigError(f"losses must be text such as 'logits=1,hidden=1', got {self.losses!r}")
        LossWeights.parse(self.losses)  # a bad weight is an error before any trial

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return (*(f.name for f in fields(cls) if f.name != "settings"), *_SETTINGS_OPTIONS)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each option's default (the required ones are None)."""
        settings = SearchSettings()
        out: dict[str, Any] = {
            f.name: None if f.default is MISSING else f.default for f in fields(cls) if f.name != "settings"
        }
        out.update({option: getattr(settings, name) for option, name in _SETTINGS_OPTIONS.items()})
        return out

    @classmethod
    def check_option_names(cls, names: Any, *, source: str = "") -> None:
        """A ConfigError naming ``source`` when any of ``names`` is not an option."""
        check_fields(dict.fromkeys(names), "search", known=cls.option_names(), noun="option", source=source)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SearchJob:
        """A job from option names to values (None: the default)."""
        cls.check_option_names(options)
        given = {k: v for k, v in options.items() if v is not None}
        study = {_SETTINGS_OPTIONS[k]: given.pop(k) for k in list(given) if k in _SETTINGS_OPTIONS}
        for name in ("space", "predictor", "out"):
            given.setdefault(name, "")
        return cls(**given, settings=SearchSettings(**study))

    def distill_configs(self) -> tuple[DistillConfig, DistillConfig]:
        """The proxy distillation that scores each trial, and the Pareto set's full one."""
        seed = self.settings.seed
        losses = LossWeights.parse(self.losses)
        proxy = DistillConfig(
            steps=self.proxy_steps,
            max_examples=self.proxy_examples,
            checkpoint_every=0,
            seed=seed,
            losses=losses,
        )
        return proxy, DistillConfig(epochs=float(self.final_epochs), seed=seed, losses=losses)
