"""How a student is distilled: the loss weights and the training settings.

These frozen dataclasses are the only place the distillation's defaults are written:
``latbench distill``'s flags, ``latbench search``'s proxy and final runs and the Python API
all start from them. Importing this module is cheap (no torch), so ``--help`` can show them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from latbench.errors import ConfigError

INITS = ("etd", "random")
#: The short run that ranks search candidates (``DistillConfig.proxy``).
PROXY_STEPS = 300
PROXY_EXAMPLES = 2000


@dataclass(frozen=True)
class LossWeights:
    """Weights of the distillation losses; a loss not named weighs 0 (but ``logits`` 1).
    ``DistillConfig``'s default is ``DEFAULT_LOSSES``."""

    logits: float = 1.0
    hidden: float = 0.0
    attention: float = 0.0
    relations: float = 0.0
    labels: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"loss weight {name} must be a number >= 0, got {value!r}")
        if not any(asdict(self).values()):
            raise ConfigError("all loss weights are 0; give at least one loss a positive weight")

    @classmethod
    def parse(cls, text: str) -> LossWeights:
        """From ``"logits=1,hidden=0.5"`` (unnamed losses get weight 0)."""
        names = {f for f in cls.__dataclass_fields__}
        values: dict[str, float] = dict.fromkeys(names, 0.0)
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, number = part.partition("=")
            if not sep or name.strip() not in names:
                raise ConfigError(
                    f"bad loss weight {part!r}; write NAME=WEIGHT with NAME among {', '.join(sorted(names))}"
                )
            try:
                values[name.strip()] = float(number)
            except ValueError:
                raise ConfigError(f"loss weight {part!r} is not a number") from None
        return cls(**values)

    def active(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v > 0}

    def format(self) -> str:
        """The weights as ``parse`` reads them, e.g. ``logits=1,hidden=1``."""
        return ",".join(f"{k}={v:g}" for k, v in self.active().items())


#: Logits KL and hidden-state MSE: what ``latbench distill``, the search's proxy and final
#: runs and the Python API all train with unless told otherwise (and what every figure in
#: the README and the benchmarks used).
DEFAULT_LOSSES = LossWeights(logits=1.0, hidden=1.0)


@dataclass(frozen=True)
class DistillConfig:
    """How to train. ``steps`` > 0 fixes the step count; otherwise ``epochs`` decides."""

    steps: int = 0
    epochs: float = 3.0
    batch_size: int = 32
    learning_rate: float = 3e-4
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    temperature: float = 2.0
    losses: LossWeights = field(default_factory=lambda: DEFAULT_LOSSES)
    layer_map: str | tuple[int, ...] = "uniform"
    init: str = "etd"
    relation_heads: int = 0  # 0: the teacher's head count, reduced until it divides both widths
    dropout: float = 0.1  # the student's hidden and attention dropout
    max_examples: int = 0  # 0: the whole training set; proxy mode uses a subset
    importance_batches: int = 4
    eval_every: int = 0  # steps between dev evaluations; 0: only at the end
    checkpoint_every: int = 200  # steps between resumable states; 0: none
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.layer_map, list):
            object.__setattr__(self, "layer_map", tuple(self.layer_map))
        for name in ("steps", "max_examples", "eval_every", "checkpoint_every", "relation_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        for name in ("epochs", "learning_rate", "temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; use {' or '.join(INITS)}")

    @classmethod
    def proxy(cls, **overrides: Any) -> DistillConfig:
        """The short run that ranks search candidates: 300 steps on 2,000 examples."""
        return cls(
            **{"steps": PROXY_STEPS, "max_examples": PROXY_EXAMPLES, "checkpoint_every": 0, **overrides}
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layer_map"] = self.layer_map if isinstance(self.layer_map, str) else list(self.layer_map)
        return data


def parse_layer_map(text: str) -> str | tuple[int, ...]:
    """A layer map from text: ``uniform``, ``last``, or the teacher layer of each student
    layer as a comma-separated list such as ``2,4,6``."""
    if text in ("uniform", "last"):
        return text
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--layer-map {text!r} is not uniform, last or a comma-separated list of teacher layers"
        ) from None


def format_layer_map(layer_map: str | tuple[int, ...]) -> str:
    return layer_map if isinstance(layer_map, str) else ",".join(map(str, layer_map))


SUPERNET_INITS = INITS
SUPERNET_TRAININGS = ("end-to-end", "blockwise")
#: MiniLM's self-attention relations only: what task-agnostic supernet training uses
#: unless told otherwise (no labels, any head count).
AGNOSTIC_LOSSES = LossWeights(logits=0.0, relations=1.0)


@dataclass(frozen=True)
class SupernetConfig:
    """How a supernet is trained, task-agnostically (``latbench supernet train``).

    Every step runs the sandwich rule (Yu & Huang's slimmable networks, used by
    AutoDistil and NAS-BERT's successors): the space's largest student, its smallest and
    ``random_students`` random ones each learn from the teacher on the same batch of
    unlabelled text, and their gradients are summed into one update of the shared
    weights. Losses: MiniLM's self-attention relations of the last layer (``relations``),
    optionally TinyBERT's hidden-state MSE of the last layer (``hidden``) and the
    teacher's output distribution (``logits``); a ``labels`` weight is refused, as no
    labels are read. ``training = "blockwise"`` is NAS-BERT's cheaper variant: instead,
    each student layer learns to map the teacher's hidden states at the start of the
    teacher block it stands for to those at its end (MSE), and a student is scored by the
    sum of its blocks' losses."""

    steps: int = 600
    batch_size: int = 32
    learning_rate: float = 3e-4
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    temperature: float = 1.0
    losses: LossWeights = field(default_factory=lambda: AGNOSTIC_LOSSES)
    random_students: int = 2
    training: str = "end-to-end"  # or "blockwise" (NAS-BERT): each layer learns its teacher block
    layer_rule: str = "spread"
    init: str = "etd"
    relation_heads: int = 0  # 0: the teacher's head count, reduced until it divides both widths
    dropout: float = 0.0
    importance_batches: int = 4
    held_out_fraction: float = 0.05  # sentences kept aside to score students on
    checkpoint_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("random_students", "checkpoint_every", "relation_heads", "importance_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("learning_rate", "temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.held_out_fraction < 0.5:
            raise ConfigError(f"held_out_fraction must be in (0, 0.5), got {self.held_out_fraction}")
        if self.losses.labels:
            raise ConfigError("task-agnostic training reads no labels: set the labels loss weight to 0")
        if self.losses.attention:
            raise ConfigError(
                "the attention loss compares heads one to one, which students of other head counts "
                "cannot; use relations"
            )
        if self.init not in SUPERNET_INITS:
            raise ConfigError(f"unknown init {self.init!r}; use {' or '.join(SUPERNET_INITS)}")
        if self.training not in SUPERNET_TRAININGS:
            raise ConfigError(f"unknown training {self.training!r}; use {' or '.join(SUPERNET_TRAININGS)}")
        if self.layer_rule not in ("spread", "first"):
            raise ConfigError(f"unknown layer rule {self.layer_rule!r}; use spread or first")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
