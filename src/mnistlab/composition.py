"""Handwritten numbers composed from MNIST digits: one line of ink, encoded as a user sends it.

Each digit is scaled a little (sizes vary) and placed on a slanted, jittered baseline in one
of three layouts:

- separated: uneven gaps between neighbours' ink;
- touching: each digit slid left until its ink meets its neighbour's;
- overlapping: slid a few pixels further (at MNIST's scale 1.5-3 px of a 20 px digit).

Gaps are measured on the ink itself (row by row), not on bounding boxes. A string is rendered
in one of three kinds: the MNIST ink as is (white on black), redrawn as canvas strokes with one
round brush (``drawings.pen_path``, as a person draws on the page), or as a phone photo of dark
ink on uneven paper (``renderers.photograph``, on a wide sheet).

``bench/bench_read.py`` composes numbers from MNIST's test digits with ``BENCH``; the sequence
reader (``read_training``) trains on training digits with ``TRAINING``'s wider variation.
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
from PIL import Image

from mnistlab import drawings, renderers

LAYOUTS = ("separated", "touching", "overlapping")
KINDS = ("mnist", "drawing", "photo")


@dataclasses.dataclass(frozen=True)
class Variation:
    """How much composed strings vary; ranges are (low, high), in fractions of the height."""

    sizes: tuple[float, float] = (0.85, 1.15)  # each digit's height
    brush: tuple[float, float] = (0.08, 0.16)  # a drawing's pen width (one pen per string)
    slope: float = 0.08  # the baseline's slope, either way
    jitter: int = 20  # each digit's baseline moves up or down by height // jitter
    gap: tuple[float, float] = (0.05, 0.35)  # between separated digits' ink
    overlap: tuple[float, float] = (0.08, 0.15)  # overlapping digits slid past contact
    mnist_height: tuple[int, int] = (40, 90)  # the digits' height in px, by kind
    drawn_height: tuple[int, int] = (70, 140)
    breaks: float = 0.0  # chance that a digit's stroke is broken by a gap across it
    lean: tuple[float, float] = (0.0, 0.0)  # the whole line's lean (tangent; 0: as MNIST's)


BENCH = Variation()
# Italic writing: each line leans 19-31 degrees to the right, more than MNIST's digits.
LEANING = dataclasses.replace(BENCH, lean=(0.35, 0.6))
TRAINING = Variation(
    sizes=(0.75, 1.25),
    brush=(0.05, 0.2),
    slope=0.12,
    jitter=12,
    gap=(0.02, 0.7),
    overlap=(0.05, 0.2),
    mnist_height=(30, 70),
    drawn_height=(40, 90),
    breaks=0.1,
)


def encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def crop(ink: np.ndarray) -> np.ndarray:
    rows, columns = np.nonzero(ink > 0.05)
    return ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def digit_inks(
    digits: np.ndarray, kind: str, height: int, rng: np.random.Generator, vary: Variation = BENCH
) -> list:
    """Each digit's ink in [0, 1], cropped, about ``height`` px tall, sizes varying."""
    brush = rng.uniform(*vary.brush) * height  # One pen for the whole string.
    inks = []
    for digit in digits:
        size = int(height * rng.uniform(*vary.sizes))
        if kind == "drawing":
            ink = drawings.stroke_coverage(drawings.pen_path(digit, size), brush)
        else:
            ink = drawings.upscale(digit, round(size * 28 / 20))  # MNIST's digit is 20 of 28 px
        ink = crop(ink)
        if vary.breaks and rng.random() < vary.breaks:
            ink = _broken(ink, rng)
        inks.append(ink)
    return inks


def _broken(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ink with a thin band across it erased: a stroke lifted and put down again."""
    height, width = ink.shape
    band = max(1, round(rng.uniform(0.03, 0.08) * height))
    original, ink = ink, ink.copy()
    if rng.random() < 0.5:
        row = int(rng.integers(height // 5, max(height // 5 + 1, height // 2)))
        ink[row : row + band] = 0
    else:
        column = int(rng.integers(width // 4, max(width // 4 + 1, 3 * width // 4)))
        ink[: height // 2, column : column + band] = 0
    return crop(ink) if (ink > 0.05).any() else original


def contact(canvas: np.ndarray, ink: np.ndarray, top: int) -> int:
    """The leftmost column where ``ink`` (its top row at ``top``) does not meet the canvas's."""
    firm = ink > 0.3
    shift = 0
    for row in range(ink.shape[0]):
        placed = canvas[top + row] > 0.3
        if not placed.any() or not firm[row].any():
            continue
        shift = max(shift, int(np.flatnonzero(placed)[-1]) - int(np.argmax(firm[row])) + 1)
    return shift


def compose(
    inks: list, layout: str, height: int, rng: np.random.Generator, vary: Variation = BENCH
):
    """The string's ink on one canvas, and which digit owns each pixel (-1: none)."""
    margin = height // 2
    room = int(height * max(1.0, 2 * vary.gap[1]))  # per digit, for gaps and the slope
    width = sum(ink.shape[1] for ink in inks) + 2 * margin + len(inks) * room
    tallest = max(ink.shape[0] for ink in inks)
    slope = rng.uniform(-vary.slope, vary.slope)
    canvas = np.zeros((tallest + 2 * margin + int(abs(slope) * width) + height // 4, width))
    base = margin + (int(-slope * width) if slope < 0 else 0)
    owners = np.full(canvas.shape, -1, np.int8)
    x = margin
    for position, ink in enumerate(inks):
        shift = int(rng.integers(-height // vary.jitter, height // vary.jitter + 1))
        bottom = base + tallest + int(slope * x) + shift
        top = max(0, bottom - ink.shape[0])
        if position:
            touch = contact(canvas, ink, top)
            if layout == "separated":
                x = touch + int(rng.uniform(*vary.gap) * height)
            elif layout == "touching":
                x = touch - max(1, round(0.02 * height))
            else:
                x = touch - max(2, round(rng.uniform(*vary.overlap) * height))
        x = max(x, 0)
        area = canvas[top : top + ink.shape[0], x : x + ink.shape[1]]
        placed = ink[: area.shape[0], : area.shape[1]]
        owner = owners[top : top + ink.shape[0], x : x + ink.shape[1]]
        owner[(placed > 0.3) & (placed >= area)] = position
        np.maximum(area, placed, out=area)
        x += ink.shape[1]
    used = np.flatnonzero(canvas.max(axis=0) > 0)
    width = used[-1] + 1 + margin
    return canvas[:, :width], owners[:, :width]


def photo(ink: np.ndarray, rng: np.random.Generator) -> bytes:
    """``renderers.photograph`` of a wide sheet, as a JPEG."""
    return encode(renderers.photograph(ink, rng), "JPEG", quality=80)


def lean(canvas: np.ndarray, owner: np.ndarray, slope: float):
    """The composed line sheared to lean right by ``slope`` (columns per row up)."""
    height, width = canvas.shape
    size = (width + math.ceil((height - 1) * slope), height)
    # Each pixel (x, y) of the leaning line is the upright one's at x - (height - 1 - y) * slope.
    shear = (1.0, slope, -(height - 1) * slope, 0.0, 1.0, 0.0)
    leaning = Image.fromarray(canvas.astype(np.float32)).transform(
        size, Image.Transform.AFFINE, shear, Image.Resampling.BILINEAR
    )
    owners = Image.fromarray(owner.astype(np.int32)).transform(
        size, Image.Transform.AFFINE, shear, Image.Resampling.NEAREST, fillcolor=-1
    )
    return np.asarray(leaning), np.asarray(owners).astype(owner.dtype)


def render(digits: np.ndarray, kind: str, layout: str, seed, owners: bool = False, vary=BENCH):
    """One string of ``digits`` (28x28 each) as the encoded image a user would send; with
    ``owners``, also the digit that owns each of its pixels (-1: none)."""
    rng = np.random.default_rng(seed)
    heights = vary.mnist_height if kind == "mnist" else vary.drawn_height
    height = int(rng.integers(*heights))
    canvas, owner = compose(digit_inks(digits, kind, height, rng, vary), layout, height, rng, vary)
    if vary.lean[1]:
        canvas, owner = lean(canvas, owner, float(rng.uniform(*vary.lean)))
    if kind == "photo":
        data = photo(canvas, rng)
    elif kind == "drawing":
        style = drawings.DRAWING_STYLES[int(rng.integers(len(drawings.DRAWING_STYLES)))]
        data = encode(drawings.colour_drawing(canvas, style))
    else:
        data = encode(Image.fromarray(np.round(canvas * 255).astype(np.uint8)))
    return (data, owner) if owners else data
