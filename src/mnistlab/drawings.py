"""MNIST digits redrawn the way people draw them on a canvas, for training and benchmarks.

A person drawing on this project's page (or any canvas app) makes strokes of one width with a
round brush, anti-aliased, anywhere on a 280x280 canvas. Such a drawing differs from an MNIST
digit even after ``images.normalize_digit``: the strokes have no pen pressure, and the brush is
thinner or broader than MNIST's pen. A digit is redrawn here by taking its skeleton as the pen
path and running a round brush of random width along it, placed at random on the canvas.

``drawn_training_digits`` reads such drawings back through ``normalize_digit``, exactly as
``mnistlab serve`` reads a canvas, so a model can train on what it will be shown
(``Config.drawings``); ``bench/bench_images.py`` draws test digits the same way to measure it.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from mnistlab.errors import ImageError
from mnistlab.images import normalize_digit

CANVAS_SIDE = 280  # The page's canvas, in px.
DRAWING_STYLES = ("white-on-black", "black-on-white", "black-on-transparent")
BRUSH_WIDTHS = (6.0, 30.0)  # Brush widths in px on the 280 px canvas, as canvas apps use.
DIGIT_HEIGHTS = (0.45, 0.85)  # How tall people draw a digit, as a fraction of the canvas.
# Where the pen path keeps an arm thinning ate (``eaten_arms``), in half-widths of the digit's
# median stroke: the first values tried, not tuned.
ARM_DEPTH, ARM_REACH = 0.5, 1.2
# Drawing one digit takes ~25 ms; below this many per process, starting processes costs more.
DIGITS_PER_WORKER = 1000


def upscale(digit: np.ndarray, height: int) -> np.ndarray:
    """An MNIST digit (28x28 uint8) as an ink map in [0, 1], ``height`` px tall, crisp edges."""
    image = Image.fromarray(digit.astype(np.float32) / 255)
    image = image.resize((height, height), Image.Resampling.BICUBIC)
    # Bicubic upscaling leaves a soft halo; a pen stroke has a firmer edge.
    return np.clip((np.asarray(image, dtype=np.float64) - 0.25) / 0.5, 0.0, 1.0)


def place(ink: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Put ``ink`` at a random position inside a ``width`` x ``height`` canvas."""
    canvas = np.zeros((height, width))
    top = int(rng.integers(0, height - ink.shape[0] + 1))
    left = int(rng.integers(0, width - ink.shape[1] + 1))
    canvas[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return canvas


def thin(mask: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """One-pixel-wide skeleton of a binary shape (Zhang and Suen, 1984), vectorised; pixels in
    ``keep`` are never removed, so the skeleton reaches them."""
    image = np.pad(mask.astype(np.uint8), 1)
    kept = keep if keep is not None else np.zeros(mask.shape, bool)
    while True:
        changed = False
        for step in (0, 1):
            centre = image[1:-1, 1:-1]
            # Neighbours clockwise from north: p2 (N), p3 (NE), ..., p9 (NW).
            ring = [
                image[:-2, 1:-1],
                image[:-2, 2:],
                image[1:-1, 2:],
                image[2:, 2:],
                image[2:, 1:-1],
                image[2:, :-2],
                image[1:-1, :-2],
                image[:-2, :-2],
            ]
            count = sum(ring)
            rises = sum((ring[i] == 0) & (ring[(i + 1) % 8] == 1) for i in range(8))
            north, east, south, west = ring[0], ring[2], ring[4], ring[6]
            if step == 0:
                keep_corner = (north * east * south == 0) & (east * south * west == 0)
            else:
                keep_corner = (north * east * west == 0) & (north * south * west == 0)
            remove = (centre == 1) & (count >= 2) & (count <= 6) & (rises == 1) & keep_corner
            remove &= ~kept
            if remove.any():
                centre[remove] = 0
                changed = True
        if not changed:
            return image[1:-1, 1:-1].astype(bool)


def pen_skeleton(ink: np.ndarray) -> np.ndarray:
    """The pen path's pixels: the skeleton of the ink, less the loops MNIST's pen filled.

    A broad pen fills a small loop (a 9's head, an 8's eyes) partly or wholly, and the skeleton
    of a filled loop is a line: a 9 would be redrawn as a 1. A person drawing that 9 on a
    canvas draws the loop, so the path must go around it: a hole in the firm ink, or the
    middle of a blob much wider than the digit's typical stroke, is cut out first. Thinning
    also eats short, bold arms (a bold 3 became a bracket); the path keeps them
    (``eaten_arms``).
    """
    # A low threshold keeps MNIST's faint stroke segments, so the path does not break up.
    area = ink >= 0.25
    firm = ink >= 0.75
    area &= ~(ndimage.binary_fill_holes(firm) & ~firm)
    skeleton = thin(area)
    inside = ndimage.distance_transform_edt(area)
    half_width = float(np.median(inside[skeleton]))
    cores = inside > 2.2 * half_width
    if cores.any():
        wide, _ = ndimage.label(inside > 1.3 * half_width)
        filled = np.isin(wide, np.unique(wide[cores])) & (wide > 0)
        area = area & ~filled
        skeleton = thin(area)
        inside = ndimage.distance_transform_edt(area)
    arms = eaten_arms(skeleton, area, inside, half_width)
    return thin(area, keep=arms) if arms.any() else skeleton


def eaten_arms(
    skeleton: np.ndarray, area: np.ndarray, inside: np.ndarray, half_width: float
) -> np.ndarray:
    """Ridge pixels of the ink's distance map far from the skeleton: the axes of arms that
    thinning ate (it peels a shape from all sides, so an arm shorter than the stroke is wide, as
    in a bold 3, goes as a bump).

    A ridge pixel is at least as far inside the ink as its two neighbours along one of four
    directions. Kept: those over ARM_DEPTH half-widths inside the ink (not the rim) and over
    ARM_REACH half-widths from the skeleton (farther than a stroke's own edge).
    """
    padded = np.pad(inside, 1)
    centre = padded[1:-1, 1:-1]
    ridge = np.zeros(inside.shape, bool)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ahead = padded[1 + dr : padded.shape[0] - 1 + dr, 1 + dc : padded.shape[1] - 1 + dc]
        behind = padded[1 - dr : padded.shape[0] - 1 - dr, 1 - dc : padded.shape[1] - 1 - dc]
        ridge |= (centre >= ahead) & (centre >= behind) & (centre > np.minimum(ahead, behind))
    away = ndimage.distance_transform_edt(~skeleton)
    return area & ridge & (inside >= ARM_DEPTH * half_width) & (away >= ARM_REACH * half_width)


def pen_path(digit: np.ndarray, height: int) -> np.ndarray:
    """The digit's pen path as a 1 px polyline on a canvas ``height`` px tall (plus a margin).

    The skeleton is found at 4x MNIST's resolution (cheap), then each pair of neighbouring
    skeleton pixels becomes a line segment scaled up to the canvas.
    """
    skeleton = pen_skeleton(upscale(digit, 4 * 28))
    scale = height / (4 * 28)
    margin = BRUSH_WIDTHS[1]
    side = int(height + 2 * margin)
    path = Image.new("1", (side, side), 0)
    draw = ImageDraw.Draw(path)
    rows, columns = np.nonzero(skeleton)
    on = set(zip(rows.tolist(), columns.tolist()))
    for row, column in on:
        start = (margin + column * scale, margin + row * scale)
        draw.point(start, fill=1)
        for step_row, step_column in ((0, 1), (1, -1), (1, 0), (1, 1)):
            if (row + step_row, column + step_column) in on:
                end = (margin + (column + step_column) * scale, margin + (row + step_row) * scale)
                draw.line([start, end], fill=1)
    return np.asarray(path)


def stroke_coverage(skeleton: np.ndarray, width: float) -> np.ndarray:
    """A round brush of ``width`` px run along the skeleton: round caps and joins, with the
    one-pixel anti-aliased rim that canvas renderers draw (coverage falls from 1 to 0 across
    the stroke's edge)."""
    distance = ndimage.distance_transform_edt(~skeleton)
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)


def drawing_coverage(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The brush's coverage of each pixel of the 280x280 canvas, in [0, 1]."""
    lowest, highest = (int(fraction * CANVAS_SIDE) for fraction in DIGIT_HEIGHTS)
    height = int(rng.integers(lowest, highest))
    width = rng.uniform(*BRUSH_WIDTHS)
    ink = stroke_coverage(pen_path(digit, height), width)
    rows, columns = np.nonzero(ink)
    ink = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    return place(ink[:CANVAS_SIDE, :CANVAS_SIDE], CANVAS_SIDE, CANVAS_SIDE, rng)


def colour_drawing(ink: np.ndarray, style: str) -> Image.Image:
    """RGBA pixels of a drawing in one of DRAWING_STYLES, from its coverage, as ``canvas.toBlob``
    exports them: white on black (this project's page), black on white, or black on a
    transparent canvas."""
    level = np.round(ink * 255).astype(np.uint8)
    pixels = np.zeros((*ink.shape, 4), np.uint8)
    if style == "white-on-black":
        pixels[..., :3] = level[..., None]
        pixels[..., 3] = 255
    elif style == "black-on-white":
        pixels[..., :3] = 255 - level[..., None]
        pixels[..., 3] = 255
    elif style == "black-on-transparent":  # The stroke colour is black, its coverage the alpha.
        pixels[..., 3] = level
    else:
        raise ValueError(f"unknown drawing style {style!r}; expected one of {DRAWING_STYLES}")
    return Image.fromarray(pixels)


def render_drawing(digit: np.ndarray, style: str, rng: np.random.Generator) -> Image.Image:
    """A canvas drawing of an MNIST digit (28x28 uint8) in ``style``, as the page exports it."""
    return colour_drawing(drawing_coverage(digit, rng), style)


def _draw_and_read(task: tuple[np.ndarray, int, int]) -> np.ndarray | None:
    """One digit drawn white on black, as the page draws, then read as the server reads it."""
    digit, seed, index = task
    drawing = render_drawing(digit, "white-on-black", np.random.default_rng([seed, index]))
    try:
        return normalize_digit(drawing)
    except ImageError:  # No digit-like ink in the drawing.
        return None


def drawn_training_digits(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` of the digits, picked at random, as canvas drawings read by normalize_digit.

    The same (images, count, seed) always give the same digits: each is drawn from its own
    (seed, index) random stream, on however many processes. Returns uint8 (M, 28, 28) and
    their labels, M <= count (a drawing that normalize_digit rejects is left out).
    """
    if not 0 <= count <= len(labels):
        raise ValueError(f"cannot draw {count:,} of {len(labels):,} training digits")
    picked = np.sort(np.random.default_rng(seed).choice(len(labels), count, replace=False))
    tasks = [(images[index], seed, int(index)) for index in picked]
    workers = min(os.cpu_count() or 1, max(1, count // DIGITS_PER_WORKER))
    if workers == 1:
        read = [_draw_and_read(task) for task in tasks]
    else:
        # Spawned, not forked: the parent may already run framework threads.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            read = list(pool.map(_draw_and_read, tasks, chunksize=256))
    kept = [position for position, digit in enumerate(read) if digit is not None]
    digits = np.array([read[position] for position in kept], np.uint8)
    return digits.reshape(len(kept), *images.shape[1:]), labels[picked[kept]]
