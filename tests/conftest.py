"""Fixtures shared by every test package.

PostgreSQL: tests that need a server take ``postgres_db_url`` (or ``postgres_server_url``)
and are skipped unless ``LATBENCH_TEST_POSTGRES_URL`` names one (``eval
"$(scripts/start-postgres)"`` starts a local server and sets it). Each test gets its own
freshly created database, dropped afterwards, so tests never see each other's rows.

Distillation and search: a tiny BERT teacher built from a config and saved with
``save_pretrained``, a WordPiece tokenizer trained with ``tokenizers``, a few hundred
examples of the demo task, and a real ``flops`` predictor for the students of a search
space (``tests/distill`` and ``tests/search`` share them).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from latbench.distill.data import TextDataset, save_jsonl
from latbench.distill.demo_task import LABEL_NAMES, demo_task, train_tokenizer

POSTGRES_ENV = "LATBENCH_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL URL from ``LATBENCH_TEST_POSTGRES_URL`` (psycopg 3 driver); skips
    the test when the variable is not set."""
    url = os.environ.get(POSTGRES_ENV)
    if not url and os.environ.get("CI"):
        pytest.fail(f"{POSTGRES_ENV} is not set in CI: scripts/test starts the server and sets it")
    if not url:
        pytest.skip(f'{POSTGRES_ENV} is not set (eval "$(scripts/start-postgres)" to run PostgreSQL tests)')
    from latbench.db import resolve_url

    return resolve_url(url)


@pytest.fixture
def postgres_db_url(postgres_server_url: str) -> Iterator[str]:
    """URL of a new, empty database on the test server, dropped after the test."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"latbench_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.dispose()


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
    import transformers

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
    from latbench.predictors import registry
    from latbench.predictors.io import save_predictor
    from latbench.specs import EncoderSpec
    from latbench.target import Target
    from latbench.testing.fake_backend import FakeBackend, fake_latency_s

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
    from latbench.search.space import load_space

    space = tmp_path / "space.yaml"
    space.write_text(STUDENT_SPACE_YAML)
    return space, fit_predictor(tmp_path / "predictor.json", load_space(str(space)), Workload(1, 128))
