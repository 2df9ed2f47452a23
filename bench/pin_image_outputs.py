"""Pin what the model sees: fixed input images of every kind and their 28x28 outputs.

``tests/test_image_outputs.py`` reads each file under ``tests/data/image_outputs/`` with the
package's image path and compares the 28x28 it gets with the pinned one, so any change to
what the model sees fails a test. When a change is meant (and ``bench/bench_images.py`` shows
it costs no accuracy on any kind), accept the new outputs on purpose:

    .venv/bin/python bench/pin_image_outputs.py --accept           # re-pin the outputs only
    .venv/bin/python bench/pin_image_outputs.py --make-inputs --data-dir DIR   # new inputs too

The inputs are MNIST *test* digits drawn by the project's renderers (photos, scans, mouse and
canvas drawings with thin, thick and off-centre strokes, low-resolution scans, typed fonts),
plus inverted and transparent variants, and a few non-digits.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from mnistlab import drawings, nondigits, renderers
from mnistlab.errors import ImageError
from mnistlab.images import load_image, normalize_digit

FOLDER = Path(__file__).resolve().parent.parent / "tests" / "data" / "image_outputs"
EXPECTED = FOLDER / "expected.npz"
PER_KIND = 3
FIRST_TEST_DIGIT = 9000  # Test digits 9000-9099 are the inputs' source.


def _save(image: Image.Image, name: str, **options) -> str:
    FOLDER.mkdir(parents=True, exist_ok=True)
    image.save(FOLDER / name, **options)
    return name


def make_inputs(data_dir: str | None) -> list[str]:
    """Render the input images from MNIST test digits; returns their file names."""
    from mnistlab.data import load_dataset

    dataset = load_dataset("mnist", data_dir)
    digits = dataset.test_images[FIRST_TEST_DIGIT:]
    labels = dataset.test_labels[FIRST_TEST_DIGIT:]
    fonts = renderers.find_fonts()
    names = []
    for n in range(PER_KIND):
        rng = np.random.default_rng([7, n])
        d, label = digits[n], int(labels[n])
        photo, _ = renderers.render_photo(d, rng)
        names.append(_save(photo, f"photo-{n}_label{label}.jpg", quality=85))
        names.append(
            _save(renderers.render_scan(digits[n + 10], rng), f"scan-{n}_label{labels[n + 10]}.png")
        )
        names.append(
            _save(
                renderers.render_mouse(digits[n + 20], rng), f"mouse-{n}_label{labels[n + 20]}.png"
            )
        )
        names.append(
            _save(
                renderers.render_lowres(digits[n + 30], rng),
                f"lowres-{n}_label{labels[n + 30]}.png",
            )
        )
        font = fonts[(7 * n) % len(fonts)] if fonts else None
        names.append(_save(renderers.render_font(n + 3, font, rng), f"font-{n}_label{n + 3}.png"))
        # Canvas drawings: a thin, a thick and an off-centre brush, one style each.
        ink = drawings.drawing_coverage(digits[n + 40], rng)
        style = drawings.DRAWING_STYLES[n]
        names.append(
            _save(
                drawings.colour_drawing(ink, style),
                f"drawing-{style}-{n}_label{labels[n + 40]}.png",
            )
        )
        inverted = ImageOps.invert(renderers.render_scan(digits[n + 50], rng))
        names.append(_save(inverted, f"inverted-{n}_label{labels[n + 50]}.png"))
        kind = nondigits.KINDS[n * 2 % len(nondigits.KINDS)]
        names.append(
            _save(nondigits.render(kind, rng, fonts[:1], digits[60:70]), f"nondigit-{kind}-{n}.png")
        )
    for n, width in enumerate((6.0, 30.0)):  # The thinnest and the broadest brush.
        skeleton = drawings.pen_path(digits[80 + n], 180)
        ink = drawings.stroke_coverage(skeleton, width)
        ink = drawings.place(ink[:280, :280], 280, 280, np.random.default_rng([8, n]))
        names.append(
            _save(
                drawings.colour_drawing(ink, "white-on-black"),
                f"drawing-brush{int(width)}_label{labels[80 + n]}.png",
            )
        )
    return sorted(names)


def outputs(names: list[str]) -> dict[str, np.ndarray]:
    """What the model sees for each input (an all-zero image where none is found)."""
    seen = {}
    for name in names:
        data = (FOLDER / name).read_bytes()
        try:
            seen[name] = normalize_digit(load_image(data))
        except ImageError:
            seen[name] = np.zeros((28, 28), np.uint8)
    return seen


def input_names() -> list[str]:
    return sorted(json.loads((FOLDER / "inputs.json").read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accept", action="store_true", help="Write the outputs as pinned.")
    parser.add_argument("--make-inputs", action="store_true", help="Render new inputs first.")
    parser.add_argument("--data-dir", default=None, help="Folder holding mnist/.")
    args = parser.parse_args(argv)
    if args.make_inputs:
        names = make_inputs(args.data_dir)
        (FOLDER / "inputs.json").write_text(json.dumps(names, indent=1) + "\n")
    names = input_names()
    seen = outputs(names)
    if args.accept or args.make_inputs:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **seen)
        EXPECTED.write_bytes(buffer.getvalue())
        print(f"pinned the outputs of {len(names)} inputs in {EXPECTED}")
        return 0
    pinned = np.load(EXPECTED)
    changed = [name for name in names if not np.array_equal(pinned[name], seen[name])]
    print(f"{len(changed)} of {len(names)} outputs differ from the pinned ones: {changed}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
