"""Tiny teachers and data for the distillation tests: a BERT built from a config and saved
with ``save_pretrained``, a WordPiece tokenizer trained with ``tokenizers``, and a few
hundred examples of the demo task."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search.data import TextDataset, save_jsonl
from search.demo import LABEL_NAMES, demo_task, train_tokenizer

TEACHER_LAYERS, TEACHER_HIDDEN, TEACHER_HEADS, TEACHER_FFN = 4, 32, 4, 64


@pytest.fixture(scope="session")
def demo_data() -> tuple[TextDataset, TextDataset]:
    return demo_task(train_examples=320, dev_examples=80, seed=5)


@pytest.fixture(scope="session")
def data_files(tmp_path_factory: pytest.TempPathFactory, demo_data) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("data")
    save_jsonl(demo_data[0], root / "train.jsonl")
    save_jsonl(demo_data[1], root / "dev.jsonl")
    return root / "train.jsonl", root / "dev.jsonl"


def make_hf_teacher(directory: Path, texts: list[str], *, seed: int = 0, num_labels: int = 2) -> Path:
    transformers = pytest.importorskip("transformers")
    tokenizer = train_tokenizer(texts, vocab_size=160)
    config = transformers.BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=TEACHER_HIDDEN,
        num_hidden_layers=TEACHER_LAYERS,
        num_attention_heads=TEACHER_HEADS,
        intermediate_size=TEACHER_FFN,
        max_position_embeddings=64,
        num_labels=num_labels,
        id2label=dict(enumerate(LABEL_NAMES)) if num_labels == 2 else None,
        label2id={n: i for i, n in enumerate(LABEL_NAMES)} if num_labels == 2 else None,
    )
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification(config).eval()
    model.save_pretrained(directory)
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory, demo_data) -> Path:  # type: ignore[no-untyped-def]
    return make_hf_teacher(tmp_path_factory.mktemp("teacher"), [e.text for e in demo_data[0].examples])


@pytest.fixture(scope="session")
def fit_predictor():  # type: ignore[no-untyped-def]
    """A function writing a real ``flops`` predictor fitted on the fake backend's latency
    law for students of ``space`` (times a log-normal noise that widens its interval)."""
    import random

    import numpy as np

    from latbench.fingerprint import collect
    from latbench.specs import EncoderSpec
    from latbench.target import Target
    from latbench.testing.fake_backend import FakeBackend, fake_latency_s
    from predictors import registry
    from predictors.io import save_predictor

    def fit(path: Path, space, workload, *, noise: float = 0.0) -> Path:  # type: ignore[no-untyped-def]
        rng = random.Random(1)
        specs = [EncoderSpec(space.sample(rng), workload) for _ in range(40)]
        scale = np.random.default_rng(2).lognormal(0.0, noise, len(specs)) if noise else 1.0
        y = np.array([fake_latency_s(s) for s in specs]) * scale
        predictor = registry.create("flops").fit(specs, y)
        target = FakeBackend().normalize(Target("fake-cpu"))
        save_predictor(predictor, path, target=target, fingerprint=collect(), training={"encoders": len(y)})
        return path

    return fit


#: Students of the 4-layer, 32-wide test teacher, as a search-space file.
STUDENT_SPACE_YAML = (
    "name: tiny\nlayers: [1, 2]\nhidden: [16, 32]\nheads: [2]\nffn: [32, 64]\nvocab_size: 160\n"
)


@pytest.fixture
def student_search_files(tmp_path: Path, fit_predictor) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """A search-space file of the teacher's students, and a predictor fitted for them."""
    from latbench.arch import Workload
    from search.space import load_space

    space = tmp_path / "space.yaml"
    space.write_text(STUDENT_SPACE_YAML)
    return space, fit_predictor(tmp_path / "predictor.json", load_space(str(space)), Workload(1, 128))
