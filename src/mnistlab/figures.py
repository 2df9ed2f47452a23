"""A run's figures, drawn by the figure workers when they are started, and what keeps the
training process light while they work."""

from __future__ import annotations

import threading

import numpy as np

from mnistlab import figure_workers, runs
from mnistlab.data import Dataset
from mnistlab.evaluate import Evaluation

# Index of the test image shown as "a sample prediction", as in the seed notebook.
SAMPLE_INDEX = 0


def sample_index(test_labels: np.ndarray) -> int:
    """The test image shown as the sample prediction (the last one of a smaller test set)."""
    return int(min(SAMPLE_INDEX, len(test_labels) - 1))


def render_figures(
    dataset: Dataset,
    history: dict,
    evaluation: Evaluation,
    probabilities: np.ndarray,
    audit_flagged: set[int] = frozenset(),
) -> dict[str, bytes]:
    """Every figure of a run, as PNG bytes keyed like ``runs.FIGURES``, drawn by the figure
    workers when they are started."""
    sample = sample_index(dataset.test_labels)
    # The first training image of each digit: all samples_per_digit shows, and far less to send.
    firsts = np.concatenate(
        [np.flatnonzero(dataset.train_labels == digit)[:1] for digit in range(10)]
    )
    # Slowest first: dealt alternately to the worker and its copy, they split the time evenly.
    figures = {
        "confusion_matrix": ("confusion_matrix", evaluation.confusion_matrix),
        "confusion_matrix_normalized": ("confusion_matrix", evaluation.confusion_matrix, True),
        "training_curves": ("training_curves", history),
        "confident_errors": (
            "confident_errors",
            dataset.test_images,
            evaluation.top_errors,
            audit_flagged,
        ),
        "samples": (
            "samples_per_digit",
            dataset.train_images[firsts],
            dataset.train_labels[firsts],
        ),
        "reliability": (
            "reliability_diagram",
            evaluation.calibration_bins,
            evaluation.expected_calibration_error,
        ),
        "sample_prediction": (
            "sample_prediction",
            dataset.test_images[sample],
            int(dataset.test_labels[sample]),
            int(probabilities[sample].argmax()),
            float(probabilities[sample].max()),
        ),
    }
    pngs = dict(zip(figures, figure_workers.run([(figure_png, args) for args in figures.values()])))
    return {name: pngs[name] for name in runs.FIGURES}


def figure_png(plot: str, *arguments) -> bytes:
    """``plots.<plot>(*arguments)`` as PNG bytes. Named by a string so that a caller sending it
    to a figure worker need not import matplotlib itself."""
    from mnistlab import plots

    return plots.to_png(getattr(plots, plot)(*arguments))


def warm_imports() -> threading.Thread:
    """Import what evaluation and figures need (scikit-learn, seaborn and pandas: about 1.5 s)
    in a background thread, so the import overlaps training instead of following it, when no
    figure workers do it in their own processes. Python's import lock makes a later import of
    the same module wait for this one, never run twice."""

    def work() -> None:
        try:
            import sklearn.metrics  # noqa: F401
            import seaborn  # noqa: F401
        except Exception:  # pragma: no cover - the real import later reports any problem
            pass

    thread = threading.Thread(target=work, name="mnistlab-warm-imports", daemon=True)
    thread.start()
    return thread
