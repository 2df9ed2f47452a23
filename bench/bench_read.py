"""How well and how fast ``reading.read_number`` reads handwritten numbers.

Strings of 3-8 digits are composed from MNIST's TEST digits (never training ones), each digit
scaled a little (sizes vary), on a slanted, jittered baseline, in three layouts:

- separated: uneven gaps between neighbours' ink;
- touching: each digit slid left until its ink meets its neighbour's;
- overlapping: slid a few pixels further (at MNIST's scale 1.5-3 px of a 20 px digit).

Gaps are measured on the ink itself (row by row), not on bounding boxes. Each string is read
in three kinds: the MNIST ink as is (white on black), redrawn as canvas strokes with one round
brush (``drawings.pen_path``, as a person draws on the page), and as a phone photo of dark
ink on uneven paper (``renderers.render_photo``'s steps, on a wide sheet).

Prints string accuracy (the whole number right) and digit accuracy (1 - edit distance / digits)
per layout and kind, with 95% Wilson intervals, and the median time to read a 6-digit string
against ``predict_bytes`` of one digit of the same kind, in the same run. ``--split tune``
uses test digits 0-4999 (to choose settings on), ``report`` (default) digits 5000-9999.

    .venv/bin/python bench/bench_read.py --data-dir /work/shared/data [--count 200]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image

from mnistlab import drawings, renderers
from mnistlab.data import load_dataset
from mnistlab.predict import Predictor, predict_bytes
from mnistlab.reading import read_number

SPLITS = {"tune": (0, 5000), "report": (5000, 10000)}
LAYOUTS = ("separated", "touching", "overlapping")
KINDS = ("mnist", "drawing", "photo")
LENGTHS = (3, 8)
TIMED_LENGTH = 6


def encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def crop(ink: np.ndarray) -> np.ndarray:
    rows, columns = np.nonzero(ink > 0.05)
    return ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def digit_inks(digits: np.ndarray, kind: str, height: int, rng: np.random.Generator) -> list:
    """Each digit's ink in [0, 1], cropped, about ``height`` px tall, sizes varying by 15%."""
    brush = rng.uniform(0.08, 0.16) * height  # One pen for the whole string.
    inks = []
    for digit in digits:
        size = int(height * rng.uniform(0.85, 1.15))
        if kind == "drawing":
            ink = drawings.stroke_coverage(drawings.pen_path(digit, size), brush)
        else:
            ink = drawings.upscale(digit, round(size * 28 / 20))  # MNIST's digit is 20 of 28 px
        inks.append(crop(ink))
    return inks


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


def compose(inks: list, layout: str, height: int, rng: np.random.Generator):
    """The string's ink on one canvas, and which digit owns each pixel (-1: none)."""
    margin = height // 2
    width = sum(ink.shape[1] for ink in inks) + 2 * margin + len(inks) * height
    tallest = max(ink.shape[0] for ink in inks)
    slope = rng.uniform(-0.08, 0.08)
    canvas = np.zeros((tallest + 2 * margin + int(abs(slope) * width) + height // 4, width))
    base = margin + (int(-slope * width) if slope < 0 else 0)
    owners = np.full(canvas.shape, -1, np.int8)
    x = margin
    for position, ink in enumerate(inks):
        bottom = (
            base + tallest + int(slope * x) + int(rng.integers(-height // 20, height // 20 + 1))
        )
        top = max(0, bottom - ink.shape[0])
        if position:
            touch = contact(canvas, ink, top)
            if layout == "separated":
                x = touch + int(rng.uniform(0.05, 0.35) * height)
            elif layout == "touching":
                x = touch - max(1, round(0.02 * height))
            else:
                x = touch - max(2, round(rng.uniform(0.08, 0.15) * height))
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


def render(digits: np.ndarray, kind: str, layout: str, seed, owners: bool = False):
    """One string of ``digits`` (28x28 each) as the encoded image a user would send; with
    ``owners``, also the digit that owns each of its pixels (-1: none)."""
    rng = np.random.default_rng(seed)
    height = int(rng.integers(40, 90)) if kind == "mnist" else int(rng.integers(70, 140))
    canvas, owner = compose(digit_inks(digits, kind, height, rng), layout, height, rng)
    if kind == "photo":
        data = photo(canvas, rng)
    elif kind == "drawing":
        style = drawings.DRAWING_STYLES[int(rng.integers(len(drawings.DRAWING_STYLES)))]
        data = encode(drawings.colour_drawing(canvas, style))
    else:
        data = encode(Image.fromarray(np.round(canvas * 255).astype(np.uint8)))
    return (data, owner) if owners else data


def number(
    images: np.ndarray, labels: np.ndarray, pool: np.ndarray, kind: str, layout: str, seed
) -> tuple[bytes, np.ndarray, str]:
    """One string of 3-8 digits drawn from ``images[pool]`` (the digit source: test digits
    here, training digits for fitting and tuning), rendered as ``render`` does: the encoded
    image, the digit owning each pixel and the true text."""
    rng = np.random.default_rng(seed)
    length = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
    picked = pool[rng.integers(0, len(pool), length)]
    data, owners = render(images[picked], kind, layout, [*seed, 1], owners=True)
    return data, owners, "".join(str(labels[i]) for i in picked)


def single(digit: np.ndarray, kind: str, seed) -> bytes:
    """One digit rendered as ``kind``, the way ``mnistlab predict`` is sent one."""
    return render(digit[None], kind, "separated", seed)


def wilson(correct: int, total: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    z, p = 1.96, correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--count", type=int, default=200, help="Strings per layout and kind.")
    parser.add_argument("--split", choices=sorted(SPLITS), default="report")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--timing", type=int, default=20, help="6-digit strings timed per kind.")
    parser.add_argument("--model", default=None, help="Run directory (default: the shipped model).")
    parser.add_argument("--show-errors", action="store_true", help="Print each misread string.")
    args = parser.parse_args()
    dataset = load_dataset("mnist", args.data_dir)
    predictor = Predictor.from_run(args.model)
    start, stop = SPLITS[args.split]
    pool = np.arange(start, stop)
    layouts = [name for name in args.layouts.split(",") if name]
    kinds = [name for name in args.kinds.split(",") if name]
    print(
        f"cpus: {os.cpu_count()}  load avg: {os.getloadavg()[0]:.2f}  split: {args.split}"
        f" (test digits {start}-{stop - 1})  strings per cell: {args.count}"
    )
    print(
        f"  {'layout':12} {'kind':8} {'string acc':>10} {'95% interval':>17}"
        f" {'digit acc':>10} {'95% interval':>17} {'rejected':>8}"
    )
    for layout_number, layout in enumerate(layouts):
        for kind_number, kind in enumerate(kinds):
            right = digits_total = digit_errors = rejected = 0
            for count in range(args.count):
                seed = [args.split == "report", layout_number, kind_number, count]
                data, _, truth = number(
                    dataset.test_images, dataset.test_labels, pool, kind, layout, seed
                )
                reading = read_number(data, predictor)
                text = reading.text or ""
                rejected += reading.text is None
                right += text == truth
                digits_total += len(truth)
                digit_errors += min(edit_distance(truth, text), len(truth))
                if args.show_errors and text != truth:
                    print(f"    {layout} {kind} #{count}: {truth} read {text or reading.rejected}")
            low, high = wilson(right, args.count)
            digit_right = digits_total - digit_errors
            dlow, dhigh = wilson(digit_right, digits_total)
            print(
                f"  {layout:12} {kind:8} {right / args.count:10.4f}   [{low:.4f}, {high:.4f}]"
                f" {digit_right / digits_total:10.4f}   [{dlow:.4f}, {dhigh:.4f}] {rejected:8d}",
                flush=True,
            )
    if args.timing:
        print(
            f"\ntime, median ms: a {TIMED_LENGTH}-digit string (read_number) against one digit"
            " (predict_bytes), same kind, interleaved, bytes in, answer out"
        )
        for kind_number, kind in enumerate(kinds):
            strings, ones = [], []
            for index in range(args.timing):
                rng = np.random.default_rng([9, kind_number, index])
                picked = rng.integers(start, stop, TIMED_LENGTH)
                layout = LAYOUTS[index % len(LAYOUTS)]
                strings.append(render(dataset.test_images[picked], kind, layout, [9, index]))
                ones.append(single(dataset.test_images[picked[0]], kind, [9, index]))
            read_times, predict_times = [], []
            for _ in range(2):  # The first pass warms caches and is not kept.
                read_times.clear()
                predict_times.clear()
                for string, one in zip(strings, ones):
                    started = time.perf_counter()
                    predict_bytes(one, predictor)
                    middle = time.perf_counter()
                    read_number(string, predictor)
                    predict_times.append(middle - started)
                    read_times.append(time.perf_counter() - middle)
            read_ms = 1000 * statistics.median(read_times)
            predict_ms = 1000 * statistics.median(predict_times)
            print(
                f"  {kind:8} read {read_ms:7.1f}  predict {predict_ms:6.1f}"
                f"  ratio {read_ms / predict_ms:4.1f}x"
            )
    print(f"load avg at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
