"""Search spaces: sample, encode, decode, contains and count agree with each other."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from latbench.arch import Arch, Workload
from latbench.errors import ConfigError
from latbench.search.space import (
    AUTODISTIL_BASE,
    AUTODISTIL_SMALL,
    AUTODISTIL_TINY,
    BERT_MINI,
    BUILTIN_SPACES,
    HAT,
    SearchSpace,
    load_space,
    space_from_dict,
)

SMALL_SHARED = SearchSpace(name="s", layers=(2, 3), hidden=(64, 128), heads=(2, 4), ffn_ratios=(2.0, 4.0))
SMALL_LAYERWISE = SearchSpace(
    name="l", layers=(1, 2), hidden=(64,), heads=(2, 4), ffn=(128, 256), per_layer=True
)


def enumerate_space(space: SearchSpace) -> set[Arch]:
    """Every architecture, by decoding every grid point of the encoding."""
    rng = random.Random(0)
    return {space.sample(rng) for _ in range(5000)}


@pytest.mark.parametrize("space", [SMALL_SHARED, SMALL_LAYERWISE], ids=["shared", "per-layer"])
def test_count_equals_the_distinct_architectures_sampled(space: SearchSpace) -> None:
    seen = enumerate_space(space)
    assert len(seen) == space.count()
    assert SMALL_SHARED.count() == 2 * 2 * 2 * 2
    assert SMALL_LAYERWISE.count() == 1 * (4 + 4**2)


@pytest.mark.parametrize("space", [*BUILTIN_SPACES.values(), SMALL_SHARED, SMALL_LAYERWISE])
def test_encode_then_decode_is_the_identity(space: SearchSpace) -> None:
    rng = random.Random(1)
    for _ in range(200):
        arch = space.sample(rng)
        assert space.contains(arch)
        vector = space.encode(arch)
        assert vector.shape == (len(space.dimensions),) and np.all((vector >= 0) & (vector <= 1))
        assert space.decode(vector) == arch


@pytest.mark.parametrize("space", [*BUILTIN_SPACES.values(), SMALL_LAYERWISE])
def test_any_vector_decodes_to_an_architecture_in_the_space(space: SearchSpace) -> None:
    rng = np.random.default_rng(2)
    for vector in rng.uniform(-0.2, 1.2, size=(300, len(space.dimensions))):
        assert space.contains(space.decode(vector))


def test_shared_spaces_make_homogeneous_students_and_per_layer_spaces_need_not() -> None:
    rng = random.Random(3)
    assert all(BERT_MINI.sample(rng).is_uniform for _ in range(100))
    assert not all(HAT.sample(rng).is_uniform for _ in range(100))
    mixed = Arch(hidden=128, heads=(2, 4), ffn=(256, 512))
    assert "shares one layer shape" in BERT_MINI.why_not(mixed)
    assert HAT.count() == 2 * sum(6**n for n in range(1, 7))


def test_contains_says_why_not() -> None:
    assert "5 layers" in SMALL_SHARED.why_not(Arch.uniform(5, 64, 2, 128))
    assert "hidden 96" in SMALL_SHARED.why_not(Arch.uniform(2, 96, 2, 192))
    assert "3 heads" not in SMALL_SHARED.why_not(Arch.uniform(2, 64, 2, 128))
    assert "FFN 200" in SMALL_SHARED.why_not(Arch.uniform(2, 64, 2, 200))
    assert "vocabulary" in SMALL_SHARED.why_not(Arch.uniform(2, 64, 2, 128, vocab_size=100))
    with pytest.raises(ConfigError, match="not in search space s"):
        SMALL_SHARED.encode(Arch.uniform(5, 64, 2, 128))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"heads": [3]}, "not divisible by 3 heads"),
        ({"layers": []}, "must not be empty"),
        ({"hidden": [64, 64]}, "repeats a value"),
        ({"hidden": [-64]}, "positive integers"),
        ({"ffn": [128]}, "exactly one of them"),
        ({"ffn_ratios": []}, "exactly one of them"),
        ({"per_layer": "yes"}, "true or false"),
        ({"layers": "4"}, "must be a list"),
        ({"head_size": -64}, "head_size must be an integer >= 0"),
    ],
)
def test_bad_spaces_are_refused_clearly(fields: dict, message: str) -> None:  # type: ignore[type-arg]
    base = {"name": "x", "layers": [2], "hidden": [64], "heads": [2], "ffn_ratios": [2.0]}
    with pytest.raises(ConfigError, match=message):
        SearchSpace(**{**base, **fields})


def test_spaces_load_by_name_or_from_toml(tmp_path: Path) -> None:
    assert load_space("hat") is HAT
    path = tmp_path / "mine.toml"
    path.write_text("layers = [2, 4]\nhidden = [128, 256]\nheads = [4]\nffn = [512]\nper_layer = true\n")
    space = load_space(str(path))
    assert space.name == "mine" and space.per_layer and space.count() == 2 * (1**2 + 1**4)
    with pytest.raises(ConfigError, match="unknown search space 'nope'"):
        load_space("nope")
    path.write_text("layers = [2\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_space(str(path))
    path.write_text("layers = [2]\nhidden = [128]\nheads = [4]\nffn = [512]\nwidth = 3\n")
    with pytest.raises(ConfigError, match="unknown search space field"):
        load_space(str(path))
    path.write_text("layers = [2]\nffn = [512]\n")
    with pytest.raises(ConfigError, match="needs hidden, heads"):
        load_space(str(path))


def test_decode_refuses_a_vector_of_the_wrong_length() -> None:
    with pytest.raises(ConfigError, match="decodes vectors of 4 values"):
        SMALL_SHARED.decode([0.5, 0.5])


def test_spaces_load_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("layers: [2, 4]\nhidden: [128, 160]\nheads: [3, 5]\nffn_ratios: [2.0]\nhead_size: 32\n")
    space = load_space(str(path))
    assert space.name == "mine" and space.head_size == 32 and space.count() == 2 * 2 * 2
    assert load_space(str(tmp_path / "mine.yaml")) == space
    path.write_text("layers: [2\n")
    with pytest.raises(ConfigError, match=r"not valid YAML: .* at line 2"):
        load_space(str(path))
    path.write_text("- 2\n- 4\n")
    with pytest.raises(ConfigError, match="must hold a mapping of fields, got list"):
        load_space(str(path))
    other = tmp_path / "mine.json"
    other.write_text("{}")
    with pytest.raises(ConfigError, match=r"a path to a \.toml or \.yaml search space file"):
        load_space(str(other))


@pytest.mark.parametrize(
    ("space", "layers", "hidden", "heads", "ratios"),
    [
        (AUTODISTIL_TINY, (4, 7), (128, 224), (7, 10), (2.0, 3.5)),
        (AUTODISTIL_SMALL, (9, 12), (256, 352), (7, 10), (2.5, 4.0)),
        (AUTODISTIL_BASE, (9, 12), (544, 640), (9, 12), (2.5, 4.0)),
    ],
)
def test_autodistil_sub_spaces_are_table_1_with_64_wide_heads(space, layers, hidden, heads, ratios) -> None:  # type: ignore[no-untyped-def]
    # AutoDistil Table 1: (min, max) with 4 evenly spaced values each, 4^4 = 256 students
    assert space.count() == 256 and not space.per_layer and space.head_size == 64
    for values, (lo, hi) in [(space.layers, layers), (space.hidden, hidden), (space.heads, heads)]:
        assert (values[0], values[-1], len(values)) == (lo, hi, 4)
        assert len({b - a for a, b in itertools.pairwise(values)}) == 1
    assert (space.ffn_ratios[0], space.ffn_ratios[-1], len(space.ffn_ratios)) == (*ratios, 4)
    for arch in (space.decode(np.zeros(4)), space.decode(np.ones(4))):
        assert all(layer.head_dim == 64 for layer in arch.layers)
        assert arch.layers[0].attn_width == arch.heads[0] * 64


def test_autodistil_proxy_t_is_in_the_tiny_space_with_its_real_size() -> None:
    # AutoDistil's ProxyT (Table 6): 7 layers, hidden 160, MLP ratio 3.5, 10 heads. Built with
    # 64-wide heads (as its code does) it has ~9.1M parameters, not the 6.88M its paper's
    # formula gives (see docs/research/search-spaces-and-distillation.md).
    proxy_t = Arch.uniform(7, 160, 10, 560, head_size=64)
    assert AUTODISTIL_TINY.contains(proxy_t)
    assert 9.0e6 < proxy_t.params < 9.3e6
    assert proxy_t.layers[0].attn_width == 640
    bert_geometry = Arch.uniform(7, 160, 10, 560)  # 16-wide heads: not the space's
    assert "16-wide heads" in AUTODISTIL_TINY.why_not(bert_geometry)
    assert proxy_t.flops(Workload(1, 128)) > bert_geometry.flops(Workload(1, 128))


# -- K-shot partitions -----------------------------------------------------------------------


def test_shots_partition_a_space_and_serve_each_architecture_from_one_shot(tmp_path: Path) -> None:
    path = tmp_path / "two.toml"
    path.write_text(
        'name = "two"\nlayers = [2, 4]\nhidden = [64, 128]\nheads = [2, 4]\nffn_ratios = [2.0]\n'
        '[[shots]]\nname = "small"\nhidden = [64]\n[[shots]]\nname = "big"\nhidden = [128]\n'
    )
    space = load_space(str(path))
    assert [s.name for s in space.shot_spaces()] == ["small", "big"]
    assert sum(s.count() for s in space.shots) == space.count() == 8
    rng = random.Random(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.shot_of(arch).name == ("small" if arch.hidden == 64 else "big")
    assert space_from_dict(space.to_dict()) == space  # shots survive a round trip
    plain = load_space("demo")
    assert plain.shot_spaces() == (plain,) and "shots" not in plain.to_dict()
    two = load_space("demo-2shot")
    assert [s.count() for s in two.shots] == [48, 24] and two.count() == plain.count()


@pytest.mark.parametrize(
    ("shots", "message"),
    [
        ([{"name": "a", "hidden": [64]}, {"name": "b", "hidden": [64, 128]}], "shots a and b share"),
        ([{"name": "a", "hidden": [64]}], "shots hold 4 of its 8 students"),
        ([{"name": "a", "hidden": [96]}, {"name": "b", "hidden": [128]}], r"hidden \[96\] are not among"),
        ([{"name": "a", "hidden": [64]}, {"name": "a", "hidden": [128]}], "names repeat"),
        ([{"name": "a", "hidden": [64], "head_size": 8}, {"name": "b", "hidden": [128]}], "unknown"),
        ([{"hidden": [64]}], "a table with a name"),
    ],
)
def test_shots_that_do_not_partition_the_space_are_refused(shots: list, message: str) -> None:  # type: ignore[type-arg]
    base = {"name": "two", "layers": [2, 4], "hidden": [64, 128], "heads": [2, 4], "ffn_ratios": [2.0]}
    with pytest.raises(ConfigError, match=message):
        space_from_dict({**base, "shots": shots})
