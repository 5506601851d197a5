"""Layer maps and teacher-extracted students (ETD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latbench.arch import Arch
from latbench.distill.checkpoint import load_checkpoint
from latbench.distill.extract import LayerMap, extract_student, importance
from latbench.errors import ConfigError


def test_uniform_map_pairs_evenly_spaced_teacher_layers() -> None:
    m = LayerMap.build("uniform", 4, 12)
    assert m.pairs == ((1, 3), (2, 6), (3, 9), (4, 12))
    assert m.init == (3, 6, 9, 12)
    assert LayerMap.build("uniform", 3, 3).pairs == ((1, 1), (2, 2), (3, 3))


def test_last_map_pairs_only_the_last_layers_but_initialises_uniformly() -> None:
    m = LayerMap.build("last", 2, 6)
    assert m.pairs == ((2, 6),)
    assert m.init == (3, 6)


def test_an_explicit_map_is_used_as_given() -> None:
    m = LayerMap.build([1, 1, 4], 3, 4)
    assert m.pairs == ((1, 1), (2, 1), (3, 4)) and m.init == (1, 1, 4)


@pytest.mark.parametrize(
    ("mapping", "student", "teacher", "message"),
    [
        ([1, 2], 3, 4, "names 2 teacher layers but the student has 3"),
        ([1, 5], 2, 4, "not a teacher layer; the teacher has layers 1..4"),
        ([0, 1], 2, 4, "not a teacher layer"),
        ("uniform", 6, 4, "the student has 6 layers but the teacher only 4"),
        ("middle", 2, 4, "unknown layer map 'middle'"),
    ],
)
def test_incompatible_layer_maps_are_refused(mapping, student: int, teacher: int, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message):
        LayerMap.build(mapping, student, teacher)


def batches(ck, demo_data, n: int = 2):  # type: ignore[no-untyped-def]
    texts = [e.text for e in demo_data[0].examples[: 16 * n]]
    labels = torch.as_tensor(demo_data[0].labels[: 16 * n])
    encoded = ck.encoder.encode(texts)
    return [(encoded.take(torch.arange(i, i + 16)), labels[i : i + 16]) for i in range(0, 16 * n, 16)]


def logits(model, encoded, **kwargs) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return model(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids, **kwargs).logits


def test_importance_scores_every_head_neuron_and_hidden_dimension(teacher_dir: Path, demo_data) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)
    scores = importance(ck.model, batches(ck, demo_data))
    assert [len(h) for h in scores.heads] == list(ck.arch.heads)
    assert [len(n) for n in scores.neurons] == list(ck.arch.ffn)
    assert len(scores.hidden) == ck.arch.hidden
    assert all(np.all(h > 0) for h in scores.heads)
    assert not ck.model.training  # scoring leaves the model as it was


def test_a_student_equal_to_its_teacher_is_an_exact_copy(teacher_dir: Path, demo_data) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)
    data = batches(ck, demo_data)
    student = extract_student(ck.model, ck.arch, (1, 2, 3, 4), importance(ck.model, data)).eval()
    encoded = data[0][0]
    torch.testing.assert_close(logits(student, encoded), logits(ck.model, encoded), rtol=0, atol=0)


def test_a_shallower_student_equals_the_teacher_without_the_dropped_layers(
    teacher_dir: Path, demo_data
) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)
    data = batches(ck, demo_data)
    arch = Arch(
        hidden=ck.arch.hidden, heads=ck.arch.heads[:2], ffn=ck.arch.ffn[:2], vocab_size=ck.arch.vocab_size
    )
    student = extract_student(ck.model, arch, (2, 4), importance(ck.model, data)).eval()
    encoded = data[0][0]
    torch.testing.assert_close(logits(student, encoded), logits(ck.model, encoded, layers={1, 3}))


def test_pruning_dead_ffn_neurons_keeps_the_outputs(teacher_dir: Path, demo_data) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)
    half = ck.arch.ffn[0] // 2
    with torch.no_grad():  # neurons half.. of every layer do nothing
        for layer in ck.model.bert.encoder.layer:
            layer.intermediate.dense.weight[half:] = 0
            layer.intermediate.dense.bias[half:] = 0
            layer.output.dense.weight[:, half:] = 0
    data = batches(ck, demo_data)
    scores = importance(ck.model, data)
    assert all(np.all(n[half:] == 0) for n in scores.neurons)
    arch = Arch.uniform(
        ck.arch.num_layers, ck.arch.hidden, ck.arch.heads[0], half, vocab_size=ck.arch.vocab_size
    )
    student = extract_student(ck.model, arch, (1, 2, 3, 4), scores).eval()
    encoded = data[0][0]
    torch.testing.assert_close(logits(student, encoded), logits(ck.model, encoded), rtol=1e-5, atol=1e-6)


def test_a_narrower_student_keeps_the_most_important_units(teacher_dir: Path, demo_data) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)
    scores = importance(ck.model, batches(ck, demo_data))
    arch = Arch.uniform(2, 16, 2, 32, vocab_size=ck.arch.vocab_size)
    student = extract_student(ck.model, arch, (2, 4), scores)
    kept = np.sort(np.argsort(-scores.hidden, kind="stable")[:16])
    torch.testing.assert_close(
        student.bert.embeddings.word_embeddings.weight,
        ck.model.bert.embeddings.word_embeddings.weight[:, kept],
    )
    neurons = np.sort(np.argsort(-scores.neurons[1], kind="stable")[:32])
    torch.testing.assert_close(
        student.bert.encoder.layer[0].intermediate.dense.bias,
        ck.model.bert.encoder.layer[1].intermediate.dense.bias[neurons],
    )


def test_a_student_wider_than_its_teacher_cannot_be_extracted(teacher_dir: Path, demo_data) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)
    scores = importance(ck.model, batches(ck, demo_data, 1))
    wide = Arch.uniform(2, 64, 4, 64, vocab_size=ck.arch.vocab_size)
    with pytest.raises(ConfigError, match=r"hidden 64 > teacher's 32.*use random initialisation"):
        extract_student(ck.model, wide, (2, 4), scores)
    fat = Arch.uniform(2, 32, 4, 128, vocab_size=ck.arch.vocab_size)
    with pytest.raises(ConfigError, match="student layer 1 has FFN 128 > teacher layer 2's 64"):
        extract_student(ck.model, fat, (2, 4), scores)


def test_a_student_with_larger_heads_takes_whole_teacher_heads(teacher_dir: Path, demo_data) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)  # teacher: 4 heads of size 8
    scores = importance(ck.model, batches(ck, demo_data, 1))
    arch = Arch.uniform(2, 32, 2, 64, vocab_size=ck.arch.vocab_size)  # 2 heads of size 16
    student = extract_student(ck.model, arch, (2, 4), scores).eval()
    torch.testing.assert_close(  # all 4 teacher heads fill the width: query weights unchanged
        student.bert.encoder.layer[0].attention.self.query.weight,
        ck.model.bert.encoder.layer[1].attention.self.query.weight,
    )


def test_a_student_with_fixed_head_size_takes_the_teachers_best_head_dimensions(
    teacher_dir: Path, demo_data
) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)  # teacher: hidden 32, 4 heads of size 8
    scores = importance(ck.model, batches(ck, demo_data, 1))
    arch = Arch.uniform(2, 16, 3, 32, vocab_size=ck.arch.vocab_size, head_size=8)  # attention 24 wide
    student = extract_student(ck.model, arch, (2, 4), scores).eval()
    query = student.bert.encoder.layer[0].attention.self.query
    assert tuple(query.weight.shape) == (24, 16)
    heads = np.sort(np.argsort(-scores.heads[1], kind="stable")[:3])
    kept_hidden = np.sort(np.argsort(-scores.hidden, kind="stable")[:16])
    rows = np.concatenate([np.arange(h * 8, h * 8 + 8) for h in heads])  # whole heads: same size
    torch.testing.assert_close(
        query.weight, ck.model.bert.encoder.layer[1].attention.self.query.weight[rows][:, kept_hidden]
    )
    encoded = batches(ck, demo_data, 1)[0][0]
    assert logits(student, encoded).shape == (16, 2)


def test_a_student_with_wider_attention_than_its_teacher_cannot_be_extracted(
    teacher_dir: Path, demo_data
) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)  # teacher attention: 4 heads x 8 = 32
    scores = importance(ck.model, batches(ck, demo_data, 1))
    wide = Arch.uniform(2, 32, 5, 64, vocab_size=ck.arch.vocab_size, head_size=8)
    with pytest.raises(ConfigError, match=r"attention width 40 \(5 heads x 8\) > teacher layer 2's 32"):
        extract_student(ck.model, wide, (2, 4), scores)
