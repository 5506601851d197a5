"""Student search spaces: what a search may choose, as a vector a sampler can work with.

A ``SearchSpace`` chooses a layer count, a hidden size, and per layer a head count and an
FFN size, either

* **shared** by all layers (AutoDistil's homogeneous students: one head count and one
  FFN ratio for the whole model), or
* **per layer** (HAT's elastic layers: every layer picks its own heads and FFN size).

FFN sizes are given either as ratios of the hidden size (``ffn_ratios``, AutoDistil's
"MLP ratio") or as absolute sizes (``ffn``, HAT's "hidden dim").

A space can ``sample`` an ``Arch``, ``encode`` one to a vector in ``[0, 1]^d`` (each
choice's index scaled to the unit interval, the form Bayesian optimisation works in),
``decode`` any such vector back to the nearest ``Arch`` in the space, say whether it
``contains`` an ``Arch``, and ``count`` its architectures. In the per-layer encoding the
coordinates of layers beyond the chosen layer count are ignored on decode and 0 on
encode.

With ``head_size = 0`` (the default) a head is hidden / heads wide, as in BERT, so every
head count must divide every hidden size. A positive ``head_size`` fixes each head's
width instead, so attention is heads x head_size wide whatever the hidden size: that is
how AutoDistil's students are built (64-wide heads, e.g. 9 heads on hidden 544; see
docs/research/search-spaces-and-distillation.md).

Built-in spaces: ``autodistil-tiny``, ``autodistil-small`` and ``autodistil-base``
(AutoDistil's Table 1: 4 values per dimension, 256 students each, shared layers,
64-wide heads), ``hat`` (per layer) and ``bert-mini`` (shared). A TOML or YAML file with
the same fields defines a custom space (``load_space("my-space.toml")``)::

    name = "my-space"
    layers = [4, 6, 8]
    hidden = [256, 384]
    heads = [4, 8]
    ffn_ratios = [2.0, 3.0, 4.0]     # or: ffn = [512, 1024, 1536]
    per_layer = false
    head_size = 0                    # 0: hidden / heads; 64: AutoDistil's fixed heads

or, in YAML::

    name: my-space
    layers: [4, 6, 8]
    hidden: [256, 384]
    heads: [4, 8]
    ffn_ratios: [2.0, 3.0, 4.0]
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from latbench.arch import Arch
from latbench.errors import ConfigError
from latbench.files import check_fields, load_named


@dataclass(frozen=True)
class SearchSpace:
    name: str
    layers: tuple[int, ...]
    hidden: tuple[int, ...]
    heads: tuple[int, ...]
    ffn_ratios: tuple[float, ...] = ()
    ffn: tuple[int, ...] = ()
    per_layer: bool = False
    vocab_size: int = 30522
    max_positions: int = 512
    head_size: int = 0
    shots: tuple[SearchSpace, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("a search space needs a non-empty name")
        for name in ("layers", "hidden", "heads", "ffn_ratios", "ffn"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise ConfigError(f"search space field {name} must be a list, got {values!r}")
            numbers = tuple(values)
            is_number = _is_number if name == "ffn_ratios" else _is_int
            if not all(is_number(v) and v > 0 for v in numbers):
                kind = "numbers" if name == "ffn_ratios" else "integers"
                raise ConfigError(f"search space field {name} must hold positive {kind}, got {list(numbers)}")
            if len(set(numbers)) != len(numbers):
                raise ConfigError(f"search space field {name} repeats a value: {list(numbers)}")
            object.__setattr__(self, name, tuple(sorted(numbers)))
        for name in ("layers", "hidden", "heads"):
            if not getattr(self, name):
                raise ConfigError(f"search space field {name} must not be empty")
        if bool(self.ffn_ratios) == bool(self.ffn):
            raise ConfigError(
                "a search space gives FFN sizes either as ffn_ratios or as ffn, exactly one of them"
            )
        if not isinstance(self.per_layer, bool):
            raise ConfigError(f"search space field per_layer must be true or false, got {self.per_layer!r}")
        for name in ("vocab_size", "max_positions"):
            if not _is_int(getattr(self, name)) or getattr(self, name) <= 0:
                raise ConfigError(f"search space field {name} must be a positive integer")
        if not _is_int(self.head_size) or self.head_size < 0:
            raise ConfigError(
                f"search space field head_size must be an integer >= 0 (0: hidden / heads), "
                f"got {self.head_size!r}"
            )
        bad = [(h, a) for h in self.hidden for a in self.heads if h % a] if not self.head_size else []
        if bad:
            h, a = bad[0]
            raise ConfigError(
                f"search space {self.name}: hidden {h} is not divisible by {a} heads "
                f"({len(bad)} such pairs); every head count must divide every hidden size, "
                "or set head_size to fix each head's width"
            )
        object.__setattr__(self, "shots", tuple(self.shots))
        if self.shots:
            self._check_shots()

    # --- K-shot partitions ------------------------------------------------------------
    def _check_shots(self) -> None:
        """The shots must split the space: each a sub-space of it (subsets of its choices,
        the rest equal), no two sharing an architecture, together as many as the space."""
        names = [shot.name for shot in self.shots]
        if len(set(names)) != len(names):
            raise ConfigError(f"search space {self.name}: its shots' names repeat: {names}")
        for shot in self.shots:
            if not isinstance(shot, SearchSpace):
                raise ConfigError(f"search space {self.name}: a shot must be a search space, got {shot!r}")
            if shot.shots:
                raise ConfigError(f"search space {self.name}: shot {shot.name} has shots of its own")
            for name in _CHOICES:
                extra = set(getattr(shot, name)) - set(getattr(self, name))
                if extra:
                    raise ConfigError(
                        f"search space {self.name}: shot {shot.name}'s {name} {sorted(extra)} are not "
                        f"among the space's {list(getattr(self, name))}"
                    )
            for name in _FIXED:
                if getattr(shot, name) != getattr(self, name):
                    raise ConfigError(
                        f"search space {self.name}: shot {shot.name} changes {name}; a shot may only "
                        f"narrow {', '.join(_CHOICES)}"
                    )
        for i, a in enumerate(self.shots):
            for b in self.shots[i + 1 :]:
                if all(set(getattr(a, n)) & set(getattr(b, n)) or not getattr(a, n) for n in _CHOICES):
                    raise ConfigError(
                        f"search space {self.name}: shots {a.name} and {b.name} share architectures; "
                        "shots must not overlap (give them disjoint values in some field)"
                    )
        covered = sum(shot.count() for shot in self.shots)
        if covered != self.count():
            raise ConfigError(
                f"search space {self.name}: shots hold {covered:,} of its {self.count():,} students; "
                "together they must cover the whole space"
            )

    def shot_spaces(self) -> tuple[SearchSpace, ...]:
        """The K sub-spaces, one supernet each (the space itself when it has no shots)."""
        return self.shots or (self,)

    def shot_of(self, arch: Arch) -> SearchSpace:
        """The shot that holds ``arch``."""
        for shot in self.shot_spaces():
            if shot.contains(arch):
                return shot
        raise ConfigError(f"the architecture is not in search space {self.name}: {self.why_not(arch)}")

    # --- dimensions --------------------------------------------------------------------
    @property
    def max_layers(self) -> int:
        return self.layers[-1]

    @property
    def _ffn_choices(self) -> int:
        return len(self.ffn_ratios or self.ffn)

    def ffn_size(self, hidden: int, index: int) -> int:
        if self.ffn:
            return self.ffn[index]
        return round(self.ffn_ratios[index] * hidden)

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Names of the encoded vector's coordinates."""
        slots = range(self.max_layers) if self.per_layer else [None]
        per = [f"{d}[{i}]" if i is not None else d for i in slots for d in ("heads", "ffn")]
        return ("layers", "hidden", *per)

    @property
    def choice_counts(self) -> tuple[int, ...]:
        """How many choices each coordinate of ``dimensions`` has (what a sampler suggests
        an index for)."""
        per = (len(self.heads), self._ffn_choices) * (self.max_layers if self.per_layer else 1)
        return (len(self.layers), len(self.hidden), *per)

    def from_indices(self, indices: Sequence[int]) -> Arch:
        """The architecture whose coordinate ``i`` is choice ``indices[i]``."""
        counts = self.choice_counts
        if len(indices) != len(counts) or any(not 0 <= int(i) < n for i, n in zip(indices, counts)):  # noqa: B905
            raise ConfigError(f"search space {self.name} takes {len(counts)} indices below {list(counts)}")
        return self.decode([_unit(int(i), n) for i, n in zip(indices, counts, strict=True)])

    def indices(self, arch: Arch) -> tuple[int, ...]:
        """The choice indices of ``arch`` (inverse of ``from_indices``)."""
        vector = self.encode(arch)
        return tuple(_index(v, n) for v, n in zip(vector, self.choice_counts, strict=True))

    def count(self) -> int:
        """How many distinct architectures the space holds."""
        per_layer_choices = len(self.heads) * self._ffn_choices
        if not self.per_layer:
            return len(self.layers) * len(self.hidden) * per_layer_choices
        return len(self.hidden) * sum(per_layer_choices**n for n in self.layers)

    def smallest(self) -> Arch:
        """Every choice first: the fewest layers, narrowest hidden, fewest heads, smallest FFN."""
        return self.from_indices([0] * len(self.dimensions))

    def largest(self) -> Arch:
        """Every choice last: each of the largest's weights covers every student's."""
        return self.from_indices([n - 1 for n in self.choice_counts])

    # --- the four operations ------------------------------------------------------------
    def sample(self, rng: random.Random) -> Arch:
        """Each choice drawn uniformly (per layer when ``per_layer``)."""
        n = rng.choice(self.layers)
        hidden_index = rng.randrange(len(self.hidden))
        slots = n if self.per_layer else 1
        choices = [(rng.randrange(len(self.heads)), rng.randrange(self._ffn_choices)) for _ in range(slots)]
        return self._build(n, hidden_index, choices)

    def encode(self, arch: Arch) -> np.ndarray:
        """The vector in ``[0, 1]^d`` of ``arch`` (which must be in the space)."""
        if not self.contains(arch):
            raise ConfigError(f"the architecture is not in search space {self.name}: {self.why_not(arch)}")
        vector = np.zeros(len(self.dimensions))
        vector[0] = _unit(self.layers.index(arch.num_layers), len(self.layers))
        vector[1] = _unit(self.hidden.index(arch.hidden), len(self.hidden))
        slots = arch.num_layers if self.per_layer else 1
        for i in range(slots):
            vector[2 + 2 * i] = _unit(self.heads.index(arch.heads[i]), len(self.heads))
            vector[3 + 2 * i] = _unit(self._ffn_index(arch.hidden, arch.ffn[i]), self._ffn_choices)
        return vector

    def decode(self, vector: Sequence[float] | np.ndarray) -> Arch:
        """The architecture nearest to ``vector`` (each coordinate rounded to a choice;
        values outside ``[0, 1]`` are clipped)."""
        v = np.clip(np.asarray(vector, dtype=float), 0.0, 1.0)
        if v.shape != (len(self.dimensions),):
            raise ConfigError(
                f"search space {self.name} decodes vectors of {len(self.dimensions)} values, got {v.shape}"
            )
        n = self.layers[_index(v[0], len(self.layers))]
        hidden_index = _index(v[1], len(self.hidden))
        slots = n if self.per_layer else 1
        choices = [
            (_index(v[2 + 2 * i], len(self.heads)), _index(v[3 + 2 * i], self._ffn_choices))
            for i in range(slots)
        ]
        return self._build(n, hidden_index, choices)

    def contains(self, arch: Arch) -> bool:
        return not self.why_not(arch)

    def why_not(self, arch: Arch) -> str:
        """Why ``arch`` is not in the space ("" when it is)."""
        if arch.num_layers not in self.layers:
            return f"{arch.num_layers} layers (choices: {list(self.layers)})"
        if arch.hidden not in self.hidden:
            return f"hidden {arch.hidden} (choices: {list(self.hidden)})"
        if not self.per_layer and not arch.is_uniform:
            return "its layers differ, and this space shares one layer shape across all layers"
        for i, (a, f) in enumerate(zip(arch.heads, arch.ffn, strict=True)):
            if a not in self.heads:
                return f"layer {i} has {a} heads (choices: {list(self.heads)})"
            if self._ffn_index(arch.hidden, f) < 0:
                sizes = [self.ffn_size(arch.hidden, j) for j in range(self._ffn_choices)]
                return f"layer {i} has FFN {f} (choices at hidden {arch.hidden}: {sizes})"
        for i, layer in enumerate(arch.layers):
            want = self.head_size or arch.hidden // layer.heads
            if layer.head_dim != want:
                return f"layer {i} has {layer.head_dim}-wide heads (the space's are {want} wide)"
        if arch.vocab_size != self.vocab_size or arch.max_positions != self.max_positions:
            return "its vocabulary size or maximum positions differ from the space's"
        return ""

    # --- helpers -------------------------------------------------------------------------
    def _ffn_index(self, hidden: int, ffn: int) -> int:
        for j in range(self._ffn_choices):
            if self.ffn_size(hidden, j) == ffn:
                return j
        return -1

    def _build(self, n: int, hidden_index: int, choices: list[tuple[int, int]]) -> Arch:
        hidden = self.hidden[hidden_index]
        if not self.per_layer:
            choices = choices * n
        return Arch(
            hidden=hidden,
            heads=tuple(self.heads[a] for a, _ in choices),
            ffn=tuple(self.ffn_size(hidden, f) for _, f in choices),
            vocab_size=self.vocab_size,
            max_positions=self.max_positions,
            head_size=self.head_size,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)
            if f.name != "shots"
        }
        if self.shots:  # left out when empty, so a space's identity is what it was before shots
            data["shots"] = [_shot_dict(shot) for shot in self.shots]
        return data


_CHOICES = ("layers", "hidden", "heads", "ffn_ratios", "ffn")
_FIXED = ("per_layer", "vocab_size", "max_positions", "head_size")


def _shot_dict(shot: SearchSpace) -> dict[str, Any]:
    """A shot as its name and choices (the rest is its space's)."""
    return {"name": shot.name, **{n: list(getattr(shot, n)) for n in _CHOICES if getattr(shot, n)}}


def _unit(index: int, choices: int) -> float:
    return index / (choices - 1) if choices > 1 else 0.0


def _index(value: float, choices: int) -> int:
    return min(choices - 1, math.floor(value * (choices - 1) + 0.5)) if choices > 1 else 0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# HAT's SuperTransformer (Wang et al. 2020, from its official code): embedding 512 or 640,
# per-layer FFN 1024/2048/3072 and 4 or 8 heads; its encoder has 6 layers and its decoder
# 1-6. For encoder-only students the layer count takes HAT's decoder range.
HAT = SearchSpace(
    name="hat",
    layers=(1, 2, 3, 4, 5, 6),
    hidden=(512, 640),
    heads=(4, 8),
    ffn=(1024, 2048, 3072),
    per_layer=True,
)
# Turc et al.'s miniature BERTs span 2-12 layers and hidden 128-768 with 64-wide heads;
# a shared-layer space around their small end, with heads that divide every hidden size.
BERT_MINI = SearchSpace(
    name="bert-mini",
    layers=(2, 4, 6, 8),
    hidden=(128, 256, 384, 512),
    heads=(2, 4, 8),
    ffn_ratios=(2.0, 3.0, 4.0),
)
# AutoDistil (Xu et al. 2022), Table 1, checked against its official configs: four values
# per dimension (4^4 = 256 students per sub-space), all layers alike, and heads 64 wide
# whatever the hidden size (the SuperLM keeps BERT-base's head size).
AUTODISTIL_TINY = SearchSpace(
    name="autodistil-tiny",
    layers=(4, 5, 6, 7),
    hidden=(128, 160, 192, 224),
    heads=(7, 8, 9, 10),
    ffn_ratios=(2.0, 2.5, 3.0, 3.5),
    head_size=64,
)
AUTODISTIL_SMALL = SearchSpace(
    name="autodistil-small",
    layers=(9, 10, 11, 12),
    hidden=(256, 288, 320, 352),
    heads=(7, 8, 9, 10),
    ffn_ratios=(2.5, 3.0, 3.5, 4.0),
    head_size=64,
)
AUTODISTIL_BASE = SearchSpace(
    name="autodistil-base",
    layers=(9, 10, 11, 12),
    hidden=(544, 576, 608, 640),
    heads=(9, 10, 11, 12),
    ffn_ratios=(2.5, 3.0, 3.5, 4.0),
    head_size=64,
)
# Students of the built-in demo teacher (latbench.distill.demo_task: 4 layers, hidden 128, 4 heads, FFN
# 512): 72 of them, all measured by the ``demo`` profile plan's layer shapes.
DEMO = SearchSpace(
    name="demo",
    layers=(1, 2, 3, 4),
    hidden=(64, 96, 128),
    heads=(2, 4),
    ffn_ratios=(1.0, 2.0, 4.0),
    vocab_size=256,
    max_positions=128,
)
# The demo space in two shots (AutoDistil's K-shot idea at the demo's size): one supernet
# for the narrow students, one for the full-width ones.
DEMO_2SHOT = replace(
    DEMO,
    name="demo-2shot",
    shots=(
        replace(DEMO, name="demo-narrow", hidden=(64, 96)),
        replace(DEMO, name="demo-wide", hidden=(128,)),
    ),
)
BUILTIN_SPACES: dict[str, SearchSpace] = {
    s.name: s for s in (AUTODISTIL_TINY, AUTODISTIL_SMALL, AUTODISTIL_BASE, HAT, BERT_MINI, DEMO, DEMO_2SHOT)
}


def load_space(name_or_path: str) -> SearchSpace:
    """A built-in space by name, or one from a TOML or YAML file."""
    return load_named(name_or_path, BUILTIN_SPACES, "search space", space_from_dict)


def space_from_dict(data: Mapping[str, Any], default_name: str = "custom") -> SearchSpace:
    known = {f.name for f in fields(SearchSpace)}
    check_fields(data, "search space", known=known, required=("layers", "hidden", "heads"))
    shots = data.get("shots", ())
    if isinstance(shots, (str, bytes, Mapping)) or not isinstance(shots, Sequence):
        raise ConfigError(
            "search space field shots must be a list of tables, each a name and narrowed choices"
        )
    parent = {k: v for k, v in data.items() if k != "shots"}
    built = []
    for shot in shots:
        if not isinstance(shot, Mapping) or not isinstance(shot.get("name"), str):
            raise ConfigError(f"each shot of a search space is a table with a name, got {shot!r}")
        check_fields(shot, f"shot {shot['name']}", known=set(_CHOICES) | {"name"}, required=("name",))
        built.append(SearchSpace(**{"name": default_name, **parent, **shot}))
    return SearchSpace(**{"name": default_name, **parent, "shots": tuple(built)})
