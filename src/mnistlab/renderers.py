"""MNIST digits rendered the way people's images of digits look: phone photos, scans, mouse
drawings, low-resolution scans and typed fonts.

Training uses them to show the "not a digit" head what real digits look like
(``notdigit.py``); ``bench/make_user_digits.py`` and ``bench/bench_images.py`` use them, on
MNIST's test digits only, to measure how well people's images are read. Canvas drawings live in
``drawings.py``.
"""

from __future__ import annotations

import glob
import shutil
import subprocess

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnistlab.drawings import CANVAS_SIDE, place, upscale

PHOTO_SIZE = (400, 300)  # Width, height.
SCAN_SIDE = 300
FONT_CANVAS_SIDE = 200


def rotate(ink: np.ndarray, degrees: float) -> np.ndarray:
    image = Image.fromarray(ink.astype(np.float32)).rotate(
        degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0.0
    )
    return np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)


def smooth_noise(width: int, height: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency noise with about ``cells`` blobs across, standard deviation about 1."""
    grid = rng.normal(0, 1, (max(2, cells * height // width), cells)).astype(np.float32)
    image = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image, np.float64)


def photograph(ink: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Ink (H, W) in [0, 1] on unevenly lit, textured paper, blurred as a phone camera does."""
    height, width = ink.shape
    rows, columns = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * (columns / width - 0.5) + np.sin(angle) * (rows / height - 0.5)
    lighting = rng.uniform(0.7, 0.9) + rng.uniform(0.1, 0.3) * ramp
    blotches = smooth_noise(width, height, 12, rng)
    texture = 0.03 * blotches + 0.015 * rng.normal(0, 1, (height, width))
    paper = np.clip(lighting + texture, 0, 1)[..., None] * np.array([1.0, 0.97, 0.9])
    ink_colour = np.array([0.12, 0.12, 0.2]) * rng.uniform(0.5, 1.5)
    cover = rng.uniform(0.7, 0.95) * ink[..., None]
    pixels = paper * (1 - cover) + ink_colour * cover + rng.normal(0, 0.01, (height, width, 3))
    image = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))


def render_photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[Image.Image, bytes]:
    """Dark ink on uneven, textured paper; returns the image and its EXIF block (maybe empty)."""
    width, height = PHOTO_SIZE
    ink = rotate(upscale(digit, int(rng.integers(110, 200))), rng.uniform(-8, 8))
    ink = place(ink[:height, :width], width, height, rng)
    image = photograph(ink, rng)
    if rng.random() < 0.25:  # Stored as the sensor saw it; the tag says how to turn it upright.
        exif = Image.Exif()
        exif[0x0112] = 6  # Rotate 90 degrees clockwise to display.
        return image.transpose(Image.Transpose.ROTATE_90), exif.tobytes()
    return image, b""


def render_mouse(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Thick binary strokes, as drawn with a round brush on an HTML canvas."""
    size = int(rng.integers(int(0.6 * CANVAS_SIDE), int(0.9 * CANVAS_SIDE)))
    strokes = Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR)
    strokes = strokes.point(lambda value: 255 if value >= 90 else 0)
    strokes = strokes.filter(ImageFilter.MaxFilter(int(rng.choice([3, 5, 7, 9]))))
    strokes = strokes.filter(ImageFilter.GaussianBlur(0.8))  # The canvas anti-aliases its brush.
    ink = place(np.asarray(strokes, np.float64) / 255, CANVAS_SIDE, CANVAS_SIDE, rng)
    alpha = np.round(ink * 255).astype(np.uint8)
    if rng.random() < 0.3:  # Black strokes on a transparent canvas.
        pixels = np.zeros((CANVAS_SIDE, CANVAS_SIDE, 4), np.uint8)
        pixels[..., 3] = alpha
        return Image.fromarray(pixels)
    return Image.fromarray(alpha)


def render_scan(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Dark ink on white paper, slight noise and a few specks of dust."""
    ink = rotate(upscale(digit, int(rng.integers(150, 230))), rng.uniform(-3, 3))
    ink = place(ink[:SCAN_SIDE, :SCAN_SIDE], SCAN_SIDE, SCAN_SIDE, rng)
    paper = rng.uniform(0.92, 1.0) + rng.normal(0, 0.02, ink.shape)
    pixels = paper * (1 - rng.uniform(0.8, 0.95) * ink)
    for _ in range(int(rng.integers(0, 4))):
        y, x = rng.integers(0, SCAN_SIDE, 2)
        pixels[y : y + 2, x : x + 2] *= 0.3
    image = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(0.6))


def render_lowres(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A coarse, few-level, dark-on-light copy of the digit, maybe enlarged again.

    Half are cut to the digit's bounding box and stretched to fill the square, as old
    low-resolution digit sets store their digits; the others keep MNIST's margin.
    """
    image = Image.fromarray(digit)
    if rng.random() < 0.5:
        rows, columns = np.nonzero(digit > 0)
        image = image.crop((columns.min(), rows.min(), columns.max() + 1, rows.max() + 1))
    side = int(rng.integers(8, 17))
    small = image.resize((side, side), Image.Resampling.BOX)
    levels = int(rng.choice([2, 3, 4, 8]))
    values = np.asarray(small, np.float64) / 255
    values = np.round(values * (levels - 1)) / (levels - 1)
    pixels = np.round(255 - values * rng.uniform(0.75, 1.0) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    scale = int(rng.choice([1, 2, 4, 8, 12]))
    if scale > 1:
        resample = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
        image = image.resize((side * scale, side * scale), resample)
    return image


def find_fonts() -> list[str]:
    """TrueType/OpenType font files on this system, sorted; empty if none can be found."""
    files: set[str] = set()
    if shutil.which("fc-list"):
        try:
            listing = subprocess.run(
                ["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, timeout=30
            ).stdout
            files.update(line.strip() for line in listing.splitlines())
        except (OSError, subprocess.SubprocessError):
            pass
    for pattern in ("/usr/share/fonts/**/*.ttf", "/usr/share/fonts/**/*.otf"):
        files.update(glob.glob(pattern, recursive=True))
    usable = [name for name in files if name.lower().endswith((".ttf", ".otf"))]
    # Symbol and emoji fonts have no usable digits.
    unusable = ("symbol", "emoji", "math")
    return sorted(name for name in usable if not any(word in name.lower() for word in unusable))


def render_font(label: int, font_file: str | None, rng: np.random.Generator) -> Image.Image:
    """A typed digit, dark on white, a little off-centre."""
    size = int(rng.integers(100, 160))
    font = ImageFont.truetype(font_file, size) if font_file else ImageFont.load_default(size)
    image = Image.new("L", (FONT_CANVAS_SIDE, FONT_CANVAS_SIDE), int(rng.integers(230, 256)))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), str(label), font=font)
    x = (FONT_CANVAS_SIDE - (right - left)) / 2 - left + rng.uniform(-20, 20)
    y = (FONT_CANVAS_SIDE - (bottom - top)) / 2 - top + rng.uniform(-20, 20)
    draw.text((x, y), str(label), fill=int(rng.integers(0, 60)), font=font)
    return image
