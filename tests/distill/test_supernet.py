"""The weight-sharing supernet: slicing, extraction, teacher initialisation, saving."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from latbench.arch import Arch
from latbench.distill.checkpoint import CheckpointError, Encoded, load_checkpoint
from latbench.distill.extract import importance
from latbench.distill.model import HIDDEN_STATES, QKV, Classifier, ClassifierConfig
from latbench.distill.supernet import (
    Supernet,
    SupernetInfo,
    covering_arch,
    load_supernet,
    rank_by_importance,
    save_supernet,
    spread_layers,
    supernet_from_teacher,
)
from latbench.errors import ConfigError
from latbench.search.space import SearchSpace

SPACE = SearchSpace(
    name="tiny", layers=(1, 2, 4), hidden=(16, 24, 32), heads=(2, 4), ffn_ratios=(1.0, 2.0), vocab_size=160
)
PER_LAYER = SearchSpace(
    name="per-layer",
    layers=(1, 2, 3),
    hidden=(16, 32),
    heads=(2, 4),
    ffn=(16, 48),
    per_layer=True,
    vocab_size=160,
)
FIXED_HEADS = SearchSpace(
    name="fixed", layers=(1, 3), hidden=(16, 32), heads=(2, 3), ffn_ratios=(2.0,), head_size=8, vocab_size=160
)


def inputs() -> Encoded:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 160, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return Encoded(ids, mask, torch.zeros_like(ids))


def run(model, arch=None, want=(HIDDEN_STATES, QKV)):  # type: ignore[no-untyped-def]
    x = inputs()
    with torch.no_grad():
        if arch is None:
            return model(x.input_ids, x.attention_mask, x.token_type_ids, want=want)
        return model(arch, x.input_ids, x.attention_mask, x.token_type_ids, want=want)


def random_supernet(space: SearchSpace, rule: str = "spread") -> Supernet:
    torch.manual_seed(1)
    big = covering_arch([space.largest(), space.smallest()])
    net = Supernet(ClassifierConfig(big, 2), rule)
    with torch.no_grad():  # LayerNorms away from 1/0 so that their slicing matters
        for name, p in net.model.named_parameters():
            if "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return net.eval()


@pytest.mark.parametrize(
    "space", [SPACE, FIXED_HEADS, PER_LAYER], ids=["bert-heads", "fixed-heads", "per-layer"]
)
@pytest.mark.parametrize("rule", ["spread", "first"])
def test_an_extracted_student_computes_what_the_supernet_computes_for_it(
    space: SearchSpace, rule: str
) -> None:
    net = random_supernet(space, rule)
    rng = random.Random(0)
    archs = [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(6))]
    for arch in archs:
        student = net.extract(arch)
        assert student.arch == arch and isinstance(student, Classifier)
        a, b = run(net, arch), run(student)
        assert torch.allclose(a.logits, b.logits, atol=1e-5)
        assert len(a.hidden_states) == arch.num_layers + 1
        for x, y in zip(a.hidden_states, b.hidden_states, strict=True):
            assert torch.allclose(x, y, atol=1e-5)
        for qa, qb in zip(a.qkv, b.qkv, strict=True):
            assert all(torch.allclose(u, v, atol=1e-5) for u, v in zip(qa, qb, strict=True))


def test_students_share_weights_so_differently_sized_students_differ_but_overlap() -> None:
    net = random_supernet(SPACE)
    small, large = SPACE.smallest(), SPACE.largest()
    assert not torch.allclose(run(net, small).logits, run(net, large).logits)
    s, big = net.extract(small).state_dict(), net.model.state_dict()
    weight = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(s[weight], big[weight][:, : small.hidden])


def test_a_students_gradient_lands_only_in_the_weights_it_uses() -> None:
    net = random_supernet(SPACE).train()
    arch = Arch.uniform(2, 16, 2, 16, vocab_size=160)
    x = inputs()
    net(arch, x.input_ids, x.attention_mask).logits.sum().backward()
    layers = net.layer_indices(arch)
    assert layers == (1, 3)  # spread: layers 2 and 4 of 4
    q = net.model.bert.encoder.layer[1].attention.self.query.weight.grad
    assert (
        q is not None
        and q[:16, :16].abs().sum() > 0
        and q[16:].abs().sum() == 0
        and q[:, 16:].abs().sum() == 0
    )
    assert net.model.bert.encoder.layer[0].attention.self.query.weight.grad is None
    ffn = net.model.bert.encoder.layer[3].intermediate.dense.weight.grad
    assert ffn[16:].abs().sum() == 0


def test_layer_rules_pick_spread_or_first_layers() -> None:
    assert spread_layers(3, 6) == (1, 3, 5)
    assert spread_layers(1, 4) == (3,)
    assert spread_layers(4, 4) == (0, 1, 2, 3)
    net = Supernet(ClassifierConfig(Arch.uniform(6, 16, 2, 32, vocab_size=160), 2), "first")
    assert net.layer_indices(Arch.uniform(3, 16, 2, 32, vocab_size=160)) == (0, 1, 2)
    with pytest.raises(ConfigError, match="unknown layer rule 'middle'"):
        Supernet(ClassifierConfig(Arch.uniform(1, 16, 2, 32), 2), "middle")


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        (Arch.uniform(5, 16, 2, 16, vocab_size=160), "5 layers > the supernet's 4"),
        (Arch.uniform(2, 48, 2, 16, vocab_size=160), "hidden 48 > the supernet's 32"),
        (Arch.uniform(2, 16, 2, 128, vocab_size=160), "FFN 128 > the supernet's 64"),
        (Arch.uniform(2, 16, 2, 16), "vocabulary 30522"),
        (Arch.uniform(2, 16, 2, 16, vocab_size=160, head_size=64), "attention width 128"),
    ],
)
def test_an_architecture_larger_than_the_supernet_is_refused(arch: Arch, message: str) -> None:
    net = random_supernet(SPACE)
    with pytest.raises(ConfigError, match=message):
        net.extract(arch)
    with pytest.raises(ConfigError, match=message):
        run(net, arch)


def test_ranking_by_importance_keeps_the_teachers_function_and_puts_important_units_first(
    teacher_dir: Path, demo_data
) -> None:  # type: ignore[no-untyped-def]
    teacher = load_checkpoint(teacher_dir)
    texts = [e.text for e in demo_data[0].examples[:32]]
    encoded = teacher.encoder.encode(texts)
    labels = torch.as_tensor(demo_data[0].labels[:32])
    scores = importance(teacher.model, [(encoded, labels)])
    ranked = rank_by_importance(teacher.model, scores)
    with torch.no_grad():
        a = teacher.model(encoded.input_ids, encoded.attention_mask).logits
        b = ranked(encoded.input_ids, encoded.attention_mask).logits
    assert torch.allclose(a, b, atol=1e-5)
    again = importance(ranked, [(encoded, labels)])
    assert list(again.hidden) == sorted(again.hidden, reverse=True)  # most important first now
    assert all(list(n) == sorted(n, reverse=True) for n in again.neurons)


def test_a_supernet_cut_from_the_teacher_serves_the_teacher_itself_and_refuses_larger_spaces(
    teacher_dir: Path,
) -> None:
    teacher = load_checkpoint(teacher_dir).model
    net = supernet_from_teacher(teacher, covering_arch([teacher.arch]), None).eval()
    a = run(teacher, want=())
    b = run(net, teacher.arch, want=())
    assert torch.allclose(a.logits, b.logits, atol=1e-5)
    too_big = Arch.uniform(6, 32, 4, 64, vocab_size=teacher.arch.vocab_size)
    with pytest.raises(ConfigError, match=r"6 layers > the teacher.s 4.*use init random"):
        supernet_from_teacher(teacher, covering_arch([too_big]), None)


def test_a_saved_supernet_loads_back_and_computes_the_same(teacher_dir: Path, tmp_path: Path) -> None:
    ck = load_checkpoint(teacher_dir)
    net = supernet_from_teacher(
        ck.model, covering_arch([Arch.uniform(2, 16, 2, 32, vocab_size=ck.arch.vocab_size)]), None
    )
    info = SupernetInfo("spread", SPACE.to_dict(), 7, "t")
    save_supernet(tmp_path / "net", net, ck.encoder, ck.label_names, info)
    loaded = load_supernet(tmp_path / "net")
    assert loaded.info == info and loaded.label_names == ck.label_names
    arch = Arch.uniform(1, 16, 2, 16, vocab_size=ck.arch.vocab_size, max_positions=ck.arch.max_positions)
    assert torch.equal(run(net.eval(), arch, want=()).logits, run(loaded.net, arch, want=()).logits)
    with pytest.raises(CheckpointError, match=r"holds no supernet\.json"):
        load_supernet(teacher_dir)
    (tmp_path / "net" / "supernet.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"supernet\.json is malformed"):
        load_supernet(tmp_path / "net")
