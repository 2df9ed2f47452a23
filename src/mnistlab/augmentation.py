"""Random moves of training images, done in NumPy as batches are taken (``train.EqualBatches``).

No model holds them, so any backend trains with them at the same cost, a saved or exported
model is exactly its inference network, and each batch's moves come from the generator the
caller passes (a resumed run redraws the same ones).
"""

from __future__ import annotations

import numpy as np

# The ranges of cnn-best's augmentation, as Keras's RandomRotation(0.03), RandomTranslation(0.1)
# and RandomZoom(0.1) drew them when it trained with those layers.
ROTATION_DEGREES = 0.03 * 360
SHIFT_FRACTION = 0.1
ZOOM_FRACTION = 0.1


def shifted(images: np.ndarray, max_pixels: int, rng: np.random.Generator) -> np.ndarray:
    """Each (H, W) image moved by whole pixels, up to ``max_pixels`` down or up and right or
    left, all (2 * max_pixels + 1)^2 moves equally likely; uncovered pixels are 0.

    Images with the same move are copied together, one slice of the padded batch each: about
    0.13 ms for a batch of 128 digits, against 0.5 ms indexing every pixel on its own.
    """
    side = 2 * max_pixels + 1
    height, width = images.shape[1:]
    margin = ((0, 0), (max_pixels, max_pixels), (max_pixels, max_pixels))
    padded = np.pad(images, margin)
    moves = rng.integers(0, side * side, len(images))
    moved = np.empty_like(images)
    for move in np.unique(moves):
        down, right = divmod(int(move), side)
        chosen = moves == move
        moved[chosen] = padded[chosen, down : down + height, right : right + width]
    return moved


def warped(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each uint8 (H, W) image turned by up to ±10.8°, scaled by 0.9-1.1 and moved by up to a
    tenth of its side each way, all drawn uniformly and independently per image."""
    count = len(images)
    angles = np.radians(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES, count))
    scales = rng.uniform(1 - ZOOM_FRACTION, 1 + ZOOM_FRACTION, count)
    shifts = rng.uniform(-SHIFT_FRACTION, SHIFT_FRACTION, (count, 2)) * images.shape[1:]
    return affine_resampled(images, angles, scales, shifts)


def affine_resampled(
    images: np.ndarray, angles: np.ndarray, scales: np.ndarray, shifts: np.ndarray
) -> np.ndarray:
    """Image ``i`` (uint8, (H, W)) turned counter-clockwise (as displayed) by ``angles[i]``
    radians and scaled by ``scales[i]`` about its centre, then moved ``shifts[i]`` = (down,
    right) pixels.

    One bilinear resampling does all three, where Keras's layers resample once each (three
    blurs): every output pixel reads the four input pixels around the point it came from, 0
    outside the image. About 1.7 ms for a batch of 128 digits on one core.
    """
    count, height, width = images.shape
    centre = np.array([(height - 1) / 2, (width - 1) / 2], dtype=np.float32)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    # Where each output pixel came from: undo the move, the scaling and the turn, in that order.
    inverse = np.float32(1) / scales.astype(np.float32)
    cos = (np.cos(angles) * inverse).astype(np.float32)[:, None, None]
    sin = (np.sin(angles) * inverse).astype(np.float32)[:, None, None]
    down = (rows - centre[0])[None] - shifts[:, 0, None, None].astype(np.float32)
    right = (cols - centre[1])[None] - shifts[:, 1, None, None].astype(np.float32)
    source_rows = cos * down + sin * right + centre[0]
    source_cols = cos * right - sin * down + centre[1]
    # A border of zeros one pixel wide (two after the last row and column, which the +1
    # neighbours reach); points farther out are clipped onto it, so they read 0.
    padded = np.pad(images, ((0, 0), (1, 2), (1, 2))).astype(np.float32)
    padded_width = width + 3
    np.clip(source_rows, -1, height, out=source_rows)
    np.clip(source_cols, -1, width, out=source_cols)
    top_rows, left_cols = np.floor(source_rows), np.floor(source_cols)
    below, beside = source_rows - top_rows, source_cols - left_cols
    # Each point's top-left neighbour as an index into the whole flattened batch.
    corner = (top_rows.astype(np.intp) + 1) * padded_width + left_cols.astype(np.intp) + 1
    corner += (np.arange(count) * padded[0].size)[:, None, None]
    top_left, top_right, bottom_left, bottom_right = (
        padded.ravel().take(corner + offset) for offset in (0, 1, padded_width, padded_width + 1)
    )
    top = top_left + (top_right - top_left) * beside
    bottom = bottom_left + (bottom_right - bottom_left) * beside
    values = top + (bottom - top) * below
    return (values + np.float32(0.5)).astype(np.uint8)
