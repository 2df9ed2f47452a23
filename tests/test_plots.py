import numpy as np
from matplotlib.figure import Figure

from mnistlab import plots
from mnistlab.evaluate import ConfidentError


def annotations(figure):
    return [text.get_text() for text in figure.axes[0].texts]


def test_samples_per_digit_titles_each_digit(digit_images):
    images, labels = digit_images
    figure = plots.samples_per_digit(images, labels)
    assert isinstance(figure, Figure)
    assert [ax.get_title() for ax in figure.axes] == [str(d) for d in range(10)]
    # Digit 3's panel shows the first image labelled 3.
    shown = figure.axes[3].images[0].get_array()
    assert np.array_equal(shown, images[np.flatnonzero(labels == 3)[0]])


def test_confusion_matrix_shows_counts_and_row_normalised_values():
    matrix = np.diag(np.arange(1, 11))
    matrix[0, 1] = 3  # Row 0: 1 right, 3 wrong.
    counts = annotations(plots.confusion_matrix(matrix))
    assert counts[0:2] == ["1", "3"] and len(counts) == 100
    normalised = annotations(plots.confusion_matrix(matrix, normalize=True))
    assert normalised[0:2] == ["0.25", "0.75"]
    assert normalised[11] == "1.00"


def test_confident_errors_titles_name_true_and_predicted(digit_images):
    images, _ = digit_images
    errors = [ConfidentError(4, 4, 9, 0.97, [(9, 0.97), (4, 0.02), (1, 0.01)])]
    figure = plots.confident_errors(images, errors)
    title = figure.axes[0].get_title()
    assert "true 4" in title and "pred 9" in title and "0.970" in title


def test_training_curves_plot_both_series():
    history = {
        "loss": [1.0, 0.5],
        "val_loss": [1.1, 0.7],
        "accuracy": [0.6, 0.8],
        "val_accuracy": [0.5, 0.7],
    }
    figure = plots.training_curves(history)
    loss_lines = figure.axes[0].get_lines()
    assert [list(line.get_ydata()) for line in loss_lines] == [[1.0, 0.5], [1.1, 0.7]]


def test_sample_prediction_says_whether_it_was_right(digit_images):
    images, _ = digit_images
    assert "correct" in plots.sample_prediction(images[0], 3, 3, 0.9).axes[0].get_title()
    assert "wrong" in plots.sample_prediction(images[0], 3, 5, 0.9).axes[0].get_title()
