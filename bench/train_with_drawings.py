"""Experiment (issue 8): does training on canvas drawings close the drawings gap?

Trains a model through mnistlab's own pipeline (`pipeline.train_run`: the same split, seed,
schedule, evaluation and run directory as `mnistlab train`) with ``--drawings`` training digits
added a second time as canvas drawings. Each is drawn by bench/make_user_digits.py (the digit's
skeleton as the pen path, a round brush 6-30 px wide, off-centre on a 280x280 canvas, white on
black) and read by `images.normalize_digit`, exactly what `mnistlab serve` does with a canvas.
The test set is untouched. Then it exports ONNX, so that `bench_images.py --model RUN` can
measure the drawings gap on test digits, which this script never renders.

    .venv/bin/python bench/train_with_drawings.py --data-dir /work/shared/data --model cnn \
        --drawings 15000 --out runs/cnn-drawings
    .venv/bin/python bench/train_with_drawings.py ... --drawings 0 --out runs/cnn-plain  # control
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def generator():
    spec = importlib.util.spec_from_file_location("make_user_digits", HERE / "make_user_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def draw_and_read(task: tuple[np.ndarray, int, int]) -> np.ndarray | None:
    """One training digit as a white-on-black canvas drawing, normalised like a served canvas."""
    from mnistlab.errors import ImageError
    from mnistlab.images import normalize_digit

    digit, seed, index = task
    make = draw_and_read.generator
    rng = np.random.default_rng([seed, index])
    canvas = make.colour_drawing(make.drawing_coverage(digit, rng), "white-on-black")
    try:
        return normalize_digit(canvas)
    except ImageError:
        return None


def _init_worker() -> None:
    draw_and_read.generator = generator()


def drawn_digits(images: np.ndarray, labels: np.ndarray, count: int, seed: int):
    """``count`` training digits picked at random (seeded), drawn and read on every core."""
    picked = np.sort(np.random.default_rng(seed).choice(len(labels), count, replace=False))
    tasks = [(images[index], seed, int(index)) for index in picked]
    with multiprocessing.get_context("spawn").Pool(os.cpu_count(), _init_worker) as pool:
        read = pool.map(draw_and_read, tasks, chunksize=64)
    kept = [position for position, digit in enumerate(read) if digit is not None]
    return np.stack([read[position] for position in kept]), labels[picked[kept]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--epochs", type=int, default=None, help="Default: the model's own.")
    parser.add_argument("--drawings", type=int, default=15_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from mnistlab import backend

    backend.choose(args.model)  # The backend `mnistlab train` would use, before Keras loads.
    import keras

    from mnistlab import pipeline
    from mnistlab.config import Config

    overrides = {"seed": args.seed} | ({"epochs": args.epochs} if args.epochs else {})
    config = Config.for_model(args.model, **overrides)
    load = pipeline.load_for_config

    def load_with_drawings(*positional, **named):
        dataset = load(*positional, **named)
        if args.drawings == 0:
            return dataset
        started = time.perf_counter()
        images, labels = drawn_digits(
            dataset.train_images, dataset.train_labels, args.drawings, args.seed
        )
        print(f"drew and read {len(labels):,} of {args.drawings:,} training digits"
              f" in {time.perf_counter() - started:.0f} s", flush=True)
        return dataclasses.replace(
            dataset,
            train_images=np.concatenate([dataset.train_images, images]),
            train_labels=np.concatenate([dataset.train_labels, labels]),
        )

    pipeline.load_for_config = load_with_drawings

    class EpochPrinter(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            print(f"epoch {epoch + 1}: val_accuracy {logs['val_accuracy']:.4f}"
                  f" ({time.perf_counter() - self.started:.0f} s)", flush=True)

    hooks = pipeline.Hooks(on_phase=lambda message: print(message, flush=True),
                           fit_callbacks=[EpochPrinter()])
    started = time.perf_counter()
    run_dir = pipeline.train_run(config, args.data_dir, args.out, hooks=hooks)
    pipeline.export_onnx(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(f"{run_dir}: {time.perf_counter() - started:.0f} s in all; test accuracy"
          f" {metrics['test']['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
