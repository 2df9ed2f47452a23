"""A person's image of a digit -> a 28x28 uint8 array that looks like an MNIST digit.

MNIST digits are white ink (255) on black (0); the ink's bounding box was scaled to fit 20x20
keeping its aspect ratio (the grey levels come from that anti-aliasing) and the box was placed
in a 28x28 field so that the centre of mass of the ink falls on pixel (14, 14)
(https://yann.lecun.com/exdb/mnist/; on the real test set the mean centre of mass is
(13.99, 14.01) in row/column index coordinates). ``normalize_digit`` reproduces those steps for
photos, scans and canvas drawings:

1. Decode and grayscale on a [0, 1] scale (``decoding.py``); transparent pixels are composited on
   a background that contrasts with the opaque pixels, so black strokes and white strokes on a
   transparent canvas both work. An image at most SMALL_IMAGE_SIDE px a side is framed in paper.
2. Polarity: the median pixel is taken to be paper. Ink is whichever extreme (darkest or
   brightest 0.1% of pixels) lies further from it, so dark-on-light and light-on-dark both work.
3. Background: a smooth quadratic surface fitted to the pixels that are not ink is subtracted,
   which removes uneven lighting; a 3x3 box blur and a threshold set above the measured noise
   level suppress paper texture, sensor noise and salt-and-pepper noise.
4. Specks: ink blobs far smaller than the largest one, or small and away from it, are dropped,
   and so is a blob running along much of the image's edge (the table beyond the paper). If the
   ink is one solid block, it is a sheet of paper on a dark table, and the digit is sought on it.
5. The ink's bounding box is resized so its longest side is 20 px, then pasted into a 28x28
   canvas at the integer offset that puts its centre of mass nearest to (14, 14) (``framing.py``).

This module holds steps 2-4, in that order, and the entry point; the names of the other two
modules are re-exported here, so ``mnistlab.images`` stays the one place callers import.

A drawing on a perfectly flat background (a canvas export) skips the lighting fit and the noise
estimate and is processed on its marks' bounding box only (several times faster than a photo);
if it was drawn with a brush broader than MNIST's pen, its strokes are thinned to that width.

The result is never scaled to floats here: model input comes from ``data.to_model_input`` only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import numpy as np
from PIL import Image

from mnistlab import raster
from mnistlab.data import IMAGE_SIDE
from mnistlab.decoding import (  # noqa: F401 - steps 1-2, re-exported: callers import images
    MAX_PIXELS,
    SUPPORTED_FORMATS,
    WORKING_SIDE,
    _composite,
    _grayscale,
    _pil_to_array,
    _unit_range,
    load_image,
    open_image,
    pixel_count,
)
from mnistlab.errors import ImageError
from mnistlab.framing import (  # noqa: F401 - step 5 and checks on the result, re-exported
    CENTRE_OF_MASS,
    DIGIT_BOX_SIDE,
    MNIST_PEN_WIDTH,
    _center,
    _crop_to_ink,
    _fit_box,
    _ink_box,
    _match_pen_width,
    ink_fraction,
    is_solid_blob,
    looks_like_several_digits,
)

MIN_INK_CONTRAST = 0.10  # Ink must differ from the paper by 10% of the full brightness range ...
MIN_SIGNAL_TO_NOISE = 6.0  # ... and by six times the noise (texture, grain) of the paper.
# Marks that are dark enough but cover under 0.1% of the image (the contrast is taken at the
# 99.9th percentile) are a tap or dust, not a digit.
SPECKS_ONLY = "the only marks are specks (a tap or dust), too small to be written digits"
SPECK_FRACTION = 0.02  # Blobs under 2% of the largest blob's area are specks ...
NEAR_FRACTION = 0.25  # ... and so are blobs under 25% of it that lie away from it.
SOLID_FILL = 0.75  # Ink filling 75% of a squarish bounding box is a sheet of paper, not strokes.
# On a flat background a sheet is a drawn rectangle that fills its box; a small digit drawn with
# a broad brush, its loops nearly closed, fills 76-83% of its box and is still a digit.
CLEAN_SHEET_FILL = 0.9
# An image whose one most common value covers half of it, and whose other pixels are mostly
# clear marks (at most a quarter faint), is a drawing on a flat background.
CLEAN_PAPER_FRACTION = 0.5
CLEAN_FAINT_FRACTION = 0.25
SURROUND_FRACTION = 0.35  # A blob along 35% of the image's edge is a table or margin, not ink.
BACKGROUND_SAMPLES = 5_000  # A grid of this many pixels pins down the six-term lighting surface.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)  # A pixel's neighbours include its diagonals.
# Images this small are a digit's own field, often cut tight to the ink (old digit sets, low-
# resolution scans, also enlarged): they get a frame of paper first, as MNIST's 4 px margin, so
# ink that touches the edge is not taken for a table and thick ink is not taken for the paper.
# (Phone photos and the page's 280 px canvas are larger; their results do not change.)
SMALL_IMAGE_SIDE = 200
FRAME_FRACTION = 0.15


def normalize_digit(image: Image.Image | np.ndarray) -> np.ndarray:
    """Turn an image of one handwritten digit into an MNIST-style digit.

    Args:
        image: a PIL image in any mode, or an array of shape (H, W) or (H, W, C) with C = 1
            (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA); integer arrays span 0..255 for
            uint8 and up to 65535 for wider types, float arrays 0..1 (or 0..255).
    Returns:
        uint8 array of shape (28, 28): white ink (up to 255) on black (0), the ink's longest
        side 20 px, its centre of mass within half a pixel of (14, 14) unless that would push
        ink off the canvas.
    Raises:
        ImageError: the image is uniform or holds no ink that stands out from the background.
    """
    gray = _frame_small(_grayscale(image))
    clean = _clean_paper(gray)
    if clean is not None:
        # A drawing on a flat background (a canvas export): no lighting or noise to model.
        strokes = _clean_strokes(gray, *clean)
        if _solid_box(strokes, CLEAN_SHEET_FILL) is None:
            return _center(_fit_box(_match_pen_width(strokes)))
    strokes = _find_strokes(gray)
    sheet = _solid_box(strokes)
    if sheet is not None:
        # The "ink" is one solid block: a sheet of paper on a darker table that fills less
        # than half the photo. Look for the digit on the sheet instead.
        top, bottom, left, right = sheet
        try:
            on_sheet = _find_strokes(gray[top:bottom, left:right])
        except ImageError:
            on_sheet = None
        if on_sheet is not None and _solid_box(on_sheet) is None:
            strokes = np.zeros_like(strokes)
            strokes[top:bottom, left:right] = on_sheet
    return _center(_fit_box(_crop_to_ink(strokes)))


def _frame_small(gray: np.ndarray) -> np.ndarray:
    """A small image inside a frame of its paper (the median of its edge), else as it is."""
    if max(gray.shape) > SMALL_IMAGE_SIDE:
        return gray
    edge = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    width = max(2, round(FRAME_FRACTION * max(gray.shape)))
    return np.pad(gray, width, constant_values=gray.dtype.type(np.median(edge)))


UNIFORM_IMAGE = "no digit-like ink found: the image is uniform (one flat colour)"


def _clean_paper(gray: np.ndarray) -> tuple[float, tuple[slice, slice]] | None:
    """The paper's value and the marks' box if the image is marks on a perfectly flat
    background, else None; ImageError if it is nothing but the flat background.

    A canvas export has one exact background value covering most of the image, and its marks
    are solid strokes with a thin anti-aliased rim. Photos and scans have noise, so no single
    value covers half of them; an over-exposed photo has a flat white area but also wide faint
    gradients, which the second test catches.
    """
    if gray.size < 64:
        return None
    paper = gray.dtype.type(np.median(gray[::7, ::7]))
    marks = gray != paper
    count = np.count_nonzero(marks)
    if count == 0:  # A blank canvas: said here, not after a search of the whole image (10 ms).
        raise ImageError(UNIFORM_IMAGE)
    if count > (1 - CLEAN_PAPER_FRACTION) * gray.size:
        return None
    # Two pixels of paper around the marks: the blur and the dilation each reach one.
    box = _ink_box(marks, margin=2)
    faint = np.count_nonzero(np.abs(gray[box] - paper) < MIN_INK_CONTRAST)
    faint -= gray[box].size - np.count_nonzero(marks[box])  # The paper itself.
    if faint > CLEAN_FAINT_FRACTION * count:
        return None
    return float(paper), box


def _clean_strokes(gray: np.ndarray, paper: float, box: tuple[slice, slice]) -> np.ndarray:
    """``_find_strokes`` for a drawing on a flat background, cropped to the ink.

    The background is the constant ``paper`` and the noise is zero, so the lighting fit and
    the noise estimate are skipped, and all work is done on the marks' ``box`` (which has a
    margin of paper wide enough for the 3x3 blur and the 3x3 dilation). Quantiles still
    count the paper outside the box, so thresholds are those of the whole image.
    """
    region = gray[box]
    smooth = _box_blur(region)
    darkest = paper - _top_quantile(paper - smooth, gray.size)
    brightest = paper + _top_quantile(smooth - paper, gray.size)
    sign = -1.0 if paper - darkest >= brightest - paper else 1.0
    strokes = _strokes(region, smooth, sign, paper, 0.0, total_pixels=gray.size)
    return _crop_to_ink(strokes)


def _find_strokes(gray: np.ndarray) -> np.ndarray:
    """Decide the polarity, then find the ink; returns (H, W) floats in [0, 1]."""
    smooth = _box_blur(gray)
    # The median pixel is paper; ink is the extreme that lies further from it.
    darkest, paper, brightest = (float(q) for q in np.quantile(smooth, [0.001, 0.5, 0.999]))
    sign = -1.0 if paper - darkest >= brightest - paper else 1.0
    # The same quantiles give the strongest ink measured from flat paper (the first background).
    flat_peak = paper - darkest if sign < 0 else brightest - paper
    return _strokes(gray, smooth, sign, paper, flat_peak)


def _strokes(
    gray: np.ndarray,
    smooth: np.ndarray,
    sign: float,
    paper: float,
    flat_peak: float,
    total_pixels: int | None = None,
) -> np.ndarray:
    """Ink of the given polarity (-1: darker than the paper) as (H, W) floats in [0, 1].

    ``paper`` is the median of ``smooth``; ``flat_peak`` is the 99.9th percentile of the ink
    measured from it. Both are already known from choosing the polarity. ``total_pixels`` is
    set when ``gray`` is the marks' box cut from a clean image of that many pixels: the
    background is then exactly ``paper`` and noiseless, outside the box as well.
    """
    if total_pixels is None:
        background = _fit_background(smooth, sign, paper, flat_peak)
        ink = sign * (smooth - background)
        peak = float(np.quantile(ink, 0.999))
        noise = _noise_level(ink, peak)
    else:
        background = paper
        ink = sign * (smooth - background)
        peak = _top_quantile(ink, total_pixels)
        noise = 0.0
    if peak < MIN_INK_CONTRAST:
        if float(gray.max() - gray.min()) < 1e-6:
            raise ImageError(UNIFORM_IMAGE)
        if float(ink.max()) >= MIN_INK_CONTRAST:  # dark enough, but a dot: a tap, dust
            raise ImageError(f"no digit-like ink found: {SPECKS_ONLY}")
        raise ImageError(
            f"no digit-like ink found: the strongest marks differ from the background by"
            f" {peak:.0%} of full brightness, at least {MIN_INK_CONTRAST:.0%} is needed"
        )
    if peak < MIN_SIGNAL_TO_NOISE * noise:
        raise ImageError(
            f"no digit-like ink found: the strongest marks ({peak:.0%} contrast) do not stand"
            f" out from the background's noise or texture ({noise:.1%})"
        )
    threshold = max(0.4 * peak, 3.0 * noise)
    mask = ink > threshold
    if not mask.any():  # The quantile guarantees ink above threshold; kept as a safeguard.
        raise ImageError("no digit-like ink found: nothing darker or lighter than the paper")
    keep = _drop_specks(mask)

    # Blurring helps only when the digit is shrunk a lot; a small digit keeps its raw pixels.
    rows, columns = _ink_box(keep)
    if max(rows.stop - rows.start, columns.stop - columns.start) < 3 * DIGIT_BOX_SIDE:
        ink = sign * (gray - background)
    low = 0.5 * threshold
    high = max(_median(ink[keep]), low + 1e-6)  # A typical stroke's core is full ink.
    strokes = np.clip((ink - low) / (high - low), 0.0, 1.0) * _dilate(keep)
    if not strokes.any():  # Smoothed ink that the raw pixels do not confirm, e.g. dense noise.
        raise ImageError("no digit-like ink found: the marks are noise, not strokes")
    return strokes


def _top_quantile(values: np.ndarray, total: int, q: float = 0.999) -> float:
    """``np.quantile(q)`` of ``values`` padded with zeros to ``total`` entries, for q near 1.

    The zeros are the paper outside a crop. Only the few largest values matter, so a
    partial sort of the crop replaces a quantile over the whole image.
    """
    flat = values.ravel()
    position = q * (total - 1)
    first = math.floor(position)
    needed = total - first  # The padded array's values at and above index ``first``.
    # A drawing's strokes are solid: when enough values equal the largest, that is the answer.
    padding = total - flat.size
    largest = max(float(flat.max()), 0.0) if padding else float(flat.max())
    at_largest = np.count_nonzero(flat == largest) + (padding if largest == 0 else 0)
    if at_largest >= needed:
        return largest
    taken = min(needed, flat.size)
    top = np.partition(flat, flat.size - taken)[flat.size - taken :]
    zeros = np.zeros(min(total - flat.size, needed), flat.dtype)
    top = np.sort(np.concatenate([top, zeros]))[-needed:]
    low = float(top[0])
    high = float(top[1]) if needed > 1 else low
    return low + (position - first) * (high - low)


def _median(values: np.ndarray) -> float:
    """``np.median``, without the sort when over half the values are the largest (solid ink)."""
    largest = values.max()
    if 2 * np.count_nonzero(values == largest) > values.size:
        return float(largest)
    return float(np.median(values))


def _solid_box(strokes: np.ndarray, fill: float = SOLID_FILL) -> tuple[int, int, int, int] | None:
    """The inside of the ink's bounding box if the ink is one compact block, else None.

    Handwritten digits fill at most about half of their bounding box; a '1' can fill all of
    it, but its box is narrow. A sheet of paper fills its box and is roughly square: a block
    is ink filling more than ``fill`` of a box whose short side is over 0.3 of its long one.
    """
    solid = strokes >= 0.5
    count = np.count_nonzero(solid)
    if count == 0:
        return None
    rows, columns = _ink_box(solid)
    height, width = rows.stop - rows.start, columns.stop - columns.start
    if count <= fill * height * width or min(height, width) <= 0.3 * max(height, width):
        return None
    margin_y, margin_x = 2 + height // 20, 2 + width // 20  # Stay clear of the sheet's edge.
    top, bottom = rows.start + margin_y, rows.stop - margin_y
    left, right = columns.start + margin_x, columns.stop - margin_x
    return (top, bottom, left, right) if bottom > top and right > left else None


def to_mnist_batch(
    images: Iterable[Image.Image | np.ndarray | bytes | str | os.PathLike],
) -> np.ndarray:
    """Normalize many images; bytes and paths are loaded with ``load_image`` first.

    Returns:
        uint8 array of shape (N, 28, 28), ready for ``data.to_model_input``.
    Raises:
        ImageError: for the first image that cannot be read or holds no digit.
    """
    digits = []
    for image in images:
        if isinstance(image, (bytes, bytearray, memoryview, str, os.PathLike)):
            image = load_image(image)
        digits.append(normalize_digit(image))
    if not digits:
        return np.zeros((0, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)
    return np.stack(digits)


def _box_blur(gray: np.ndarray) -> np.ndarray:
    """3x3 mean: an isolated noisy pixel keeps 1/9 of its contrast, a stroke keeps most.

    Pixels beyond the border repeat the edge pixel (``mode="nearest"``).
    """
    return raster.box_blur3(gray)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Grow a mask by one pixel in all eight directions (3x3 binary dilation).

    Equal to ``ndimage.binary_dilation(mask, structure=EIGHT_CONNECTED)``, done as two
    shifted ORs because on boolean images that is over ten times faster (0.07 ms instead of
    about 1 ms on 400x300), and a digit needs three dilations.
    """
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    rows = grown.copy()
    grown[:, 1:] |= rows[:, :-1]
    grown[:, :-1] |= rows[:, 1:]
    return grown


def _fit_background(smooth: np.ndarray, sign: float, paper: float, flat_peak: float) -> np.ndarray:
    """Fit a quadratic surface to the paper, leaving out ink, to remove uneven lighting.

    The surface starts flat at ``paper`` (the median of ``smooth``), where the ink's 99.9th
    percentile is ``flat_peak``. Six coefficients need few pixels, so the fit uses a strided
    grid of about ``BACKGROUND_SAMPLES`` of them; the ink to leave out is still found at full
    resolution.
    """
    height, width = smooth.shape
    background = np.full_like(smooth, paper)
    if min(height, width) < 8:
        return background
    y = (np.arange(height) / (height - 1) * 2 - 1).astype(smooth.dtype)
    x = (np.arange(width) / (width - 1) * 2 - 1).astype(smooth.dtype)
    stride = max(1, math.ceil(math.sqrt(smooth.size / BACKGROUND_SAMPLES)))
    # The fit itself in float64: the normal equations square the terms' condition number.
    grid_y, grid_x = np.meshgrid(
        y[::stride].astype(np.float64), x[::stride].astype(np.float64), indexing="ij"
    )
    terms = np.stack(
        [np.ones_like(grid_x), grid_x, grid_y, grid_x * grid_x, grid_x * grid_y, grid_y * grid_y],
        axis=-1,
    )
    values = smooth[::stride, ::stride].astype(np.float64)
    peak = flat_peak
    for round_ in range(2):  # The second pass leaves out ink that the first surface revealed.
        ink = sign * (smooth - background)
        if round_:
            peak = float(np.quantile(ink, 0.999))
        clear = ~_dilate(ink > 0.2 * peak) if peak > 0 else np.ones(smooth.shape, dtype=bool)
        if clear.mean() < 0.4:  # Mostly ink: no reliable view of the paper, keep what we have.
            return background
        sample = clear[::stride, ::stride]
        if np.count_nonzero(sample) < terms.shape[-1]:  # Too few to fit: keep what we have.
            return background
        # Least squares via the 6x6 normal equations: the same fit (the terms are well
        # conditioned on [-1, 1]) without a multithreaded LAPACK solve on thousands of rows,
        # which costs milliseconds when another process keeps the cores busy.
        design = terms[sample]
        c, *_ = np.linalg.lstsq(design.T @ design, design.T @ values[sample], rcond=None)
        c = c.astype(smooth.dtype)  # The surface in the image's precision.
        # c0 + c1 x + c2 y + c3 x^2 + c4 xy + c5 y^2, evaluated row by column.
        background = (
            (c[0] + c[2] * y + c[5] * y * y)[:, None]
            + (c[1] + c[4] * y)[:, None] * x
            + (c[3] * x * x)[None, :]
        )
    return background


def _noise_level(ink: np.ndarray, peak: float) -> float:
    """Robust standard deviation (1.4826 x median absolute deviation) of the paper."""
    paper = ink[ink < 0.2 * peak] if peak > 0 else ink.ravel()
    if paper.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(paper - np.median(paper))))


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    """Keep the largest blob and the blobs that plausibly belong to the same digit.

    A blob that runs along much of the image's edge is the table around the paper or a
    shadowed margin, not a stroke; it is dropped whenever some other blob remains.
    """
    # Blobs are 8-connected and numbered 1..count in the order a row-by-row scan meets them
    # (0 is the background), so among equally large blobs the first one met is the largest.
    labels, count, boxes = raster.blob_boxes(mask)
    if count == 1:  # One blob, as most drawings are: it is kept, whatever it touches.
        return mask
    found = np.arange(1, count + 1)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    edge = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    along_edge = np.bincount(edge, minlength=count + 1)[1:]
    surround = along_edge > SURROUND_FRACTION * edge.size
    if not surround.all():
        found, areas = found[~surround], areas[~surround]
    # Bounding boxes, inclusive: top, bottom, left, right of blob ``label`` at ``label - 1``.
    boxes = boxes - (0, 1, 0, 1)
    top, bottom, left, right = boxes[found - 1].T
    main_top, main_bottom, main_left, main_right = boxes[found[np.argmax(areas)] - 1]
    margin_y = 0.5 * (main_bottom - main_top + 1)
    margin_x = 0.5 * (main_right - main_left + 1)
    near = (
        (bottom >= main_top - margin_y)
        & (top <= main_bottom + margin_y)
        & (right >= main_left - margin_x)
        & (left <= main_right + margin_x)
    )
    big_enough = areas >= SPECK_FRACTION * areas.max()
    keep = np.zeros(count + 1, dtype=bool)
    keep[found[big_enough & (near | (areas >= NEAR_FRACTION * areas.max()))]] = True
    return keep[labels]
