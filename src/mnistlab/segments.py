"""The geometry of reading a number: a line of ink cut into pieces, and seams through them.

``reading.read_number`` asks the model which pieces, alone, joined or cut, are digits; here:

1. The ink is found as ``images.normalize_digit`` finds it (grayscale, polarity, lighting,
   noise) but kept whole, at up to READ_SIDE pixels: every mark on the line may be a digit.
2. Pieces: its 8-connected blobs, less specks and ruled lines; blobs sharing half the
   narrower one's columns are one piece (a 5's cap, a 4's arms).
3. Seams through a piece that may hold touching or overlapping digits (``seams.propose``),
   proposed when the reader asks for them; ``candidates`` lists the digits they make.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
from PIL import Image

from mnistlab import images, raster, seams
from mnistlab.errors import ImageError

READ_SIDE = 1000  # Working resolution: 20 digits on one line stay about 40 px tall.
MAX_MARKS = 72  # More separate marks than this are texture or specks, not a number.
SPECK_SIDE = 0.12  # Blobs smaller than this fraction of the line's height are dust ...
SPECK_AREA = 0.02  # ... and so are those under 2% of the largest blob's area.
MERGE_OVERLAP = 0.5  # Blobs sharing half the narrower one's columns are one digit's strokes.
MIN_SPLIT = 0.4  # A piece narrower than this times its height holds one digit at most.
SHORT = 0.6  # A mark shorter than this fraction of the line's height is part of a digit.
JOIN_GAP = 0.4  # ... and so are marks closer than this fraction of the pen width.
CUT_STEP = 0.1  # Seams are tried through points this fraction of the height apart ...
CUT_BAND = 0.1  # ... and near columns this far apart, within this fraction of the height ...
CUT_DISTINCT = 0.15  # ... kept when they move this much of a digit's ink from the others' ...
MIN_SIDE = 0.15  # ... and leave this much of a digit's ink on either side.
CROWD, CROWD_WIDTH = 3, 0.25  # Fewer than 3 seams within a quarter height of each other.
MAX_CUT = 2.5  # A seam crossing more strokes than this cuts through a digit, not between two.
LINE_RATIO = 6.0  # A blob this many times longer than its typical column's ink is a line.
NO_NUMBER = "no number found"


@dataclasses.dataclass
class Piece:
    """One mark, or marks that belong together (a 5's cap and body), possibly several digits
    touching: a mask inside the box top/left, and the seams proposed through it."""

    mask: np.ndarray
    top: int
    left: int
    joins: bool = True  # whether it may be read as one digit with the piece on its left
    seams: list[seams.Seam] = dataclasses.field(default_factory=list)  # cut along, in order
    spare: list[seams.Seam] = dataclasses.field(default_factory=list)  # cheapest first
    proposed: bool = False

    @property
    def bottom(self) -> int:
        return self.top + self.mask.shape[0]

    @property
    def right(self) -> int:
        return self.left + self.mask.shape[1]


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


def find_ink(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, tuple[int, int]]:
    """Ink in [0, 1], the mask of firm ink, whether it is a clean drawing, and the offset of
    the region they cover in ``gray`` (a clean drawing is processed on its marks' box only).

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
    mask = _drop_surround(ink > threshold)
    if not mask.any():
        raise ImageError(f"{NO_NUMBER}: nothing darker or lighter than the paper")
    # A small line is read from its raw pixels, as images.py reads a small digit.
    rows = np.flatnonzero(mask.any(axis=1))
    if rows[-1] - rows[0] < 3 * images.DIGIT_BOX_SIDE:
        ink = sign * (region - background)
    low = 0.5 * threshold
    high = max(images._median(ink[mask]), low + 1e-6)
    strokes = np.clip((ink - low) / (high - low), 0.0, 1.0) * images._dilate(mask)
    return strokes, mask, clean is not None, offset


def _drop_surround(mask: np.ndarray) -> np.ndarray:
    """Drop blobs running along much of the image's edge (a table, a shadowed margin)."""
    labels, count = raster.label8(mask)
    if count < 2:
        return mask
    edge = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    along = np.bincount(edge, minlength=count + 1)
    along[0] = 0
    surround = along > images.SURROUND_FRACTION * edge.size
    if not surround.any() or surround[1:].all():
        return mask
    return mask & ~surround[labels]


# --- Pieces and candidates --------------------------------------------------------------------


def cut_into_pieces(strokes: np.ndarray, mask: np.ndarray) -> tuple[list[Piece], float, float]:
    """The ink's pieces, left to right, the line's height and the pen's width in pixels.

    Raises:
        ImageError: nothing on the line can be a digit (specks, a ruled line, texture).
    """
    labels, count, boxes = raster.blob_boxes(mask)
    slices = raster.box_slices(boxes)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    inked = np.flatnonzero(mask.any(axis=0))
    span = inked[-1] - inked[0] + 1
    blobs = []
    for number, (rows, columns) in enumerate(slices, start=1):
        blob = labels[rows, columns] == number
        if _is_line(blob, span):
            continue
        blobs.append((rows.start, columns.start, blob, areas[number - 1]))
    if not blobs:
        raise ImageError(f"{NO_NUMBER}: the ink is a line, not digits")
    heights = np.array([blob.shape[0] for _, _, blob, _ in blobs])
    height = float(np.median(heights[heights >= 0.5 * heights.max()]))
    largest = max(area for *_, area in blobs)
    blobs = [
        b for b in blobs if max(b[2].shape) >= SPECK_SIDE * height and b[3] >= SPECK_AREA * largest
    ]
    if len(blobs) > MAX_MARKS:
        raise ImageError(
            f"{NO_NUMBER}: {len(blobs)} separate marks, too many for one line of digits"
            " (specks, texture or writing)"
        )
    if height < 6:
        raise ImageError(f"{NO_NUMBER}: the marks are specks, {height:.0f} px tall at most")
    pieces = _merge([Piece(blob, top, left) for top, left, blob, _ in blobs])
    height = float(np.median([p.mask.shape[0] for p in pieces if p.mask.shape[0] >= 0.5 * height]))
    pen = pen_width(mask)
    for before, piece in zip(pieces, pieces[1:]):
        # Separate marks join into one digit only when close or one is a fragment (a
        # 5's cap): a 1 beside a 6 is not part of it, however sure the model would be.
        short = min(before.mask.shape[0], piece.mask.shape[0]) < SHORT * height
        piece.joins = short or _gap(before, piece) <= max(1.5, JOIN_GAP * pen)
    return pieces, height, pen


def _gap(a: Piece, b: Piece) -> float:
    """Horizontal distance between the ink of ``a`` and of ``b`` (to its right), row by row."""
    top, bottom = max(a.top, b.top), min(a.bottom, b.bottom)
    if top >= bottom:
        return float(max(b.left - a.right, 0) + (top - bottom))
    rows_a = a.mask[top - a.top : bottom - a.top]
    rows_b = b.mask[top - b.top : bottom - b.top]
    both = rows_a.any(axis=1) & rows_b.any(axis=1)
    if not both.any():
        return float(max(b.left - a.right, 0))
    right = a.left + a.mask.shape[1] - 1 - rows_a[both, ::-1].argmax(axis=1)
    left = b.left + rows_b[both].argmax(axis=1)
    return float(max((left - right - 1).min(), 0))


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


def _merge(pieces: list[Piece]) -> list[Piece]:
    """Join pieces whose column ranges overlap by MERGE_OVERLAP of the narrower one."""
    pieces = sorted(pieces, key=lambda p: (p.left + p.right) / 2)
    merged = True
    while merged:
        merged = False
        for i in range(len(pieces)):
            for j in range(i + 1, len(pieces)):
                a, b = pieces[i], pieces[j]
                shared = min(a.right, b.right) - max(a.left, b.left)
                narrower = min(a.right - a.left, b.right - b.left)
                if shared >= MERGE_OVERLAP * narrower:
                    pieces[i] = _union([a, b])
                    del pieces[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(pieces, key=lambda p: (p.left + p.right) / 2)


def _union(pieces: list[Piece]) -> Piece:
    top, left = min(p.top for p in pieces), min(p.left for p in pieces)
    bottom, right = max(p.bottom for p in pieces), max(p.right for p in pieces)
    mask = np.zeros((bottom - top, right - left), bool)
    for p in pieces:
        mask[p.top - top : p.bottom - top, p.left - left : p.right - left] |= p.mask
    return Piece(mask, top, left)


def propose_seams(piece: Piece, strokes: np.ndarray, height: float, pen: float) -> None:
    """Seams through a piece that may hold several digits (``seams.propose``); the reader's
    classifier chooses among the parts they make."""
    rows, width = piece.mask.shape
    reference = max(rows, 0.6 * height)
    if width <= MIN_SPLIT * reference or piece.proposed:
        return
    piece.proposed = True
    ink = strokes[piece.top : piece.bottom, piece.left : piece.right] * piece.mask
    stroke = pen * height  # A stroke's worth of ink: a pen's width down the line's height.
    piece.seams, piece.spare = seams.propose(
        ink,
        pen,
        spacing=max(2.0, CUT_STEP * reference),
        band=CUT_BAND * height,
        most=MAX_CUT * pen,
        distinct=CUT_DISTINCT * stroke,
        side=MIN_SIDE * stroke,
        crowd=(CROWD, CROWD_WIDTH * height),
    )


def add_seams(piece: Piece, columns: tuple[float, float], count: int) -> bool:
    """Cut along up to ``count`` more of a piece's spare seams, the cheapest whose average
    column (in the line's pixels) lies within ``columns``; whether any was added."""
    low, high = columns
    chosen = [seam for seam in piece.spare if low <= piece.left + seam.columns.mean() <= high][
        :count
    ]
    if not chosen:
        return False
    numbers = {seam.number for seam in chosen}
    piece.spare = [seam for seam in piece.spare if seam.number not in numbers]
    piece.seams = sorted(piece.seams + chosen, key=lambda seam: seam.left)
    return True
