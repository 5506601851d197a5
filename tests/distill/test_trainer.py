"""The distillation trainer: losses mean what they claim, runs are deterministic and
resume exactly, and bad settings fail before any training."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from latbench.arch import Arch
from latbench.distill.checkpoint import load_checkpoint
from latbench.distill.extract import LayerMap, extract_student, importance
from latbench.distill.model import HIDDEN_STATES, QKV, SCORES, Classifier, ClassifierConfig
from latbench.distill.settings import DistillConfig, LossWeights
from latbench.distill.trainer import (
    STATE_FILE,
    Batches,
    batch_index,
    evaluate,
    kd_loss,
    loss_terms,
    lr_at,
    relation_heads,
    total_steps,
    train,
)
from latbench.errors import ConfigError

ALL_LOSSES = LossWeights(logits=1, hidden=1, attention=1, relations=1, labels=1)


@pytest.fixture(scope="module")
def teacher(teacher_dir: Path):  # type: ignore[no-untyped-def]
    return load_checkpoint(teacher_dir)


@pytest.fixture(scope="module")
def data(teacher, demo_data) -> Batches:  # type: ignore[no-untyped-def]
    train_set = demo_data[0]
    encoded = teacher.encoder.encode([e.text for e in train_set.examples])
    return Batches(encoded, torch.as_tensor(train_set.labels))


def small(teacher, layers: int = 2, hidden: int = 16, heads: int = 2, ffn: int = 32) -> Arch:  # type: ignore[no-untyped-def]
    return Arch.uniform(layers, hidden, heads, ffn, vocab_size=teacher.arch.vocab_size, max_positions=64)


def quick(**kwargs) -> DistillConfig:  # type: ignore[no-untyped-def]
    return DistillConfig(
        **{"steps": 6, "batch_size": 16, "learning_rate": 1e-3, "checkpoint_every": 0, **kwargs}
    )


def test_a_copy_of_the_teacher_has_zero_distillation_loss(teacher, data: Batches) -> None:  # type: ignore[no-untyped-def]
    batch = [data.take(torch.arange(i, i + 16)) for i in (0, 16)]
    copy = extract_student(teacher.model, teacher.arch, (1, 2, 3, 4), importance(teacher.model, batch)).eval()
    encoded, labels = batch[0]
    inputs = (encoded.input_ids, encoded.attention_mask, encoded.token_type_ids)
    want = {HIDDEN_STATES, SCORES, QKV}
    with torch.no_grad():
        t_out, s_out = teacher.model(*inputs, want=want), copy(*inputs, want=want)
    layer_map = LayerMap.build("uniform", 4, 4)
    terms = loss_terms(
        ALL_LOSSES.active(), t_out, s_out, labels, encoded.attention_mask, layer_map,
        torch.nn.ModuleDict(), {s: 4 for s in range(1, 5)}, 2.0,
    )  # fmt: skip
    for name in ("logits", "hidden", "attention", "relations"):
        assert float(terms[name]) == pytest.approx(0.0, abs=1e-6), name
    assert float(terms["labels"]) > 0.1  # the gold labels are not the teacher's
    dev = Batches(encoded, labels)
    teacher_probs = torch.softmax(t_out.logits.double(), -1).numpy()
    q = evaluate(copy, dev, teacher_probs=teacher_probs)
    assert q.label_loyalty == 1.0 and q.probability_loyalty == pytest.approx(1.0)


def test_kd_loss_is_positive_for_different_distributions_and_scales_with_t_squared() -> None:
    t, s = torch.tensor([[2.0, -1.0]]), torch.tensor([[-1.0, 2.0]])
    assert float(kd_loss(t, s, 1.0)) > 0
    # at high temperature KL shrinks as 1/T^2, so T^2 * KL tends to a constant
    assert float(kd_loss(t, s, 50.0)) == pytest.approx(float(kd_loss(t, s, 100.0)), rel=0.01)


@pytest.mark.parametrize("init", ["etd", "random"])
def test_training_is_deterministic_for_a_seed(teacher, data: Batches, init: str) -> None:  # type: ignore[no-untyped-def]
    config = quick(init=init, losses=LossWeights(logits=1, hidden=1, relations=1))
    a = train(teacher.model, small(teacher), data, config).student.state_dict()
    b = train(teacher.model, small(teacher), data, config).student.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train(teacher.model, small(teacher), data, quick(init=init, seed=1)).student.state_dict()
    assert not all(torch.equal(a[k], other[k]) for k in a)


def test_an_interrupted_run_resumes_to_the_same_weights(teacher, data: Batches, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = quick(steps=6, checkpoint_every=2, losses=LossWeights(logits=1, hidden=1))
    straight = train(teacher.model, small(teacher), data, config).student.state_dict()

    def stop_at_3(step: int, total: int, losses: dict[str, float]) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(teacher.model, small(teacher), data, config, state_dir=tmp_path, on_step=stop_at_3)
    assert (tmp_path / STATE_FILE).is_file()
    resumed = train(teacher.model, small(teacher), data, config, state_dir=tmp_path)
    assert resumed.resumed_from == 2 and resumed.steps == 6
    got = resumed.student.state_dict()
    assert all(torch.equal(straight[k], got[k]) for k in straight)
    finished = train(teacher.model, small(teacher), data, config, state_dir=tmp_path)
    assert finished.resumed_from == 6  # nothing left to do


def test_a_saved_state_from_other_settings_is_not_resumed(teacher, data: Batches, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    train(teacher.model, small(teacher), data, quick(steps=2, checkpoint_every=1), state_dir=tmp_path)
    with pytest.raises(ConfigError, match="saved by a run with other settings"):
        train(
            teacher.model,
            small(teacher, hidden=32),
            data,
            quick(steps=2, checkpoint_every=1),
            state_dir=tmp_path,
        )


def test_distillation_makes_a_random_student_follow_its_teacher(teacher, data: Batches) -> None:  # type: ignore[no-untyped-def]
    config = quick(steps=40, init="random", dropout=0.0, losses=LossWeights(logits=1), temperature=1.0)
    result = train(teacher.model, small(teacher), data, config)
    probs = torch.softmax(teacher.model(data.encoded.input_ids, data.encoded.attention_mask).logits, -1)
    before = Classifier(ClassifierConfig(small(teacher), 2)).eval()
    q_before = evaluate(before, data, teacher_probs=probs.detach().double().numpy())
    q_after = evaluate(result.student, data, teacher_probs=probs.detach().double().numpy())
    assert q_after.probability_loyalty > q_before.probability_loyalty


def test_relations_allow_a_different_head_count_but_attention_does_not(teacher, data: Batches) -> None:  # type: ignore[no-untyped-def]
    three_heads = Arch.uniform(2, 24, 3, 32, vocab_size=teacher.arch.vocab_size, max_positions=64)
    train(teacher.model, three_heads, data, quick(steps=2, init="random", losses=LossWeights(relations=1)))
    with pytest.raises(
        ConfigError, match=r"attention loss compares heads one to one.*use the relations loss"
    ):
        train(
            teacher.model, three_heads, data, quick(steps=2, init="random", losses=LossWeights(attention=1))
        )


def test_a_student_with_fixed_head_size_distils_with_every_loss(teacher, data: Batches) -> None:  # type: ignore[no-untyped-def]
    # AutoDistil-style: hidden 16 but 4 heads of 6, so attention is 24 wide (teacher: 4 x 8 = 32);
    # relations split both widths into common heads, attention compares the 4 heads one to one
    arch = Arch.uniform(2, 16, 4, 32, vocab_size=teacher.arch.vocab_size, max_positions=64, head_size=6)
    result = train(teacher.model, arch, data, quick(steps=3, init="etd", losses=ALL_LOSSES))
    assert result.student.arch.head_size == 6
    assert result.steps == 3
    assert all(bool(torch.isfinite(p).all()) for p in result.student.parameters())
    assert result.student.bert.encoder.layer[0].attention.self.query.weight.shape == (24, 16)


def test_relation_heads_divide_both_widths() -> None:
    assert relation_heads(0, 12, 768, 384) == 12
    assert relation_heads(0, 4, 32, 24) == 4
    assert relation_heads(0, 4, 32, 20) == 4
    assert relation_heads(0, 12, 768, 544) == 8
    with pytest.raises(ConfigError, match="do not divide"):
        relation_heads(5, 12, 768, 384)


def test_bad_settings_fail_before_training(teacher, data: Batches) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="without a teacher the only loss is 'labels'"):
        train(None, small(teacher), data, quick())
    with pytest.raises(ConfigError, match="names 3 teacher layers but the student has 2"):
        train(teacher.model, small(teacher), data, quick(layer_map=(1, 2, 3)))
    with pytest.raises(ConfigError, match="all loss weights are 0"):
        LossWeights(logits=0)
    with pytest.raises(ConfigError, match="NAME=WEIGHT"):
        LossWeights.parse("logits=1,kl=2")
    with pytest.raises(ConfigError, match="unknown init"):
        DistillConfig(init="copy")
    with pytest.raises(ConfigError, match="batch_size"):
        DistillConfig(batch_size=0)
    assert LossWeights.parse("hidden=0.5, logits=1") == LossWeights(logits=1, hidden=0.5)


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    rates = [lr_at(s, 100, 1.0, 10) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert rates[10] == pytest.approx(1.0) and rates[-1] == pytest.approx(1 / 90)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))


def test_each_epoch_visits_every_example_once() -> None:
    seen = torch.cat([batch_index(s, 10, 50, seed=3) for s in range(5)])
    assert sorted(seen.tolist()) == list(range(50))
    assert not torch.equal(batch_index(0, 10, 50, 3), batch_index(5, 10, 50, 3))  # reshuffled
    assert total_steps(DistillConfig(epochs=2, batch_size=10), 55) == 11
    assert total_steps(DistillConfig(steps=7), 55) == 7
    proxy = DistillConfig.proxy()
    assert proxy.steps == 300 and proxy.max_examples == 2000
