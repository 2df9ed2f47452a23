"""Training digits redrawn as canvas drawings (drawings.py) and `Config.drawings`."""

import numpy as np
import pytest
from scipy import ndimage

from mnistlab import drawings, pipeline, runs
from mnistlab.config import Config
from mnistlab.errors import ConfigError
from mnistlab.images import normalize_digit

from tests.helpers import correlation, stroke_width


def mnist_like_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digits that look like MNIST's (white strokes, 20 px box): a ring (0) or a bar (1)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.uint8)
    labels = rng.integers(0, 2, count).astype(np.uint8)
    rows, columns = np.mgrid[0:28, 0:28]
    for image, label in zip(images, labels):
        if label == 0:
            radius = np.hypot((rows - 14) / 9.5, (columns - 14) / 6.5)
            image[(radius > 0.7) & (radius < 1.0)] = 255
        else:
            image[4:24, 12 + rng.integers(-1, 2) : 15] = 255
    return images, labels


def test_every_digit_drawn_is_its_own_digit_read_like_mnist():
    images, labels = mnist_like_digits(12)
    drawn, drawn_labels = drawings.drawn_training_digits(images, labels, len(labels), seed=0)
    # Drawing all of them keeps their order, so each drawing sits beside its digit.
    assert drawn.shape == images.shape and drawn.dtype == np.uint8
    assert np.array_equal(drawn_labels, labels)
    for digit, original, label in zip(drawn, images, labels):
        assert not np.array_equal(digit, original), "a drawing, not a copy"
        rows, columns = np.nonzero(digit)
        # MNIST's 20 px box (a thinned drawing is cropped to its ink again).
        assert 16 <= max(np.ptp(rows), np.ptp(columns)) + 1 <= 21
        assert 1.5 <= stroke_width(digit) <= 5.0
        # More like its own kind of digit (ring or bar) than like the other kind.
        other = images[labels != label][0]
        assert correlation(digit, normalize_digit(original)) > correlation(digit, other)


def test_same_seed_same_drawings_other_seed_other_digits_and_brushes():
    images, labels = mnist_like_digits(40)
    first = drawings.drawn_training_digits(images, labels, 10, seed=3)
    again = drawings.drawn_training_digits(images, labels, 10, seed=3)
    other = drawings.drawn_training_digits(images, labels, 10, seed=4)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_worker_processes_draw_exactly_what_one_process_draws(monkeypatch):
    images, labels = mnist_like_digits(30)
    alone = drawings.drawn_training_digits(images, labels, 24, seed=1)
    monkeypatch.setattr(drawings, "DIGITS_PER_WORKER", 8)  # 24 digits: two or more processes
    pooled = drawings.drawn_training_digits(images, labels, 24, seed=1)
    assert np.array_equal(alone[0], pooled[0]) and np.array_equal(alone[1], pooled[1])


def test_bad_counts_and_styles_are_refused():
    images, labels = mnist_like_digits(5)
    with pytest.raises(ValueError, match="cannot draw 6 of 5"):
        drawings.drawn_training_digits(images, labels, 6, seed=0)
    with pytest.raises(ValueError, match="unknown drawing style"):
        drawings.colour_drawing(np.zeros((4, 4)), "purple-on-green")
    with pytest.raises(ConfigError, match="drawings must be an integer >= 0"):
        Config(drawings=-1)
    assert Config.from_dict({"model": "seed-mlp"}).drawings == 0  # configs from before the field


def test_with_drawings_adds_them_after_the_training_digits():
    images, labels = mnist_like_digits(20)
    config = Config(drawings=8)
    grown, grown_labels = pipeline.with_drawings(images, labels, config, pipeline.Hooks())
    assert len(grown) == len(grown_labels) == 28
    assert np.array_equal(grown[:20], images) and np.array_equal(grown_labels[:20], labels)
    with pytest.raises(ConfigError, match="more than the 20 training digits"):
        pipeline.with_drawings(images, labels, Config(drawings=21), pipeline.Hooks())


@pytest.mark.mnist
def test_a_run_trained_with_drawings_reads_drawings_better(tmp_path, mnist_dir):
    """The same small run with and without drawings, scored on drawn test digits."""
    from mnistlab.data import load_dataset
    from mnistlab.predict import Predictor

    small = Config(epochs=3, train_limit=4000, test_limit=300, top_errors=2)
    plain = pipeline.train_run(small, data_dir=mnist_dir, out_dir=tmp_path / "plain")
    drawn = pipeline.train_run(
        small.replace(drawings=2000), data_dir=mnist_dir, out_dir=tmp_path / "drawn"
    )
    assert runs.read_config(drawn).drawings == 2000
    assert runs.read_json(drawn, "metrics.json")["timings"]["drawing_seconds"] > 0

    test = load_dataset("mnist", mnist_dir)
    picked = np.arange(1000, 1400)  # Test digits: never drawn for training.
    canvases, canvas_labels = drawings.drawn_training_digits(
        test.test_images[picked], test.test_labels[picked], len(picked), seed=7
    )
    scores = {
        name: float(
            (Predictor.from_run(run).probabilities(canvases).argmax(1) == canvas_labels).mean()
        )
        for name, run in (("plain", plain), ("drawn", drawn))
    }
    assert scores["drawn"] > scores["plain"], scores


def nine(head_filled: bool) -> np.ndarray:
    """A 9 as MNIST writes it: a head and a stem 2-3 px wide; a broad pen fills the head."""
    rows, columns = np.mgrid[0:28, 0:28]
    radius = np.hypot(rows - 9.5, columns - 14)
    image = np.zeros((28, 28), np.uint8)
    image[radius < 5.5 if head_filled else (radius > 3.2) & (radius < 5.5)] = 255
    image[9:25, 18:20] = 255
    return image


def encloses_a_loop(path: np.ndarray) -> bool:
    return bool((ndimage.binary_fill_holes(path) & ~path.astype(bool)).any())


def test_the_pen_goes_around_a_loop_a_broad_pen_filled():
    # The skeleton of a filled head is a line: the 9 would be redrawn as a 1.
    filled = drawings.upscale(nine(head_filled=True), 4 * 28)
    assert not encloses_a_loop(drawings.thin(filled >= 0.25))
    assert encloses_a_loop(drawings.pen_path(nine(head_filled=True), 150))
    assert encloses_a_loop(drawings.pen_path(nine(head_filled=False), 150))


def test_digits_of_even_strokes_keep_their_pen_path():
    # Only a faint rim inside a loop may go: the path keeps its place and its loops.
    for digit in mnist_like_digits(6, seed=3)[0]:
        ink = drawings.upscale(digit, 4 * 28)
        path, plain = drawings.pen_skeleton(ink), drawings.thin(ink >= 0.25)
        assert (path <= (ink >= 0.25)).all()
        assert encloses_a_loop(path) == encloses_a_loop(plain)
        assert ndimage.distance_transform_edt(~path)[plain].max() <= 2


def endpoints(path: np.ndarray) -> int:
    neighbours = ndimage.convolve(path.astype(int), np.ones((3, 3), int), mode="constant") - path
    return int((path & (neighbours == 1)).sum())


@pytest.mark.mnist
def test_the_pen_keeps_the_short_arms_of_a_bold_digit(mnist_dir):
    from mnistlab.data import load_dataset

    # Training digit 1341, a bold 3: thinning eats its middle arm, leaving a bracket.
    ink = drawings.upscale(load_dataset("mnist", mnist_dir).train_images[1341], 4 * 28)
    plain, path = drawings.thin(ink >= 0.25), drawings.pen_skeleton(ink)
    assert endpoints(plain) == 2
    assert endpoints(path) >= 3  # the middle arm's end too
    assert (path <= (ink >= 0.25)).all()
    assert ndimage.distance_transform_edt(~path)[plain].max() <= 2  # the bracket stays
    # A plain stroke has no arm to keep: its path is its skeleton.
    bar = np.zeros((28, 28), np.uint8)
    bar[4:24, 12:17] = 255
    bar_ink = drawings.upscale(bar, 4 * 28)
    assert np.array_equal(drawings.pen_skeleton(bar_ink), drawings.thin(bar_ink >= 0.25))
