"""One line of handwriting as the sequence reader sees it: the ink found as ``segments`` finds
it (grayscale, polarity, lighting, noise; specks and ruled lines dropped), cropped to the
line's marks and scaled to HEIGHT px, so that drawn, photographed and MNIST-like numbers look
the same to the network. Training (``read_training``) prepares its composed strings through
these same steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from mnistlab import images, segments
from mnistlab.errors import ImageError

HEIGHT = 32  # the line image's height in px ...
INK_HEIGHT = 26  # ... the marks' height in it (3 px of paper above and below)
MIN_WIDTH = 16  # px; and the width is a multiple of STRIDE
STRIDE = 4  # line-image columns per frame of the network's output
NO_NUMBER = segments.NO_NUMBER


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
    return Ink(strokes, kept, clean, height, offset, scale)


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
