"""Cross-View Training: restricted views, and a loop that is deterministic for a seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latbench.arch import Arch
from latbench.distill.checkpoint import load_checkpoint
from latbench.distill.cvt import VIEWS, train_cvt, view_mask
from latbench.distill.settings import DistillConfig, LossWeights
from latbench.distill.trainer import Batches, evaluate
from latbench.errors import ConfigError


def test_views_are_non_empty_subsets_of_the_real_tokens() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]])
    g = torch.Generator().manual_seed(0)
    forward = view_mask(mask, "forward", g)
    backward = view_mask(mask, "backward", g)
    assert forward[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0] and backward[0].tolist() == [
        0,
        0,
        0,
        1,
        1,
        1,
        0,
        0,
    ]
    assert forward[1].tolist()[:3] == [1, 1, 0] and backward[1].tolist()[:3] == [0, 1, 1]
    for view in VIEWS:
        kept = view_mask(mask, view, g)
        assert (kept <= mask).all() and (kept.sum(dim=1) >= 1).all()
    with pytest.raises(ConfigError, match="unknown view 'sideways'"):
        view_mask(mask, "sideways", g)


def test_cvt_trains_a_classifier_from_labels_and_unlabelled_text_deterministically(
    teacher_dir: Path, demo_data
) -> None:  # type: ignore[no-untyped-def]
    ck = load_checkpoint(teacher_dir)
    examples = demo_data[0].examples
    labelled = Batches(
        ck.encoder.encode([e.text for e in examples[:64]]), torch.as_tensor(demo_data[0].labels[:64])
    )
    unlabelled = ck.encoder.encode([e.text for e in examples[64:192]])
    arch = Arch.uniform(1, 16, 2, 32, vocab_size=ck.arch.vocab_size, max_positions=ck.arch.max_positions)
    config = DistillConfig(steps=4, batch_size=16, losses=LossWeights(labels=1, logits=0), seed=3)
    a = train_cvt(arch, labelled, unlabelled, config, num_labels=2)
    b = train_cvt(arch, labelled, unlabelled, config, num_labels=2)
    assert a.steps == 4 and set(a.history[-1]) == {"step", "labels", "views", "lr"}
    for x, y in zip(a.student.state_dict().values(), b.student.state_dict().values(), strict=True):
        assert torch.equal(x, y)
    assert 0.0 <= evaluate(a.student, labelled).accuracy <= 1.0
    start = a.student
    c = train_cvt(arch, labelled, unlabelled, config, num_labels=2, initial=start)
    assert c.student is not start and not torch.equal(
        c.student.classifier.weight, start.classifier.weight
    )  # trained from the given weights, which are left as they were
    with pytest.raises(ConfigError, match="needs labelled and unlabelled"):
        empty = type(unlabelled)(
            *(t[:0] for t in (unlabelled.input_ids, unlabelled.attention_mask, unlabelled.token_type_ids))
        )
        train_cvt(arch, labelled, empty, config, num_labels=2)
