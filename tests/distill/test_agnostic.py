"""Task-agnostic supernet training: the sandwich rule, the losses, resuming, K shots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from latbench.distill.agnostic import (
    AgnosticLoss,
    agnostic_loss,
    new_supernet,
    sandwich,
    split_texts,
    train_shots,
    train_supernet,
)
from latbench.distill.checkpoint import load_checkpoint
from latbench.distill.settings import LossWeights, SupernetConfig
from latbench.distill.supernet import load_supernet
from latbench.errors import ConfigError
from latbench.search.space import SearchSpace

SPACE = SearchSpace(
    name="tiny", layers=(1, 2, 4), hidden=(16, 32), heads=(2, 4), ffn_ratios=(1.0, 2.0), vocab_size=160
)
SHORT = SupernetConfig(steps=6, batch_size=8, checkpoint_every=3, random_students=1)


@pytest.fixture(scope="module")
def setup(teacher_dir: Path, demo_data):  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)
    texts = [e.text for e in demo_data[0].examples[:160]]
    return ck, ck.encoder.encode(texts[:128]), ck.encoder.encode(texts[128:])


def test_the_sandwich_is_largest_smallest_then_random_students_drawn_from_seed_and_step(setup) -> None:  # type: ignore[no-untyped-def]
    teacher = setup[0].arch
    students = sandwich(SPACE, teacher, 3, seed=0, step=5)
    assert len(students) == 5
    assert students[0].hidden == 32 and students[0].num_layers == 4 and students[0].heads[0] == 4
    assert students[1].hidden == 16 and students[1].num_layers == 1
    assert students[0].vocab_size == teacher.vocab_size  # they read the teacher's inputs
    assert sandwich(SPACE, teacher, 3, seed=0, step=5) == students
    assert sandwich(SPACE, teacher, 3, seed=0, step=6)[2:] != students[2:]


def test_training_brings_every_student_closer_to_the_teacher(setup) -> None:  # type: ignore[no-untyped-def]
    ck, texts, held = setup
    config = SupernetConfig(
        steps=30, batch_size=16, checkpoint_every=0, losses=LossWeights(relations=1, hidden=1, logits=1)
    )
    loss_fn = AgnosticLoss(ck.arch, new_supernet(ck.model, SPACE, texts, config).max_arch, config)
    smallest = sandwich(SPACE, ck.arch, 0, 0, 0)[1]
    before = agnostic_loss(new_supernet(ck.model, SPACE, texts, config), smallest, ck.model, loss_fn, held)
    result = train_supernet(ck.model, SPACE, texts, config, held_out=held)
    assert result.steps == 30 and len(result.history) == 1
    row = result.history[0]
    assert set(row) >= {"relations", "hidden", "logits", "loss", "held_out_largest", "held_out_smallest"}
    assert row["held_out_smallest"] < before
    assert not result.net.training


def test_a_run_stopped_and_resumed_ends_where_an_uninterrupted_one_does(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ck, texts, _ = setup
    whole = train_supernet(ck.model, SPACE, texts, SHORT)

    def stop(step: int, total: int, losses: dict[str, float]) -> None:
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet(ck.model, SPACE, texts, SHORT, state_dir=tmp_path, on_step=stop)
    resumed = train_supernet(ck.model, SPACE, texts, SHORT, state_dir=tmp_path)
    assert resumed.resumed_from == 3
    for (name, a), b in zip(whole.net.state_dict().items(), resumed.net.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    other = SupernetConfig(steps=6, batch_size=8, checkpoint_every=3, random_students=2)
    with pytest.raises(ConfigError, match="saved by a run with other settings"):
        train_supernet(ck.model, SPACE, texts, other, state_dir=tmp_path)


def test_a_random_init_supernet_starts_from_random_weights(setup) -> None:  # type: ignore[no-untyped-def]
    ck, texts, _ = setup
    etd = new_supernet(ck.model, SPACE, texts, SHORT)
    rnd = new_supernet(ck.model, SPACE, texts, SupernetConfig(init="random"))
    word = "bert.embeddings.word_embeddings.weight"
    teacher_norms = ck.model.state_dict()[word].norm(dim=0).sort(descending=True).values
    assert torch.allclose(
        etd.model.state_dict()[word].norm(dim=0).sort(descending=True).values, teacher_norms
    )
    assert not torch.allclose(
        rnd.model.state_dict()[word].norm(dim=0).sort(descending=True).values, teacher_norms
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"losses": LossWeights(labels=1)}, "reads no labels"),
        ({"losses": LossWeights(attention=1)}, "use relations"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"random_students": -1}, "random_students must be an integer >= 0"),
        ({"layer_rule": "middle"}, "unknown layer rule"),
        ({"init": "copy"}, "unknown init"),
        ({"held_out_fraction": 0.0}, "held_out_fraction"),
    ],
)
def test_bad_settings_are_refused(overrides: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        SupernetConfig(**overrides)


def test_shots_train_one_supernet_each_and_are_listed(setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ck = setup[0]
    from dataclasses import replace

    shots = (replace(SPACE, name="narrow", hidden=(16,)), replace(SPACE, name="wide", hidden=(32,)))
    texts = [f"sentence number {i} is not bad" for i in range(40)]
    outcomes = train_shots(ck, shots, texts, tmp_path, SHORT, teacher_name="t")
    assert [o.name for o in outcomes] == ["narrow", "wide"]
    document = json.loads((tmp_path / "shots.json").read_text())
    assert [s["path"] for s in document["shots"]] == ["narrow", "wide"]
    assert document["texts"] == {"train": 38, "held_out": 2}
    wide = load_supernet(tmp_path / "wide")
    assert wide.net.max_arch.hidden == 32 and wide.info.steps == 6 and wide.info.space["name"] == "wide"
    assert load_supernet(tmp_path / "narrow").net.max_arch.hidden == 16
    again = train_shots(ck, shots, texts, tmp_path, SHORT)  # already trained: resumed at the end
    assert [o.resumed_from for o in again] == [6, 6]
    with pytest.raises(ConfigError, match="names must differ"):
        train_shots(ck, (SPACE, SPACE), texts, tmp_path, SHORT)
    with pytest.raises(ConfigError, match="at least one search space"):
        train_shots(ck, (), texts, tmp_path, SHORT)


def test_texts_split_into_training_and_held_out_sentences() -> None:
    train, held = split_texts([str(i) for i in range(100)], 0.05, 0)
    assert len(held) == 5 and len(train) == 95 and not set(train) & set(held)
    assert split_texts([str(i) for i in range(100)], 0.05, 0) == (train, held)
    with pytest.raises(ConfigError, match="at least 2 sentences"):
        split_texts(["one"], 0.1, 0)


def test_the_reordered_teacher_is_the_reference_so_its_own_slice_starts_at_zero_loss(
    setup, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from latbench.distill.supernet import SupernetInfo, reference_teacher, save_supernet

    ck, texts, held = setup
    config = SupernetConfig(losses=LossWeights(relations=1, hidden=1, logits=1))
    net = new_supernet(ck.model, SPACE, texts, config)
    assert net.order is not None and set(net.order) >= {"hidden", "attention.0", "neurons.3"}
    reference = reference_teacher(ck.model, net)
    loss_fn = AgnosticLoss(ck.arch, net.max_arch, config)
    largest = sandwich(SPACE, ck.arch, 0, 0, 0)[0]
    assert largest.layers == ck.arch.layers  # the test space's largest student is the teacher's shape
    assert agnostic_loss(net, largest, reference, loss_fn, held) < 1e-6
    assert agnostic_loss(net, largest, ck.model, loss_fn, held) > 1e-3  # unordered, the dimensions disagree
    save_supernet(tmp_path, net, ck.encoder, ck.label_names, SupernetInfo("spread", SPACE.to_dict(), 0, ""))
    loaded = load_supernet(tmp_path).net
    assert loaded.order is not None and all(torch.equal(loaded.order[k], v) for k, v in net.order.items())
    random_net = new_supernet(ck.model, SPACE, texts, SupernetConfig(init="random"))
    assert random_net.order is None and reference_teacher(ck.model, random_net) is ck.model


def test_blocks_follow_the_uniform_map() -> None:
    from latbench.distill.agnostic import teacher_blocks

    assert teacher_blocks(2, 4) == [(0, 2), (2, 4)]
    assert teacher_blocks(1, 4) == [(0, 4)]
    assert teacher_blocks(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert teacher_blocks(3, 6) == [(0, 2), (2, 4), (4, 6)]


def test_blockwise_training_scores_students_by_their_blocks_losses(setup) -> None:  # type: ignore[no-untyped-def]
    from latbench.distill.agnostic import blockwise_loss
    from latbench.distill.supernet import reference_teacher

    ck, texts, held = setup
    config = SupernetConfig(training="blockwise", steps=20, batch_size=16, checkpoint_every=0)
    untrained = new_supernet(ck.model, SPACE, texts, config)
    reference = reference_teacher(ck.model, untrained)
    largest, smallest = sandwich(SPACE, ck.arch, 0, 0, 0)[:2]
    assert blockwise_loss(untrained, largest, reference, None, held) < 1e-8  # the teacher's own blocks
    before = blockwise_loss(untrained, smallest, reference, None, held)
    result = train_supernet(ck.model, SPACE, texts, config, held_out=held)
    assert set(result.history[-1]) >= {"blocks", "held_out_smallest"}
    assert result.history[-1]["held_out_smallest"] < before
    with pytest.raises(ConfigError, match="unknown training 'layerwise'"):
        SupernetConfig(training="layerwise")
