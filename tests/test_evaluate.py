import math

import numpy as np
import pytest

from mnistlab.evaluate import evaluate_probabilities, most_confident_errors


def one_hot_like(rows):
    """Probabilities with the given (label, probability) peaks; the rest spread evenly."""
    probabilities = np.zeros((len(rows), 10))
    for row, (label, peak) in enumerate(rows):
        probabilities[row] = (1 - peak) / 9
        probabilities[row, label] = peak
    return probabilities


def test_metrics_match_hand_computed_values():
    labels = np.array([0, 1, 2, 3])
    # Predictions: 0 (right), 1 (right), 7 (wrong, p=.6), 2 (wrong, p=.9).
    probabilities = one_hot_like([(0, 0.9), (1, 0.8), (7, 0.6), (2, 0.9)])
    evaluation = evaluate_probabilities(probabilities, labels, top_errors=5)

    assert evaluation.accuracy == 0.5
    true_probabilities = [0.9, 0.8, 0.4 / 9, 0.1 / 9]
    assert math.isclose(evaluation.loss, -np.mean(np.log(true_probabilities)), rel_tol=1e-9)
    matrix = np.array(evaluation.confusion_matrix)
    assert matrix.sum() == 4 and matrix[0, 0] == matrix[1, 1] == matrix[2, 7] == matrix[3, 2] == 1
    per_class = {row["label"]: row for row in evaluation.per_class}
    assert per_class[2]["precision"] == 0 and per_class[2]["recall"] == 0
    assert per_class[0]["f1"] == 1 and per_class[0]["support"] == 1
    assert per_class[5]["support"] == 0


def test_most_confident_errors_ordering_and_ties():
    labels = np.array([0, 1, 2, 3, 4])
    probabilities = one_hot_like([(5, 0.7), (1, 0.99), (6, 0.95), (8, 0.7), (9, 0.5)])
    errors = most_confident_errors(probabilities, labels, count=3)
    assert [error.index for error in errors] == [2, 0, 3]  # .95, then the .7 tie by index
    first = errors[0]
    assert (first.true_label, first.predicted_label) == (2, 6)
    assert first.confidence == pytest.approx(0.95)
    assert first.top3[0] == (6, pytest.approx(0.95))
    assert len(first.top3) == 3
    assert most_confident_errors(probabilities, labels, count=0) == []


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        evaluate_probabilities(np.ones((3, 9)) / 9, np.array([0, 1, 2]))
