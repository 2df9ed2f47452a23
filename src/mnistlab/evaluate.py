"""Metrics from predicted probabilities: pure functions of arrays, no model and no files."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn import metrics

NUM_CLASSES = 10


@dataclass(frozen=True)
class ConfidentError:
    """A test example the model got wrong, and how sure it was."""

    index: int  # position in the test set
    true_label: int
    predicted_label: int
    confidence: float  # probability given to predicted_label
    top3: list[tuple[int, float]]  # the three most probable labels with their probabilities


@dataclass(frozen=True)
class Evaluation:
    """Everything the seed notebook reports about a model on a labelled set."""

    num_examples: int
    loss: float  # categorical cross-entropy
    accuracy: float
    confusion_matrix: list[list[int]]  # rows: true label, columns: predicted label
    per_class: list[dict]  # label, precision, recall, f1, support
    top_errors: list[ConfidentError]

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
    classes = list(range(NUM_CLASSES))
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    return Evaluation(
        num_examples=int(len(labels)),
        loss=float(metrics.log_loss(labels, probabilities, labels=classes)),
        accuracy=float(metrics.accuracy_score(labels, predicted)),
        confusion_matrix=metrics.confusion_matrix(labels, predicted, labels=classes).tolist(),
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
    )
