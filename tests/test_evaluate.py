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


def test_most_confused_pairs_by_hand():
    from mnistlab.evaluate import most_confused_pairs

    confusion = np.zeros((10, 10), dtype=int)
    np.fill_diagonal(confusion, 50)
    confusion[4, 9] = 7
    confusion[9, 4] = 3
    confusion[7, 1] = 7  # ties with (4, 9): lower true label first
    confusion[3, 5] = 1
    pairs = most_confused_pairs(confusion, count=3)
    assert pairs == [
        {"true_label": 4, "predicted_label": 9, "count": 7},
        {"true_label": 7, "predicted_label": 1, "count": 7},
        {"true_label": 9, "predicted_label": 4, "count": 3},
    ]
    assert most_confused_pairs(np.eye(10, dtype=int) * 5) == []


def test_expected_calibration_error_by_hand():
    from mnistlab.evaluate import calibration_bins, expected_calibration_error

    # Four predictions at confidence 0.95 (three right) and two at 0.55 (both right).
    labels = np.array([0, 0, 0, 0, 1, 1])
    probabilities = one_hot_like([(0, 0.95), (0, 0.95), (0, 0.95), (2, 0.95), (1, 0.55), (1, 0.55)])
    bins = calibration_bins(probabilities, labels, num_bins=10)
    assert [b.count for b in bins] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 4]
    assert bins[9].accuracy == 0.75 and bins[9].mean_confidence == pytest.approx(0.95)
    assert bins[5].accuracy == 1.0 and bins[5].mean_confidence == pytest.approx(0.55)
    # ECE = (4 * |0.75 - 0.95| + 2 * |1.0 - 0.55|) / 6
    assert expected_calibration_error(bins) == pytest.approx((4 * 0.2 + 2 * 0.45) / 6)


def test_perfectly_calibrated_and_empty_cases():
    from mnistlab.evaluate import calibration_bins, expected_calibration_error

    # Confidence exactly 1.0 lands in the last bin; always right, so the gap is zero.
    probabilities = np.eye(10)[[3, 4]]
    bins = calibration_bins(probabilities, np.array([3, 4]))
    assert bins[-1].count == 2 and expected_calibration_error(bins) == 0.0
    assert expected_calibration_error(calibration_bins(np.zeros((0, 10)), np.zeros(0, int))) == 0.0
