"""The compact distillation trainer: a teacher classifier teaches a student architecture.

``train`` is one loop, read top to bottom: pick a batch, run the teacher (no gradients)
and the student, add up the weighted losses, step AdamW with a warm-up/linear-decay
learning rate, and now and then evaluate and save a resumable state. Everything around
it (tokenising datasets, extracting the student, the final metrics, saving files) lives in
small helpers so the loop stays short.

Losses (``LossWeights``; any combination, each term averaged over the layer pairs of the
``LayerMap``):

* ``logits`` — KL(teacher ‖ student) of the output distributions at temperature T,
  multiplied by T² so its gradients keep their scale (Hinton et al. 2015);
* ``hidden`` — TinyBERT's hidden-state MSE between paired layers (and the embedding
  outputs), through a learned linear projection W_h when the student is narrower;
  padding positions are left out;
* ``attention`` — TinyBERT's attention loss: MSE between the raw attention scores (before
  the softmax, padding keys left out) of paired layers; it needs equal head counts;
* ``relations`` — MiniLMv2's self-attention relations: queries, keys and values are
  concatenated over heads and re-split into R relation heads, and the student's
  softmax(x xᵀ/√d_r) distributions follow the teacher's (KL), so any head count works;
* ``labels`` — cross-entropy with the gold labels (fine-tuning; the only loss without a
  teacher).

Determinism: with a seed, two runs give the same weights; data order depends only on the
seed and the epoch, and the resumable state holds the random generator, so a run stopped
and resumed ends exactly where an uninterrupted one would. The state is one safetensors
file (tensors, with the step and settings as JSON metadata): no pickle.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from latbench.arch import Arch
from latbench.distill.checkpoint import Encoded
from latbench.distill.extract import LayerMap, extract_student, importance, student_for_teacher
from latbench.distill.model import HIDDEN_STATES, QKV, SCORES, Classifier, ClassifierConfig, Outputs
from latbench.distill.quality import Quality, quality
from latbench.distill.settings import DistillConfig
from latbench.errors import ConfigError
from latbench.files import atomic_output
from latbench.keys import content_key

STATE_FILE = "train-state.safetensors"


@dataclass(frozen=True)
class Batches:
    """A tokenised labelled dataset."""

    encoded: Encoded
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: Tensor) -> tuple[Encoded, Tensor]:
        return self.encoded.take(index), self.labels[index]

    def in_order(self, batch_size: int) -> list[tuple[Encoded, Tensor]]:
        return [
            self.take(torch.arange(i, min(i + batch_size, len(self))))
            for i in range(0, len(self), batch_size)
        ]


@dataclass
class TrainResult:
    student: Classifier
    layer_map: LayerMap | None
    steps: int
    history: list[dict[str, float]]  # one row per evaluation: step, dev accuracy, losses
    train_seconds: float
    resumed_from: int = 0
    teacher_dev_probs: np.ndarray | None = None  # the teacher's dev-set distributions, when both exist


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then linear decay to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def total_steps(config: DistillConfig, examples: int) -> int:
    if config.steps:
        return config.steps
    return max(1, math.ceil(config.epochs * examples / config.batch_size))


def batch_index(step: int, batch_size: int, examples: int, seed: int) -> Tensor:
    """Examples of ``step``: a fresh permutation every epoch, drawn from (seed, epoch) only."""
    per_epoch = max(1, examples // batch_size)
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(examples, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return order[position * batch_size : (position + 1) * batch_size]


def train(
    teacher: Classifier | None,
    arch: Arch,
    data: Batches,
    config: DistillConfig,
    *,
    dev: Batches | None = None,
    state_dir: Path | None = None,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
    initial: Classifier | None = None,
    quantize: tuple[int, int, bool] | None = None,
) -> TrainResult:
    """Train a student of architecture ``arch`` on ``data`` (teacher ``None``: plain
    fine-tuning on the labels). With ``state_dir`` the run saves and resumes its state.
    ``initial`` (a classifier of ``arch``, left unchanged) replaces the configured
    initialisation: a student read off a supernet starts from its own weights.
    ``quantize`` (weight bits, activation bits, fixed scales) makes the training
    quantization-aware: the student's encoder layers get LSQ quantizers before the first
    step (``latbench.distill.quant``), KDLSQ-BERT's recipe when a teacher teaches."""
    weights = config.losses.active()
    if teacher is None and set(weights) != {"labels"}:
        raise ConfigError("without a teacher the only loss is 'labels'; set the other weights to 0")
    if len(data) == 0:
        raise ConfigError("the training set is empty")
    torch.manual_seed(config.seed)
    num_labels = teacher.config.num_labels if teacher is not None else int(data.labels.max()) + 1
    layer_map, rel_heads = None, {}
    if teacher is not None:
        teacher.eval()
        layer_map = LayerMap.build(config.layer_map, arch.num_layers, teacher.arch.num_layers)
        check_losses(weights, teacher.arch, arch, layer_map)
        rel_heads = {
            s: relation_heads(
                config.relation_heads,
                teacher.arch.heads[t - 1],
                teacher.arch.layers[t - 1].attn_width,
                arch.layers[s - 1].attn_width,
            )
            for s, t in layer_map.pairs
        }
        student = _initial_student(teacher, arch, layer_map, data, config) if initial is None else None
    else:
        student = Classifier(ClassifierConfig(arch=arch, num_labels=num_labels)) if initial is None else None
    if initial is not None:
        if initial.arch.layers != arch.layers or initial.arch.hidden != arch.hidden:
            raise ConfigError("the initial student's architecture is not the one to train")
        student = copy.deepcopy(initial)
    assert student is not None
    if quantize is not None:
        from latbench.distill.quant import quantization_of, quantize_student

        if quantization_of(student) is None:
            quantize_student(student, quantize[0], quantize[1], fixed_scales=quantize[2])
    for module in student.modules():
        if isinstance(module, nn.Dropout):
            module.p = config.dropout
    projections = _projections(weights, teacher, student)
    trained = nn.ModuleList([student, projections])
    optimizer = make_optimizer(trained, config.learning_rate, config.weight_decay)
    total = total_steps(config, len(data))
    warmup = int(config.warmup_fraction * total)
    want_t, want_s = _wanted(weights)
    teacher_dev = None
    if teacher is not None and dev is not None:
        teacher_dev = predict_probs(teacher, dev.encoded, config.batch_size)

    run_key = _run_key(config, arch, teacher, data, initial, quantize)
    step, history = 0, []
    if state_dir is not None:
        step, history = resume_state(state_dir / STATE_FILE, run_key, trained, optimizer)
    resumed_from = step
    started = time.perf_counter()
    student.train()
    while step < total:
        lr = lr_at(step, total, config.learning_rate, warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        encoded, labels = data.take(batch_index(step, config.batch_size, len(data), config.seed))
        inputs = (encoded.input_ids, encoded.attention_mask, encoded.token_type_ids)
        t_out = None
        if teacher is not None:
            with torch.no_grad():
                t_out = teacher(*inputs, want=want_t)
        s_out = student(*inputs, want=want_s)
        terms = loss_terms(
            weights,
            t_out,
            s_out,
            labels,
            encoded.attention_mask,
            layer_map,
            projections,
            rel_heads,
            config.temperature,
        )
        loss = sum(weights[name] * value for name, value in terms.items())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # Clipping keeps the first steps of a randomly initialised student from diverging.
        nn.utils.clip_grad_norm_(trained.parameters(), 1.0)
        optimizer.step()
        step += 1
        logged = {name: float(value.detach()) for name, value in terms.items()} | {
            "loss": float(loss.detach()),
            "lr": lr,
        }
        if dev is not None and (step == total or (config.eval_every and step % config.eval_every == 0)):
            dev_quality = evaluate(student, dev, config.batch_size, teacher_dev)
            history.append({"step": step, "dev_accuracy": dev_quality.accuracy, **logged})
            student.train()
        if (
            state_dir is not None
            and config.checkpoint_every
            and (step % config.checkpoint_every == 0 or step == total)
        ):
            save_state(state_dir / STATE_FILE, run_key, step, history, trained, optimizer)
        if on_step is not None:
            on_step(step, total, logged)
    student.eval()
    seconds = time.perf_counter() - started
    return TrainResult(student, layer_map, step, history, seconds, resumed_from, teacher_dev)


# --- evaluation -------------------------------------------------------------------------
def predict_probs(model: Classifier, encoded: Encoded, batch_size: int = 64) -> np.ndarray:
    """Class probabilities [n, classes] of ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            part = encoded.take(torch.arange(i, min(i + batch_size, len(encoded))))
            logits = model(part.input_ids, part.attention_mask, part.token_type_ids).logits
            out.append(torch.softmax(logits.double(), dim=-1).numpy())
    model.train(was_training)
    return np.concatenate(out)


def evaluate(
    model: Classifier, data: Batches, batch_size: int = 64, teacher_probs: np.ndarray | None = None
) -> Quality:
    return quality(data.labels.numpy(), predict_probs(model, data.encoded, batch_size), teacher_probs)


# --- losses -----------------------------------------------------------------------------
def _wanted(weights: dict[str, float]) -> tuple[set[str], set[str]]:
    want = set()
    if "hidden" in weights:
        want.add(HIDDEN_STATES)
    if "attention" in weights:
        want.add(SCORES)
    if "relations" in weights:
        want.add(QKV)
    return want, set(want)


def check_losses(weights: dict[str, float], teacher: Arch, student: Arch, layer_map: LayerMap) -> None:
    if "attention" in weights:
        for s, t in layer_map.pairs:
            if student.heads[s - 1] != teacher.heads[t - 1]:
                raise ConfigError(
                    f"the attention loss compares heads one to one, but student layer {s} has "
                    f"{student.heads[s - 1]} heads and teacher layer {t} has {teacher.heads[t - 1]}; "
                    "use the relations loss (any head count) or a student with equal heads"
                )


def relation_heads(requested: int, teacher_heads: int, teacher_width: int, student_width: int) -> int:
    """Relation heads for MiniLMv2: ``requested`` if it divides both widths, else the
    largest divisor of both widths not above the teacher's head count."""
    if requested:
        if teacher_width % requested or student_width % requested:
            raise ConfigError(
                f"{requested} relation heads do not divide the attention widths "
                f"{teacher_width} (teacher) and {student_width} (student)"
            )
        return requested
    common = math.gcd(teacher_width, student_width)
    return max(r for r in range(1, teacher_heads + 1) if common % r == 0)


def loss_terms(
    weights: dict[str, float],
    t_out: Outputs | None,
    s_out: Outputs,
    labels: Tensor,
    mask: Tensor,
    layer_map: LayerMap | None,
    projections: nn.ModuleDict,
    rel_heads: dict[int, int],
    temperature: float,
) -> dict[str, Tensor]:
    terms: dict[str, Tensor] = {}
    if "labels" in weights:
        terms["labels"] = nn.functional.cross_entropy(s_out.logits, labels)
    if t_out is None or layer_map is None:
        return terms
    if "logits" in weights:
        terms["logits"] = kd_loss(t_out.logits, s_out.logits, temperature)
    valid = mask.to(s_out.logits.dtype)
    if "hidden" in weights:
        pairs = [(0, 0), *layer_map.pairs]
        terms["hidden"] = torch.stack(
            [
                masked_mse(_project(projections, s, s_out.hidden_states[s]), t_out.hidden_states[t], valid)
                for s, t in pairs
            ]
        ).mean()
    if "attention" in weights:
        terms["attention"] = torch.stack(
            [attention_mse(t_out.scores[t - 1], s_out.scores[s - 1], valid) for s, t in layer_map.pairs]
        ).mean()
    if "relations" in weights:
        parts = []
        for s, t in layer_map.pairs:
            pairs = zip(t_out.qkv[t - 1], s_out.qkv[s - 1], strict=True)
            parts.extend(relation_kl(a, b, rel_heads[s], valid) for a, b in pairs)
        terms["relations"] = torch.stack(parts).mean()
    return terms


def kd_loss(teacher_logits: Tensor, student_logits: Tensor, temperature: float) -> Tensor:
    """KL(teacher ‖ student) at ``temperature``, times T² (Hinton et al.)."""
    t = torch.log_softmax(teacher_logits / temperature, dim=-1)
    s = torch.log_softmax(student_logits / temperature, dim=-1)
    return nn.functional.kl_div(s, t, log_target=True, reduction="batchmean") * temperature**2


def masked_mse(student: Tensor, teacher: Tensor, valid: Tensor) -> Tensor:
    """Mean squared error over the real (non-padding) tokens; ``valid`` is [batch, seq]."""
    err = ((student - teacher) ** 2).mean(dim=-1)
    return (err * valid).sum() / valid.sum()


def attention_mse(teacher_scores: Tensor, student_scores: Tensor, valid: Tensor) -> Tensor:
    """MSE of raw attention scores [batch, heads, seq, seq] over real query/key pairs."""
    pair = valid[:, None, :, None] * valid[:, None, None, :]
    err = (student_scores - teacher_scores) ** 2 * pair
    return err.sum() / (pair.sum() * teacher_scores.shape[1])


def relation_kl(teacher: Tensor, student: Tensor, heads: int, valid: Tensor) -> Tensor:
    """MiniLMv2 relation loss between [batch, seq, width] vectors re-split into ``heads``."""

    def log_relations(x: Tensor) -> Tensor:
        batch, seq, width = x.shape
        d = width // heads
        split = x.view(batch, seq, heads, d).transpose(1, 2)
        scores = torch.matmul(split, split.transpose(-1, -2)) / math.sqrt(d)
        bias = (1.0 - valid[:, None, None, :]) * torch.finfo(x.dtype).min
        return torch.log_softmax(scores + bias, dim=-1)

    t, s = log_relations(teacher), log_relations(student)
    per_row = (t.exp() * (t - s)).sum(dim=-1)  # KL per (batch, head, query)
    rows = valid[:, None, :].expand_as(per_row)
    return (per_row * rows).sum() / rows.sum()


def _project(projections: nn.ModuleDict, student_layer: int, hidden: Tensor) -> Tensor:
    key = str(student_layer)
    return projections[key](hidden) if key in projections else hidden


def _projections(weights: dict[str, float], teacher: Classifier | None, student: Classifier) -> nn.ModuleDict:
    """TinyBERT's W_h: one learned projection per paired layer when the student is narrower."""
    mods = nn.ModuleDict()
    if teacher is None or "hidden" not in weights or teacher.arch.hidden == student.arch.hidden:
        return mods
    for s in range(student.arch.num_layers + 1):
        mods[str(s)] = nn.Linear(student.arch.hidden, teacher.arch.hidden, bias=False)
    return mods


# --- set-up helpers ---------------------------------------------------------------------
def _initial_student(
    teacher: Classifier, arch: Arch, layer_map: LayerMap, data: Batches, config: DistillConfig
) -> Classifier:
    if config.init == "random":
        return Classifier(replace(teacher.config, arch=student_for_teacher(arch, teacher.arch)))
    batches = [
        data.take(batch_index(i, config.batch_size, len(data), config.seed + 7919))
        for i in range(config.importance_batches)
    ]
    return extract_student(
        teacher, student_for_teacher(arch, teacher.arch), layer_map.init, importance(teacher, batches)
    )


def make_optimizer(trained: nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    # No weight decay on biases and LayerNorm gains, as in BERT.
    decay = [p for n, p in trained.named_parameters() if p.ndim >= 2 and "LayerNorm" not in n]
    no_decay = [p for n, p in trained.named_parameters() if not (p.ndim >= 2 and "LayerNorm" not in n)]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
    )


def _run_key(
    config: DistillConfig,
    arch: Arch,
    teacher: Classifier | None,
    data: Batches,
    initial: Classifier | None,
    quantize: tuple[int, int, bool] | None = None,
) -> str:
    """What a saved state must match to be resumed: settings, student, teacher, data (and
    the initial student's weights, when one was given)."""
    teacher_sum = 0.0 if teacher is None else _weight_sum(teacher)
    key = {
        "config": config.to_dict(),
        "arch": arch.to_dict(),
        "teacher": None if teacher is None else [teacher.arch.to_dict(), round(teacher_sum, 6)],
        "data": [len(data), int(data.encoded.input_ids.sum()), int(data.labels.sum())],
    }
    if initial is not None:
        key["initial"] = round(_weight_sum(initial), 6)
    if quantize is not None:
        key["quantize"] = list(quantize)
    return content_key(key)


def _weight_sum(model: nn.Module) -> float:
    with torch.no_grad():
        return float(sum(p.double().sum() for p in model.parameters()))


# --- resumable state --------------------------------------------------------------------
def save_state(
    path: Path,
    run_key: str,
    step: int,
    history: Sequence[dict[str, float]],
    trained: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> None:
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v.detach().clone().contiguous() for k, v in trained.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for name, value in state.items():
            tensors[f"optim/{index}/{name}"] = value.detach().clone().contiguous()
    tensors["rng/torch"] = torch.get_rng_state()
    meta = {"run_key": run_key, "step": step, "history": list(history), "param_groups": opt["param_groups"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file(tensors, tmp, metadata={"latbench": json.dumps(meta)})


def resume_state(
    path: Path, run_key: str, trained: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[int, list[dict[str, float]]]:
    if not path.is_file():
        return 0, []
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("latbench", "{}"))
        if meta.get("run_key") != run_key:
            raise ConfigError(
                f"{path} was saved by a run with other settings, student, teacher or data; "
                "use another output folder, or delete that file to start over"
            )
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (not a dict)
    trained.load_state_dict({k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")})
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng/torch"])
    return int(meta["step"]), list(meta["history"])
