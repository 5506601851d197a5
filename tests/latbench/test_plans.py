"""Profile plans: the built-in plans' specs, halton sampling, TOML plan files and errors."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from latbench.arch import LayerShape, Workload
from latbench.errors import ConfigError, LatbenchError
from latbench.plans import (
    BUILTIN_PLANS,
    QUICK,
    STANDARD,
    Plan,
    PlanSummary,
    ProfileSpace,
    load_plan,
    plan_from_dict,
)
from latbench.specs import BlockSpec, EncoderSpec, OpSpec

SMALL_SPACE = ProfileSpace(
    hidden=(64, 128), heads=(2, 4), ffn_ratios=(2.0, 4.0), seq_lens=(16, 32, 64), batches=(1, 2)
)

PLAN_TOML = """\
name = "tiny"
sampling = "halton"
points = 10
contexts = ["model", "isolated"]
encoders = 5
seed = 3
operators = false
description = "a test plan"

[space]
hidden = [64, 96, 128]
heads = [2, 3, 4]
ffn_ratios = [2, 4.0]
seq_lens = [16, 64]
batches = [1, 2]
layers = [2, 4]
vocab_size = 500
"""


def blocks(specs: list) -> list[BlockSpec]:
    return [s for s in specs if isinstance(s, BlockSpec)]


def encoders(specs: list) -> list[EncoderSpec]:
    return [s for s in specs if isinstance(s, EncoderSpec)]


# --- built-in plans -----------------------------------------------------------------------
@pytest.mark.parametrize("plan", [QUICK, STANDARD], ids=lambda p: p.name)
def test_builtin_plans_are_deterministic_and_free_of_duplicates(plan: Plan) -> None:
    first, second = plan.specs(), plan.specs()
    assert first == second
    assert [s.key for s in first] == [s.key for s in second]
    assert len(set(first)) == len(first)
    assert len({s.key for s in first}) == len(first)
    counts = PlanSummary.of(first).counts
    assert set(counts) == {"op", "block", "encoder"}
    assert counts["encoder"] == plan.encoders


def test_builtin_plans_by_name() -> None:
    assert load_plan("quick") is QUICK
    assert load_plan("standard") is STANDARD
    assert set(BUILTIN_PLANS) == {"quick", "standard", "demo"}


def test_the_demo_plan_covers_every_student_of_the_demo_teacher() -> None:
    plan = load_plan("demo")
    shapes = set(plan.space.layer_shapes())
    for hidden in (64, 96, 128):
        for heads in (2, 4):
            for ratio in (1, 2, 4):
                assert LayerShape(hidden, heads, hidden * ratio) in shapes
    assert LayerShape(128, 4, 512) in shapes  # the teacher's own layer (latbench/distill/demo_task.py)
    assert plan.space.vocab_size == 256
    assert {b.workload for b in blocks(plan.specs())} == {Workload(1, 128)}


def test_quick_measures_blocks_in_both_contexts_on_the_full_grid() -> None:
    specs = QUICK.specs()
    contexts = {b.context for b in blocks(specs)}
    assert contexts == {"model", "isolated"}
    points = {(b.layer, b.workload) for b in blocks(specs)}
    assert len(points) == len(QUICK.space.layer_shapes()) * len(QUICK.space.workloads())
    for point in points:  # every point in both contexts
        assert BlockSpec(*point, "model") in specs and BlockSpec(*point, "isolated") in specs


def test_standard_covers_bert_base_layers_and_its_extremes() -> None:
    specs = STANDARD.specs()
    block_specs = blocks(specs)
    assert len(block_specs) == STANDARD.points
    bert_base = LayerShape(768, 12, 3072)
    assert any(b.layer == bert_base and b.workload.seq_len == 512 for b in block_specs)
    shapes = STANDARD.space.layer_shapes()
    workloads = STANDARD.space.workloads()
    assert max(shapes) == bert_base
    smallest = BlockSpec(min(shapes), Workload(1, 32), "model")
    largest = BlockSpec(bert_base, Workload(4, 512), "model")
    assert smallest in block_specs and largest in block_specs
    assert min(workloads, key=lambda w: w.batch * w.seq_len) == Workload(1, 32)
    # operators of every sampled point are measured, and one embedding per (hidden, workload)
    op_specs = {s for s in specs if isinstance(s, OpSpec)}
    assert OpSpec("ffn_up_gelu", Workload(4, 512), 768, 12, 3072) in op_specs
    assert OpSpec("embedding", Workload(4, 512), 768, vocab_size=30522) in op_specs


@pytest.mark.parametrize("plan", [QUICK, STANDARD], ids=lambda p: p.name)
def test_sampled_encoders_lie_inside_the_space(plan: Plan) -> None:
    space = plan.space
    ffn_sizes = {round(h * r) for h in space.hidden for r in space.ffn_ratios}
    for spec in encoders(plan.specs()):
        arch = spec.arch
        assert arch.hidden in space.hidden
        assert set(arch.heads) <= set(space.heads)
        assert set(arch.ffn) <= ffn_sizes
        assert all(f / arch.hidden in space.ffn_ratios for f in arch.ffn)
        assert space.layers[0] <= arch.num_layers <= space.layers[1]
        assert arch.vocab_size == space.vocab_size
        assert spec.workload in space.workloads()
        arch.check_workload(spec.workload)


def test_sample_arch_draws_layers_independently() -> None:
    rng = random.Random(0)
    archs = [STANDARD.space.sample_arch(rng) for _ in range(50)]
    assert any(not a.is_uniform for a in archs)
    assert {a.num_layers for a in archs} > {2}


def test_plans_with_different_seeds_sample_different_encoders() -> None:
    plan = Plan("a", SMALL_SPACE, encoders=5, seed=1)
    other = Plan("b", SMALL_SPACE, encoders=5, seed=2)
    assert encoders(plan.specs()) != encoders(other.specs())


def test_operators_false_measures_no_operators() -> None:
    specs = Plan("x", SMALL_SPACE, operators=False, encoders=0).specs()
    assert all(isinstance(s, BlockSpec) for s in specs)


# --- halton sampling ----------------------------------------------------------------------
@pytest.mark.parametrize("points", [2, 3, 7, 20, 47])
@pytest.mark.parametrize("seed", [0, 5])
def test_halton_gives_points_distinct_points_including_the_corners(points: int, seed: int) -> None:
    plan = Plan("h", SMALL_SPACE, sampling="halton", points=points, seed=seed, encoders=0)
    chosen = plan.points_list()
    assert len(chosen) == points
    assert len(set(chosen)) == points
    grid = {(s, w) for s in SMALL_SPACE.layer_shapes() for w in SMALL_SPACE.workloads()}
    assert set(chosen) <= grid
    assert (LayerShape(64, 2, 128), Workload(1, 16)) in chosen
    assert (LayerShape(128, 4, 512), Workload(2, 64)) in chosen
    assert len(blocks(plan.specs())) == points
    assert plan.points_list() == chosen  # deterministic


def test_halton_with_as_many_points_as_the_grid_is_the_grid() -> None:
    grid = Plan("g", SMALL_SPACE).points_list()
    assert len(grid) == 8 * 6
    for points in (len(grid), len(grid) + 10):
        assert Plan("h", SMALL_SPACE, sampling="halton", points=points).points_list() == grid


def test_halton_seed_changes_the_sample() -> None:
    a = Plan("h", SMALL_SPACE, sampling="halton", points=12, seed=1).points_list()
    b = Plan("h", SMALL_SPACE, sampling="halton", points=12, seed=2).points_list()
    assert a != b


# --- plan files ---------------------------------------------------------------------------
def test_toml_plan_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "my-space.toml"
    path.write_text(PLAN_TOML, encoding="utf-8")
    plan = load_plan(str(path))
    assert plan.name == "tiny"
    assert plan.space == ProfileSpace(
        hidden=(64, 96, 128),
        heads=(2, 3, 4),
        ffn_ratios=(2, 4.0),
        seq_lens=(16, 64),
        batches=(1, 2),
        layers=(2, 4),
        vocab_size=500,
    )
    assert (plan.sampling, plan.points, plan.seed) == ("halton", 10, 3)
    assert plan.contexts == ("model", "isolated")
    assert plan.encoders == 5
    assert plan.operators is False
    specs = plan.specs()
    assert len(encoders(specs)) == 5
    assert len(blocks(specs)) == 2 * 10
    for spec in encoders(specs):
        assert spec.arch.vocab_size == 500
        assert 2 <= spec.arch.num_layers <= 4


def test_plan_file_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "edge-cpu.toml"
    path.write_text("[space]\nhidden = [64]\nheads = [4]\nffn_ratios = [4]\nseq_lens = [32]\n")
    plan = load_plan(str(path))
    assert plan.name == "edge-cpu"
    assert plan.sampling == "grid" and plan.contexts == ("model",)
    assert plan.space.batches == (1,) and plan.space.layers == (2, 8)


def test_plan_from_dict_defaults_its_name() -> None:
    plan = plan_from_dict({"space": {"hidden": [64], "heads": [4], "ffn_ratios": [4], "seq_lens": [32]}})
    assert plan.name == "custom"


def expect_config_error(call, *fragments: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as exc:
        call()
    message = str(exc.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_unknown_plan_name() -> None:
    expect_config_error(lambda: load_plan("quik"), "unknown plan 'quik'", "quick", "standard")


def test_missing_plan_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.toml")
    expect_config_error(lambda: load_plan(missing), "unknown plan", ".yaml plan file")


def test_plan_file_must_be_toml(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text("{}", encoding="utf-8")
    expect_config_error(lambda: load_plan(str(path)), "unknown plan")


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[space\nhidden = [64", encoding="utf-8")
    expect_config_error(lambda: load_plan(str(path)), "is not valid TOML", str(path))


def test_missing_space_table(tmp_path: Path) -> None:
    path = tmp_path / "nospace.toml"
    path.write_text('name = "x"\nencoders = 3\n', encoding="utf-8")
    expect_config_error(lambda: load_plan(str(path)), "needs a [space] table")


BASE_SPACE = {"hidden": [64], "heads": [4], "ffn_ratios": [4.0], "seq_lens": [32]}


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        ({"space": BASE_SPACE, "sampler": "grid"}, ["unknown plan field(s) sampler"]),
        ({"space": {**BASE_SPACE, "heeds": [2]}}, ["unknown plan field(s) space.heeds"]),
        (
            {"space": {**BASE_SPACE, "dims": [1]}, "x": 1},
            ["unknown plan field(s) x, space.dims"],
        ),
        ({"space": {**BASE_SPACE, "hidden": [100], "heads": [3, 7]}}, ["no valid layer shape"]),
        ({"space": {**BASE_SPACE, "layers": [0, 3]}}, ["layers must be [min, max]", "[0, 3]"]),
        ({"space": {**BASE_SPACE, "layers": [5, 3]}}, ["1 <= min <= max", "[5, 3]"]),
        ({"space": {**BASE_SPACE, "layers": [2]}}, ["layers must be [min, max] integers", "[2]"]),
        ({"space": {**BASE_SPACE, "hidden": []}}, ["hidden must be a non-empty list"]),
        ({"space": {**BASE_SPACE, "seq_lens": [32, -1]}}, ["seq_lens", "positive integers"]),
        ({"space": {**BASE_SPACE, "hidden": 64}}, ["hidden must be a list", "64"]),
        ({"space": BASE_SPACE, "sampling": "sobol"}, ["'grid' or 'halton'", "'sobol'"]),
        ({"space": BASE_SPACE, "sampling": "halton"}, ["halton plan needs points > 0"]),
        ({"space": BASE_SPACE, "contexts": ["hot"]}, ["contexts must be among", "hot"]),
        ({"space": BASE_SPACE, "contexts": []}, ["contexts must be among", "none"]),
        ({"space": BASE_SPACE, "encoders": -1}, ["encoders must be >= 0"]),
        ({"space": BASE_SPACE, "encoders": "3"}, ["encoders must be an integer", "'3'"]),
        ({"space": "hidden=64"}, ["needs a [space] table"]),
    ],
)
def test_bad_plans(data: dict, fragments: list[str]) -> None:
    expect_config_error(lambda: plan_from_dict(data), *fragments)


def test_bad_sampling_in_a_plan_file(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN_TOML.replace('sampling = "halton"', 'sampling = "random"'))
    expect_config_error(lambda: load_plan(str(path)), "plan sampling must be", "'random'")


def test_an_impossible_layer_shape_is_a_user_error() -> None:
    data = {"space": {**BASE_SPACE, "ffn_ratios": [0.001]}}  # FFN rounds to 0
    with pytest.raises(LatbenchError, match="ffn must be a positive integer"):
        plan_from_dict(data)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"encoders": 2.5}, "encoders must be an integer"),
        ({"seed": [1]}, "seed must be an integer"),
        ({"operators": "no"}, "operators must be true or false"),
        ({"contexts": "model"}, "contexts must be a list"),
        ({"space": {**BASE_SPACE, "vocab_size": "x"}}, "vocab_size must be a positive integer"),
        (
            {"space": {**BASE_SPACE, "ffn_ratios": ["a"]}},
            "ffn_ratios must be a non-empty list of positive numbers",
        ),
    ],
)
def test_ill_typed_plan_values_are_one_line_config_errors(extra: dict, fragment: str) -> None:  # type: ignore[type-arg]
    data = {"space": BASE_SPACE, **extra}
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        plan_from_dict(data).specs()


def test_a_plan_with_fixed_head_sizes_profiles_autodistil_shaped_layers(tmp_path: Path) -> None:
    path = tmp_path / "autodistil.yaml"
    path.write_text(
        "encoders: 6\nspace:\n  hidden: [128, 160]\n  heads: [7, 8]\n  ffn_ratios: [2.0]\n"
        "  seq_lens: [32]\n  layers: [4, 7]\n  head_sizes: [0, 64]\n"
    )
    plan = load_plan(str(path))
    shapes = plan.space.layer_shapes()
    # 64-wide heads on any hidden size; BERT's geometry only where heads divide hidden
    assert LayerShape(128, 7, 256, 64) in shapes and LayerShape(128, 8, 256) in shapes
    assert not any(s.head_size == 0 and s.hidden % s.heads for s in shapes)
    assert len(shapes) == len(set(shapes)) == 4 + 2  # 4 with 64-wide heads; BERT's: 8 heads only
    # a fixed head size equal to hidden / heads is BERT's geometry: one shape, not two
    same = ProfileSpace(hidden=(512,), heads=(8,), ffn_ratios=(2.0,), seq_lens=(32,), head_sizes=(0, 64))
    assert same.layer_shapes() == [LayerShape(512, 8, 1024)]
    specs = plan.specs()
    blocks = [s for s in specs if isinstance(s, BlockSpec)]
    assert {b.layer.attn_width for b in blocks if b.layer.heads == 7} == {448}
    qkv = {s.attn_width for s in specs if isinstance(s, OpSpec) and s.op == "qkv_proj"}
    assert {448, 512} <= qkv
    encoders = [s for s in specs if isinstance(s, EncoderSpec)]
    assert len(encoders) == 6 and all(4 <= e.arch.num_layers <= 7 for e in encoders)
    bad = {"space": {**BASE_SPACE, "head_sizes": [-1]}}
    with pytest.raises(ConfigError, match="head_sizes must be a non-empty list of integers >= 0"):
        plan_from_dict(bad)
