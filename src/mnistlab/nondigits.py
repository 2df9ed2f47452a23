"""Images that hold no single digit, as people send them: taps, lines, letters, shapes,
scribbles and strings of several digits.

They teach the shipped model's "not a digit" head what to refuse (``notdigit.py``) and measure
how often it does (``bench/bench_notdigit.py``). Every image is drawn from its own random
stream, so the same (kind, seed, index) always gives the same picture. Strokes are drawn as
the page draws them (``drawings.stroke_coverage``: a round, anti-aliased brush on a 280x280
canvas) in one of ``drawings.DRAWING_STYLES``; letters are also typed in a font on paper.

Shapes that *are* digits are never drawn: no circle or ellipse (a 0), no near-vertical line
(a 1), and no letter that is written like a digit (``DIGIT_LIKE_LETTERS``).
"""

from __future__ import annotations

import glob
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mnistlab.drawings import (
    BRUSH_WIDTHS,
    CANVAS_SIDE,
    DRAWING_STYLES,
    colour_drawing,
    drawing_coverage,
    place,
    stroke_coverage,
    upscale,
)

KINDS = ("tap", "line", "letter", "shape", "scribble", "string")
# Written like a digit by many people: O/o/D 0, I/l/i/j/J/T/t 1 or 7, Z/z 2, S/s 5, b/G 6,
# B 8, g/q 9, A 4 in some hands is not: a capital A is a letter people expect refused.
DIGIT_LIKE_LETTERS = set("OoDQIlijJTtZzSsbGBgqy")
LETTERS = [
    c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in DIGIT_LIKE_LETTERS
]
SHAPES = (
    "square",
    "filled-square",
    "triangle",
    "star",
    "cross",
    "smiley",
    "check",
    "arrow",
    "heart",
    "filled-disc",
    "rectangle",
)
FONT_PATTERNS = ("/usr/share/fonts/**/*.ttf", "/usr/share/fonts/**/*.otf")
PAPER_SIDE = 200  # Typed letters: a square of paper, as render_font draws typed digits.


def font_files() -> list[str]:
    """Text fonts on this system (no symbol, emoji or maths fonts), sorted."""
    files = {name for pattern in FONT_PATTERNS for name in glob.glob(pattern, recursive=True)}
    unusable = ("symbol", "emoji", "math")
    return sorted(name for name in files if not any(word in name.lower() for word in unusable))


def split_fonts(fonts: list[str], part: str) -> list[str]:
    """Every other font for training (``train``), the rest for measuring (``bench``), so the
    benchmark's letters come from typefaces the head never saw."""
    if part not in ("train", "bench"):
        raise ValueError(f"part must be 'train' or 'bench'; received: part={part!r}")
    return fonts[0::2] if part == "train" else fonts[1::2]


def _canvas(rng: np.random.Generator) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    path = Image.new("1", (CANVAS_SIDE, CANVAS_SIDE), 0)
    return path, ImageDraw.Draw(path)


def _brush(path: Image.Image, rng: np.random.Generator, widths=BRUSH_WIDTHS) -> np.ndarray:
    """The brush's coverage along a 1 px pen path."""
    return stroke_coverage(np.asarray(path, bool), rng.uniform(*widths))


def _points(centre, radius, angles) -> list[tuple[float, float]]:
    return [(centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a)) for a in angles]


def tap_ink(rng: np.random.Generator) -> np.ndarray:
    """One to three taps of the pen, or one tiny mark."""
    path, draw = _canvas(rng)
    for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
        x, y = rng.uniform(30, CANVAS_SIDE - 30, 2)
        length = rng.uniform(0, 8)
        angle = rng.uniform(0, 2 * math.pi)
        draw.line([(x, y), (x + length * math.cos(angle), y + length * math.sin(angle))], fill=1)
    return _brush(path, rng)


def line_ink(rng: np.random.Generator) -> np.ndarray:
    """A straight stroke at least 55 degrees from vertical (steeper ones are 1s), or a wavy
    dash."""
    path, draw = _canvas(rng)
    length = rng.uniform(0.3, 0.9) * CANVAS_SIDE
    angle = math.radians(rng.uniform(-35, 35))
    x, y = rng.uniform(0.2, 0.8, 2) * CANVAS_SIDE
    dx, dy = length / 2 * math.cos(angle), length / 2 * math.sin(angle)
    if rng.random() < 0.7:
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=1)
    else:
        steps = np.linspace(-1, 1, 40)
        wave = rng.uniform(3, 12) * np.sin(steps * rng.uniform(3, 9))
        draw.line(
            [
                (x + s * dx - w * math.sin(angle), y + s * dy + w * math.cos(angle))
                for s, w in zip(steps, wave)
            ],
            fill=1,
        )
    return _brush(path, rng)


def shape_ink(rng: np.random.Generator, shape: str | None = None) -> np.ndarray:
    """A simple shape people doodle: squares, a triangle, a star, a cross, a smiley, ..."""
    shape = shape or str(rng.choice(SHAPES))
    path, draw = _canvas(rng)
    radius = rng.uniform(0.2, 0.42) * CANVAS_SIDE
    c = tuple(rng.uniform(radius + 10, CANVAS_SIDE - radius - 10, 2))
    turn = rng.uniform(-0.3, 0.3)
    if shape in ("square", "filled-square", "rectangle"):
        aspect = rng.uniform(0.45, 0.7) if shape == "rectangle" else rng.uniform(0.85, 1.0)
        corners = [(-1, -aspect), (1, -aspect), (1, aspect), (-1, aspect)]
        if rng.random() < 0.5:
            corners = [(y, x) for x, y in corners]
        points = [
            (
                c[0] + radius * (x * math.cos(turn) - y * math.sin(turn)),
                c[1] + radius * (x * math.sin(turn) + y * math.cos(turn)),
            )
            for x, y in corners
        ]
        if shape == "filled-square":
            draw.polygon(points, fill=1)
        draw.line(points + points[:1], fill=1)
    elif shape == "triangle":
        points = _points(c, radius, [turn - math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)])
        draw.line(points + points[:1], fill=1)
    elif shape == "star":
        points = _points(c, radius, [turn - math.pi / 2 + k * 4 * math.pi / 5 for k in range(5)])
        draw.line(points + points[:1], fill=1)
    elif shape == "cross":
        for angle in (
            (turn + math.pi / 4, turn - math.pi / 4)
            if rng.random() < 0.5
            else (turn, turn + math.pi / 2)
        ):
            a, b = _points(c, radius, [angle, angle + math.pi])
            draw.line([a, b], fill=1)
    elif shape == "smiley":
        draw.ellipse([c[0] - radius, c[1] - radius, c[0] + radius, c[1] + radius], outline=1)
        for side in (-1, 1):
            eye = (c[0] + side * radius * 0.35, c[1] - radius * 0.3)
            draw.ellipse([eye[0] - 3, eye[1] - 3, eye[0] + 3, eye[1] + 3], fill=1)
        draw.arc(
            [c[0] - radius * 0.55, c[1] - radius * 0.5, c[0] + radius * 0.55, c[1] + radius * 0.55],
            20,
            160,
            fill=1,
        )
    elif shape == "check":
        draw.line(
            [
                (c[0] - radius, c[1]),
                (c[0] - radius * 0.3, c[1] + radius * 0.6),
                (c[0] + radius, c[1] - radius * 0.8),
            ],
            fill=1,
        )
    elif shape == "arrow":
        sign = 1 if rng.random() < 0.5 else -1
        tip = (c[0] + sign * radius, c[1])
        draw.line([(c[0] - sign * radius, c[1]), tip], fill=1)
        draw.line(
            [
                (tip[0] - sign * radius * 0.4, c[1] - radius * 0.4),
                tip,
                (tip[0] - sign * radius * 0.4, c[1] + radius * 0.4),
            ],
            fill=1,
        )
    elif shape == "heart":
        t = np.linspace(0, 2 * math.pi, 80)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        scale = radius / 17
        draw.line(list(zip(c[0] + scale * x, c[1] + scale * y)), fill=1)
    elif shape == "filled-disc":
        draw.ellipse([c[0] - radius, c[1] - radius, c[0] + radius, c[1] + radius], fill=1)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return _brush(path, rng)


def scribble_ink(rng: np.random.Generator) -> np.ndarray:
    """A random scrawl: a smooth random walk of several turns, or a tight zigzag."""
    path, draw = _canvas(rng)
    steps = int(rng.integers(40, 120))
    if rng.random() < 0.5:
        heading = np.cumsum(rng.normal(0, 0.5, steps))
        step = rng.uniform(4, 10)
        moves = np.stack([np.cos(heading), np.sin(heading)], 1) * step
    else:  # A zigzag back and forth across an area.
        steps = int(rng.integers(5, 16))  # Few enough turns that the strokes stay apart.
        moves = np.zeros((steps, 2))
        moves[:, 0] = np.where(np.arange(steps) % 2 == 0, 1, -1) * rng.uniform(40, 120)
        moves[:, 1] = rng.uniform(2, 8)
        moves += rng.normal(0, 4, moves.shape)
    points = np.cumsum(moves, 0)
    points -= points.min(0)
    # Each axis scaled on its own: a scrawl is about as wide as it is tall (a narrow one is a 1).
    points = points / np.maximum(points.max(0), 1.0)
    size = rng.uniform(0.4, 0.85) * CANVAS_SIDE
    points *= size * np.array([1.0, rng.uniform(0.6, 1.4)])
    points += rng.uniform(10, np.maximum(CANVAS_SIDE - 10 - points.max(0), 11))
    draw.line([tuple(p) for p in points], fill=1)
    return _brush(path, rng)


def letter_glyph(letter: str, font_file: str | None, size: int = 96) -> np.ndarray:
    """A letter in a font as a 28x28 uint8 image shaped like an MNIST digit (white on black,
    longest side 20 px), which ``drawings.drawing_coverage`` can redraw as canvas strokes."""
    font = ImageFont.truetype(font_file, size) if font_file else ImageFont.load_default(size)
    image = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(image).text((size, size), letter, fill=255, font=font)
    pixels = np.asarray(image)
    rows, columns = np.nonzero(pixels > 0)
    crop = image.crop((columns.min(), rows.min(), columns.max() + 1, rows.max() + 1))
    scale = 20 / max(crop.size)
    crop = crop.resize(
        (max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
        Image.Resampling.LANCZOS,
    )
    glyph = Image.new("L", (28, 28), 0)
    glyph.paste(crop, ((28 - crop.width) // 2, (28 - crop.height) // 2))
    return np.asarray(glyph)


def typed_letters(letters: str, font_file: str | None, rng: np.random.Generator) -> Image.Image:
    """One or more letters typed dark on light paper, a little off-centre."""
    size = int(rng.integers(90, 150)) if len(letters) == 1 else int(rng.integers(50, 80))
    font = ImageFont.truetype(font_file, size) if font_file else ImageFont.load_default(size)
    side = PAPER_SIDE if len(letters) == 1 else 2 * PAPER_SIDE
    image = Image.new("L", (side, PAPER_SIDE), int(rng.integers(225, 256)))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), letters, font=font)
    x = (side - (right - left)) / 2 - left + rng.uniform(-15, 15)
    y = (PAPER_SIDE - (bottom - top)) / 2 - top + rng.uniform(-15, 15)
    draw.text((x, y), letters, fill=int(rng.integers(0, 70)), font=font)
    return image


def string_ink(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two or three MNIST digits written side by side on the canvas, small gaps between them."""
    count = len(digits)
    height = int(rng.uniform(0.25, 0.5) * CANVAS_SIDE * (2.5 / count))
    pieces = [upscale(digit, height) for digit in digits]
    pieces = [piece[:, np.flatnonzero(piece.max(0) > 0)] for piece in pieces]  # Tight columns.
    gap = int(rng.uniform(0.05, 0.3) * height)
    width = sum(piece.shape[1] for piece in pieces) + gap * (count - 1)
    ink = np.zeros((height, width))
    left = 0
    for piece in pieces:
        ink[:, left : left + piece.shape[1]] = np.maximum(
            ink[:, left : left + piece.shape[1]], piece
        )
        left += piece.shape[1] + gap
    return place(ink[:CANVAS_SIDE, :CANVAS_SIDE], CANVAS_SIDE, CANVAS_SIDE, rng)


def render(
    kind: str,
    rng: np.random.Generator,
    fonts: list[str],
    digit_pool: np.ndarray | None = None,
) -> Image.Image:
    """One image of ``kind`` (one of KINDS), as a person would send it.

    Args:
        kind: what to draw.
        rng: the image's own random stream.
        fonts: font files for letters (an empty list uses Pillow's built-in font).
        digit_pool: uint8 (N, 28, 28) MNIST digits to compose strings from (``string`` only):
            training digits to train on, test digits to measure with.
    """
    style = DRAWING_STYLES[int(rng.integers(len(DRAWING_STYLES)))]
    if kind == "tap":
        ink = tap_ink(rng)
    elif kind == "line":
        ink = line_ink(rng)
    elif kind == "shape":
        ink = shape_ink(rng)
    elif kind == "scribble":
        ink = scribble_ink(rng)
    elif kind == "letter":
        font = fonts[int(rng.integers(len(fonts)))] if fonts else None
        if rng.random() < 0.35:
            count = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
            return typed_letters("".join(rng.choice(LETTERS, count)), font, rng)
        ink = drawing_coverage(letter_glyph(str(rng.choice(LETTERS)), font), rng)
    elif kind == "string":
        if digit_pool is None or len(digit_pool) == 0:
            raise ValueError("kind 'string' needs digit_pool, the digits to compose from")
        picked = rng.choice(len(digit_pool), int(rng.choice([2, 2, 3])), replace=False)
        ink = string_ink(digit_pool[picked], rng)
    else:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    return colour_drawing(ink, style)


__all__ = ["DIGIT_LIKE_LETTERS", "KINDS", "LETTERS", "font_files", "render", "split_fonts"]
