"""Can a person read the drawings the model misreads? A blind reading of the drawings benchmark.

``sheet`` renders the split's MNIST test digits as canvas drawings (white on black, exactly as
``bench_images.py --kinds drawing`` does), finds those the model reads right from MNIST but
wrong as drawings, adds as many drawings it reads right (controls, chosen at random), shuffles
both and writes an unlabelled, numbered contact sheet plus a key. A reader who has not seen
the labels writes down one digit per tile; ``score`` says how many of each group the reader
got right. Drawings that a reader misreads as often as the model are not drawings of their
digit any more (the renderer lost a loop or an arm), which no model can be asked to read.

    .venv/bin/python bench/blind_read.py sheet --data-dir /work/shared/data --split report --out /tmp/blind
    .venv/bin/python bench/blind_read.py score /tmp/blind --reading "9 2 8 5 ..."
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench_images import SPLITS, drawing_ink, picked_digits
from mnistlab import drawings, images
from mnistlab.data import load_dataset
from mnistlab.predict import Predictor

TILE = 80  # Pixels per tile side on the sheet.
COLUMNS = 14


def drawing(digit: np.ndarray, index: int) -> Image.Image:
    """The benchmark's drawing of test digit ``index``, white on black, as bench_images draws it."""
    return drawings.colour_drawing(drawing_ink(drawings, digit, index), "white-on-black").convert("L")


def tile(image: Image.Image) -> Image.Image:
    """The drawing cropped to its ink with a margin, so every digit is shown at one size."""
    rows, columns = np.nonzero(np.asarray(image) > 30)
    half = max(np.ptp(rows), np.ptp(columns)) // 2 + 12
    centre_row, centre_column = (rows.min() + rows.max()) // 2, (columns.min() + columns.max()) // 2
    box = (centre_column - half, centre_row - half, centre_column + half, centre_row + half)
    return image.crop(box).resize((TILE - 4, TILE - 4))


def make_sheet(args: argparse.Namespace) -> int:
    dataset = load_dataset("mnist", args.data_dir)
    predictor = Predictor.from_run(args.model)
    picked = picked_digits(args.split, args.count)
    labels = dataset.test_labels[picked]
    from_mnist = predictor.probabilities(dataset.test_images[picked]).argmax(1) == labels
    seen = np.stack([
        images.normalize_digit(drawing(dataset.test_images[index], int(index))) for index in picked
    ])
    from_drawing = predictor.probabilities(seen).argmax(1) == labels
    failures = picked[from_mnist & ~from_drawing]
    rng = np.random.default_rng(args.seed)
    controls = rng.choice(picked[from_mnist & from_drawing], len(failures), replace=False)
    tiles = [(int(i), "misread by the model") for i in failures]
    tiles += [(int(i), "read by the model") for i in controls]
    tiles = [tiles[k] for k in rng.permutation(len(tiles))]

    rows = -(-len(tiles) // COLUMNS)
    sheet = Image.new("L", (COLUMNS * TILE, rows * (TILE + 14)), 90)
    pen = ImageDraw.Draw(sheet)
    for position, (index, _) in enumerate(tiles):
        x, y = (position % COLUMNS) * TILE, (position // COLUMNS) * (TILE + 14)
        sheet.paste(tile(drawing(dataset.test_images[index], index)), (x + 2, y + 2))
        pen.text((x + 3, y + TILE - 1), str(position), fill=255)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sheet.save(out / "sheet.png")
    key = {
        "split": args.split,
        "count": args.count,
        "model": args.model or "shipped",
        "mnist_accuracy": float(from_mnist.mean()),
        "drawing_accuracy": float(from_drawing.mean()),
        "misread_only_as_drawing": len(failures),
        "misread_only_from_mnist": int((~from_mnist & from_drawing).sum()),
        "tiles": [
            {"test_index": index, "label": int(dataset.test_labels[index]), "group": group}
            for index, group in tiles
        ],
    }
    (out / "key.json").write_text(json.dumps(key, indent=1) + "\n")
    print(f"{len(tiles)} tiles ({len(failures)} misread by the model, as many controls):"
          f" {out / 'sheet.png'}; the labels are in {out / 'key.json'}, not to be opened before reading")
    return 0


def score(args: argparse.Namespace) -> int:
    key = json.loads((Path(args.folder) / "key.json").read_text())
    reading = args.reading.split()
    tiles = key["tiles"]
    if len(reading) != len(tiles) or not all(value.isdigit() and len(value) == 1 for value in reading):
        raise SystemExit(f"--reading must give one digit per tile: {len(tiles)} digits, space-separated")
    for group in ("misread by the model", "read by the model"):
        positions = [k for k, entry in enumerate(tiles) if entry["group"] == group]
        right = sum(int(reading[k]) == tiles[k]["label"] for k in positions)
        print(f"{group:22} {len(positions):3d} drawings, the reader read {right} as their label"
              f" ({right / len(positions):.0%})")
    misread = [k for k, entry in enumerate(tiles)
               if entry["group"] == "misread by the model" and int(reading[k]) != entry["label"]]
    count = key["count"]
    gap = 100 * (key["misread_only_as_drawing"] - key["misread_only_from_mnist"]) / count
    kept = key["misread_only_as_drawing"] - len(misread) - key["misread_only_from_mnist"]
    print(f"gap on the {key['split']} split: {gap:.2f} points; leaving out the {len(misread)} drawings"
          f" the reader misread too: {100 * kept / (count - len(misread)):.2f} points")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sheet = commands.add_parser("sheet", help="write the unlabelled sheet and its key")
    sheet.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    sheet.add_argument("--split", choices=sorted(SPLITS), default="report")
    sheet.add_argument("--count", type=int, default=5000, help="digits of the split (default 5000)")
    sheet.add_argument("--model", default=None, help="run directory (default: the shipped model)")
    sheet.add_argument("--seed", type=int, default=777, help="choice and order of the tiles")
    sheet.add_argument("--out", required=True)
    scored = commands.add_parser("score", help="score a reading of the sheet")
    scored.add_argument("folder")
    scored.add_argument("--reading", required=True, help="one digit per tile, in tile order")
    args = parser.parse_args()
    return make_sheet(args) if args.command == "sheet" else score(args)


if __name__ == "__main__":
    raise SystemExit(main())
