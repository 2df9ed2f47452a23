"""Why ``reading.read_number`` misreads numbers: a confusion of failure causes, on a dev set.

The dev set is composed as bench_read.py composes its strings (``bench_read.number``), from
MNIST's TRAINING digits (never the test digits the benchmark reports on): the half of those
the shipped model held out that fit_read_scorer.py does not fit on. Each digit's ink is
known (who owns each pixel), so every misread string is given one cause:

- rejected: no text (the reason's first words are shown);
- no right cut: no path of candidates is the digits, one whole digit each (85% of its ink
  from one digit, 80% of that digit's ink); ``merged`` when some digit is in no candidate
  without much of another (a cut is missing), else ``split``;
- outscored: the right split was a path of candidates but another scored higher: it read
  fewer digits (``merged``), more (``split``) or as many, cut elsewhere (``cut``);
- wrong label: the digits were cut right, and one was misread.

Per layout and kind it also prints how often the right split was among the candidates,
the candidates per digit, and how often any piece was cut (the reader's second stage).

    .venv/bin/python bench/read_errors.py --data-dir /work/shared/data [--count 100]
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from mnistlab import reading, search
from mnistlab.predict import Predictor

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_read  # noqa: E402 - the composer lives beside this script
from fit_read_scorer import COVER, dev_digits, ink_owners, right_path, whole  # noqa: E402

SHARED = 0.2  # A piece holding this much of two digits' ink each merges them.


def cause(data: bytes, owners: np.ndarray, truth: str, predictor) -> tuple[str, str, dict]:
    """The text read, why it is wrong ("" when right), and facts about the line: whether the
    right split was among the candidates and how many candidates there were."""
    try:
        line = search.line_of(data)
    except search.NoNumber as error:
        return "", "rejected: " + " ".join(str(error).split()[:3]), {}
    path = search.search(line, predictor, None)
    answer = reading._reading(line, path, None, 0.5, predictor.not_digit_threshold, None)
    per_candidate, totals = ink_owners(line, owners, len(truth))
    digits = whole(per_candidate, totals)
    runs = [(c.start, c.stop) for c in line.candidates]
    oracle = right_path(line.nodes, runs, digits, len(truth))
    facts = {
        "oracle": oracle is not None,
        "candidates": len(line.candidates),
        "cut": any(piece.seams for piece in line.pieces),
    }
    text = answer.text or ""
    if text == truth:
        return text, "", facts
    if oracle is None:
        # Merged: no candidate holds most of some digit without much of another.
        shares = per_candidate / np.maximum(totals, 1)
        alone = shares >= COVER
        mixed = (shares >= SHARED).sum(axis=1) >= 2
        merged = any(not (alone[:, d] & ~mixed).any() for d in range(len(truth)))
        return text, "no right cut: " + ("merged" if merged else "split"), facts
    if answer.text is None:
        return text, "rejected: " + " ".join((answer.rejected or "").split()[:3]), facts
    if [d.box for d in answer.digits] == [box_of(line, line.candidates[index]) for index in oracle]:
        return text, "wrong label", facts
    if len(text) < len(truth):
        return text, "outscored: merged", facts
    if len(text) > len(truth):
        return text, "outscored: split", facts
    return text, "outscored: cut", facts


def box_of(line, run) -> list[int]:
    """A run's box in image pixels, as read_number reports it."""
    top, left, bottom, right = run.box
    top, left = top + line.offset[0], left + line.offset[1]
    bottom, right = bottom + line.offset[0], right + line.offset[1]
    scale_x, scale_y = line.scale
    return [
        math.floor(left * scale_x),
        math.floor(top * scale_y),
        math.ceil((right - left) * scale_x),
        math.ceil((bottom - top) * scale_y),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--count", type=int, default=100, help="Strings per layout and kind.")
    parser.add_argument("--layouts", default=",".join(bench_read.LAYOUTS))
    parser.add_argument("--kinds", default=",".join(bench_read.KINDS))
    parser.add_argument("--save", type=Path, help="Write each misread image into this folder.")
    parser.add_argument("--show", action="store_true", help="Print each misread string.")
    args = parser.parse_args()
    images, labels = dev_digits(args.data_dir)
    pool = np.arange(len(labels))
    predictor = Predictor.from_run()
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    causes: dict[tuple[str, str], collections.Counter] = {}
    started = time.perf_counter()
    for layout in args.layouts.split(","):
        for kind in args.kinds.split(","):
            counter = causes.setdefault((layout, kind), collections.Counter())
            oracles = candidates = digits = cuts = 0
            for count in range(args.count):
                seed = [3, bench_read.LAYOUTS.index(layout), bench_read.KINDS.index(kind), count]
                data, owners, truth = bench_read.number(images, labels, pool, kind, layout, seed)
                text, why, facts = cause(data, owners, truth, predictor)
                counter[why or "right"] += 1
                oracles += facts.get("oracle", False)
                candidates += facts.get("candidates", 0)
                cuts += facts.get("cut", False)
                digits += len(truth)
                if why and args.show:
                    print(f"    {layout} {kind} #{count}: {truth} read {text!r}: {why}")
                if why and args.save:
                    name = f"{layout}-{kind}-{count}-{truth}-{text or 'none'}"
                    suffix = ".jpg" if kind == "photo" else ".png"
                    (args.save / (name + suffix)).write_bytes(data)
            print(
                f"  {layout:12} {kind:8} right {counter['right'] / args.count:6.1%}"
                f"  right split among the candidates {oracles / args.count:6.1%}"
                f"  candidates per digit {candidates / digits:4.1f}"
                f"  cut {cuts / args.count:6.1%}",
                flush=True,
            )
    names = sorted({name for counter in causes.values() for name in counter} - {"right"})
    print(
        f"\nfailure causes, strings per cell: {args.count} ({time.perf_counter() - started:.0f} s)"
    )
    print(f"  {'cell':21}" + "".join(f" {name[-20:]:>20}" for name in names))
    for (layout, kind), counter in causes.items():
        print(f"  {layout + ' ' + kind:21}" + "".join(f" {counter[name]:20d}" for name in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
