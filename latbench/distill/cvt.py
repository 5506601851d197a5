"""Cross-View Training (Clark et al. 2018) for sentence classifiers: labels plus
unlabelled text, without a teacher.

The seed paper compares task-specific semi-supervised training with task-agnostic
pre-training; this is its method, on latbench's classifier. ``train_cvt`` is one loop:
each step takes a labelled batch (cross-entropy of the primary classifier) and an
unlabelled batch. On the unlabelled batch the primary classifier, seeing the whole
sentence, predicts a distribution (no gradient: the target), and auxiliary prediction
modules, each seeing a *restricted view* of the sentence through the shared encoder,
learn to match it (KL). The shared encoder improves because the auxiliary modules must
predict well from partial input. Views (a transformer's counterpart of CVT's
forward/backward/future/past LSTM views):

* ``forward`` — only the first half of the sentence's tokens (attention cannot reach the rest);
* ``backward`` — only the second half;
* ``dropout`` — a random half of the tokens.

An auxiliary module is a linear classifier on the mean of the view's final hidden states;
it exists only during training (the returned classifier is the primary one).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from latbench.arch import Arch
from latbench.distill.checkpoint import Encoded
from latbench.distill.model import HIDDEN_STATES, Classifier, ClassifierConfig
from latbench.distill.settings import DistillConfig
from latbench.distill.trainer import Batches, batch_index, lr_at, make_optimizer, total_steps
from latbench.errors import ConfigError

VIEWS = ("forward", "backward", "dropout")


@dataclass
class CvtResult:
    student: Classifier
    steps: int
    history: list[dict[str, float]]
    train_seconds: float


def view_mask(mask: Tensor, view: str, generator: torch.Generator) -> Tensor:
    """The attention mask [batch, seq] of ``view``: a subset (never empty) of ``mask``'s
    real tokens."""
    lengths = mask.sum(dim=1, keepdim=True)
    positions = torch.arange(mask.shape[1]).unsqueeze(0)
    half = (lengths + 1) // 2
    if view == "forward":
        keep = positions < half
    elif view == "backward":
        keep = (positions >= lengths - half) & (positions < lengths)
    elif view == "dropout":
        keep = torch.rand(mask.shape, generator=generator) < 0.5
        first = mask.float().argmax(dim=1, keepdim=True)  # every row keeps at least one token
        keep = keep | (positions == first)
    else:
        raise ConfigError(f"unknown view {view!r}; use {', '.join(VIEWS)}")
    return (mask.bool() & keep).to(mask.dtype)


class AuxiliaryModules(nn.Module):
    """One linear classifier per view on mean-pooled final hidden states."""

    def __init__(self, hidden: int, num_labels: int, views: tuple[str, ...] = VIEWS) -> None:
        super().__init__()
        self.views = views
        self.heads = nn.ModuleList(nn.Linear(hidden, num_labels) for _ in views)

    def forward(self, index: int, hidden: Tensor, mask: Tensor) -> Tensor:
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.heads[index](pooled)


def train_cvt(
    arch: Arch,
    labelled: Batches,
    unlabelled: Encoded,
    config: DistillConfig,
    *,
    num_labels: int,
    initial: Classifier | None = None,
) -> CvtResult:
    """Train a classifier of ``arch`` on ``labelled`` plus ``unlabelled`` text by CVT
    (``config``: steps or epochs over the labelled set, batch size, learning rate, seed;
    its loss weights are not used). ``initial`` starts from given weights instead of
    random ones."""
    if len(labelled) == 0 or len(unlabelled) == 0:
        raise ConfigError("cross-view training needs labelled and unlabelled examples")
    torch.manual_seed(config.seed)
    if initial is not None:
        student = copy.deepcopy(initial)
    else:
        student = Classifier(ClassifierConfig(arch=arch, num_labels=num_labels))
    for module in student.modules():
        if isinstance(module, nn.Dropout):
            module.p = config.dropout
    auxiliary = AuxiliaryModules(arch.hidden, num_labels)
    trained = nn.ModuleList([student, auxiliary])
    optimizer = make_optimizer(trained, config.learning_rate, config.weight_decay)
    total = total_steps(config, len(labelled))
    warmup = int(config.warmup_fraction * total)
    generator = torch.Generator().manual_seed(config.seed + 17)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    student.train()
    for step in range(total):
        lr = lr_at(step, total, config.learning_rate, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        encoded, labels = labelled.take(batch_index(step, config.batch_size, len(labelled), config.seed))
        logits = student(encoded.input_ids, encoded.attention_mask, encoded.token_type_ids).logits
        supervised = nn.functional.cross_entropy(logits, labels)
        u = unlabelled.take(batch_index(step, config.batch_size, len(unlabelled), config.seed + 1))
        student.eval()
        with torch.no_grad():  # the primary module's full-view prediction is the target
            target = torch.log_softmax(
                student(u.input_ids, u.attention_mask, u.token_type_ids).logits, dim=-1
            )
        student.train()
        parts = []
        for index, view in enumerate(auxiliary.views):
            mask = view_mask(u.attention_mask, view, generator)
            hidden = student(u.input_ids, mask, u.token_type_ids, want=(HIDDEN_STATES,)).hidden_states[-1]
            predicted = torch.log_softmax(auxiliary(index, hidden, mask), dim=-1)
            parts.append(nn.functional.kl_div(predicted, target, log_target=True, reduction="batchmean"))
        consistency = torch.stack(parts).mean()
        loss = supervised + consistency
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        optimizer.step()
        if step + 1 == total:
            history.append(
                {
                    "step": step + 1,
                    "labels": float(supervised.detach()),
                    "views": float(consistency.detach()),
                    "lr": lr,
                }
            )
    student.eval()
    return CvtResult(student, total, history, time.perf_counter() - started)
