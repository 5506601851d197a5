"""The built-in demo task and demo teacher: a distillation workload that needs no download.

**The task** ("stacked negation") is generated from a fixed seed. A review is one to four
sentiment words among neutral ones; before each sentiment word stands a run of zero, one
or two negators ("not", "never", "hardly"), each of which flips its polarity, so "not
never good" is positive again. The label is the sign of the summed polarities (ties are
re-drawn), and 2% of labels are flipped, so even a perfect model stays below 100%. Every
one of the 46 words is a single WordPiece token of the demo tokenizer, so a token's
neighbour is the neighbouring word.

Why it is built this way: a sentiment word's sign is the parity of the run of negators
before it. A bag of words cannot see it (logistic regression: 68% on words, 79% on word
pairs); a 1-layer model's [CLS] only pools per-token features (75%); a model with three or
more layers composes the parity from one "previous token" pattern (92%), and a 2-layer one
must learn offsets -1 and -2 and their XOR in one layer, which it does late and not
reliably (80-92% depending on the seed). Small students therefore really lose accuracy
and the accuracy-latency front is not flat. The probe that chose this generator among ten
is docs/research/demo-task-probe.md.

**The demo teacher** is a 4-layer, 128-wide BERT that latbench trains on that task from
random initialisation (1,500 steps without dropout, a few minutes on two CPU cores, ~92%
dev accuracy), saved as a Hugging Face checkpoint with a WordPiece tokenizer trained on the
task's texts with ``tokenizers``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from latbench.arch import Arch
from latbench.distill.data import Example, TextDataset, load_dataset, save_jsonl


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


POSITIVE = _words("good great fine superb lovely charming brilliant clever witty fresh warm bright")
NEGATIVE = _words("bad awful dull poor boring bland weak stale messy silly lame flat")
NEUTRAL = _words(
    "the a this film movie story plot cast music acting script ending was is it and with of quite"
)
NEGATORS = ("not", "never", "hardly")
LABEL_NAMES = ("negative", "positive")
SENTIMENT_WORDS = (1, 1, 1, 2, 2, 2, 3, 3, 4, 4)  # how many sentiment words a review has, drawn uniformly
NEGATOR_RUNS = (0.5, 0.3, 0.2)  # P(0, 1, 2 negators before a sentiment word)
LABEL_NOISE = 0.02

DEMO_SEED = 20261122
DEMO_TRAIN_EXAMPLES = 12_000
DEMO_DEV_EXAMPLES = 1000
DEMO_TEACHER_STEPS = 1500
DEMO_TEACHER_ARCH = Arch.uniform(4, 128, 4, 512, vocab_size=256, max_positions=128)


def _negator_run(rng: random.Random) -> int:
    draw, cumulative = rng.random(), 0.0
    for run, probability in enumerate(NEGATOR_RUNS):
        cumulative += probability
        if draw < cumulative:
            return run
    return len(NEGATOR_RUNS) - 1


def _review(rng: random.Random, sentiment_words: int) -> tuple[list[str], int]:
    words: list[str] = []
    score = 0
    for _ in range(sentiment_words):
        words.extend(rng.choice(NEUTRAL) for _ in range(rng.randint(0, 1)))
        polarity = rng.choice((1, -1))
        word = rng.choice(POSITIVE if polarity > 0 else NEGATIVE)
        for _ in range(_negator_run(rng)):
            words.append(rng.choice(NEGATORS))
            polarity = -polarity
        words.append(word)
        score += polarity
    words.extend(rng.choice(NEUTRAL) for _ in range(rng.randint(0, 1)))
    return words, score


def _example(rng: random.Random) -> Example:
    while True:
        words, total = _review(rng, rng.choice(SENTIMENT_WORDS))
        if total != 0:
            break
    label = int(total > 0)
    if rng.random() < LABEL_NOISE:
        label = 1 - label
    return Example(text=" ".join(words), label=label)


def demo_task(
    train_examples: int = DEMO_TRAIN_EXAMPLES, dev_examples: int = DEMO_DEV_EXAMPLES, seed: int = DEMO_SEED
) -> tuple[TextDataset, TextDataset]:
    """The demo task's training and development sets (deterministic for a seed)."""
    rng = random.Random(seed)
    train = tuple(_example(rng) for _ in range(train_examples))
    dev = tuple(_example(rng) for _ in range(dev_examples))
    return (
        TextDataset(train, LABEL_NAMES, source=f"demo(seed={seed})/train"),
        TextDataset(dev, LABEL_NAMES, source=f"demo(seed={seed})/dev"),
    )


def demo_texts(count: int = DEMO_TRAIN_EXAMPLES, seed: int = DEMO_SEED + 1) -> tuple[str, ...]:
    """Unlabelled sentences of the demo task's kind, for task-agnostic distillation (by
    default drawn with another seed than the labelled sets)."""
    rng = random.Random(seed)
    return tuple(_example(rng).text for _ in range(count))


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
    train_examples: int = DEMO_TRAIN_EXAMPLES,
    dev_examples: int = DEMO_DEV_EXAMPLES,
    seed: int = DEMO_SEED,
    teacher_steps: int = DEMO_TEACHER_STEPS,
    teacher_arch: Arch = DEMO_TEACHER_ARCH,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
) -> DemoFiles:
    """Write the demo task (``train.jsonl``, ``dev.jsonl``) and train the demo teacher into
    ``out_dir/teacher``. Files already there are reused, so a second call is instant and
    an interrupted teacher training resumes."""
    from latbench.distill.checkpoint import LATBENCH_FILE, TextEncoder, save_checkpoint
    from latbench.distill.settings import DistillConfig, LossWeights
    from latbench.distill.trainer import Batches, train

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
        # Measured on the earlier demo task: without dropout at lr 5e-4, 79.8% dev accuracy after
        # 600 steps; with dropout 0.1 at lr 3e-4, 70.5%. The 2% label noise is not overfitted.
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
