"""How well and how fast ``reading.read_number`` reads handwritten numbers.

Strings of 3-8 digits are composed from MNIST's TEST digits (never training ones) by
``composition`` (``BENCH``): separated, touching and overlapping, each as MNIST ink, canvas
strokes and a phone photo; and separated and touching lines of italic writing (``LEANING``:
each line leaning 19-31 degrees, more than MNIST's digits do).

Prints string accuracy (the whole number right) and digit accuracy (1 - edit distance / digits)
per layout and kind, with 95% Wilson intervals; how many misread strings came flagged (rejected,
or ``uncertain`` at the default --min-confidence) and how many right ones did; and the median time to read a 6-digit string
against ``predict_bytes`` of one digit of the same kind, in the same run. ``--split tune``
uses test digits 0-4999 (to choose settings on), ``report`` (default) digits 5000-9999.

    .venv/bin/python bench/bench_read.py --data-dir /work/shared/data [--count 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from mnistlab import composition, reading
from mnistlab.data import load_dataset
from mnistlab.fileio import write_json
from mnistlab.predict import Predictor, predict_bytes
from measured import where

SPLITS = {"tune": (0, 5000), "report": (5000, 10000)}
LAYOUTS = composition.LAYOUTS
# Leaning lines: (their name, the layout they are composed in).
LEANING = {"separated-leaning": "separated", "touching-leaning": "touching"}
KINDS = composition.KINDS
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "read.json"
LENGTHS = (3, 8)
TIMED_LENGTH = 6


render = composition.render


def number(
    images: np.ndarray, labels: np.ndarray, pool: np.ndarray, kind: str, layout: str, seed
) -> tuple[bytes, np.ndarray, str]:
    """One string of 3-8 digits drawn from ``images[pool]`` (the digit source: test digits
    here, training digits for fitting and tuning), rendered as ``render`` does: the encoded
    image, the digit owning each pixel and the true text. ``layout`` is one of LAYOUTS or
    of LEANING."""
    rng = np.random.default_rng(seed)
    length = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
    picked = pool[rng.integers(0, len(pool), length)]
    vary = composition.LEANING if layout in LEANING else composition.BENCH
    data, owners = render(
        images[picked], kind, LEANING.get(layout, layout), [*seed, 1], owners=True, vary=vary
    )
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
    parser.add_argument(
        "--count",
        type=int,
        default=200,
        help="Strings per layout and kind; 0 times only (--save keeps the saved accuracy).",
    )
    parser.add_argument("--split", choices=sorted(SPLITS), default="report")
    parser.add_argument("--layouts", default=",".join([*LAYOUTS, *LEANING]))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--timing", type=int, default=20, help="6-digit strings timed per kind.")
    parser.add_argument("--model", default=None, help="Run directory (default: the shipped model).")
    parser.add_argument("--show-errors", action="store_true", help="Print each misread string.")
    parser.add_argument(
        "--save", action="store_true", help=f"Write the results to {RESULTS.relative_to(ROOT)}."
    )
    args = parser.parse_args()
    read = reading.read_number
    dataset = load_dataset("mnist", args.data_dir)
    predictor = Predictor.from_run(args.model)
    start, stop = SPLITS[args.split]
    pool = np.arange(start, stop)
    layouts = [name for name in args.layouts.split(",") if name]
    kinds = [name for name in args.kinds.split(",") if name]
    cells = [*LAYOUTS, *LEANING]
    unknown = sorted(set(layouts) - set(cells)) + sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown layout or kind: {', '.join(unknown)}")
    load_before = os.getloadavg()[0]
    print(
        f"cpus: {os.cpu_count()}  load avg: {load_before:.2f}  split: {args.split}"
        f" (test digits {start}-{stop - 1})  strings per cell: {args.count}"
    )
    print(
        f"  {'layout':17} {'kind':8} {'string acc':>10} {'95% interval':>17}"
        f" {'digit acc':>10} {'95% interval':>17} {'rejected':>8} {'misreads flagged':>16}"
        f" {'right, flagged':>14}"
    )
    accuracy = []
    for layout in layouts if args.count else []:
        for kind in kinds:
            right = digits_total = digit_errors = rejected = misread_flagged = right_flagged = 0
            for count in range(args.count):
                # Seeded by the cell's place in LAYOUTS and KINDS: a cell run alone composes
                # the same strings as in a full run.
                seed = [args.split == "report", cells.index(layout), KINDS.index(kind), count]
                data, _, truth = number(
                    dataset.test_images, dataset.test_labels, pool, kind, layout, seed
                )
                answer = read(data, predictor)
                text = answer.text or ""
                rejected += answer.text is None
                right += text == truth
                # Honest answers: a misread should come flagged (uncertain, or rejected).
                flagged = answer.text is None or answer.uncertain
                misread_flagged += flagged and text != truth
                right_flagged += flagged and text == truth
                digits_total += len(truth)
                digit_errors += min(edit_distance(truth, text), len(truth))
                if args.show_errors and text != truth:
                    print(f"    {layout} {kind} #{count}: {truth} read {text or answer.rejected}")
            low, high = wilson(right, args.count)
            digit_right = digits_total - digit_errors
            dlow, dhigh = wilson(digit_right, digits_total)
            accuracy.append(
                {
                    "layout": layout,
                    "kind": kind,
                    "strings": args.count,
                    "string_accuracy": right / args.count,
                    "string_interval": [low, high],
                    "digit_accuracy": digit_right / digits_total,
                    "digit_interval": [dlow, dhigh],
                    "rejected": rejected,
                    "misreads": args.count - right,
                    "misreads_flagged": misread_flagged,
                    "right_flagged": right_flagged,
                }
            )
            print(
                f"  {layout:17} {kind:8} {right / args.count:10.4f}   [{low:.4f}, {high:.4f}]"
                f" {digit_right / digits_total:10.4f}   [{dlow:.4f}, {dhigh:.4f}] {rejected:8d}"
                f" {f'{misread_flagged} of {args.count - right}':>16} {right_flagged:14d}",
                flush=True,
            )
    timing = []
    if args.timing:
        print(
            f"\ntime, median ms: a {TIMED_LENGTH}-digit string (read) against one digit"
            " (predict_bytes), same kind, interleaved, bytes in, answer out"
        )
        for kind in kinds:
            strings, ones = [], []
            for index in range(args.timing):
                rng = np.random.default_rng([9, KINDS.index(kind), index])
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
                    read(string, predictor)
                    predict_times.append(middle - started)
                    read_times.append(time.perf_counter() - middle)
            read_ms = 1000 * statistics.median(read_times)
            predict_ms = 1000 * statistics.median(predict_times)
            timing.append({"kind": kind, "read_ms": read_ms, "predict_ms": predict_ms})
            print(
                f"  {kind:8} read {read_ms:7.1f}  predict {predict_ms:6.1f}"
                f"  ratio {read_ms / predict_ms:4.1f}x"
            )
    load_after = os.getloadavg()[0]
    print(f"load avg at the end: {load_after:.2f}")
    if args.save:
        command = "python bench/bench_read.py " + " ".join(sys.argv[1:])
        accuracy_command = command
        if not args.count:  # timed only: the accuracy measured before stays
            saved = json.loads(RESULTS.read_text())
            accuracy, accuracy_command = saved["accuracy"], saved["accuracy_command"]
        write_json(
            RESULTS,
            {
                **where(),
                "split": args.split,
                "accuracy_command": accuracy_command,
                "timing_command": command,
                "load": [load_before, load_after],
                "accuracy": accuracy,
                "timing": timing,
            },
        )
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
