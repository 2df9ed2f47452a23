"""Render real MNIST test digits the way people's images of digits look, to test preprocessing.

Five kinds of image, each written as ``KIND/NNNNN_labelD.EXT`` plus one ``labels.csv``:

- ``photo``: a phone photo, dark ink on unevenly lit, textured paper, off-centre in a 400x300
  frame, slightly rotated and blurred, JPEG quality 80; a quarter are stored sideways with an
  EXIF orientation tag, as phones do.
- ``mouse``: a mouse drawing, thick white strokes on a black 280x280 canvas (PNG); some are black
  strokes on a transparent canvas, as an HTML canvas exports them.
- ``scan``: a flatbed scan, dark ink on white 300x300 paper with faint noise and dust, PNG or TIFF.
- ``font``: a typed digit from a font on this system (DejaVu via fc-list), else Pillow's font.
- ``lowres``: a low-resolution scan: the digit's 28x28 field reduced to a coarse grid (8 to 16
  px a side) with 2 to 8 grey levels, dark on light, given back as it is or enlarged 2-12x
  (nearest or bilinear), as a user with an old or distant scan sends it.
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
import sys
from pathlib import Path

import numpy as np

from mnistlab.data import load_dataset

# The renderers are the package's own (training uses them too).
from mnistlab.drawings import (  # noqa: F401 - drawing_coverage and colour_drawing: bench_images
    DRAWING_STYLES,
    colour_drawing,
    drawing_coverage,
    render_drawing,
)
from mnistlab.renderers import (  # noqa: F401 - find_fonts: bench_images
    find_fonts,
    render_font,
    render_lowres,
    render_mouse,
    render_photo,
    render_scan,
)

KINDS = ("photo", "mouse", "scan", "font", "drawing", "lowres")


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
            elif kind == "lowres":
                name += ".png"
                render_lowres(images[index], rng).save(out / name, "PNG")
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
