"""Profile plans: what to measure for a space of architectures.

A ``ProfileSpace`` names the shapes a search may use (hidden sizes, heads, FFN ratios,
sequence lengths, batch sizes, layer counts). A plan turns it into specs:

* **operators** and **blocks** at layer-shape × workload points, either the full grid or
  a space-filling sample (a scrambled Halton sequence over the choice indices, plus the
  grid's corners, so the extremes a predictor must cover are never left out);
* blocks in ``model`` context always, and also ``isolated`` when asked (the additivity
  benchmark compares the two);
* **encoders** of ``encoders`` architectures sampled from the space (per-layer heads
  and FFN sizes drawn independently), each at a sampled workload: the end-to-end ground
  truth that predictors are evaluated against.

Built-in plans: ``quick`` (a few minutes on 2 cores), ``standard`` (BERT-base-sized
layers: hidden up to 768, 12 heads, FFN 3072, sequences up to 512) and ``demo`` (the
students of the built-in demo teacher: hidden 64-128, 2 or 4 heads, FFN ratio 1-4,
1-4 layers, sequence 128; what the demo search predicts). A TOML file with the
same fields (or a YAML file) defines a custom plan (``latbench profile --plan my-plan.toml``).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from latbench.arch import Arch, LayerShape, Workload
from latbench.errors import ConfigError, LatbenchError
from latbench.files import load_named
from latbench.specs import BlockSpec, EncoderSpec, OpSpec, Spec, layer_ops


@dataclass(frozen=True)
class ProfileSpace:
    hidden: tuple[int, ...]
    heads: tuple[int, ...]
    ffn_ratios: tuple[float, ...]
    seq_lens: tuple[int, ...]
    batches: tuple[int, ...] = (1,)
    layers: tuple[int, int] = (2, 8)
    vocab_size: int = 30522
    precision: str = "fp32"
    #: 0 is BERT's head size (hidden / heads, only for heads dividing hidden); a positive
    #: size fixes each head's width (AutoDistil's students use 64).
    head_sizes: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        for name in ("hidden", "heads", "ffn_ratios", "seq_lens", "batches", "head_sizes"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                raise ConfigError(f"space field {name} must be a list, got {values!r}")
            values = tuple(values)
            object.__setattr__(self, name, values)
            number = _is_number if name == "ffn_ratios" else _is_int
            zero_ok = name == "head_sizes"  # head size 0: BERT's hidden / heads
            if not values or not all(number(v) and (v > 0 or (zero_ok and v == 0)) for v in values):
                kind = {"ffn_ratios": "positive numbers", "head_sizes": "integers >= 0"}.get(
                    name, "positive integers"
                )
                raise ConfigError(
                    f"space field {name} must be a non-empty list of {kind}, got {list(values)}"
                )
        if not _is_int(self.vocab_size) or self.vocab_size <= 0:
            raise ConfigError(f"space field vocab_size must be a positive integer, got {self.vocab_size!r}")
        if not isinstance(self.precision, str):
            raise ConfigError(f"space field precision must be a string, got {self.precision!r}")
        Workload(1, 1, self.precision)  # validates the precision now, not when specs are built
        if len(self.layers) != 2 or not all(_is_int(v) for v in self.layers):
            raise ConfigError(f"space field layers must be [min, max] integers, got {list(self.layers)}")
        lo, hi = self.layers
        object.__setattr__(self, "layers", (lo, hi))
        if not 1 <= lo <= hi:
            raise ConfigError(
                f"space field layers must be [min, max] with 1 <= min <= max, got {list(self.layers)}"
            )
        if not self.layer_shapes():
            raise ConfigError(
                "the space has no valid layer shape: no hidden size is divisible by any head count"
            )

    def layer_shapes(self) -> list[LayerShape]:
        shapes: dict[LayerShape, None] = {}  # a fixed head size of hidden / heads is BERT's
        for d, h, a, r in itertools.product(self.head_sizes, self.hidden, self.heads, self.ffn_ratios):
            if d or h % a == 0:
                shapes[LayerShape(h, a, round(h * r), d)] = None
        return list(shapes)

    def workloads(self) -> list[Workload]:
        return [Workload(b, s, self.precision) for b, s in itertools.product(self.batches, self.seq_lens)]

    def sample_arch(self, rng: random.Random) -> Arch:
        hidden = rng.choice(sorted({shape.hidden for shape in self.layer_shapes()}))
        head_sizes = [d for d in self.head_sizes if d or any(hidden % a == 0 for a in self.heads)]
        # no draw when there is no choice, so BERT-geometry plans sample as they always did
        head_size = rng.choice(head_sizes) if len(head_sizes) > 1 else head_sizes[0]
        heads = [a for a in self.heads if head_size or hidden % a == 0]
        n = rng.randint(*self.layers)
        return Arch(
            hidden=hidden,
            heads=tuple(rng.choice(heads) for _ in range(n)),
            ffn=tuple(round(hidden * rng.choice(self.ffn_ratios)) for _ in range(n)),
            vocab_size=self.vocab_size,
            max_positions=max(512, max(self.seq_lens)),
            head_size=head_size,
        )


@dataclass(frozen=True)
class Plan:
    name: str
    space: ProfileSpace
    sampling: str = "grid"  # grid | halton
    points: int = 0  # layer-shape × workload points for halton sampling
    contexts: tuple[str, ...] = ("model",)
    operators: bool = True
    encoders: int = 10
    seed: int = 0
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("points", "encoders", "seed"):
            if not _is_int(getattr(self, name)):
                raise ConfigError(f"plan field {name} must be an integer, got {getattr(self, name)!r}")
        if not isinstance(self.operators, bool):
            raise ConfigError(f"plan field operators must be true or false, got {self.operators!r}")
        if isinstance(self.contexts, str):
            raise ConfigError(f'plan field contexts must be a list, e.g. ["model"], got {self.contexts!r}')
        if self.sampling not in ("grid", "halton"):
            raise ConfigError(f"plan sampling must be 'grid' or 'halton', got {self.sampling!r}")
        if self.sampling == "halton" and self.points <= 0:
            raise ConfigError("a halton plan needs points > 0")
        bad = set(self.contexts) - {"model", "isolated"}
        if bad or not self.contexts:
            raise ConfigError(f"plan contexts must be among model, isolated; got {sorted(bad) or 'none'}")
        if self.encoders < 0:
            raise ConfigError("plan encoders must be >= 0")

    def points_list(self) -> list[tuple[LayerShape, Workload]]:
        grid = list(itertools.product(self.space.layer_shapes(), self.space.workloads()))
        if self.sampling == "grid" or self.points >= len(grid):
            return grid
        shapes, workloads = self.space.layer_shapes(), self.space.workloads()
        corners = [
            (min(shapes), min(workloads, key=_workload_size)),
            (max(shapes), max(workloads, key=_workload_size)),
        ]
        chosen: list[tuple[LayerShape, Workload]] = list(dict.fromkeys(corners))
        for u, v in _halton_2d(self.seed):
            if len(chosen) >= self.points:
                break
            point = (shapes[int(u * len(shapes))], workloads[int(v * len(workloads))])
            if point not in chosen:
                chosen.append(point)
        return chosen

    def specs(self) -> list[Spec]:
        """Every spec of the plan, deduplicated, in a stable order."""
        specs: dict[Spec, None] = {}
        points = self.points_list()
        for shape, workload in points:
            for context in self.contexts:
                specs[BlockSpec(shape, workload, context)] = None
        if self.operators:
            for shape, workload in points:
                for op, _ in layer_ops(shape, workload):
                    specs[op] = None
            for hidden, workload in sorted(
                {(s.hidden, w) for s, w in points}, key=lambda p: (p[0], _workload_size(p[1]))
            ):
                specs[OpSpec("embedding", workload, hidden, vocab_size=self.space.vocab_size)] = None
        rng = random.Random(self.seed)
        workloads = self.space.workloads()
        encoders: dict[EncoderSpec, None] = {}
        for _ in range(100 * self.encoders):  # distinct draws; a tiny space may have fewer
            if len(encoders) == self.encoders:
                break
            encoders[EncoderSpec(self.space.sample_arch(rng), rng.choice(workloads))] = None
        return list(specs) + list(encoders)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _workload_size(w: Workload) -> int:
    return w.batch * w.seq_len


def _halton(index: int, base: int) -> float:
    result, f = 0.0, 1.0 / base
    while index > 0:
        result += f * (index % base)
        index //= base
        f /= base
    return result


def _halton_2d(seed: int):  # type: ignore[no-untyped-def]
    """Halton points in [0,1)^2 (bases 2, 3), Cranley-Patterson rotated by ``seed``."""
    rng = random.Random(seed)
    shift_u, shift_v = (rng.random(), rng.random()) if seed else (0.0, 0.0)
    for i in itertools.count(1):
        yield (_halton(i, 2) + shift_u) % 1.0, (_halton(i, 3) + shift_v) % 1.0


QUICK = Plan(
    name="quick",
    space=ProfileSpace(
        hidden=(128, 256, 384), heads=(4, 8), ffn_ratios=(2.0, 4.0), seq_lens=(32, 128), layers=(2, 6)
    ),
    contexts=("model", "isolated"),
    encoders=12,
    description="small layers at two sequence lengths, both block contexts; a few minutes on 2 cores",
)
STANDARD = Plan(
    name="standard",
    space=ProfileSpace(
        hidden=(128, 256, 384, 512, 640, 768),
        heads=(4, 8, 10, 12),
        ffn_ratios=(2.0, 3.0, 4.0),
        seq_lens=(32, 64, 128, 256, 512),
        batches=(1, 4),
        layers=(2, 12),
    ),
    sampling="halton",
    points=160,
    contexts=("model",),
    encoders=40,
    description="BERT-base-sized layers (hidden up to 768, 12 heads, FFN 3072), sequences up to 512; hours",
)
DEMO = Plan(
    name="demo",
    space=ProfileSpace(
        hidden=(64, 96, 128),
        heads=(2, 4),
        ffn_ratios=(1.0, 2.0, 4.0),
        seq_lens=(128,),
        layers=(1, 4),
        vocab_size=256,
    ),
    encoders=12,
    description="the demo teacher's students (hidden 64-128, 1-4 layers) at sequence 128; about a minute",
)
BUILTIN_PLANS: dict[str, Plan] = {"quick": QUICK, "standard": STANDARD, "demo": DEMO}


def load_plan(name_or_path: str) -> Plan:
    """A built-in plan by name, or a plan from a TOML file."""
    return load_named(name_or_path, BUILTIN_PLANS, "plan", lambda data, stem: plan_from_dict(data, stem))


def plan_from_dict(data: Mapping[str, Any], default_name: str = "custom") -> Plan:
    space_data = data.get("space")
    if not isinstance(space_data, Mapping):
        raise ConfigError("a plan file needs a [space] table (hidden, heads, ffn_ratios, seq_lens, ...)")
    plan_fields = {f.name for f in fields(Plan)} - {"space"}
    space_fields = {f.name for f in fields(ProfileSpace)}
    unknown = sorted(set(data) - plan_fields - {"space"}) + sorted(
        f"space.{k}" for k in set(space_data) - space_fields
    )
    if unknown:
        raise ConfigError(f"unknown plan field(s) {', '.join(unknown)}")
    try:
        space = ProfileSpace(**{k: tuple(v) if isinstance(v, list) else v for k, v in space_data.items()})
        rest = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "space"}
        rest.setdefault("name", default_name)
        return Plan(space=space, **rest)
    except LatbenchError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid plan: {exc}") from None


@dataclass(frozen=True)
class PlanSummary:
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, specs: Sequence[Spec]) -> PlanSummary:
        counts: dict[str, int] = {}
        for spec in specs:
            counts[spec.kind] = counts.get(spec.kind, 0) + 1
        return cls(counts)
