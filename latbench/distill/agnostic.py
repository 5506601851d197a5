"""Task-agnostic training of supernets: a teacher teaches every student at once, no labels.

``train_supernet`` is one loop, read top to bottom: pick a batch of unlabelled text, run
the teacher once (no gradients), then, by the sandwich rule, the space's largest student,
its smallest and a few random ones on the shared weights (``latbench.distill.supernet``),
each adding the gradient of its distillation loss; clip, step AdamW with a warm-up/linear-
decay learning rate, and now and then save a resumable state (the trainer's format: one
safetensors file, no pickle). Random students are drawn from (seed, step) only, so a run
stopped and resumed ends exactly where an uninterrupted one would.

Losses (``SupernetConfig.losses``), all between the student's last layer and the
teacher's, as MiniLM pairs them, so any depth and head count can learn:

* ``relations`` — MiniLMv2's query-query, key-key and value-value relations (KL);
* ``hidden`` — the last hidden states (MSE over real tokens), through one shared learned
  projection sliced to the student's width when it is narrower than the teacher;
* ``logits`` — the teacher's output distribution (KL at the temperature): the teacher's
  own predictions, still no label.

``agnostic_loss`` scores a student read off the supernet on held-out text by the same
losses: the one-shot evaluator's task-free quality (lower is better).

``train_shots`` trains K supernets, one per sub-space of a K-shot partition (AutoDistil's
Base/Small/Tiny), from one teacher and one text set, into ``out/<shot name>/``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from latbench.arch import Arch
from latbench.distill.checkpoint import Encoded
from latbench.distill.extract import importance, student_for_teacher
from latbench.distill.model import HIDDEN_STATES, QKV, Classifier, Outputs
from latbench.distill.settings import SupernetConfig
from latbench.distill.supernet import (
    ArchSpace,
    Supernet,
    SupernetInfo,
    covering_arch,
    initialisation_problems,
    reference_teacher,
    save_supernet,
    spread_layers,
    supernet_from_teacher,
)
from latbench.distill.trainer import (
    STATE_FILE,
    batch_index,
    kd_loss,
    lr_at,
    make_optimizer,
    masked_mse,
    relation_heads,
    relation_kl,
    resume_state,
    save_state,
)
from latbench.errors import ConfigError
from latbench.files import atomic_output
from latbench.keys import content_key

SHOTS_FILE = "shots.json"


@dataclass
class SupernetResult:
    net: Supernet
    steps: int
    history: list[dict[str, float]]  # one row per saved state: step, losses, held-out scores
    train_seconds: float
    resumed_from: int = 0


class AgnosticLoss(nn.Module):
    """The task-agnostic loss of any student against the teacher (see the module
    docstring); holds the shared hidden-state projection, the only trained part besides
    the supernet."""

    def __init__(self, teacher: Arch, max_arch: Arch, config: SupernetConfig) -> None:
        super().__init__()
        self.weights = config.losses.active()
        self.temperature = config.temperature
        self.requested_heads = config.relation_heads
        self.teacher_arch = teacher
        self.projection = (
            nn.Linear(max_arch.hidden, teacher.hidden, bias=False) if "hidden" in self.weights else None
        )
        want = set()
        if "hidden" in self.weights:
            want.add(HIDDEN_STATES)
        if "relations" in self.weights:
            want.add(QKV)
        self.want = frozenset(want)

    def check(self, arch: Arch) -> None:
        """Raise ``ConfigError`` when no relation head count divides both widths."""
        self._heads(arch)

    def _heads(self, arch: Arch) -> int:
        t = self.teacher_arch.layers[-1]
        return relation_heads(self.requested_heads, t.heads, t.attn_width, arch.layers[-1].attn_width)

    def forward(self, arch: Arch, t_out: Outputs, s_out: Outputs, mask: Tensor) -> dict[str, Tensor]:
        valid = mask.to(s_out.logits.dtype)
        terms: dict[str, Tensor] = {}
        if "relations" in self.weights:
            heads = self._heads(arch)
            pairs = zip(t_out.qkv[-1], s_out.qkv[-1], strict=True)
            terms["relations"] = torch.stack([relation_kl(t, s, heads, valid) for t, s in pairs]).mean()
        if "hidden" in self.weights:
            hidden = s_out.hidden_states[-1]
            if arch.hidden != self.teacher_arch.hidden:
                assert self.projection is not None
                hidden = nn.functional.linear(hidden, self.projection.weight[:, : arch.hidden])
            terms["hidden"] = masked_mse(hidden, t_out.hidden_states[-1], valid)
        if "logits" in self.weights:
            terms["logits"] = kd_loss(t_out.logits, s_out.logits, self.temperature)
        return terms

    def total(self, terms: dict[str, Tensor]) -> Tensor:
        return sum(self.weights[name] * value for name, value in terms.items())  # type: ignore[return-value]


def teacher_blocks(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(start, end) teacher hidden-state indices each student layer stands for (0 is the
    embedding output): the uniform map's blocks, e.g. 2 of 4 layers -> (0, 2), (2, 4)."""
    ends = [t + 1 for t in spread_layers(student_layers, teacher_layers)]
    return list(zip([0, *ends[:-1]], ends, strict=True))


def block_losses(net: Supernet, arch: Arch, t_hidden: Sequence[Tensor], mask: Tensor) -> Tensor:
    """NAS-BERT's block losses of student ``arch``: per layer, the MSE between what the
    layer makes of the (reference) teacher's hidden states at its block's start and the
    teacher's at its end, over the student's leading hidden dimensions and real tokens."""
    valid = mask.to(t_hidden[0].dtype)
    h = arch.hidden
    losses = []
    for index, (start, end) in enumerate(teacher_blocks(arch.num_layers, len(t_hidden) - 1)):
        out = net.run_layer(arch, index, t_hidden[start][..., :h], mask)
        losses.append(masked_mse(out, t_hidden[end][..., :h], valid))
    return torch.stack(losses)


def space_extremes(space: ArchSpace, teacher: Arch) -> tuple[Arch, Arch]:
    """The space's largest and smallest students, reading the teacher's inputs."""
    return student_for_teacher(space.largest(), teacher), student_for_teacher(space.smallest(), teacher)


def sandwich(space: ArchSpace, teacher: Arch, random_students: int, seed: int, step: int) -> list[Arch]:
    """The students of one step: largest, smallest, then ``random_students`` drawn from
    (seed, step) only."""
    rng = random.Random(seed * 1_000_003 + step)
    largest, smallest = space_extremes(space, teacher)
    drawn = [student_for_teacher(space.sample(rng), teacher) for _ in range(random_students)]
    return [largest, smallest, *drawn]


def new_supernet(teacher: Classifier, space: ArchSpace, texts: Encoded, config: SupernetConfig) -> Supernet:
    """The untrained supernet of ``space``: cut from the importance-ranked teacher (ETD,
    importance from the teacher's own predictions, so no label is read) or random."""
    largest, smallest = space_extremes(space, teacher.arch)
    max_arch = covering_arch([largest, smallest])
    if config.init == "random":
        torch.manual_seed(config.seed)
        return Supernet(replace(teacher.config, arch=max_arch), config.layer_rule)
    batches = []
    for i in range(config.importance_batches):
        part = texts.take(batch_index(i, config.batch_size, len(texts), config.seed + 7919))
        with torch.no_grad():
            predicted = teacher(part.input_ids, part.attention_mask, part.token_type_ids).logits.argmax(-1)
        batches.append((part, predicted))
    scores = importance(teacher, batches) if batches else None
    return supernet_from_teacher(teacher, max_arch, scores, config.layer_rule)


def train_supernet(
    teacher: Classifier,
    space: ArchSpace,
    texts: Encoded,
    config: SupernetConfig,
    *,
    held_out: Encoded | None = None,
    state_dir: Path | None = None,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
) -> SupernetResult:
    """Train the supernet of ``space`` from ``teacher`` on unlabelled ``texts``. With
    ``state_dir`` the run saves and resumes its state."""
    if len(texts) == 0:
        raise ConfigError("there is no text to train on")
    run_key = _run_key(config, space, teacher, texts)
    net = new_supernet(teacher, space, texts, config)
    # The students' slices follow the reordered teacher's units, so its outputs are the targets.
    teacher = reference_teacher(teacher, net).eval()
    loss_fn = AgnosticLoss(teacher.arch, net.max_arch, config)
    for arch in space_extremes(space, teacher.arch):
        net.check(arch)
        loss_fn.check(arch)
    for module in net.model.modules():
        if isinstance(module, nn.Dropout):
            module.p = config.dropout
    trained = nn.ModuleList([net, loss_fn])
    torch.manual_seed(config.seed)
    optimizer = make_optimizer(trained, config.learning_rate, config.weight_decay)
    total, warmup = config.steps, int(config.warmup_fraction * config.steps)
    blockwise = config.training == "blockwise"
    step, history = 0, []
    if state_dir is not None:
        step, history = resume_state(state_dir / STATE_FILE, run_key, trained, optimizer)
    resumed_from = step
    started = time.perf_counter()
    net.train()
    while step < total:
        lr = lr_at(step, total, config.learning_rate, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = texts.take(batch_index(step, config.batch_size, len(texts), config.seed))
        inputs = (batch.input_ids, batch.attention_mask, batch.token_type_ids)
        with torch.no_grad():
            t_out = teacher(*inputs, want=loss_fn.want | ({HIDDEN_STATES} if blockwise else set()))
        optimizer.zero_grad(set_to_none=True)
        logged: dict[str, float] = {}
        students = sandwich(space, teacher.arch, config.random_students, config.seed, step)
        for arch in students:
            if blockwise:
                terms = {"blocks": block_losses(net, arch, t_out.hidden_states, batch.attention_mask).sum()}
                loss = terms["blocks"] / len(students)
            else:
                terms = loss_fn(arch, t_out, net(arch, *inputs, want=loss_fn.want), batch.attention_mask)
                loss = loss_fn.total(terms) / len(students)
            loss.backward()
            for name, value in terms.items():
                logged[name] = logged.get(name, 0.0) + float(value.detach()) / len(students)
        nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        optimizer.step()
        step += 1
        weights = {"blocks": 1.0} if blockwise else loss_fn.weights
        logged |= {"loss": sum(v * weights[k] for k, v in logged.items()), "lr": lr}
        saving = (
            state_dir is not None
            and config.checkpoint_every
            and (step % config.checkpoint_every == 0 or step == total)
        )
        if saving or step == total:
            row = {"step": step, **logged}
            if held_out is not None:
                largest, smallest = space_extremes(space, teacher.arch)
                score = blockwise_loss if blockwise else agnostic_loss
                row["held_out_largest"] = score(net, largest, teacher, loss_fn, held_out)
                row["held_out_smallest"] = score(net, smallest, teacher, loss_fn, held_out)
                net.train()
            history.append(row)
        if saving:
            assert state_dir is not None
            save_state(state_dir / STATE_FILE, run_key, step, history, trained, optimizer)
        if on_step is not None:
            on_step(step, total, logged)
    net.eval()
    return SupernetResult(net, step, history, time.perf_counter() - started, resumed_from)


def agnostic_loss(
    net: Supernet,
    arch: Arch,
    teacher: Classifier,
    loss_fn: AgnosticLoss,
    texts: Encoded,
    batch_size: int = 64,
) -> float:
    """The weighted task-agnostic loss of student ``arch`` (read off ``net``) on ``texts``,
    averaged over examples: lower is closer to the teacher. ``teacher`` is the reference
    teacher (``reference_teacher(teacher, net)``)."""

    def loss(part: Encoded) -> Tensor:
        inputs = (part.input_ids, part.attention_mask, part.token_type_ids)
        t_out, s_out = teacher(*inputs, want=loss_fn.want), net(arch, *inputs, want=loss_fn.want)
        return loss_fn.total(loss_fn(arch, t_out, s_out, part.attention_mask))

    return _mean_over(net, texts, batch_size, loss)


def blockwise_loss(
    net: Supernet,
    arch: Arch,
    teacher: Classifier,
    loss_fn: AgnosticLoss | None,
    texts: Encoded,
    batch_size: int = 64,
) -> float:
    """The sum of student ``arch``'s block losses (``block_losses``) on ``texts``, averaged
    over examples: NAS-BERT's score (lower is better). ``teacher`` is the reference teacher."""

    def loss(part: Encoded) -> Tensor:
        hidden = teacher(part.input_ids, part.attention_mask, part.token_type_ids, want=(HIDDEN_STATES,))
        return block_losses(net, arch, hidden.hidden_states, part.attention_mask).sum()

    return _mean_over(net, texts, batch_size, loss)


def _mean_over(net: Supernet, texts: Encoded, batch_size: int, loss: Callable[[Encoded], Tensor]) -> float:
    """``loss`` (a batch mean) averaged over ``texts`` in eval mode, without gradients."""
    was_training = net.training
    net.eval()
    total, seen = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            part = texts.take(torch.arange(i, min(i + batch_size, len(texts))))
            total += float(loss(part)) * len(part)
            seen += len(part)
    net.train(was_training)
    return total / max(1, seen)


def _run_key(config: SupernetConfig, space: ArchSpace, teacher: Classifier, texts: Encoded) -> str:
    with torch.no_grad():
        teacher_sum = float(sum(p.double().sum() for p in teacher.parameters()))
    settings = config.to_dict()
    settings.pop("checkpoint_every")
    return content_key(
        {
            "config": settings,
            "space": space.to_dict(),
            "teacher": [teacher.arch.to_dict(), round(teacher_sum, 6)],
            "data": [len(texts), int(texts.input_ids.sum())],
        }
    )


# --- K shots ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ShotOutcome:
    name: str
    path: Path
    steps: int
    train_seconds: float
    resumed_from: int
    history: tuple[dict[str, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path.name,
            "steps": self.steps,
            "train_seconds": self.train_seconds,
            "resumed_from": self.resumed_from,
            "history": list(self.history),
        }


def train_shots(
    teacher: Any,
    shots: Sequence[ArchSpace],
    texts: Sequence[str],
    out_dir: str | Path,
    config: SupernetConfig,
    *,
    teacher_name: str = "",
    on_shot: Callable[[int, str], None] | None = None,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
) -> list[ShotOutcome]:
    """Train one supernet per sub-space in ``shots`` (K >= 1) from the loaded teacher
    checkpoint ``teacher`` on the unlabelled ``texts`` and save each in
    ``out_dir/<shot name>/`` (a shot already saved with the same settings is kept; an
    interrupted one resumes), listed in ``out_dir/shots.json``."""
    check_shots(teacher.model, shots, config)
    train_texts, held_texts = split_texts(texts, config.held_out_fraction, config.seed)
    encoded = teacher.encoder.encode(list(train_texts))
    held = teacher.encoder.encode(list(held_texts))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for index, space in enumerate(shots):
        if on_shot is not None:
            on_shot(index, space.name)
        shot_dir = out / space.name
        result = train_supernet(
            teacher.model,
            space,
            encoded,
            config,
            held_out=held,
            state_dir=shot_dir / "state",
            on_step=on_step,
        )
        info = SupernetInfo(config.layer_rule, space.to_dict(), result.steps, teacher_name)
        save_supernet(shot_dir, result.net, teacher.encoder, teacher.label_names, info)
        outcomes.append(
            ShotOutcome(
                space.name,
                shot_dir,
                result.steps,
                result.train_seconds,
                result.resumed_from,
                tuple(result.history),
            )
        )
    document = {
        "teacher": teacher_name,
        "config": config.to_dict(),
        "texts": {"train": len(train_texts), "held_out": len(held_texts)},
        "shots": [o.to_dict() for o in outcomes],
    }
    with atomic_output(out / SHOTS_FILE) as tmp:
        Path(tmp).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return outcomes


def check_shots(teacher: Classifier, shots: Sequence[ArchSpace], config: SupernetConfig) -> None:
    """Fail now, before any text is read or step taken, on shots that cannot be trained:
    repeated names, a supernet larger than the teacher it is cut from, students whose
    attention no relation head count divides."""
    if not shots:
        raise ConfigError("give at least one search space to train a supernet for")
    names = [s.name for s in shots]
    if len(set(names)) != len(names):
        raise ConfigError(f"the shots' names must differ, got {names}")
    loss_fn = AgnosticLoss(teacher.arch, teacher.arch, config)
    for space in shots:
        extremes = space_extremes(space, teacher.arch)
        if config.init == "etd":
            problems = initialisation_problems(teacher.arch, covering_arch(list(extremes)))
            if problems:
                raise ConfigError(
                    f"the supernet of {space.name} cannot be initialised from this teacher: "
                    + "; ".join(problems)
                    + " (use init random, or a space no larger than the teacher)"
                )
        for arch in extremes:
            loss_fn.check(arch)


def split_texts(texts: Sequence[str], fraction: float, seed: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Training and held-out sentences (at least one each), drawn from ``seed``."""
    if len(texts) < 2:
        raise ConfigError(f"task-agnostic training needs at least 2 sentences, got {len(texts)}")
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    held = max(1, round(fraction * len(texts)))
    return tuple(texts[i] for i in order[held:]), tuple(texts[i] for i in order[:held])
