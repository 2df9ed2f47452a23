"""Fit the segment scorer that ``reading.read_number`` ships with (pretrained/reading-scorer.npz).

The digit classifier answers confidently for a fragment of a digit or for two merged ones, so
the reader also asks a small network whether a candidate holds exactly one whole digit. It is
trained here on numbers composed from MNIST's TRAINING digits (bench_read.py's layouts and
kinds; the benchmark composes its numbers from the test digits): each candidate the reader
proposes is labelled by which digit owns its ink, one whole digit (85% of its ink from one
digit, 80% of that digit's ink) or not.

    .venv/bin/python bench/fit_read_scorer.py --data-dir /work/shared/data [--strings 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from mnistlab import reading
from mnistlab.data import load_dataset
from mnistlab.predict import Predictor, pretrained_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_read  # noqa: E402 - the composer lives beside this script

PURITY, COVER = 0.85, 0.8


def whole_digits(line, owners: np.ndarray, count: int) -> np.ndarray:
    """For each candidate: does it hold one whole digit? ``owners`` maps image pixels to digits."""
    height, width = line.strokes.shape
    rows = ((np.arange(height) + line.offset[0] + 0.5) * line.scale[1]).astype(int)
    columns = ((np.arange(width) + line.offset[1] + 0.5) * line.scale[0]).astype(int)
    owned = owners[np.minimum(rows, owners.shape[0] - 1)][
        :, np.minimum(columns, owners.shape[1] - 1)
    ]
    per_piece = np.array(
        [
            np.bincount(owned[p.top : p.bottom, p.left : p.right][p.mask] + 1, minlength=count + 1)[
                1:
            ]
            for p in line.pieces
        ]
    )
    totals = per_piece.sum(axis=0)
    answers = []
    for start, stop in line.candidates:
        counts = per_piece[start:stop].sum(axis=0)
        digit = int(counts.argmax())
        answers.append(
            counts[digit] >= PURITY * max(counts.sum(), 1)
            and counts[digit] >= COVER * max(totals[digit], 1)
        )
    return np.array(answers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--strings", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--out", type=Path, default=pretrained_dir() / reading.SCORER_FILE)
    args = parser.parse_args()
    from sklearn.neural_network import MLPClassifier

    dataset = load_dataset("mnist", args.data_dir)
    predictor = Predictor.from_run()
    started = time.perf_counter()
    inputs, targets = [], []
    for number in range(args.strings):
        rng = np.random.default_rng([7, number])
        layout = bench_read.LAYOUTS[number % 3]
        kind = bench_read.KINDS[(number // 3) % 3]
        length = int(rng.integers(bench_read.LENGTHS[0], bench_read.LENGTHS[1] + 1))
        picked = rng.integers(0, len(dataset.train_labels), length)
        data, owners = bench_read.render(
            dataset.train_images[picked], kind, layout, [7, number, 1], owners=True
        )
        try:
            line = reading._line(data, False)
        except reading._NoNumber:
            continue
        probabilities, _ = predictor.scores(line.digits)
        inputs.append(reading.features(line, probabilities))
        targets.append(whole_digits(line, owners, length))
    x, y = np.concatenate(inputs), np.concatenate(targets)
    print(
        f"{len(y)} candidates, {y.mean():.1%} whole digits,"
        f" composed in {time.perf_counter() - started:.0f} s"
    )
    order = np.random.default_rng(0).permutation(len(y))
    train, held = order[: int(0.9 * len(y))], order[int(0.9 * len(y)) :]
    network = MLPClassifier(
        hidden_layer_sizes=(args.hidden,),
        alpha=1e-3,
        max_iter=80,
        early_stopping=True,
        random_state=0,
    )
    network.fit(x[train], y[train])
    print(
        f"held-out accuracy {network.score(x[held], y[held]):.4f}"
        f" (always 'not whole': {1 - y[held].mean():.4f})"
    )
    np.savez(
        args.out,
        w1=network.coefs_[0].astype(np.float32),
        b1=network.intercepts_[0].astype(np.float32),
        w2=network.coefs_[1].astype(np.float32),
        b2=network.intercepts_[1].astype(np.float32),
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
