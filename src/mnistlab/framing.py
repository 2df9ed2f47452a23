"""Framing the ink as MNIST did, the last steps of ``images.normalize_digit``, and checks on
the 28x28 that result.

The ink's bounding box is resized so its longest side is ``DIGIT_BOX_SIDE`` px (a drawing's
broad brush first thinned to MNIST's pen), then placed in 28x28 at the integer offset that puts
its centre of mass nearest to ``CENTRE_OF_MASS``. ``is_solid_blob`` and
``looks_like_several_digits`` tell a result that cannot be one digit.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mnistlab import raster
from mnistlab.data import IMAGE_SIDE
from mnistlab.errors import ImageError

DIGIT_BOX_SIDE = 20  # MNIST fits each digit's bounding box into 20x20 ...
CENTRE_OF_MASS = (14.0, 14.0)  # ... and puts its centre of mass here (row, column).
# MNIST's median stroke width in px at that scale (twice the half-bright ink's area over its
# boundary length, measured at 4x on the training digits: 10.9 / 4).
MNIST_PEN_WIDTH = 2.72
SOLID_DIGIT_FILL = 0.85  # See is_solid_blob.
SEVERAL_GAP, SEVERAL_HEIGHT = 2, 0.8  # See looks_like_several_digits.


def _ink_box(marks: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    """Row and column slices of the nonzero pixels' bounding box, grown by ``margin``."""
    rows = np.flatnonzero(marks.any(axis=1))
    columns = np.flatnonzero(marks.any(axis=0))
    return (
        slice(max(rows[0] - margin, 0), rows[-1] + 1 + margin),
        slice(max(columns[0] - margin, 0), columns[-1] + 1 + margin),
    )


def _crop_to_ink(strokes: np.ndarray) -> np.ndarray:
    """The bounding box of the nonzero pixels."""
    return strokes[_ink_box(strokes)]


def _fit_box(crop: np.ndarray) -> np.ndarray:
    """Resize so the longest side is 20 px, keeping the aspect ratio; peak ink becomes 1."""
    height, width = crop.shape
    scale = DIGIT_BOX_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        box = crop
    else:
        # Area averaging when shrinking is the anti-aliasing MNIST describes; neither filter
        # has negative lobes, so no ringing halo appears around the strokes.
        shrinking = scale < 1
        resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
        resized = Image.fromarray(crop.astype(np.float32)).resize(size, resample)
        box = np.clip(np.asarray(resized, dtype=np.float64), 0.0, 1.0)
    peak = box.max()
    if peak <= 0:  # Cannot happen for a crop around kept ink, but never divide by zero.
        raise ImageError("no digit-like ink found: the ink vanished when scaled to 20 px")
    return box / peak


def _match_pen_width(crop: np.ndarray) -> np.ndarray:
    """Thin the strokes of a drawing made with a brush broader than MNIST's pen.

    A canvas brush has whatever width the app chose; once the digit is shrunk to 20 px, a
    broad one fills loops and merges strokes, and the model reads such digits worse. The
    width is measured at 4x the final scale (twice the ink's area over its boundary length);
    strokes wider than MNIST's median pen are eroded to it. Returns ``crop`` itself when
    nothing needs thinning, else the thinned ink at the 4x scale, cropped to its marks.
    """
    side = 4 * DIGIT_BOX_SIDE
    height, width = crop.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    ink = np.asarray(Image.fromarray(crop.astype(np.float32)).resize(size, resample))
    ink = np.clip(ink / max(float(ink.max()), 1e-6), 0.0, 1.0)
    mask = ink >= 0.5
    # Inner pixels have ink on all four sides; those on the array's edge border the paper.
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    area = np.count_nonzero(mask)
    boundary = area - np.count_nonzero(inner)
    pen_width = 2 * area / max(boundary, 1)
    excess = pen_width - 4 * MNIST_PEN_WIDTH
    if excess <= 0:
        return crop
    # Distance of each ink pixel to the nearest paper; peel off half the excess on each side.
    peel = excess / 2 + 0.5  # ink deeper than this keeps its value
    inside = raster.distance_to_paper(np.pad(mask, 1), limit=peel)[1:-1, 1:-1]
    thinned = np.minimum(ink, np.clip(inside - excess / 2 + 0.5, 0.0, 1.0))
    # Peeling moved the outer edge inwards; MNIST's 20 px box is the box of the ink itself.
    return _crop_to_ink(thinned)


def _center(box: np.ndarray) -> np.ndarray:
    """Paste into 28x28 so the centre of mass lands on (14, 14), keeping all ink inside."""
    height, width = box.shape
    mass = box.sum()
    centre_row = float(box.sum(axis=1) @ np.arange(height) / mass)
    centre_column = float(box.sum(axis=0) @ np.arange(width) / mass)
    top = min(max(round(CENTRE_OF_MASS[0] - centre_row), 0), IMAGE_SIDE - height)
    left = min(max(round(CENTRE_OF_MASS[1] - centre_column), 0), IMAGE_SIDE - width)
    canvas = np.zeros((IMAGE_SIDE, IMAGE_SIDE), dtype=np.float64)
    canvas[top : top + height, left : left + width] = box
    return np.round(canvas * 255).astype(np.uint8)


def is_solid_blob(digit: np.ndarray) -> bool:
    """Whether a normalised digit is a filled blob (a square, a big dot), not strokes: its
    half-bright ink fills more than SOLID_DIGIT_FILL of a squarish bounding box. No digit of
    MNIST's 70,000 does (the fullest fills 0.84)."""
    ink = np.asarray(digit) >= 128
    if not ink.any():
        return False
    rows, columns = _ink_box(ink)
    height, width = rows.stop - rows.start, columns.stop - columns.start
    squarish = min(height, width) > 0.5 * max(height, width)
    return squarish and np.count_nonzero(ink) > SOLID_DIGIT_FILL * height * width


def looks_like_several_digits(digit: np.ndarray) -> bool:
    """Whether a normalised digit is several written side by side: its ink falls into at
    least two column runs, more than SEVERAL_GAP empty columns apart, each at least
    SEVERAL_HEIGHT of the ink's height tall. 12 of MNIST's 70,000 digits look so."""
    ink = np.asarray(digit) >= 64
    columns = np.flatnonzero(ink.any(axis=0))
    if columns.size == 0:
        return False
    rows = np.flatnonzero(ink.any(axis=1))
    height = rows[-1] - rows[0] + 1
    breaks = np.flatnonzero(np.diff(columns) > SEVERAL_GAP + 1)
    starts = np.concatenate([[columns[0]], columns[breaks + 1]])
    stops = np.concatenate([columns[breaks], [columns[-1]]]) + 1
    tall = 0
    for start, stop in zip(starts, stops):
        run = np.flatnonzero(ink[:, start:stop].any(axis=1))
        tall += run[-1] - run[0] + 1 >= SEVERAL_HEIGHT * height
    return tall >= 2


def ink_fraction(digit: np.ndarray) -> float:
    """Fraction of a normalized digit's pixels that are at least half-bright ink.

    MNIST test digits range from about 0.05 to 0.26 (median 0.13); values far outside that
    range suggest the image did not hold a single handwritten digit.
    """
    return float(np.mean(np.asarray(digit) >= 128))
