"""A person's image of a digit -> a 28x28 uint8 array that looks like an MNIST digit.

MNIST digits are white ink (255) on black (0); the ink's bounding box was scaled to fit 20x20
keeping its aspect ratio (the grey levels come from that anti-aliasing) and the box was placed
in a 28x28 field so that the centre of mass of the ink falls on pixel (14, 14)
(https://yann.lecun.com/exdb/mnist/; on the real test set the mean centre of mass is
(13.99, 14.01) in row/column index coordinates). ``normalize_digit`` reproduces those steps for
photos, scans and canvas drawings:

1. Grayscale on a [0, 1] scale; transparent pixels are composited on a background that contrasts
   with the opaque pixels, so black strokes and white strokes on a transparent canvas both work.
2. Polarity: the median pixel is taken to be paper. Ink is whichever extreme (darkest or
   brightest 0.1% of pixels) lies further from it, so dark-on-light and light-on-dark both work.
3. Background: a smooth quadratic surface fitted to the pixels that are not ink is subtracted,
   which removes uneven lighting; a 3x3 box blur and a threshold set above the measured noise
   level suppress paper texture, sensor noise and salt-and-pepper noise.
4. Specks: ink blobs far smaller than the largest one, or small and away from it, are dropped,
   and so is a blob running along much of the image's edge (the table beyond the paper). If the
   ink is one solid block, it is a sheet of paper on a dark table, and the digit is sought on it.
5. The ink's bounding box is resized so its longest side is 20 px, then pasted into a 28x28
   canvas at the integer offset that puts its centre of mass nearest to (14, 14).

A drawing on a perfectly flat background (a canvas export) skips the lighting fit and the noise
estimate and is processed on its marks' bounding box only (several times faster than a photo);
if it was drawn with a brush broader than MNIST's pen, its strokes are thinned to that width.

The result is never scaled to floats here: model input comes from ``data.to_model_input`` only.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Iterable

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from mnistlab.data import IMAGE_SIDE
from mnistlab.errors import ImageError, UnsupportedImage

DIGIT_BOX_SIDE = 20  # MNIST fits each digit's bounding box into 20x20 ...
CENTRE_OF_MASS = (14.0, 14.0)  # ... and puts its centre of mass here (row, column).
# MNIST's median stroke width in px at that scale (twice the half-bright ink's area over its
# boundary length, measured at 4x on the training digits: 10.9 / 4).
MNIST_PEN_WIDTH = 2.72
# Enough for a 48-megapixel phone photo; decoding a bigger one would take gigabytes.
MAX_PIXELS = 64_000_000
SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")
WORKING_SIDE = 512  # Larger images are box-reduced first: a digit needs far fewer pixels.
MIN_INK_CONTRAST = 0.10  # Ink must differ from the paper by 10% of the full brightness range ...
MIN_SIGNAL_TO_NOISE = 6.0  # ... and by six times the noise (texture, grain) of the paper.
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
SOLID_DIGIT_FILL = 0.85  # See is_solid_blob.
SEVERAL_GAP, SEVERAL_HEIGHT = 2, 0.8  # See looks_like_several_digits.
SURROUND_FRACTION = 0.35  # A blob along 35% of the image's edge is a table or margin, not ink.
BACKGROUND_SAMPLES = 5_000  # A grid of this many pixels pins down the six-term lighting surface.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)  # A pixel's neighbours include its diagonals.
# Images this small are a digit's own field, often cut tight to the ink (old digit sets, low-
# resolution scans, also enlarged): they get a frame of paper first, as MNIST's 4 px margin, so
# ink that touches the edge is not taken for a table and thick ink is not taken for the paper.
# (Phone photos and the page's 280 px canvas are larger; their results do not change.)
SMALL_IMAGE_SIDE = 200
FRAME_FRACTION = 0.15


def load_image(source: bytes | str | os.PathLike | Image.Image) -> Image.Image:
    """Decode one image from bytes, a file path, or an image ``open_image`` opened.

    PNG, JPEG, BMP, TIFF, WebP and GIF are accepted. Animated and multi-page files give their
    first frame, and a JPEG's EXIF orientation is applied so the image is upright.

    A JPEG much larger than ``normalize_digit`` needs is decoded at a reduced scale (1/2 to
    1/8, at least ``WORKING_SIDE`` pixels on its longest side), which makes a 12-megapixel
    photo several times cheaper to read.

    Returns:
        A fully loaded ``PIL.Image.Image`` in its stored mode (``L``, ``RGB``, ``RGBA``, ``P``,
        ``I;16``, ...), every one of which ``normalize_digit`` accepts.
    Raises:
        ImageError: the file cannot be read, is empty, is not a supported image, is damaged or
        truncated, or has more than ``MAX_PIXELS`` pixels.
    """
    if isinstance(source, Image.Image):  # Opened by open_image: its header is not read again.
        return _load(source, None)
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = "image data"
        data = bytes(source)
        if not data:
            raise ImageError("empty image: received 0 bytes")
        return _decode(io.BytesIO(data), label)
    if not isinstance(source, (str, os.PathLike)):
        raise ImageError(
            f"expected image bytes or a file path; received: {type(source).__name__}"
        )
    label = os.fspath(source)
    try:
        file = open(source, "rb")  # Closed below, once Pillow has decoded it.
    except OSError as error:
        raise ImageError(f"{label}: cannot be read ({error.strerror or error})") from None
    with file:
        try:
            empty = os.fstat(file.fileno()).st_size == 0
        except OSError:
            empty = False
        if empty:
            raise ImageError(f"{label}: empty file (0 bytes)")
        return _decode(file, label)


def pixel_count(data: bytes) -> int | None:
    """Width x height from an image's header, without decoding it; None if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as image:
                width, height = image.size
    except Exception:  # Not an image, or a damaged header: load_image says which.
        return None
    return width * height


def open_image(data: bytes) -> Image.Image:
    """Read an image's header from bytes, checked as ``load_image`` checks it; no pixels yet.

    For a caller that needs the size before it decodes (a server choosing between its event
    loop and a thread): ``load_image`` takes the result and decodes it without a second parse.
    Error messages name no source; the caller knows what it was.

    Raises:
        UnsupportedImage: the data is in none of ``SUPPORTED_FORMATS``.
        ImageError: the data is empty, its header is damaged, or it has more than
            ``MAX_PIXELS`` pixels (or none).
    """
    if not data:
        raise ImageError("empty image: received 0 bytes")
    return _open(io.BytesIO(bytes(data)), None)


def _decode(file, label: str) -> Image.Image:
    """Open, check the size, load the first frame and apply EXIF orientation."""
    return _load(_open(file, label), label)


def _failure(label: str | None, message: str) -> str:
    return f"{label}: {message}" if label else message


def _open(file, label: str | None) -> Image.Image:
    """Parse the header and check the size; the pixels are decoded by ``_load``."""
    expected = ", ".join(SUPPORTED_FORMATS[:-1]) + f" or {SUPPORTED_FORMATS[-1]}"
    with warnings.catch_warnings():
        # Pillow warns about corrupt metadata, which costs nothing but the EXIF orientation
        # here, and warns about huge images before it refuses them: that means "too big".
        # The filters only spare callers stray warnings: MAX_PIXELS is below Pillow's limit,
        # so the size check below refuses such an image even if another thread resets them.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(file, formats=SUPPORTED_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(
                _failure(
                    label,
                    f"image is larger than the limit of {MAX_PIXELS:,} pixels"
                    " (a possible decompression bomb); scale it down first",
                )
            ) from None
        except Image.UnidentifiedImageError:
            raise UnsupportedImage(
                _failure(label, f"not a supported image (expected {expected})")
            ) from None
        except Exception as error:  # Pillow's parsers raise many types on malformed headers.
            raise ImageError(
                _failure(label, f"damaged or truncated image ({_reason(error)})")
            ) from None
    # Not closed here: closing discards the pixels, and a copy would cost a full pass.
    # The caller's file (or bytes buffer) is what holds resources, and it is closed there.
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            _failure(
                label,
                f"image is {width} x {height} pixels, more than the limit of"
                f" {MAX_PIXELS:,}; scale it down first",
            )
        )
    if width == 0 or height == 0:
        raise ImageError(_failure(label, f"image is {width} x {height} pixels, it has no pixels"))
    return image


def _load(image: Image.Image, label: str | None) -> Image.Image:
    """Load the first frame of an opened image and apply its EXIF orientation."""
    width, height = image.size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Corrupt metadata costs only the orientation.
        try:
            image.seek(0)
            if image.format == "JPEG" and max(width, height) > 2 * WORKING_SIDE:
                # Decode at 1/2, 1/4 or 1/8 scale (cheap in the JPEG decoder), keeping at
                # least WORKING_SIDE pixels: normalize_digit would shrink it anyway.
                scale = WORKING_SIDE / max(width, height)
                image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
            image.load()
        except Exception as error:  # Truncated data: OSError, SyntaxError, EOFError, ...
            raise ImageError(
                _failure(label, f"damaged or truncated {image.format} image ({_reason(error)})")
            ) from None
        try:
            ImageOps.exif_transpose(image, in_place=True)
        except Exception:  # A malformed EXIF block only loses the orientation, not the image.
            pass
        return image


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


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


def _crop_to_ink(strokes: np.ndarray) -> np.ndarray:
    """The bounding box of the nonzero pixels."""
    return strokes[_ink_box(strokes)]


def _ink_box(marks: np.ndarray, margin: int = 0) -> tuple[slice, slice]:
    """Row and column slices of the nonzero pixels' bounding box, grown by ``margin``."""
    rows = np.flatnonzero(marks.any(axis=1))
    columns = np.flatnonzero(marks.any(axis=0))
    return (
        slice(max(rows[0] - margin, 0), rows[-1] + 1 + margin),
        slice(max(columns[0] - margin, 0), columns[-1] + 1 + margin),
    )


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


# --- Grayscale ----------------------------------------------------------------------------------


def _grayscale(image: Image.Image | np.ndarray) -> np.ndarray:
    """A float32 (H, W) array in [0, 1], at most WORKING_SIDE pixels on its longest side."""
    if isinstance(image, Image.Image):
        array = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise ImageError(
            f"expected a PIL image or a numpy array; received: {type(image).__name__}"
        )
    if array.ndim == 3 and array.shape[2] in (1, 2, 3, 4):
        channels = array.shape[2]
    elif array.ndim == 2:
        channels = 0
    else:
        raise ImageError(
            f"expected an image array of shape (H, W) or (H, W, 1..4); received: {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"image has no pixels (shape {array.shape})")
    if array.dtype.kind not in "biuf":
        raise ImageError(f"expected numeric pixel values; received dtype {array.dtype}")
    values = _unit_range(array)
    if channels == 0:
        gray = values
    else:
        color = values[..., : 3 if channels >= 3 else 1]
        weights = np.array([0.299, 0.587, 0.114], np.float32)
        luminance = color @ weights if channels >= 3 else color[..., 0]
        if channels in (2, 4):
            gray = _composite(luminance, values[..., -1])
        else:
            gray = luminance
    return _reduce(gray)


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """Pixels of a PIL image as an array, box-reduced first when the image is large."""
    try:
        if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            image = image.convert("I")
        elif image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif image.mode == "La":  # Premultiplied alpha.
            image = image.convert("LA")
        elif image.mode in ("PA", "RGBa"):
            image = image.convert("RGBA")
        elif image.mode == "1":
            image = image.convert("L")
        elif image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
            image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
        factor = max(image.size) // WORKING_SIDE
        if factor >= 2:
            image = image.reduce(factor)
        # Fully opaque (a canvas export usually is): the alpha band carries nothing, and
        # dropping it here halves the pixels to convert below. (NumPy finds the alpha's
        # minimum in a third of the time Pillow's getextrema takes.)
        if image.mode in ("LA", "RGBA") and np.asarray(image)[..., -1].min() == 255:
            image = image.convert("L")
        elif image.mode in ("RGB", "RGBA"):
            # Pillow's luminance (ITU-R 601, as below) in C, rounded to whole levels.
            image = image.convert("L" if image.mode == "RGB" else "LA")
        return np.asarray(image)
    except (OSError, ValueError) as error:
        raise ImageError(f"cannot read the image's pixels ({_reason(error)})") from None


def _unit_range(array: np.ndarray) -> np.ndarray:
    """Scale pixel values to [0, 1]: by the dtype's range for bytes, by the data otherwise."""
    if array.dtype == np.uint8:
        return np.multiply(array, np.float32(1 / 255), dtype=np.float32)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    values = array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ImageError("image has NaN or infinite pixel values")
    magnitude = float(np.abs(values).max())
    if magnitude > 65535:  # Not pixel levels of any common format: keep only the proportions.
        values = values / magnitude
    low, high = float(values.min()), float(values.max())
    if low < 0:
        values, high = values - low, high - low
    # A 16-bit image may hold 12-bit data; float images usually span 0..1 or 0..255.
    candidates = (255.0, 4095.0, 65535.0)
    if array.dtype.kind == "f":
        candidates = (1.0, *candidates)
    white = next((level for level in candidates if high <= level), high)
    return (values / white).astype(np.float32)


def _composite(luminance: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten a transparent image onto white or black, whichever contrasts with its content.

    A canvas drawing exported with a transparent background may have black or white strokes;
    putting them on the opposite colour keeps them visible either way.
    """
    if alpha.min() >= 1.0:
        return luminance
    weight = float(alpha.sum(dtype=np.float64))
    content = float(np.vdot(alpha, luminance) / weight) if weight > 0 else 0.0
    paper = np.float32(1.0 if content < 0.5 else 0.0)
    return alpha * luminance + (1 - alpha) * paper


def _reduce(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    if max(height, width) <= WORKING_SIDE:
        return gray
    scale = WORKING_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    reduced = Image.fromarray(gray).resize(size, Image.Resampling.BOX)
    return np.asarray(reduced, dtype=np.float32)


# --- Ink --------------------------------------------------------------------------------------


def _box_blur(gray: np.ndarray) -> np.ndarray:
    """3x3 mean: an isolated noisy pixel keeps 1/9 of its contrast, a stroke keeps most.

    Pixels beyond the border repeat the edge pixel (``mode="nearest"``).
    """
    return ndimage.uniform_filter(gray, size=3, mode="nearest")


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


def _fit_background(
    smooth: np.ndarray, sign: float, paper: float, flat_peak: float
) -> np.ndarray:
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
    labels, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
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
    boxes = np.array(
        [(rows.start, rows.stop - 1, columns.start, columns.stop - 1)
         for rows, columns in ndimage.find_objects(labels)]
    )
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


# --- Size and position ------------------------------------------------------------------------


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
    inside = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
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
