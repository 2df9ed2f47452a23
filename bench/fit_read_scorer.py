"""Fit the segment scorer that ``reading.read_number`` ships with (pretrained/reading-scorer.npz).

The digit classifier answers confidently for a fragment of a digit or for two merged ones, so
the reader also asks a small network whether a candidate holds exactly one whole digit. It is
trained here on numbers composed from MNIST's TRAINING digits (``bench_read.number``'s layouts
and kinds, from half of the training digits the model held out; the benchmark composes its
numbers from the test digits): each candidate the reader
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

from mnistlab import search, segments
from mnistlab.data import load_dataset, split_validation
from mnistlab.predict import Predictor, pretrained_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_read  # noqa: E402 - the composer lives beside this script

PURITY, COVER = 0.85, 0.8


def held_out_halves(data_dir: str | None) -> tuple[tuple, tuple]:
    """The training digits the shipped model held out for validation (seed 0, 10%; it never
    trained on them, so its answers on them are as sure as on new digits), in two halves of
    (images, labels): the scorer is fitted on the first, read_errors.py's dev set uses the
    second."""
    dataset = load_dataset("mnist", data_dir)
    _, _, images, labels = split_validation(dataset.train_images, dataset.train_labels, 0.1, 0)
    return (images[0::2], labels[0::2]), (images[1::2], labels[1::2])


def dev_digits(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The dev set's digits (the second half)."""
    return held_out_halves(data_dir)[1]


def ink_owners(line, owners: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of each candidate's ink owned by each digit (candidates, digits), and of the
    whole line's ink (digits)."""
    height, width = line.strokes.shape
    rows = ((np.arange(height) + line.offset[0] + 0.5) * line.scale[1]).astype(int)
    columns = ((np.arange(width) + line.offset[1] + 0.5) * line.scale[0]).astype(int)
    owned = owners[np.minimum(rows, owners.shape[0] - 1)][
        :, np.minimum(columns, owners.shape[1] - 1)
    ]

    def count_of(mask, top, left):
        area = owned[top : top + mask.shape[0], left : left + mask.shape[1]][mask]
        return np.bincount(area + 1, minlength=count + 1)[1:]

    per_candidate = np.array([count_of(c.mask, c.top, c.left) for c in line.candidates])
    totals = sum(count_of(p.mask, p.top, p.left) for p in line.pieces)
    return per_candidate, totals


def whole(per_candidate: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """For each candidate, the digit it holds whole, else -1."""
    digit = per_candidate.argmax(axis=1)
    counts = per_candidate[np.arange(len(digit)), digit]
    ok = (counts >= PURITY * np.maximum(per_candidate.sum(axis=1), 1)) & (
        counts >= COVER * np.maximum(totals[digit], 1)
    )
    return np.where(ok, digit, -1)


def right_path(nodes: int, runs, digits: np.ndarray, length: int) -> list[int] | None:
    """Candidates from node 0 to the last that hold digits 0..length-1 whole, in order."""
    reach = {(0, 0): []}
    for stop in range(1, nodes):
        for index, (start, end) in enumerate(runs):
            if end != stop or digits[index] < 0:
                continue
            before = reach.get((start, int(digits[index])))
            if before is not None:
                reach[(stop, int(digits[index]) + 1)] = [*before, index]
    return reach.get((nodes - 1, length))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--strings", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--out", type=Path, default=pretrained_dir() / search.SCORER_FILE)
    args = parser.parse_args()
    from sklearn.neural_network import MLPClassifier

    (images, labels), _ = held_out_halves(args.data_dir)
    pool = np.arange(len(labels))
    predictor = Predictor.from_run()
    started = time.perf_counter()
    inputs, targets = [], []
    for number in range(args.strings):
        layout = bench_read.LAYOUTS[number % 3]
        kind = bench_read.KINDS[(number // 3) % 3]
        data, owners, truth = bench_read.number(images, labels, pool, kind, layout, [7, number])
        try:
            line = search.line_of(data)
        except search.NoNumber:
            continue
        # Every piece cut, along its spare seams too: the scorer sees the candidates of
        # every stage.
        search.cut(line, range(len(line.pieces)))
        for piece in line.pieces:
            segments.add_seams(piece, (piece.left, piece.right), len(piece.spare))
        search.relist(line)
        probabilities, _ = predictor.scores(line.digits)
        inputs.append(search.features(line.height, line.candidates, line.digits, probabilities))
        targets.append(whole(*ink_owners(line, owners, len(truth))) >= 0)
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
