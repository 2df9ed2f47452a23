"""A person's image file -> a grayscale array: the first two steps of ``images.normalize_digit``.

1. Decode, with limits: PNG, JPEG, BMP, TIFF, WebP or GIF, at most ``MAX_PIXELS`` pixels, the
   first frame, upright as its EXIF says; a large JPEG is decoded at a reduced scale.
2. Grayscale on a [0, 1] scale, at most ``WORKING_SIDE`` pixels a side; transparent pixels are
   composited on a background that contrasts with the opaque ones.
"""

from __future__ import annotations

import io
import math
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from mnistlab.errors import ImageError, UnsupportedImage

# Enough for a 48-megapixel phone photo; decoding a bigger one would take gigabytes.
MAX_PIXELS = 64_000_000
SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF")
WORKING_SIDE = 512  # Larger images are box-reduced first: a digit needs far fewer pixels.


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
        raise ImageError(f"expected image bytes or a file path; received: {type(source).__name__}")
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


def _grayscale(image: Image.Image | np.ndarray) -> np.ndarray:
    """A float32 (H, W) array in [0, 1], at most WORKING_SIDE pixels on its longest side."""
    if isinstance(image, Image.Image):
        array = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise ImageError(f"expected a PIL image or a numpy array; received: {type(image).__name__}")
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
