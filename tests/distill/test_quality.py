"""Task metrics agree with scikit-learn; loyalty is 1 for a copy and 0 for the opposite."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from latbench.distill.quality import js_divergence_bits, quality


@pytest.mark.parametrize("classes", [2, 3])
def test_task_metrics_equal_scikit_learn(classes: int) -> None:
    rng = np.random.default_rng(classes)
    labels = rng.integers(0, classes, 300)
    probs = rng.dirichlet(np.ones(classes), 300)
    predicted = probs.argmax(axis=1)
    q = quality(labels, probs)
    assert q.examples == 300
    assert q.accuracy == pytest.approx(accuracy_score(labels, predicted))
    average = "binary" if classes == 2 else "macro"
    assert q.f1 == pytest.approx(f1_score(labels, predicted, average=average))
    assert q.mcc == pytest.approx(matthews_corrcoef(labels, predicted))
    assert q.label_loyalty is None and q.probability_loyalty is None


def test_a_copy_of_the_teacher_is_perfectly_loyal() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 50)
    q = quality(rng.integers(0, 3, 50), probs, teacher_probs=probs.copy())
    assert q.label_loyalty == 1.0
    assert q.probability_loyalty == pytest.approx(1.0)


def test_opposite_certain_predictions_have_zero_probability_loyalty() -> None:
    teacher = np.array([[1.0, 0.0], [0.0, 1.0]])
    student = teacher[:, ::-1]
    q = quality(np.array([0, 1]), student, teacher_probs=teacher)
    assert q.label_loyalty == 0.0
    assert q.probability_loyalty == pytest.approx(0.0)
    assert q.accuracy == 0.0 and q.mcc == pytest.approx(-1.0)


def test_js_divergence_is_symmetric_and_bounded_in_bits() -> None:
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(4), 200), rng.dirichlet(np.ones(4), 200)
    js = js_divergence_bits(p, q)
    assert np.allclose(js, js_divergence_bits(q, p))
    assert np.all((js >= 0) & (js <= 1))
    # uniform vs certain over two classes: known value 1 - H(0.75, 0.25)/2 ... computed directly
    half = js_divergence_bits(np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]]))[0]
    m = np.array([0.75, 0.25])
    expected = 0.5 * np.sum([0.5 * np.log2(0.5 / m[0]), 0.5 * np.log2(0.5 / m[1])]) + 0.5 * np.log2(1 / m[0])
    assert half == pytest.approx(expected)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        quality(np.array([0, 1]), np.array([0.3, 0.7]))
    with pytest.raises(ValueError, match="teacher probabilities"):
        quality(np.array([0, 1]), np.full((2, 2), 0.5), teacher_probs=np.full((2, 3), 1 / 3))
