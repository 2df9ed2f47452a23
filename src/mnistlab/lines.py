"""One line of handwriting as the sequence reader sees it: the ink found as ``segments`` finds
it (grayscale, polarity, lighting, noise; specks and ruled lines dropped), sheared upright when
the writing leans (``slant``), cropped to the line's marks and scaled to HEIGHT px, so that
drawn, photographed and MNIST-like numbers look the same to the network. Training
(``read_training``) prepares its composed strings through these same steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np
from PIL import Image

from mnistlab import images, raster, segments
from mnistlab.errors import ImageError

HEIGHT = 32  # the line image's height in px ...
INK_HEIGHT = 26  # ... the marks' height in it (3 px of paper above and below)
MIN_WIDTH = 16  # px; and the width is a multiple of STRIDE
STRIDE = 4  # line-image columns per frame of the network's output
NO_NUMBER = segments.NO_NUMBER
# Writing that leans more than this (the tangent of its angle from upright: 10 degrees) is
# sheared to MNIST_LEAN (5 degrees right, as MNIST's digits lean on the whole) before it is
# read: italic digits overlap in columns and look unlike MNIST's.
UPRIGHT = 0.176
MNIST_LEAN = 0.087
EDGE_BIAS = 0.11  # ``edge_slant`` of upright MNIST writing


class NoNumber(Exception):
    """The image is readable but holds no number; the message says why."""


@dataclass
class Ink:
    """An image's ink in working pixels, over the region ``offset`` (row, column) of the
    decoded image; ``scale`` is image pixels per working pixel (x, y)."""

    strokes: np.ndarray  # in [0, 1], only the marks that may be digits
    mask: np.ndarray  # their firm ink
    clean: bool  # a clean drawing (strokes of one pen on plain paper)
    height: float  # the line's digits' typical height, working px
    offset: tuple[int, int]
    scale: tuple[float, float]
    # The lean sheared away: a point x columns from the left, y rows down, of the upright
    # strokes was at x + (rows - 1 - y) * shear - shift in the writing (rows: the height).
    shear: float = 0.0
    shift: int = 0

    def box_in_image(self, box) -> list[int]:
        """[x, y, width, height] in the image's pixels of a box (top, left, bottom, right) in
        working px; of a sheared line, the box of its ink as written."""
        top, left, bottom, right = box
        first, last = left, right
        if self.shear:
            rows, columns = np.nonzero(self.mask[top:bottom, left:right])
            if rows.size:
                written = columns + left + (self.mask.shape[0] - 1 - rows - top) * self.shear
                first, last = written.min() - self.shift, written.max() + 1 - self.shift
        (scale_x, scale_y), (row, column) = self.scale, self.offset
        x = math.floor((first + column) * scale_x)
        return [
            x,
            math.floor((top + row) * scale_y),
            math.ceil((last + column) * scale_x) - x,
            math.ceil((bottom - top) * scale_y),
        ]


@dataclass
class LineImage:
    """The ink box (top, left, bottom, right in working px) scaled by ``factor`` into
    ``pixels`` (HEIGHT x width, ink in [0, 1]), ``pad`` px from its left edge."""

    pixels: np.ndarray
    box: tuple[int, int, int, int]
    factor: float
    pad: int


def find_ink(image) -> Ink:
    """Decode ``image`` (bytes, path, PIL image or array) and find the marks on its line.

    Raises:
        ImageError: the data is not a readable image.
        NoNumber: it holds no marks that may be digits (blank, specks, a ruled line).
    """
    loaded, original_size = segments.load(image)
    try:
        gray = segments.grayscale(loaded)
        strokes, mask, clean, offset, blobs = segments.find_ink(gray)
        kept, height = segments.marks(mask, blobs)
    except ImageError as error:
        raise NoNumber(str(error)) from None
    strokes = strokes * images._dilate(kept)
    scale = (original_size[0] / gray.shape[1], original_size[1] / gray.shape[0])
    ink = Ink(strokes, kept, clean, height, offset, scale)
    lean = slant(kept, height)
    if lean is None:  # every digit touches another: the strokes' edges tell the lean
        lean = edge_slant(strokes)
    return upright(ink, lean - MNIST_LEAN) if abs(lean) >= UPRIGHT else ink


def slant(mask: np.ndarray, height: float) -> float | None:
    """The writing's lean from upright (the tangent; > 0 leaning right): how far the ink
    moves right per row up, about each blob's centre (so that a sloping baseline is no lean),
    from the second moments of the blobs a digit tall and no wider than one, pooled; None
    where there are none (every digit touches another). Every other row and column is
    enough."""
    _, count, runs = raster.label_runs(mask[::2, ::2])
    if not count:
        return 0.0
    blob, row, start, stop = runs
    top, bottom, left, right = raster.run_boxes(count, runs).T
    half = height / 2  # a digit's height in every other row
    digits = (bottom - top >= 0.5 * half) & (right - left <= 1.3 * half)
    if digits.any():
        # Sums over each blob's runs of ink along the rows: far fewer than its pixels.
        keep = digits[blob]
        blob, row, start, stop = blob[keep], row[keep].astype(np.float64), start[keep], stop[keep]
        length = (stop - start).astype(np.float64)
        across = (start + stop - 1) * length / 2  # the sum of the run's columns
        n, sx, sy = (
            np.bincount(blob, weights, count) for weights in (length, across, row * length)
        )
        sxy = np.bincount(blob, row * across, count)
        syy = np.bincount(blob, row * row * length, count)
        n = np.maximum(n, 1)
        covariance = (sxy - sx * sy / n).sum()
        spread = (syy - sy * sy / n).sum()
        return 0.0 if spread <= 0 else -float(covariance / spread)
    return None


def edge_slant(strokes: np.ndarray) -> float:
    """The lean of a line of touching digits, from its strokes' edges: where the ink's
    gradient runs more across than down (the sides of near-upright strokes), how far it turns
    down per step across, in least squares, less what upright MNIST writing gives
    (EDGE_BIAS). Curves count too, so a digit's lean is measured short, by about half on
    composed lines of MNIST's tune digits: such a line is sheared only part of the way, which
    the reader reads as well, and straight strokes, measured in full, are not sheared past
    upright. Every other pixel is enough."""
    sample = strokes[::2, ::2].astype(np.float64)
    across = sample[1:-1, 2:] - sample[1:-1, :-2]
    down = sample[2:, 1:-1] - sample[:-2, 1:-1]
    sides = np.abs(across) > np.abs(down)
    across, down = across[sides], down[sides]
    spread = float(np.dot(across, across))
    if spread == 0:
        return 0.0
    return float(np.dot(across, down)) / spread - EDGE_BIAS


def upright(ink: Ink, lean: float) -> Ink:
    """``ink`` sheared left by ``lean`` (a tangent): writing that leant that much stands
    upright."""
    height, width = ink.mask.shape
    shift = max(0, math.ceil((height - 1) * lean))
    size = (width + math.ceil((height - 1) * abs(lean)), height)
    # Each upright pixel (x, y) takes the writing's at x + (height - 1 - y) * lean - shift.
    shear = (1.0, -lean, (height - 1) * lean - shift, 0.0, 1.0, 0.0)
    strokes = Image.fromarray(ink.strokes.astype(np.float32)).transform(
        size, Image.Transform.AFFINE, shear, Image.Resampling.BILINEAR
    )
    mask = Image.fromarray(ink.mask.astype(np.float32)).transform(
        size, Image.Transform.AFFINE, shear, Image.Resampling.BILINEAR
    )
    return Ink(
        np.asarray(strokes),
        np.asarray(mask) >= 0.5,
        ink.clean,
        ink.height,
        ink.offset,
        ink.scale,
        lean,
        shift,
    )


def line_image(ink: Ink) -> LineImage:
    """The marks' box scaled to INK_HEIGHT px tall, on HEIGHT px, padded to a whole number
    of frames."""
    rows = np.flatnonzero(ink.mask.any(axis=1))
    columns = np.flatnonzero(ink.mask.any(axis=0))
    top, bottom = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, ink.mask.shape[0])
    left, right = max(int(columns[0]) - 1, 0), min(int(columns[-1]) + 2, ink.mask.shape[1])
    crop = ink.strokes[top:bottom, left:right].astype(np.float32)
    factor = INK_HEIGHT / crop.shape[0]
    width = max(1, round(crop.shape[1] * factor))
    resample = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    scaled = np.asarray(Image.fromarray(crop).resize((width, INK_HEIGHT), resample))
    margin = (HEIGHT - INK_HEIGHT) // 2
    total = max(MIN_WIDTH, -(-(width + 2 * margin) // STRIDE) * STRIDE)
    pixels = np.zeros((HEIGHT, total), np.float32)
    pixels[margin : margin + INK_HEIGHT, margin : margin + width] = np.clip(scaled, 0, 1)
    return LineImage(pixels, (top, left, bottom, right), factor, margin)


def prepare(image) -> tuple[Ink, LineImage]:
    """``find_ink`` then ``line_image``."""
    ink = find_ink(image)
    return ink, line_image(ink)
