"""The built-in demo task: deterministic, balanced, one WordPiece token per word, harder
than a bag of words or word pairs; its teacher is trained and saved once, then reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from latbench.arch import Arch
from latbench.distill.checkpoint import load_checkpoint
from latbench.distill.data import load_dataset
from latbench.distill.demo_task import LABEL_NAMES, demo_task, train_tokenizer, write_demo_task


def test_the_demo_task_is_deterministic_and_balanced() -> None:
    a_train, a_dev = demo_task(500, 100, seed=1)
    b_train, _ = demo_task(500, 100, seed=1)
    c_train, _ = demo_task(500, 100, seed=2)
    assert a_train.examples == b_train.examples
    assert a_train.examples != c_train.examples
    assert len(a_train) == 500 and len(a_dev) == 100
    assert a_train.label_names == LABEL_NAMES
    assert 0.4 < a_train.labels.mean() < 0.6


def test_every_word_of_the_demo_task_is_one_token_of_its_tokenizer() -> None:
    train, _ = demo_task(2000, 10, seed=4)
    tokenizer = train_tokenizer(e.text for e in train.examples)
    words = {word for e in train.examples for word in e.text.split()}
    assert len(words) == 46
    assert all(tokenizer.encode(word).tokens == [word] for word in words)


def test_a_bag_of_words_cannot_solve_the_demo_task() -> None:
    train, dev = demo_task(4000, 1000, seed=3)

    def score(ngrams: int) -> float:
        vectorizer = CountVectorizer(ngram_range=(1, ngrams))
        x = vectorizer.fit_transform([e.text for e in train.examples])
        model = LogisticRegression(max_iter=3000).fit(x, train.labels)
        return float(model.score(vectorizer.transform([e.text for e in dev.examples]), dev.labels))

    unigrams, bigrams = score(1), score(2)
    assert 0.55 < unigrams < 0.75  # words alone carry some signal ...
    assert bigrams > unigrams + 0.03  # ... word order (negation) carries more ...
    assert bigrams < 0.85  # ... but a pair cannot see a run of two negators


def test_the_demo_teacher_is_trained_once_and_reused(tmp_path: Path) -> None:
    tiny = Arch.uniform(1, 16, 2, 32, vocab_size=256, max_positions=64)
    files = write_demo_task(tmp_path, train_examples=64, dev_examples=16, teacher_steps=3, teacher_arch=tiny)
    assert len(load_dataset(files.train)) == 64 and len(load_dataset(files.dev)) == 16
    teacher = load_checkpoint(files.teacher)
    assert teacher.arch.hidden == 16 and teacher.label_names == LABEL_NAMES
    weights = (files.teacher / "model.safetensors").stat().st_mtime_ns
    again = write_demo_task(tmp_path, train_examples=64, dev_examples=16, teacher_steps=3, teacher_arch=tiny)
    assert again == files
    assert (files.teacher / "model.safetensors").stat().st_mtime_ns == weights
    assert np.isfinite(teacher.model.classifier.weight.detach().numpy()).all()
