"""A "not a digit" head for a trained model: outlier exposure on the model's own features.

A digit classifier answers one of ten digits for anything it is shown; a tap, a letter or a
scribble gets a confident digit. The head is a small network on the classifier's last hidden
features (the input of its softmax layer), trained to tell digits as people send them
(MNIST's training digits, and the same digits rendered as photos, scans, drawings, low-resolution
scans, plus typed digits) from images that hold no single digit (``nondigits.py``). The
classifier itself is not retrained, so its ten probabilities, and its accuracy, do not change.

The model with its head has one output of 11 columns: the ten digit probabilities, then the
probability that the image holds no single digit (``NOT_DIGIT_COLUMN``). ``inference`` splits
them; a model without the head (a user's own run) has ten columns and no such score.

    python -m mnistlab.notdigit RUN_DIR --data-dir DIR    # adds the head to RUN_DIR's model

The threshold is chosen on held-out images and saved in the run (``runs.NOT_DIGIT_FILE``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from mnistlab import drawings, nondigits, renderers
from mnistlab.data import NUM_CLASSES, to_model_input
from mnistlab.errors import ImageError
from mnistlab.fileio import atomic_write_bytes
from mnistlab.images import normalize_digit

NOT_DIGIT_COLUMN = NUM_CLASSES  # The head's probability follows the ten digit probabilities.
HEAD_UNITS = 256
# Half the head's input features dropped at random in each training step: without it a few
# held-out digits score like scribbles, and that tail sets the threshold. With it and
# NON_DIGITS_PER_KIND, three heads refused 94.7% of held-out non-digits, 86% with neither,
# for the same digits lost.
HEAD_DROPOUT = 0.5
# Heads trained from different seeds, their scores averaged: one head's refusals vary by several
# points from seed to seed, and the average refuses more than the best of them.
HEADS = 5
PER_KIND = 1500  # Rendered training digits of each kind.
NON_DIGITS_PER_KIND = 6000  # Rendered non-digits of each kind.
# More low-resolution digits than those of other kinds: they look least like MNIST, and the
# held-out ones scored highest set the threshold until the head saw more of them.
EXTRA_LOWRES = 4000
# The threshold is the lowest at which no kind of held-out digit, counting those the model
# reads right, is refused more often than this: 80% of what each may lose (0.1 point on
# MNIST, 0.5 on each kind of rendered digit), the rest left for the sampling error of a few
# thousand held-out digits. bench/bench_notdigit.py draws the curve on test digits.
MAX_MNIST_LOST = 0.0008
MAX_KIND_LOST = 0.004
# The head's logit is divided by this before the sigmoid: the same order of scores, but the
# confident ones stay apart in float32 instead of all reading 1.0, so a threshold can be high.
SCORE_TEMPERATURE = 10.0
CALIBRATION_COUNT = 800  # Held-out digits rendered in each kind to calibrate on.
DIGIT_KINDS = ("photo", "scan", "mouse", "lowres", "drawing", "font")


def _digit_image(task: tuple) -> np.ndarray | None:
    """One training digit rendered as ``kind`` and read back as the server reads it."""
    kind, digit, label, seed, fonts = task
    rng = np.random.default_rng(seed)
    if kind == "photo":
        image, exif = renderers.render_photo(digit, rng)
        if exif:  # Stored sideways with an orientation tag: upright, as decoding turns it.
            image = image.transpose(Image.Transpose.ROTATE_270)
    elif kind == "scan":
        image = renderers.render_scan(digit, rng)
    elif kind == "mouse":
        image = renderers.render_mouse(digit, rng)
    elif kind == "lowres":
        image = renderers.render_lowres(digit, rng)
    elif kind == "drawing":
        style = drawings.DRAWING_STYLES[int(rng.integers(len(drawings.DRAWING_STYLES)))]
        image = drawings.render_drawing(digit, style, rng)
    else:
        font = fonts[int(rng.integers(len(fonts)))] if fonts else None
        image = renderers.render_font(label, font, rng)
    try:
        return normalize_digit(image)
    except ImageError:
        return None


def _non_digit_image(task: tuple) -> np.ndarray | None:
    kind, seed, fonts, pool = task
    image = nondigits.render(kind, np.random.default_rng(seed), list(fonts), pool)
    try:
        return normalize_digit(image)
    except ImageError:  # Nothing digit-like was found: already refused, nothing to learn.
        return None


def _map(function, tasks: list, workers: int) -> list:
    if workers <= 1:
        return [function(task) for task in tasks]
    # Spawned, not forked: the parent may already run framework threads.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        return list(pool.map(function, tasks, chunksize=64))


def rendered_digits(
    images: np.ndarray,
    labels: np.ndarray,
    per_kind: int,
    seed: int,
    fonts: list[str],
    workers: int = 1,
    kinds: tuple[str, ...] = DIGIT_KINDS,
    keep_order: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``per_kind`` digits of ``images`` in each of ``kinds`` as normalize_digit reads them,
    and their labels: picked at random, or the first ``per_kind`` in order (``keep_order``).
    Images that normalize_digit refuses are left out."""
    rng = np.random.default_rng(seed)
    tasks, task_labels = [], []
    for kind in kinds:
        number = DIGIT_KINDS.index(kind)
        picked = (
            np.arange(per_kind) if keep_order else rng.choice(len(images), per_kind, replace=False)
        )
        for index in picked:
            stream = [seed, number, int(index)]
            tasks.append((kind, images[index], int(labels[index]), stream, tuple(fonts)))
            task_labels.append(int(labels[index]))
    read = _map(_digit_image, tasks, workers)
    kept = [position for position, digit in enumerate(read) if digit is not None]
    digits = np.array([read[position] for position in kept], np.uint8).reshape(-1, 28, 28)
    return digits, np.array(task_labels, np.uint8)[kept]


def rendered_non_digits(
    per_kind: int, seed: int, fonts: list[str], digit_pool: np.ndarray, workers: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``per_kind`` images of each of nondigits.KINDS as normalize_digit reads them, and the
    index of each one's kind (those refused before the model are left out)."""
    tasks = [
        (kind, [seed, number, index], tuple(fonts), digit_pool)
        for number, kind in enumerate(nondigits.KINDS)
        for index in range(per_kind)
    ]
    kinds = np.repeat(np.arange(len(nondigits.KINDS)), per_kind)
    read = _map(_non_digit_image, tasks, workers)
    kept = np.array([digit is not None for digit in read])
    digits = np.array([digit for digit in read if digit is not None], np.uint8)
    return digits.reshape(-1, 28, 28), kinds[kept]


def _feature_graph(model, inputs):
    """The model's digit probabilities and the head's features, for an input tensor.

    The features are the input of the softmax layer and, for a convolutional model, the input
    of its last convolution, flattened: the shapes of strokes, before they are mapped to
    digits, tell a letter or a scribble apart better than the last layer alone does.
    """
    from keras import layers

    convolutions = [i for i, layer in enumerate(model.layers) if isinstance(layer, layers.Conv2D)]
    tapped = convolutions[-1] if convolutions else None
    hidden, parts = inputs, []
    for index, layer in enumerate(model.layers[:-1]):
        if index == tapped:
            parts.append(layers.Flatten(name="not_digit_strokes")(hidden))
        hidden = layer(hidden)
    parts.append(hidden)
    if len(parts) == 1:
        return model.layers[-1](hidden), hidden
    features = layers.Concatenate(name="not_digit_features")(parts)
    return model.layers[-1](hidden), features


def features_model(model):
    """The classifier's inputs to the head's features (see ``_feature_graph``)."""
    import keras

    inputs = keras.Input(shape=model.inputs[0].shape[1:])
    return keras.Model(inputs, _feature_graph(model, inputs)[1])


def fit_head(
    features: np.ndarray,
    is_digit: np.ndarray,
    seed: int = 0,
    epochs: int = 20,
    name: str = "not_digit",
    dropout: float = HEAD_DROPOUT,
):
    """A small network giving the probability that the features come from no single digit.

    It trains on standardised features, ``dropout`` of them dropped at random in each step;
    the standardisation is then folded into its first layer's weights (exact), so the saved
    head is two plain Dense layers that export to ONNX, and its logit is softened by
    SCORE_TEMPERATURE.
    The two groups are weighted equally, however many of each there are.
    """
    import keras
    from keras import layers

    def build(dropout: float = 0.0) -> keras.Sequential:
        return keras.Sequential(
            [
                keras.Input(shape=(features.shape[1],)),
                *([layers.Dropout(dropout)] if dropout else []),
                layers.Dense(HEAD_UNITS, activation="relu"),
                layers.Dense(1, activation="sigmoid"),
            ],
            name=name,
        )

    keras.utils.set_random_seed(seed)
    mean = features.mean(0)
    scale = features.std(0) + 1e-3  # Features that never vary (dead units) stay finite.
    head = build(dropout)
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    target = (~is_digit).astype(np.float32)
    weights = np.where(is_digit, 0.5 / is_digit.mean(), 0.5 / (~is_digit).mean())
    head.fit(
        (features - mean) / scale,
        target,
        sample_weight=weights.astype(np.float32),
        batch_size=256,
        epochs=epochs,
        verbose=0,
        shuffle=True,
    )
    dense = [layer for layer in head.layers if isinstance(layer, layers.Dense)]
    (kernel, bias), last = dense[0].get_weights(), dense[1].get_weights()
    folded = build()
    folded.layers[0].set_weights([kernel / scale[:, None], bias - (mean / scale) @ kernel])
    folded.layers[1].set_weights([weight / SCORE_TEMPERATURE for weight in last])
    return folded


def fit_heads(
    features: np.ndarray, is_digit: np.ndarray, seed: int = 0, epochs: int = 20, count: int = HEADS
):
    """``count`` heads (``fit_head``) from seeds ``seed``, ``seed + 1``, ...: one model whose
    score is the mean of theirs."""
    import keras
    from keras import layers

    heads = [
        fit_head(features, is_digit, seed + index, epochs, name=f"not_digit_{index}")
        for index in range(count)
    ]
    if count == 1:
        return heads[0]
    inputs = keras.Input(shape=(features.shape[1],))
    return keras.Model(inputs, layers.Average()([head(inputs) for head in heads]), name="not_digit")


def with_head(model, head):
    """One model with an (N, 11) output: the ten digit probabilities, then the head's score."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=model.inputs[0].shape[1:], name="pixels")
    probabilities, features = _feature_graph(model, inputs)
    outputs = layers.Concatenate(name="digits_then_not_digit")([probabilities, head(features)])
    return keras.Model(inputs, outputs, name=f"{model.name}_with_not_digit")


def choose_threshold(digit_scores: dict[str, np.ndarray], max_lost: dict[str, float]) -> float:
    """The lowest threshold at which no kind of held-out digit loses more than its share in
    ``max_lost`` of its images (those the classifier reads right): the most non-digits
    refused for that cost."""
    # Just above each score: everything above it is refused, it and all below are kept.
    scores = np.concatenate([*digit_scores.values(), [0.0]])
    candidates = np.unique(np.nextafter(scores.astype(np.float32), np.float32(np.inf)))
    for threshold in candidates:
        if all(
            np.mean(scores >= threshold) <= max_lost[kind] for kind, scores in digit_scores.items()
        ):
            return float(threshold)
    return 1.0


def _held_out(run, data_dir: str | None):
    """The run's MNIST training part and its held-out (validation) part."""
    from mnistlab.data import load_dataset, split_validation

    config = run.read_config()
    dataset = load_dataset("mnist", data_dir)
    return split_validation(
        dataset.train_images, dataset.train_labels, config.validation_split or 0.1, config.seed
    )


def calibrate(
    run_dir: Path, data_dir: str | None, count: int = CALIBRATION_COUNT, seed: int = 0
) -> dict:
    """Choose the threshold of RUN_DIR's head on held-out images and save it (not_digit.json).

    The digits are the run's validation part of MNIST, as they are and ``count`` of them
    rendered in each kind; non-digits of another seed are scored to report the refusal rate.
    """
    from mnistlab import runs
    from mnistlab.inference import model_outputs

    run = runs.Run(run_dir)
    model = run.load_model()
    if model.outputs[0].shape[-1] != NUM_CLASSES + 1:
        raise SystemExit(f"error: {run_dir}'s model has no not-a-digit head to calibrate")
    _, _, held_images, held_labels = _held_out(run, data_dir)
    workers = min(os.cpu_count() or 1, 4)
    fonts = nondigits.split_fonts(nondigits.font_files(), "train")
    count = min(count, len(held_images))
    print(
        f"choosing the threshold on {len(held_images)} held-out digits and {count} of them"
        " rendered in each kind"
    )
    held = {"mnist": (held_images, held_labels)}
    for kind in DIGIT_KINDS:
        held[kind] = rendered_digits(
            held_images[:count],
            held_labels[:count],
            count,
            seed + 1,
            fonts,
            workers,
            kinds=(kind,),
            keep_order=True,
        )
    digit_scores = {}
    for kind, (kind_images, labels) in held.items():
        raw = model_outputs(model, kind_images)
        correct = raw[:, :NUM_CLASSES].argmax(1) == labels
        digit_scores[kind] = raw[correct, NOT_DIGIT_COLUMN]
    allowed = {kind: MAX_MNIST_LOST if kind == "mnist" else MAX_KIND_LOST for kind in held}
    threshold = choose_threshold(digit_scores, allowed)
    negatives, _ = rendered_non_digits(count // 3, seed + 1, fonts, held_images, workers)
    non_digit_scores = model_outputs(model, negatives)[:, NOT_DIGIT_COLUMN]
    settings = {
        "threshold": threshold,
        "max_held_out_lost": allowed,
        "held_out_digits_refused": {
            kind: round(float(np.mean(scores >= threshold)), 5)
            for kind, scores in digit_scores.items()
        },
        "held_out_non_digits_refused": round(float(np.mean(non_digit_scores >= threshold)), 4),
        "seed": seed,
    }
    run.write_not_digit(settings)
    print(json.dumps(settings, indent=1))
    return settings


def add_head(run_dir: Path, data_dir: str | None, per_kind: int = PER_KIND, seed: int = 0) -> dict:
    """Train the head for RUN_DIR's model on its training part of MNIST, save the model with
    it (model.keras, and model.onnx if the run has one), then ``calibrate`` its threshold."""
    from mnistlab import runs
    from mnistlab.export import export_onnx
    from mnistlab.models import without_augmentation

    run = runs.Run(run_dir)
    # Inactive augmentation layers would be traced into the export, which cannot hold them.
    model = without_augmentation(run.load_model())
    if model.outputs[0].shape[-1] != NUM_CLASSES:
        raise SystemExit(
            f"error: {run_dir}'s model has {model.outputs[0].shape[-1]} outputs,"
            f" expected {NUM_CLASSES} (it has a head already)"
        )
    train_images, train_labels, _, _ = _held_out(run, data_dir)
    workers = min(os.cpu_count() or 1, 4)
    fonts = nondigits.split_fonts(nondigits.font_files(), "train")
    print(
        f"rendering {per_kind} training digits of each kind ({per_kind + EXTRA_LOWRES}"
        f" low-resolution), {NON_DIGITS_PER_KIND} non-digits of each"
    )
    rendered, _ = rendered_digits(train_images, train_labels, per_kind, seed, fonts, workers)
    lowres, _ = rendered_digits(
        train_images, train_labels, EXTRA_LOWRES, seed + 2, fonts, workers, kinds=("lowres",)
    )
    rendered = np.concatenate([rendered, lowres])
    negatives, _ = rendered_non_digits(NON_DIGITS_PER_KIND, seed, fonts, train_images, workers)
    images = np.concatenate([train_images, rendered, negatives])
    is_digit = np.arange(len(images)) < len(train_images) + len(rendered)
    features = features_model(model).predict(to_model_input(images), batch_size=500, verbose=0)
    print(f"training the head on {is_digit.sum()} digits and {(~is_digit).sum()} non-digits")
    combined = with_head(model, fit_heads(np.asarray(features), is_digit, seed))
    original = run.model_path.read_bytes()
    run.save_model(combined)
    if run.has_onnx():
        try:
            export_onnx(run.path)
        except Exception:  # The run keeps its model as it was: no half-made run.
            atomic_write_bytes(run.model_path, original)
            raise
    settings = calibrate(run_dir, data_dir, seed=seed)
    settings["trained_on"] = {"digits": int(is_digit.sum()), "non_digits": int((~is_digit).sum())}
    run.write_not_digit(settings)
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Add a not-a-digit head to a trained run.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--per-kind", type=int, default=PER_KIND)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--calibrate-only",
        action="store_true",
        help="Only choose the threshold of the run's existing head again.",
    )
    args = parser.parse_args(argv)
    if args.calibrate_only:
        calibrate(args.run_dir, args.data_dir, seed=args.seed)
    else:
        add_head(args.run_dir, args.data_dir, args.per_kind, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
