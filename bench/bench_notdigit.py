"""How often the model says "not a digit" to non-digits, against the digits it loses doing so.

Non-digits (taps, lines, letters, shapes, scribbles, strings of two or three digits) are drawn
by ``mnistlab.nondigits`` from a seed the head never trained on, letters in the fonts it never
saw (``nondigits.split_fonts(..., "bench")``) and strings from MNIST *test* digits. Digits are
MNIST test digits 5000-9999 as they are and rendered in every kind of ``bench_images.py``.
Each image goes through the whole path (decode, normalise, the model with its head).

For each threshold on the head's score it prints the share of non-digits refused (each kind,
and all) and the accuracy of each digit kind with refusals counted as wrong, against the same
accuracy with no refusal; the row of the shipped threshold is marked. Results go to
``--out`` (JSON, and a PNG of the curve).

    .venv/bin/python bench/bench_notdigit.py --data-dir /work/shared/data [--count 500]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from bench_images import KINDS as DIGIT_KINDS
from bench_images import load_module, normalise_all, picked_digits, render
from measured import where
from mnistlab import images, nondigits
from mnistlab.data import load_dataset
from mnistlab.predict import Predictor

HERE = Path(__file__).resolve().parent
BENCH_SEED = 20261207  # Not the head's training seed.
THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def non_digits(count: int, test_digits: np.ndarray) -> dict[str, list]:
    """``count`` images of each non-digit kind, as PIL images."""
    fonts = nondigits.split_fonts(nondigits.font_files(), "bench")
    return {
        kind: [
            nondigits.render(
                kind, np.random.default_rng([BENCH_SEED, number, index]), fonts, test_digits
            )
            for index in range(count)
        ]
        for number, kind in enumerate(nondigits.KINDS)
    }


def scores_of(predictor: Predictor, digits: np.ndarray, read: np.ndarray):
    """Digit probabilities and not-a-digit scores; an image refused before the model gets a
    score of 1 (it is answered "no digit" whatever the threshold)."""
    probabilities, scores = predictor.scores(digits)
    if scores is None:
        raise SystemExit("error: this model has no not-a-digit head (see mnistlab.notdigit)")
    return probabilities, np.where(read, scores, 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--count", type=int, default=500, help="Images per kind (default 500).")
    parser.add_argument("--model", default=None, help="Run directory (default: the shipped one).")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "notdigit")
    args = parser.parse_args()
    dataset = load_dataset("mnist", args.data_dir)
    generator = load_module("make_user_digits", HERE / "make_user_digits.py")
    predictor = Predictor.from_run(args.model)
    picked = picked_digits("report", args.count)
    labels = dataset.test_labels[picked]

    digit_kinds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    probabilities, scores = scores_of(
        predictor, dataset.test_images[picked], np.ones(len(picked), bool)
    )
    digit_kinds["mnist"] = (probabilities.argmax(1) == labels, scores)
    for kind in DIGIT_KINDS:
        encoded: dict[str, list[bytes]] = {}
        for index, label in zip(picked, labels):
            for style, data in render(
                generator, dataset.test_images[index], kind, int(index), int(label)
            ):
                encoded.setdefault(style, []).append(data)
        for style, datas in encoded.items():
            digits, read = normalise_all(images, datas)
            probabilities, scores = scores_of(predictor, digits, read)
            digit_kinds[style] = ((probabilities.argmax(1) == labels) & read, scores)
        print(f"  digits: {kind} done", file=sys.stderr)

    test_pool = dataset.test_images[:5000]  # Strings from test digits, never training ones.
    refused_kinds: dict[str, np.ndarray] = {}
    for kind, pictures in non_digits(args.count, test_pool).items():
        datas = []
        for picture in pictures:
            buffer = __import__("io").BytesIO()
            picture.save(buffer, "PNG")
            datas.append(buffer.getvalue())
        digits, read = normalise_all(images, datas)
        refused_kinds[kind] = scores_of(predictor, digits, read)[1]
        print(f"  non-digits: {kind} done", file=sys.stderr)

    shipped = predictor.not_digit_threshold  # The run's own, from its not_digit.json.
    rows = []
    for threshold in sorted(set(THRESHOLDS) | {shipped}):
        row = {"threshold": threshold}
        for kind, scores in refused_kinds.items():
            row[f"refused {kind}"] = float(np.mean(scores >= threshold))
        row["refused all"] = float(
            np.mean(np.concatenate(list(refused_kinds.values())) >= threshold)
        )
        for kind, (correct, scores) in digit_kinds.items():
            row[f"lost {kind}"] = float(
                100 * (correct.mean() - (correct & (scores < threshold)).mean())
            )
        rows.append(row)
    baseline = {kind: float(correct.mean()) for kind, (correct, _) in digit_kinds.items()}

    print(f"\nnot-a-digit curve: {args.count} images per kind; digit accuracy without refusal:")
    print("  " + ", ".join(f"{kind} {value:.4f}" for kind, value in baseline.items()))
    refused_names = [name for name in rows[0] if name.startswith("refused")]
    lost_names = [name for name in rows[0] if name.startswith("lost")]
    print(
        f"  {'threshold':>9} "
        + " ".join(f"{n.split()[1][:8]:>8}" for n in refused_names)
        + " | points lost: "
        + " ".join(f"{n.split()[1][:8]:>8}" for n in lost_names)
    )
    for row in rows:
        mark = "  <- shipped" if row["threshold"] == shipped else ""
        print(
            f"  {row['threshold']:9.2f} "
            + " ".join(f"{row[n]:8.3f}" for n in refused_names)
            + " |              "
            + " ".join(f"{row[n]:8.2f}" for n in lost_names)
            + mark
        )

    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        **where(),
        "count": args.count,
        "shipped_threshold": shipped,
        "accuracy": baseline,
        "curve": rows,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(rows, shipped, args.out / "curve.png")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'curve.png'}")
    return 0


def plot(rows: list[dict], shipped: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refused = [row["refused all"] for row in rows]
    lost = [max(row[name] for name in row if name.startswith("lost")) for row in rows]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(lost, refused, marker="o")
    for row, x, y in zip(rows, lost, refused):
        if row["threshold"] == shipped:
            axes.plot(
                [x],
                [y],
                marker="*",
                markersize=16,
                color="crimson",
                label=f"shipped (threshold {shipped})",
            )
    axes.set_xlabel("accuracy lost on the worst digit kind (points)")
    axes.set_ylabel("non-digits answered 'not a digit'")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
