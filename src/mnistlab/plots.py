"""Figures from arrays. Each function returns a matplotlib Figure (``to_png`` turns one into
PNG bytes); none computes metrics or writes files. Figures are built with
``matplotlib.figure.Figure`` (no pyplot global state), so they are safe to make in a headless
process.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mnistlab.evaluate import CalibrationBin, ConfidentError

_IMAGE_STYLE = {"cmap": "gray_r", "vmin": 0, "vmax": 255, "interpolation": "nearest"}


def to_png(figure: Figure, dpi: int = 100) -> bytes:
    """A matplotlib Figure rendered as PNG bytes.

    zlib level 1: these flat-colour plots encode several times faster than at the default
    level 6, for files only slightly larger.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def _hide_axes(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def samples_per_digit(images: np.ndarray, labels: np.ndarray) -> Figure:
    """The first example of each digit 0..9, in one row. Images are uint8 (N, 28, 28)."""
    figure = Figure(figsize=(10, 1.6), layout="constrained")
    axes = figure.subplots(1, 10)
    for digit, ax in enumerate(axes):
        matches = np.flatnonzero(labels == digit)
        if len(matches):
            ax.imshow(images[matches[0]], **_IMAGE_STYLE)
        ax.set_title(str(digit))
        _hide_axes(ax)
    return figure


def training_curves(history: dict[str, Sequence[float]]) -> Figure:
    """Loss and accuracy per epoch, training and validation side by side."""
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    for ax, metric, title in ((loss_ax, "loss", "Loss"), (accuracy_ax, "accuracy", "Accuracy")):
        for prefix, label in (("", "training"), ("val_", "validation")):
            values = history.get(prefix + metric)
            if values:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, values, marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # An ensemble has no training history.
            ax.legend()
    return figure


def confusion_matrix(matrix: Sequence[Sequence[float]], normalize: bool = False) -> Figure:
    """A seaborn heatmap of a 10x10 confusion matrix (rows: true, columns: predicted).

    With ``normalize``, each row is divided by its total so cells read as recall fractions.
    """
    import seaborn  # Imported here: it pulls in pandas (train_run warms it while training).

    values = np.asarray(matrix, dtype=float)
    if normalize:
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    figure = Figure(figsize=(7, 6), layout="constrained")
    ax = figure.subplots()
    seaborn.heatmap(
        values,
        annot=True,
        fmt=".2f" if normalize else ".0f",
        cmap="Blues",
        cbar=False,
        square=True,
        # Readable at the report's width, where the image is shown at its own 700 px.
        annot_kws={"fontsize": 12},
        ax=ax,
    )
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else ""))
    return figure


def confident_errors(
    images: np.ndarray, errors: Sequence[ConfidentError], audit_flagged: Collection[int] = ()
) -> Figure:
    """The given mistakes as a grid of test images titled with true and predicted labels.

    ``images`` is the whole test set, uint8 (N, 28, 28); each error indexes into it. Errors
    whose index is in ``audit_flagged`` (an audit found their label suspect) get a red title.
    """
    count = max(1, len(errors))
    columns = min(5, count)
    rows = -(-count // columns)
    figure = Figure(figsize=(2.1 * columns, 2.4 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes:
        _hide_axes(ax)
        ax.axis("off")
    for ax, error in zip(axes, errors):
        ax.axis("on")
        ax.imshow(images[error.index], **_IMAGE_STYLE)
        flagged = error.index in audit_flagged
        ax.set_title(
            f"true {error.true_label}, pred {error.predicted_label}\n"
            f"p={error.confidence:.3f} (#{error.index})"
            + ("\naudit: label suspect" if flagged else ""),
            fontsize=9,
            color="crimson" if flagged else "black",
        )
    if not errors:
        axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    return figure


def sample_prediction(
    image: np.ndarray, true_label: int, predicted_label: int, confidence: float
) -> Figure:
    """One test image with the model's prediction and the true label."""
    figure = Figure(figsize=(2.8, 3.1), layout="constrained")
    ax = figure.subplots()
    ax.imshow(image, **_IMAGE_STYLE)
    _hide_axes(ax)
    verdict = "correct" if predicted_label == true_label else "wrong"
    ax.set_title(
        f"predicted {predicted_label} (p={confidence:.3f})\ntrue {true_label}: {verdict}",
        fontsize=10,
    )
    return figure


def reliability_diagram(
    bins: Sequence[CalibrationBin], expected_calibration_error: float
) -> Figure:
    """Accuracy against confidence per bin; a calibrated model's bars meet the diagonal."""
    figure = Figure(figsize=(5.5, 5), layout="constrained")
    ax = figure.subplots()
    filled = [b for b in bins if b.count]
    ax.bar(
        [(b.lower + b.upper) / 2 for b in filled],
        [b.accuracy for b in filled],
        width=[b.upper - b.lower for b in filled],
        edgecolor="black",
        alpha=0.7,
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.scatter(
        [b.mean_confidence for b in filled],
        [b.accuracy for b in filled],
        color="crimson",
        zorder=3,
        label="mean confidence",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE {expected_calibration_error:.4f})")
    ax.legend(loc="upper left")
    return figure


def contact_sheet(
    images: np.ndarray,
    captions: Sequence[str],
    columns: int = 10,
    highlighted: Sequence[bool] | None = None,
    empty_text: str = "nothing to show",
) -> Figure:
    """Images (uint8 (N, 28, 28)) in a grid, each with a short caption underneath.

    Captions whose ``highlighted`` entry is true are drawn bold in red (e.g. a published label
    error), so a reader can spot them.
    """
    count = len(images)
    columns = max(1, min(columns, count))
    rows = max(1, -(-count // columns))
    figure = Figure(figsize=(1.05 * columns, 1.32 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for position, (ax, image, caption) in enumerate(zip(axes, images, captions)):
        ax.imshow(image, **_IMAGE_STYLE)
        marked = bool(highlighted[position]) if highlighted is not None else False
        ax.set_title(
            caption,
            fontsize=7,
            color="crimson" if marked else "black",
            fontweight="bold" if marked else "normal",
        )
    if count == 0:
        axes[0].text(0.5, 0.5, empty_text, ha="center", va="center")
    return figure


def image_pairs(
    first_images: np.ndarray, second_images: np.ndarray, captions: Sequence[str], columns: int = 4
) -> Figure:
    """Pairs of images side by side (e.g. a test image and its near-twin in train), captioned."""
    count = len(first_images)
    columns = max(1, min(columns, count))
    rows = max(1, -(-count // columns))
    figure = Figure(figsize=(2.3 * columns, 1.45 * rows), layout="constrained")
    grids = np.atleast_1d(figure.subfigures(rows, columns)).ravel()
    for position, grid in enumerate(grids):
        left, right = grid.subplots(1, 2)
        for ax in (left, right):
            ax.axis("off")
        if position < count:
            left.imshow(first_images[position], **_IMAGE_STYLE)
            right.imshow(second_images[position], **_IMAGE_STYLE)
            grid.suptitle(captions[position], fontsize=7)
    if count == 0:
        grids[0].text(0.5, 0.5, "no pairs", ha="center", va="center")
    return figure
