"""The ink of a line of handwriting, and the marks on it that may be digits.

1. The ink is found as ``images.normalize_digit`` finds it (grayscale, polarity, lighting,
   noise) but kept whole, at up to READ_SIDE pixels: every mark on the line may be a digit.
2. Marks: its 8-connected blobs, less specks and ruled lines; too many of them, or none, and
   the image holds no number.
"""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from mnistlab import images, raster
from mnistlab.errors import ImageError

READ_SIDE = 1000  # Working resolution: 20 digits on one line stay about 40 px tall.
MAX_MARKS = 72  # More separate marks than this are texture or specks, not a number.
SPECK_SIDE = 0.12  # Blobs smaller than this fraction of the line's height are dust ...
SPECK_AREA = 0.02  # ... and so are those under 2% of the largest blob's area.
LINE_RATIO = 6.0  # A blob this many times longer than its typical column's ink is a line.
NO_NUMBER = "no number found"
# raster.blob_boxes's labels, count and boxes, or None where they are not known.
Blobs = tuple[np.ndarray, int, np.ndarray] | None


# --- The ink --------------------------------------------------------------------------------


def load(source) -> tuple[Image.Image | np.ndarray, tuple[int, int]]:
    """The decoded image and its upright size in the file's own pixels.

    ``load_image`` may decode a large JPEG at a reduced scale; boxes are reported in the
    pixels of the image as stored (turned upright by its EXIF orientation), so that size is
    read from the header first.
    """
    if isinstance(source, np.ndarray):
        return source, (source.shape[1], source.shape[0])
    if isinstance(source, (str, os.PathLike)):
        try:
            data = open(source, "rb").read()  # noqa: SIM115 - closed when read
        except OSError as error:
            raise ImageError(
                f"{os.fspath(source)}: cannot be read ({error.strerror or error})"
            ) from None
        source = data
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = images.open_image(bytes(source))
    if not isinstance(source, Image.Image):
        raise ImageError(
            f"expected image bytes, a path or an image; received {type(source).__name__}"
        )
    width, height = source.size
    try:
        turned = source.getexif().get(0x0112) in (5, 6, 7, 8)
    except Exception:  # A malformed EXIF block: load_image ignores it too.
        turned = False
    loaded = images.load_image(source)
    return loaded, ((height, width) if turned else (width, height))


def grayscale(image: Image.Image | np.ndarray) -> np.ndarray:
    """``images._grayscale`` at up to READ_SIDE pixels rather than one digit's 512."""
    if isinstance(image, Image.Image):
        side = max(image.size)
        if side > READ_SIDE:  # Under 1024, so that _pil_to_array does not reduce it again.
            image = image.reduce(math.ceil(side / READ_SIDE))
        array = images._pil_to_array(image)
    else:
        array = np.asarray(image)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 2, 3, 4)):
        if array.size == 0 or array.dtype.kind not in "biuf":
            raise ImageError(
                f"expected numeric pixels of an image; received {array.dtype} {array.shape}"
            )
    else:
        raise ImageError(
            f"expected an image array of shape (H, W) or (H, W, 1..4); received: {array.shape}"
        )
    values = images._unit_range(array)
    if values.ndim == 3:
        channels = values.shape[2]
        color = values[..., : 3 if channels >= 3 else 1]
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        gray = color @ weights if channels >= 3 else color[..., 0]
        if channels in (2, 4):
            gray = images._composite(gray, values[..., -1])
    else:
        gray = values
    if max(gray.shape) > READ_SIDE:
        scale = READ_SIDE / max(gray.shape)
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX), np.float32)
    return gray


def find_ink(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, tuple[int, int], Blobs]:
    """Ink in [0, 1], the mask of firm ink, whether it is a clean drawing, the offset of the
    region they cover in ``gray`` (a clean drawing is processed on its marks' box only), and
    the mask's blobs when they are known already (for ``marks``).

    ``images._strokes`` without its speck filter, which keeps one digit and drops the rest.
    """
    clean = images._clean_paper(gray)  # ImageError for a blank image.
    if clean is not None:
        paper, box = clean
        region = gray[box]
        smooth = images._box_blur(region)
        darkest = paper - images._top_quantile(paper - smooth, gray.size)
        brightest = paper + images._top_quantile(smooth - paper, gray.size)
        sign = -1.0 if paper - darkest >= brightest - paper else 1.0
        background = paper
        ink = sign * (smooth - paper)
        peak, noise = images._top_quantile(ink, gray.size), 0.0
        offset = (box[0].start, box[1].start)
    else:
        region = gray
        smooth = images._box_blur(gray)
        darkest, paper, brightest = (float(q) for q in np.quantile(smooth, [0.001, 0.5, 0.999]))
        sign = -1.0 if paper - darkest >= brightest - paper else 1.0
        flat_peak = paper - darkest if sign < 0 else brightest - paper
        background = images._fit_background(smooth, sign, paper, flat_peak)
        ink = sign * (smooth - background)
        peak = float(np.quantile(ink, 0.999))
        noise = images._noise_level(ink, peak)
        offset = (0, 0)
    if peak < images.MIN_INK_CONTRAST:
        if float(gray.max() - gray.min()) < 1e-6:
            raise ImageError(images.UNIFORM_IMAGE)
        if float(ink.max()) >= images.MIN_INK_CONTRAST:
            raise ImageError(f"{NO_NUMBER}: {images.SPECKS_ONLY}")
        raise ImageError(
            f"{NO_NUMBER}: the strongest marks differ from the background by {peak:.0%} of full"
            f" brightness, at least {images.MIN_INK_CONTRAST:.0%} is needed"
        )
    if peak < images.MIN_SIGNAL_TO_NOISE * noise:
        raise ImageError(
            f"{NO_NUMBER}: the strongest marks ({peak:.0%} contrast) do not stand out from the"
            f" background's noise or texture ({noise:.1%})"
        )
    threshold = max(0.4 * peak, 3.0 * noise)
    mask, blobs = _drop_surround(ink > threshold)
    if not mask.any():
        raise ImageError(f"{NO_NUMBER}: nothing darker or lighter than the paper")
    # A small line is read from its raw pixels, as images.py reads a small digit.
    rows = np.flatnonzero(mask.any(axis=1))
    if rows[-1] - rows[0] < 3 * images.DIGIT_BOX_SIDE:
        ink = sign * (region - background)
    low = 0.5 * threshold
    high = max(images._median(ink[mask]), low + 1e-6)
    strokes = np.clip((ink - low) / (high - low), 0.0, 1.0) * images._dilate(mask)
    return strokes, mask, clean is not None, offset, blobs


def _drop_surround(mask: np.ndarray) -> tuple[np.ndarray, Blobs]:
    """Drop blobs running along much of the image's edge (a table, a shadowed margin); the
    mask's blobs too, unless some were dropped."""
    blobs = raster.blob_boxes(mask)
    labels, count, _ = blobs
    if count < 2:
        return mask, blobs
    edge = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    along = np.bincount(edge, minlength=count + 1)
    along[0] = 0
    surround = along > images.SURROUND_FRACTION * edge.size
    if not surround.any() or surround[1:].all():
        return mask, blobs
    return mask & ~surround[labels], None


# --- The marks -------------------------------------------------------------------------------


def marks(mask: np.ndarray, labelled: Blobs = None) -> tuple[np.ndarray, float]:
    """The firm ink of the marks that may be digits, and the line's height in pixels.
    ``labelled``: ``raster.blob_boxes(mask)`` if known.

    Raises:
        ImageError: nothing on the line can be a digit (specks, a ruled line, texture).
    """
    labels, count, boxes = raster.blob_boxes(mask) if labelled is None else labelled
    slices = raster.box_slices(boxes)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    inked = np.flatnonzero(mask.any(axis=0))
    span = inked[-1] - inked[0] + 1
    blobs = []
    for number, (rows, columns) in enumerate(slices, start=1):
        shape = (rows.stop - rows.start, columns.stop - columns.start)
        # Only a mark half the ink's span wide may be a line: the others need no closer look.
        if shape[1] < 0.5 * span or not _is_line(labels[rows, columns] == number, span):
            blobs.append((number, shape, areas[number - 1]))
    if not blobs:
        raise ImageError(f"{NO_NUMBER}: the ink is a line, not digits")
    heights = np.array([shape[0] for _, shape, _ in blobs])
    height = float(np.median(heights[heights >= 0.5 * heights.max()]))
    largest = max(area for *_, area in blobs)
    blobs = [b for b in blobs if max(b[1]) >= SPECK_SIDE * height and b[2] >= SPECK_AREA * largest]
    if len(blobs) > MAX_MARKS:
        raise ImageError(
            f"{NO_NUMBER}: {len(blobs)} separate marks, too many for one line of digits"
            " (specks, texture or writing)"
        )
    if height < 6:
        raise ImageError(f"{NO_NUMBER}: the marks are specks, {height:.0f} px tall at most")
    keep = np.zeros(count + 1, bool)
    keep[[number for number, *_ in blobs]] = True
    return keep[labels], height


def pen_width(mask: np.ndarray) -> float:
    """The strokes' typical width in pixels: twice the ink's area over its boundary length."""
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    area = np.count_nonzero(mask)
    return max(1.0, 2 * area / max(area - np.count_nonzero(inner), 1))


def _is_line(blob: np.ndarray, span: int) -> bool:
    """A ruled or crossed-out line: long (half the ink's ``span`` at least, unlike a 5's cap),
    its ink one thin run in nearly every column."""
    columns = blob.any(axis=0)
    runs = np.count_nonzero(np.diff(blob.astype(np.int8), axis=0) == 1, axis=0) + blob[0]
    firsts = blob.argmax(axis=0)
    lasts = blob.shape[0] - 1 - blob[::-1].argmax(axis=0)
    extent = float(np.median((lasts - firsts + 1)[columns]))
    height, width = blob.shape
    return (
        width >= max(LINE_RATIO * extent, 0.5 * span)
        and height <= extent + 0.1 * width  # about level, unlike a 7's bar and stem
        and np.mean(runs[columns] > 1) < 0.1
    )
