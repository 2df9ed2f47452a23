"""Metrics from predicted probabilities: pure functions of arrays, no model and no files."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mnistlab.data import NUM_CLASSES


@dataclass(frozen=True)
class ConfidentError:
    """A test example the model got wrong, and how sure it was."""

    index: int  # position in the test set
    true_label: int
    predicted_label: int
    confidence: float  # probability given to predicted_label
    top3: list[tuple[int, float]]  # the three most probable labels with their probabilities


@dataclass(frozen=True)
class CalibrationBin:
    """Predictions whose top probability fell in [lower, upper)."""

    lower: float
    upper: float
    count: int
    mean_confidence: float  # 0 when the bin is empty
    accuracy: float  # 0 when the bin is empty


@dataclass(frozen=True)
class Evaluation:
    """Everything the seed notebook reports about a model on a labelled set."""

    num_examples: int
    loss: float  # categorical cross-entropy
    accuracy: float
    confusion_matrix: list[list[int]]  # rows: true label, columns: predicted label
    per_class: list[dict]  # label, precision, recall, f1, support
    top_errors: list[ConfidentError]
    most_confused: list[dict]  # true_label, predicted_label, count; largest first
    expected_calibration_error: float
    calibration_bins: list[CalibrationBin]

    def to_dict(self) -> dict:
        return asdict(self)


def most_confident_errors(
    probabilities: np.ndarray, labels: np.ndarray, count: int
) -> list[ConfidentError]:
    """The ``count`` wrong predictions with the highest predicted probability, most confident first.

    Ties are broken by test index so the list is deterministic.
    """
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    order = np.lexsort((wrong, -confidence))[:count]
    errors = []
    for index in wrong[order]:
        top3 = np.argsort(-probabilities[index], kind="stable")[:3]
        errors.append(
            ConfidentError(
                index=int(index),
                true_label=int(labels[index]),
                predicted_label=int(predicted[index]),
                confidence=float(probabilities[index, predicted[index]]),
                top3=[(int(label), float(probabilities[index, label])) for label in top3],
            )
        )
    return errors


def most_confused_pairs(confusion: np.ndarray, count: int = 5) -> list[dict]:
    """The off-diagonal cells of a confusion matrix with the most examples, largest first.

    Ties are broken by (true, predicted) label so the list is deterministic; empty cells are left out.
    """
    confusion = np.asarray(confusion)
    off_diagonal = [
        (int(confusion[true, predicted]), true, predicted)
        for true in range(confusion.shape[0])
        for predicted in range(confusion.shape[1])
        if true != predicted and confusion[true, predicted] > 0
    ]
    off_diagonal.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [
        {"true_label": true, "predicted_label": predicted, "count": cell_count}
        for cell_count, true, predicted in off_diagonal[:count]
    ]


def calibration_bins(
    probabilities: np.ndarray, labels: np.ndarray, num_bins: int = 10
) -> list[CalibrationBin]:
    """Group predictions by their top probability into equal-width bins over [0, 1].

    A confidence of exactly 1.0 falls in the last bin.
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=False), 0, num_bins - 1)
    bins = []
    for index in range(num_bins):
        members = which == index
        count = int(members.sum())
        bins.append(
            CalibrationBin(
                lower=float(edges[index]),
                upper=float(edges[index + 1]),
                count=count,
                mean_confidence=float(confidence[members].mean()) if count else 0.0,
                accuracy=float(correct[members].mean()) if count else 0.0,
            )
        )
    return bins


def expected_calibration_error(bins: list[CalibrationBin]) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over the bins."""
    total = sum(b.count for b in bins)
    if total == 0:
        return 0.0
    return float(sum(b.count * abs(b.accuracy - b.mean_confidence) for b in bins) / total)


def evaluate_probabilities(
    probabilities: np.ndarray, labels: np.ndarray, top_errors: int = 10
) -> Evaluation:
    """Score class probabilities (N, 10) against integer labels (N,)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    # float32 softmax rows sum to 1 only within rounding; sklearn's log_loss warns otherwise.
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    labels = np.asarray(labels).astype(np.int64)
    if probabilities.shape != (len(labels), NUM_CLASSES):
        raise ValueError(
            f"expected probabilities of shape ({len(labels)}, {NUM_CLASSES});"
            f" received: {probabilities.shape}"
        )
    # Imported here: scikit-learn takes about a second to import, which `mnistlab train` spends
    # in its figure worker, and train_run otherwise overlaps with training (pipeline.warm_imports).
    from sklearn import metrics

    classes = list(range(NUM_CLASSES))
    predicted = probabilities.argmax(axis=1)
    confusion = metrics.confusion_matrix(labels, predicted, labels=classes)
    bins = calibration_bins(probabilities, labels)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    return Evaluation(
        num_examples=int(len(labels)),
        loss=float(metrics.log_loss(labels, probabilities, labels=classes)),
        accuracy=float(metrics.accuracy_score(labels, predicted)),
        confusion_matrix=confusion.tolist(),
        per_class=[
            {
                "label": label,
                "precision": float(precision[label]),
                "recall": float(recall[label]),
                "f1": float(f1[label]),
                "support": int(support[label]),
            }
            for label in classes
        ],
        top_errors=most_confident_errors(probabilities, labels, top_errors),
        most_confused=most_confused_pairs(confusion),
        expected_calibration_error=expected_calibration_error(bins),
        calibration_bins=bins,
    )
