"""Training-image moves in NumPy: whole-pixel shifts, and turns, zooms and moves in one
bilinear resampling."""

from __future__ import annotations

import numpy as np

from mnistlab.augmentation import (
    ROTATION_DEGREES,
    SHIFT_FRACTION,
    ZOOM_FRACTION,
    affine_resampled,
    shifted,
    warped,
)


def test_shifts_move_each_image_by_whole_pixels_within_the_limit():
    count = 2000
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    images[:, 10:18, 12:16] = np.arange(1, 33, dtype=np.uint8).reshape(8, 4)  # a marked block
    moved = shifted(images, 2, np.random.default_rng(0))

    assert moved.shape == images.shape and moved.dtype == np.uint8
    found = set()
    for before, after in zip(images, moved):
        rows, cols = np.nonzero(after)
        down, right = rows.min() - 10, cols.min() - 12
        assert abs(down) <= 2 and abs(right) <= 2
        # The whole block, unchanged, in its new place, and nothing else.
        assert np.array_equal(np.roll(before, (down, right), axis=(0, 1)), after)
        found.add((int(down), int(right)))
    assert len(found) == 25  # every move within 2 pixels occurs
    assert np.array_equal(shifted(images, 2, np.random.default_rng(0)), moved)
    # What is moved past the edge is lost, not wrapped round to the other side.
    edge = np.zeros((200, 28, 28), dtype=np.uint8)
    edge[:, 0, :] = 255
    moved = shifted(edge, 1, np.random.default_rng(1)).astype(int)
    # Moved up: the row is lost; sideways: one pixel of it.
    assert set(moved.sum(axis=(1, 2))) == {0, 27 * 255, 28 * 255}
    assert moved[:, 27].sum() == 0  # rolled, the lost row would come back at the bottom


def _blob(count: int = 1, centre=(13.5, 13.5), sigma: float = 2.5) -> np.ndarray:
    """Smooth round ink, like a stroke's cross-section, far from the border."""
    rows, cols = np.mgrid[0:28, 0:28]
    ink = np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * sigma**2))
    return np.repeat((ink * 255).round().astype(np.uint8)[None], count, axis=0)


def _centre_of_ink(images: np.ndarray) -> np.ndarray:
    """(row, column) of each image's ink, weighted by brightness."""
    rows, cols = np.mgrid[0:28, 0:28]
    total = images.sum(axis=(1, 2), dtype=np.float64)
    return np.stack(
        [(images * rows).sum(axis=(1, 2)) / total, (images * cols).sum(axis=(1, 2)) / total], 1
    )


def _noise(count: int = 20) -> np.ndarray:
    """Every pixel random, border included: an edge case a digit would not reach."""
    return np.random.default_rng(5).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)


def test_no_turn_zoom_or_move_leaves_images_unchanged_and_whole_pixel_moves_are_exact():
    images = _noise()
    count = len(images)
    none = affine_resampled(images, np.zeros(count), np.ones(count), np.zeros((count, 2)))
    assert none.dtype == np.uint8 and np.array_equal(none, images)

    moves = np.tile([[2.0, -3.0]], (count, 1))  # 2 down, 3 left
    moved = affine_resampled(images, np.zeros(count), np.ones(count), moves)
    expected = np.zeros_like(images)
    expected[:, 2:, :-3] = images[:, :-2, 3:]  # what leaves the frame is lost, not wrapped
    assert np.array_equal(moved, expected)


def test_a_quarter_turn_is_counter_clockwise_and_zoom_scales_about_the_centre():
    images = _noise()
    count = len(images)
    turned = affine_resampled(
        images, np.full(count, np.pi / 2), np.ones(count), np.zeros((count, 2))
    )
    assert np.array_equal(turned, np.rot90(images, axes=(1, 2)))

    # An off-centre blob: scaling by s multiplies its distance from the centre by s and its
    # ink by s squared.
    blob = _blob(centre=(10.5, 16.5), sigma=2.0)  # 3 up, 3 right of the centre (13.5, 13.5)
    for scale in (0.5, 1.5):
        scaled = affine_resampled(blob, np.zeros(1), np.array([scale]), np.zeros((1, 2)))
        assert np.allclose(
            _centre_of_ink(scaled)[0], [13.5 - 3 * scale, 13.5 + 3 * scale], atol=0.05
        )
        assert np.isclose(scaled.sum() / blob.sum(), scale**2, rtol=0.03)


def test_random_warps_stay_within_their_ranges_and_repeat_for_the_same_draws():
    count = 3000
    blob = _blob(count)
    warps = warped(blob, np.random.default_rng(0))
    assert warps.dtype == np.uint8 and warps.shape == blob.shape
    assert np.array_equal(warped(blob, np.random.default_rng(0)), warps)

    # A blob at the centre is moved only by the shift, up to a tenth of the side each way,
    # every amount about equally likely.
    moves = _centre_of_ink(warps) - 13.5
    limit = SHIFT_FRACTION * 28
    assert np.abs(moves).max() <= limit + 0.05
    assert np.abs(moves).max(axis=0).min() > 0.95 * limit
    assert np.abs(moves.mean(axis=0)).max() < 0.1
    assert np.isclose(np.abs(moves).mean(), limit / 2, rtol=0.05)
    # Zoom scales the ink by 0.9-1.1 in each direction: 0.81-1.21 of it.
    ink = warps.sum(axis=(1, 2)) / blob[0].sum()
    low, high = (1 - ZOOM_FRACTION) ** 2, (1 + ZOOM_FRACTION) ** 2
    assert low - 0.02 <= ink.min() < low + 0.03 and high - 0.03 < ink.max() <= high + 0.02

    # A bar through the centre turns by up to ±10.8°, no further.
    bar = np.zeros((count, 28, 28), dtype=np.uint8)
    bar[:, 13:15, 4:24] = 255
    rows, cols = np.mgrid[0:28, 0:28]
    turned = warped(bar, np.random.default_rng(1)).astype(np.float64)
    centre = _centre_of_ink(turned)
    dy, dx = rows - centre[:, 0, None, None], cols - centre[:, 1, None, None]
    syy, sxx, sxy = ((turned * d).sum(axis=(1, 2)) for d in (dy * dy, dx * dx, dx * dy))
    # Counter-clockwise as displayed is a negative slope in row-down coordinates.
    angles = np.degrees(-0.5 * np.arctan2(2 * sxy, sxx - syy))
    assert np.abs(angles).max() <= ROTATION_DEGREES + 0.5
    assert np.abs(angles).max() > ROTATION_DEGREES - 0.5
