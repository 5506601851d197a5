"""How good a student is: task metrics and loyalty to its teacher.

* ``accuracy``; ``f1`` (binary tasks: F1 of label 1, as GLUE reports for MRPC/QQP;
  more labels: macro F1); ``mcc`` (Matthews correlation, Gorodkin's multi-class form,
  what GLUE reports for CoLA).
* **Label loyalty**: the share of examples on which the student predicts the teacher's
  label.
* **Probability loyalty**: 1 - mean Jensen-Shannon divergence between the teacher's and
  the student's predicted distributions, with base-2 logarithms so that the divergence,
  and therefore the loyalty, lies in [0, 1] (1: identical distributions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Quality:
    examples: int
    accuracy: float
    f1: float
    mcc: float
    label_loyalty: float | None = None
    probability_loyalty: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def quality(labels: np.ndarray, probs: np.ndarray, teacher_probs: np.ndarray | None = None) -> Quality:
    """Metrics of predicted distributions ``probs`` [n, classes] against ``labels`` [n],
    and loyalty to ``teacher_probs`` when given."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"need [n, classes] probabilities for n > 0 labels, got {probs.shape} and {labels.shape}"
        )
    predicted = probs.argmax(axis=1)
    n_classes = probs.shape[1]
    label_loyalty = probability_loyalty = None
    if teacher_probs is not None:
        teacher_probs = np.asarray(teacher_probs, dtype=np.float64)
        if teacher_probs.shape != probs.shape:
            raise ValueError(f"teacher probabilities {teacher_probs.shape} vs student {probs.shape}")
        label_loyalty = float(np.mean(teacher_probs.argmax(axis=1) == predicted))
        probability_loyalty = float(1.0 - np.mean(js_divergence_bits(teacher_probs, probs)))
    return Quality(
        examples=len(labels),
        accuracy=float(np.mean(predicted == labels)),
        f1=f1_score(labels, predicted, n_classes),
        mcc=matthews(labels, predicted, n_classes),
        label_loyalty=label_loyalty,
        probability_loyalty=probability_loyalty,
    )


def js_divergence_bits(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence per row, in bits (base 2): 0 for equal rows, at most 1."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * (np.log2(a) - np.log2(b)), 0.0)
        return terms.sum(axis=1)

    return np.clip(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0, 1.0)


def confusion(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def f1_score(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    c = confusion(labels, predicted, n_classes).astype(np.float64)
    tp = np.diag(c)
    denom = 2 * tp + (c.sum(axis=0) - tp) + (c.sum(axis=1) - tp)
    per_class = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(per_class[1] if n_classes == 2 else per_class.mean())


def matthews(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    c = confusion(labels, predicted, n_classes).astype(np.float64)
    t, p = c.sum(axis=1), c.sum(axis=0)
    n, correct = c.sum(), np.trace(c)
    denom = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    return float((correct * n - t @ p) / denom) if denom > 0 else 0.0
