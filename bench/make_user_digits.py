"""Render real MNIST test digits the way people's images of digits look, to test preprocessing.

Five kinds of image, each written as ``KIND/NNNNN_labelD.EXT`` plus one ``labels.csv``:

- ``photo``: a phone photo, dark ink on unevenly lit, textured paper, off-centre in a 400x300
  frame, slightly rotated and blurred, JPEG quality 80; a quarter are stored sideways with an
  EXIF orientation tag, as phones do.
- ``mouse``: a mouse drawing, thick white strokes on a black 280x280 canvas (PNG); some are black
  strokes on a transparent canvas, as an HTML canvas exports them.
- ``scan``: a flatbed scan, dark ink on white 300x300 paper with faint noise and dust, PNG or TIFF.
- ``font``: a typed digit from a font on this system (DejaVu via fc-list), else Pillow's font.
- ``drawing``: a canvas drawing: the digit's pen path (its skeleton) drawn with a round,
  anti-aliased brush 6-30 px wide, off-centre on a 280x280 RGBA canvas; white on black, black
  on white or black on transparent (in turn, by index).

NNNNN is the MNIST test index (the font index for ``font``). Everything is drawn from ``--seed``,
and each image from its own (seed, kind, index) stream, so the same digit always looks the same.

    python bench/make_user_digits.py --out /tmp/user-digits --count 50 --data-dir /work/shared/data
"""

from __future__ import annotations

import argparse
import csv
import glob
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnistlab.data import load_dataset
# Canvas drawings are the package's own (training uses them too); the other kinds live here.
from mnistlab.drawings import (  # noqa: F401 - drawing_coverage and colour_drawing: bench_images
    CANVAS_SIDE,
    DRAWING_STYLES,
    colour_drawing,
    drawing_coverage,
    place,
    render_drawing,
    upscale,
)

KINDS = ("photo", "mouse", "scan", "font", "drawing")
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


def render_photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[Image.Image, bytes]:
    """Dark ink on uneven, textured paper; returns the image and its EXIF block (maybe empty)."""
    width, height = PHOTO_SIZE
    ink = rotate(upscale(digit, int(rng.integers(110, 200))), rng.uniform(-8, 8))
    ink = place(ink[: height, : width], width, height, rng)
    rows, columns = np.mgrid[0:height, 0:width]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (columns / width - 0.5) + np.sin(angle) * (rows / height - 0.5))
    lighting = rng.uniform(0.7, 0.9) + rng.uniform(0.1, 0.3) * ramp
    blotches = smooth_noise(width, height, 12, rng)
    texture = 0.03 * blotches + 0.015 * rng.normal(0, 1, (height, width))
    paper = np.clip(lighting + texture, 0, 1)[..., None] * np.array([1.0, 0.97, 0.9])
    ink_colour = np.array([0.12, 0.12, 0.2]) * rng.uniform(0.5, 1.5)
    cover = rng.uniform(0.7, 0.95) * ink[..., None]
    pixels = paper * (1 - cover) + ink_colour * cover + rng.normal(0, 0.01, (height, width, 3))
    image = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
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


def generate(
    images: np.ndarray, labels: np.ndarray, out: Path, count: int, seed: int, kinds: list[str]
) -> list[dict]:
    """Write ``count`` images of each kind under ``out``; return the rows of labels.csv."""
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(images), size=min(count, len(images)), replace=False))
    fonts = find_fonts() if "font" in kinds else []
    rows = []
    for kind_number, kind in enumerate(KINDS):
        if kind not in kinds:
            continue
        (out / kind).mkdir(parents=True, exist_ok=True)
        indices = range(count) if kind == "font" else picked
        for index in indices:
            index = int(index)
            rng = np.random.default_rng([seed, kind_number, index])
            if kind == "font":
                label = index % 10
                font_file = fonts[int(rng.integers(len(fonts)))] if fonts else None
                source = Path(font_file).name if font_file else "pillow-default"
            else:
                label, source = int(labels[index]), f"mnist-test-{index}"
            name = f"{kind}/{index:05d}_label{label}"
            if kind == "photo":
                image, exif = render_photo(images[index], rng)
                name += ".jpg"
                image.save(out / name, "JPEG", quality=80, exif=exif)
            elif kind == "mouse":
                name += ".png"
                render_mouse(images[index], rng).save(out / name, "PNG")
            elif kind == "drawing":
                name += ".png"
                style = DRAWING_STYLES[index % len(DRAWING_STYLES)]
                render_drawing(images[index], style, rng).save(out / name, "PNG")
            elif kind == "scan":
                name += ".png" if index % 2 == 0 else ".tif"
                render_scan(images[index], rng).save(out / name)
            else:
                name += ".png"
                render_font(label, font_file, rng).save(out / name, "PNG")
            rows.append({"path": name, "label": label, "kind": kind, "source": source})
    with open(out / "labels.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["path", "label", "kind", "source"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder to write into (created).")
    parser.add_argument("--count", type=int, default=50, help="Images of each kind (default 50).")
    parser.add_argument("--seed", type=int, default=0, help="Random seed (default 0).")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="Folder holding mnist/ (default $MNISTLAB_DATA_DIR, then the cache).",
    )
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"Comma-separated subset of {','.join(KINDS)} (default all).",
    )
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or args.count < 1:
        parser.error(f"--kinds must name some of {', '.join(KINDS)} and --count must be >= 1")
    dataset = load_dataset("mnist", args.data_dir)
    rows = generate(
        dataset.test_images, dataset.test_labels, args.out, args.count, args.seed, kinds
    )
    counts = ", ".join(f"{kind} {sum(row['kind'] == kind for row in rows)}" for kind in kinds)
    print(f"wrote {len(rows)} images to {args.out} ({counts}) and {args.out / 'labels.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
