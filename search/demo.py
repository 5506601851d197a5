"""The built-in demo task and demo teacher: a distillation workload that needs no download.

**The task** ("compositional sentiment") is generated from a fixed seed. A text is one to
three clauses joined by "but"; each clause mixes neutral words with sentiment words, and a
sentiment word may be negated ("not", "never", "hardly": its polarity flips) or
intensified ("very", "really", "extremely": it counts double). A clause scores the sum of
its words; the clause after the last "but" counts three times. The label is the sign of
the total (ties are re-drawn), and 2% of labels are flipped, so even a perfect model stays
below 100%.

Why it is built this way: a bag of words gets the easy cases right; flipping negated
words needs attention to the previous token; and the weight of the last clause needs the
position of "but", so accuracy keeps growing with depth and width — small students really
lose accuracy and the accuracy–latency front is not flat.

**The demo teacher** is a 4-layer, 128-wide BERT that latbench trains on that task from
random initialisation (1,200 steps without dropout, about 3 minutes on two CPU cores,
~81% dev accuracy where a logistic regression on words gets 64% and on word pairs 75%),
saved as a Hugging
Face checkpoint with a WordPiece tokenizer trained on the task's texts with ``tokenizers``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from latbench.arch import Arch
from search.data import Example, TextDataset, load_dataset, save_jsonl


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


POSITIVE = _words(
    "good great fine superb lovely charming brilliant pleasant clever splendid elegant vivid "
    "gentle witty moving fresh solid rich warm bright tender graceful stunning joyful"
)
NEGATIVE = _words(
    "bad awful dull poor clumsy boring bland weak stale messy tedious shallow cheap grim flat "
    "silly noisy sloppy murky lame tired hollow gloomy dreary"
)
NEUTRAL = _words(
    "the a this that film movie story plot cast actor scene script music score camera ending "
    "start middle director sequel book show series episode character dialogue pace tone set "
    "was is seems felt looked became remains and with in of for on at by to it its their "
    "overall mostly quite somewhat rather bit kind sort every each some many few first last "
    "new old long short big small young"
)
NEGATORS = ("not", "never", "hardly")
INTENSIFIERS = ("very", "really", "extremely")
CONTRAST = "but"
LABEL_NAMES = ("negative", "positive")
LAST_CLAUSE_WEIGHT = 2
LABEL_NOISE = 0.02

DEMO_SEED = 20261122
DEMO_TEACHER_ARCH = Arch.uniform(4, 128, 4, 512, vocab_size=256, max_positions=128)


def _clause(rng: random.Random) -> tuple[list[str], int]:
    words: list[str] = []
    score = 0
    for _ in range(rng.randint(1, 2)):
        words.extend(rng.choice(NEUTRAL) for _ in range(rng.randint(0, 2)))
        polarity = rng.choice((1, -1))
        word = rng.choice(POSITIVE if polarity > 0 else NEGATIVE)
        if rng.random() < 0.25:
            words.append(rng.choice(NEGATORS))
            polarity = -polarity
        if rng.random() < 0.25:
            words.append(rng.choice(INTENSIFIERS))
            polarity *= 2
        words.append(word)
        score += polarity
    words.extend(rng.choice(NEUTRAL) for _ in range(rng.randint(0, 1)))
    return words, score


def _example(rng: random.Random) -> Example:
    while True:
        clauses = [_clause(rng) for _ in range(rng.choice((1, 1, 2, 3)))]
        total = sum(score for _, score in clauses[:-1]) + LAST_CLAUSE_WEIGHT * clauses[-1][1]
        if total != 0:
            break
    label = int(total > 0)
    if rng.random() < LABEL_NOISE:
        label = 1 - label
    text = f" {CONTRAST} ".join(" ".join(words) for words, _ in clauses)
    return Example(text=text, label=label)


def demo_task(
    train_examples: int = 8000, dev_examples: int = 1000, seed: int = DEMO_SEED
) -> tuple[TextDataset, TextDataset]:
    """The demo task's training and development sets (deterministic for a seed)."""
    rng = random.Random(seed)
    train = tuple(_example(rng) for _ in range(train_examples))
    dev = tuple(_example(rng) for _ in range(dev_examples))
    return (
        TextDataset(train, LABEL_NAMES, source=f"demo(seed={seed})/train"),
        TextDataset(dev, LABEL_NAMES, source=f"demo(seed={seed})/dev"),
    )


def train_tokenizer(texts: Iterable[str], vocab_size: int = 256):  # type: ignore[no-untyped-def]
    """A lower-casing WordPiece tokenizer with BERT's special tokens, trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


@dataclass(frozen=True)
class DemoFiles:
    train: Path
    dev: Path
    teacher: Path


def write_demo_task(
    out_dir: str | Path,
    *,
    train_examples: int = 8000,
    dev_examples: int = 1000,
    seed: int = DEMO_SEED,
    teacher_steps: int = 1200,
    teacher_arch: Arch = DEMO_TEACHER_ARCH,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
) -> DemoFiles:
    """Write the demo task (``train.jsonl``, ``dev.jsonl``) and train the demo teacher into
    ``out_dir/teacher``. Files already there are reused, so a second call is instant and
    an interrupted teacher training resumes."""
    from search.checkpoint import LATBENCH_FILE, TextEncoder, save_checkpoint
    from search.distill import Batches, DistillConfig, LossWeights, train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = DemoFiles(out / "train.jsonl", out / "dev.jsonl", out / "teacher")
    if not (files.train.is_file() and files.dev.is_file()):
        train_set, dev_set = demo_task(train_examples, dev_examples, seed)
        save_jsonl(train_set, files.train)
        save_jsonl(dev_set, files.dev)
    if (files.teacher / LATBENCH_FILE).is_file():
        return files
    train_set = load_dataset(files.train, label_names=LABEL_NAMES)
    dev_set = load_dataset(files.dev, label_names=LABEL_NAMES)
    encoder = TextEncoder(
        train_tokenizer(e.text for e in train_set.examples), max_len=teacher_arch.max_positions
    )
    data = Batches(encoder.encode([e.text for e in train_set.examples]), _labels(train_set))
    dev = Batches(encoder.encode([e.text for e in dev_set.examples]), _labels(dev_set))
    config = DistillConfig(
        steps=teacher_steps,
        batch_size=32,
        learning_rate=5e-4,
        warmup_fraction=0.1,
        losses=LossWeights(logits=0.0, labels=1.0),
        init="random",
        # Measured: without dropout at lr 5e-4, 79.8% dev accuracy after 600 steps; with dropout
        # 0.1 at lr 3e-4, 70.5%; the 2% label noise is not what this task overfits.
        dropout=0.0,
        checkpoint_every=250,
        seed=seed % 10_000,
    )
    result = train(
        None, teacher_arch, data, config, dev=dev, state_dir=out / "teacher-state", on_step=on_step
    )
    save_checkpoint(files.teacher, result.student, encoder, LABEL_NAMES)
    return files


def _labels(dataset: TextDataset):  # type: ignore[no-untyped-def]
    import torch

    return torch.as_tensor(dataset.labels, dtype=torch.int64)
