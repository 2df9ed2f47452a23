"""Why ``reading.read_number`` misreads numbers: failure causes and confusions, on a dev set.

The dev set is composed as bench_read.py composes its strings (``bench_read.number``), from
the TUNE split of MNIST's test digits (0-4999; the sequence reader trained on all training
digits, and bench_read.py reports on digits 5000-9999). Each misread string is given one cause:

- rejected: no text (the reason's first words are shown);
- merged: fewer digits read than written (two neighbours read as one, or one dropped);
- split: more digits read than written (one digit read as two);
- wrong label: as many digits, one or more misread; the pairs (written, read) are counted.

Each digit's ink is known (who owns each pixel), so a right count is also checked for its
boxes: a box holding less than half its digit's ink is counted as ``box off``.

    .venv/bin/python bench/read_errors.py --data-dir /work/shared/data [--count 100]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from pathlib import Path

import numpy as np

from mnistlab import reading
from mnistlab.data import load_dataset
from mnistlab.predict import Predictor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_read  # noqa: E402 - the composer lives beside this script

COVER = 0.5  # A box holding less than this share of its digit's ink is off.


def cause(answer, truth: str) -> str:
    """Why the reading is wrong ("" when right)."""
    text = answer.text or ""
    if text == truth:
        return ""
    if answer.text is None:
        return "rejected: " + " ".join((answer.rejected or "").split()[:3])
    if len(text) < len(truth):
        return "merged"
    if len(text) > len(truth):
        return "split"
    return "wrong label"


def boxes_off(answer, owners: np.ndarray) -> int:
    """Digits whose box holds less than COVER of their own ink (owners are in image pixels)."""
    off = 0
    for position, digit in enumerate(answer.digits):
        x, y, w, h = digit.box
        mine = owners == position
        total = np.count_nonzero(mine)
        inside = np.count_nonzero(mine[y : y + h, x : x + w])
        off += total > 0 and inside < COVER * total
    return off


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--count", type=int, default=100, help="Strings per layout and kind.")
    parser.add_argument("--layouts", default=",".join([*bench_read.LAYOUTS, *bench_read.LEANING]))
    parser.add_argument("--kinds", default=",".join(bench_read.KINDS))
    parser.add_argument("--save", type=Path, help="Write each misread image into this folder.")
    parser.add_argument("--show", action="store_true", help="Print each misread string.")
    args = parser.parse_args()
    dataset = load_dataset("mnist", args.data_dir)
    images, labels = dataset.test_images, dataset.test_labels
    start, stop = bench_read.SPLITS["tune"]
    pool = np.arange(start, stop)
    predictor = Predictor.from_run()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    causes: dict[tuple[str, str], collections.Counter] = {}
    confusions: collections.Counter = collections.Counter()
    started = time.perf_counter()
    for layout in args.layouts.split(","):
        for kind in args.kinds.split(","):
            counter = causes.setdefault((layout, kind), collections.Counter())
            off = counted = 0
            for count in range(args.count):
                cells = [*bench_read.LAYOUTS, *bench_read.LEANING]
                seed = [3, cells.index(layout), bench_read.KINDS.index(kind), count]
                data, owners, truth = bench_read.number(images, labels, pool, kind, layout, seed)
                answer = reading.read_number(data, predictor)
                why = cause(answer, truth)
                counter[why or "right"] += 1
                text = answer.text or ""
                if why == "wrong label":
                    confusions.update((a, b) for a, b in zip(truth, text) if a != b)
                if len(text) == len(truth):
                    off += boxes_off(answer, owners)
                    counted += len(truth)
                if why and args.show:
                    print(f"    {layout} {kind} #{count}: {truth} read {text!r}: {why}")
                if why and args.save:
                    name = f"{layout}-{kind}-{count}-{truth}-{text or 'none'}"
                    suffix = ".jpg" if kind == "photo" else ".png"
                    (args.save / (name + suffix)).write_bytes(data)
            boxes = f"  boxes off {off / counted:6.1%}" if counted else ""
            print(
                f"  {layout:12} {kind:8} right {counter['right'] / args.count:6.1%}{boxes}",
                flush=True,
            )
    names = sorted({name for counter in causes.values() for name in counter} - {"right"})
    print(
        f"\nfailure causes, strings per cell: {args.count} ({time.perf_counter() - started:.0f} s)"
    )
    print(f"  {'cell':21}" + "".join(f" {name[-20:]:>20}" for name in names))
    for (layout, kind), counter in causes.items():
        print(f"  {layout + ' ' + kind:21}" + "".join(f" {counter[name]:20d}" for name in names))
    if confusions:
        pairs = ", ".join(f"{a} as {b}: {n}" for (a, b), n in confusions.most_common(10))
        print(f"\nmisread digits (written as read): {pairs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
