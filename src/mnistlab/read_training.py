"""Train the sequence reader: a small convolutional-recurrent network with CTC loss, on numbers
composed from MNIST's TRAINING digits (``composition.TRAINING``: all three layouts and kinds,
uneven gaps and sizes, slanted and jittered baselines, broken strokes), each prepared by
``lines`` exactly as a user's image is. Writes ``reader.onnx`` (run by ``reader`` with ONNX
Runtime) and a JSON of how it was made.

    nice -n 19 .venv/bin/python -m mnistlab.read_training --data-dir DIR \
        [--strings 100000] [--epochs 5] [--out src/mnistlab/pretrained]

Composing the strings is the slow half (drawings and photos are rendered and read back); they
are cached in ``--cache`` so training can be rerun without composing them again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mnistlab import composition, lines
from mnistlab.fileio import atomic_path

BLANK = 10  # the CTC blank is the last of the network's 11 classes
MAX_WIDTH = 192  # training line images are padded to this width (48 frames)
LENGTHS = (1, 9)
LAYOUT_SHARES = (0.4, 0.3, 0.3)  # separated, touching, overlapping
READER_FILE = "reader.onnx"
CHUNK = 500


def compose_chunk(task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line images (N, HEIGHT, MAX_WIDTH) uint8, their widths and labels (N, LENGTHS[1]) with
    -1 past each string's end, for strings ``start``..``stop`` of ``seed``."""
    images, labels, pool, start, stop, seed = task
    pixels, widths, texts = [], [], []
    for number in range(start, stop):
        rng = np.random.default_rng([seed, number])
        length = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
        kind = composition.KINDS[number % len(composition.KINDS)]
        layout = composition.LAYOUTS[int(rng.choice(3, p=LAYOUT_SHARES))]
        picked = pool[rng.integers(0, len(pool), length)]
        data = composition.render(
            images[picked], kind, layout, [seed, number, 1], vary=composition.TRAINING
        )
        try:
            line = lines.prepare(data)[1].pixels
        except lines.NoNumber:
            continue
        if line.shape[1] > MAX_WIDTH:
            continue
        row = np.zeros((lines.HEIGHT, MAX_WIDTH), np.uint8)
        row[:, : line.shape[1]] = np.round(line * 255)
        text = np.full(LENGTHS[1], -1, np.int8)
        text[:length] = labels[picked]
        pixels.append(row)
        widths.append(line.shape[1])
        texts.append(text)
    return np.stack(pixels), np.array(widths, np.int16), np.stack(texts)


def compose_lines(images, labels, count: int, seed: int, workers: int, cache: Path):
    """``count`` composed strings of the training digits, in ``workers`` processes; each chunk
    is kept in the folder ``cache`` as it is done, and not composed again."""
    cache.mkdir(parents=True, exist_ok=True)
    pool = np.arange(len(images))
    tasks = [
        (images, labels, pool, start, min(start + CHUNK, count), seed)
        for start in range(0, count, CHUNK)
        if not (cache / f"{seed}-{start}.npz").is_file()
    ]
    with ProcessPoolExecutor(workers) as executor:
        for task, part in zip(tasks, executor.map(compose_chunk, tasks)):
            np.savez(cache / f"{seed}-{task[3]}.npz", pixels=part[0], widths=part[1], texts=part[2])
            print(f"  composed strings {task[3]}-{task[4] - 1}", flush=True)
    return load_lines(cache, seed, count)


def load_lines(cache: Path, seed: int, count: int):
    """The composed chunks of ``seed`` in ``cache``, up to ``count`` strings."""
    parts = []
    for start in range(0, count, CHUNK):
        path = cache / f"{seed}-{start}.npz"
        if path.is_file():
            with np.load(path) as saved:
                parts.append((saved["pixels"], saved["widths"], saved["texts"]))
    return tuple(np.concatenate(column) for column in zip(*parts))


def build_model():
    """Conv blocks to 2 rows at a quarter of the width, two bidirectional GRUs over the
    columns, 11 classes per frame (ten digits and the CTC blank)."""
    import keras
    from keras import layers

    inputs = keras.Input((lines.HEIGHT, None, 1), name="line")
    x = inputs
    for filters, pool in ((24, (2, 2)), (48, (2, 2)), (72, (2, 1)), (96, (2, 1))):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(pool)(x)
    x = layers.Permute((2, 1, 3))(x)  # (frames, 2 rows, 96)
    x = layers.Reshape((-1, 2 * 96))(x)
    x = layers.Dense(96, activation="relu")(x)
    x = layers.Dropout(0.1)(x)
    for _ in range(2):  # the second GRU sees both neighbours' evidence: overlapping digits
        x = layers.Bidirectional(layers.GRU(96, return_sequences=True, reset_after=True))(x)
    outputs = layers.Dense(BLANK + 1, activation="softmax", name="frames")(x)
    return keras.Model(inputs, outputs)


def ctc_loss(y_true, y_pred):
    """CTC over all frames of each padded line; labels padded with -1."""
    from keras import ops

    labels = ops.cast(y_true, "int32")
    label_length = ops.sum(ops.cast(labels >= 0, "int32"), axis=1)
    frames = ops.shape(y_pred)[1]
    output_length = ops.full((ops.shape(y_pred)[0],), frames, dtype="int32")
    labels = ops.where(labels < 0, 0, labels)
    log_probs = ops.log(y_pred + 1e-7)
    return ops.ctc_loss(labels, log_probs, label_length, output_length, mask_index=BLANK)


def greedy(frames: np.ndarray) -> list[str]:
    """Best-path decoding of (N, T, 11) frame probabilities."""
    texts = []
    for best in frames.argmax(axis=-1):
        keep = best[np.r_[True, best[1:] != best[:-1]]]
        texts.append("".join(str(d) for d in keep if d != BLANK))
    return texts


def augment(lines_u8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Float32 copies of uint8 line images, each shifted a few px right (the network must not
    rely on where the ink starts), its contrast varied. Built in place: 100,000 lines are
    2.5 GB as float32."""
    out = np.zeros(lines_u8.shape, np.float32)
    for index, line in enumerate(lines_u8):
        shift = int(rng.integers(0, 9))
        out[index, :, shift:] = line[:, : MAX_WIDTH - shift]
    out *= rng.uniform(0.7 / 255, 1.0 / 255, (len(out), 1, 1)).astype(np.float32)
    return out


def train(pixels, texts, epochs, batch, seed, log, start=None, rate=3e-3) -> object:
    """Fit the reader (from ``start``, a saved Keras model, when given) for ``epochs``."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model() if start is None else keras.models.load_model(start, compile=False)
    held = len(pixels) // 50
    x_train, y_train = pixels[held:], texts[held:].astype(np.int32)  # uint8 until augmented
    x_held, y_held = pixels[:held].astype(np.float32)[..., None] / 255.0, texts[:held]
    steps = epochs * (len(x_train) // batch)
    schedule = keras.optimizers.schedules.CosineDecay(rate, steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=5.0), loss=ctc_loss)
    rng = np.random.default_rng(seed)
    truth = ["".join(str(d) for d in row if d >= 0) for row in y_held]
    for epoch in range(epochs):
        started = time.perf_counter()
        order = rng.permutation(len(x_train))
        x_epoch = augment(x_train[order], rng)[..., None]
        history = model.fit(x_epoch, y_train[order], batch_size=batch, epochs=1, verbose=0)
        del x_epoch  # before the next epoch's copy is made
        read = greedy(np.asarray(model.predict(x_held, batch_size=256, verbose=0)))
        accuracy = np.mean([a == b for a, b in zip(read, truth)])
        log(
            f"epoch {epoch + 1}/{epochs}: loss {history.history['loss'][-1]:.3f}"
            f"  held-out string accuracy {accuracy:.4f}  {time.perf_counter() - started:.0f} s"
        )
    return model


def export(model, path: Path) -> None:
    """ONNX (``reader_export``), checked against Keras on three widths before it is written."""
    import onnxruntime

    from mnistlab.reader_export import reader_graph

    graph = reader_graph(model).SerializeToString()
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    for width in (lines.MIN_WIDTH, 64, 200):
        probe = np.random.default_rng(width).random((2, lines.HEIGHT, width, 1), np.float32)
        expected = np.asarray(model(probe, training=False))
        actual = session.run(None, {"line": probe})[0]
        difference = float(np.abs(actual - expected).max())
        if difference > 1e-4:
            raise RuntimeError(f"ONNX export disagrees with Keras by {difference:.2e}")
    with atomic_path(path) as temp:
        temp.write_bytes(graph)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--strings", type=int, default=100000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "mnistlab-read-training"),
        help="Composed strings' folder.",
    )
    parser.add_argument("--compose-only", action="store_true")
    parser.add_argument("--train-only", action="store_true", help="On the chunks composed.")
    parser.add_argument("--out", default=str(Path(__file__).parent / "pretrained"))
    parser.add_argument("--start", help="Go on training this saved Keras model.")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument(
        "--export", metavar="KERAS_FILE", help="Only write this saved Keras model's ONNX to --out."
    )
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the backend it was trained on
    if args.export:
        import keras

        export(keras.models.load_model(args.export, compile=False), Path(args.out) / READER_FILE)
        print(f"wrote {Path(args.out) / READER_FILE}")
        return 0
    started = time.perf_counter()
    cache = Path(args.cache)
    if args.train_only:
        if not any(cache.glob(f"{args.seed}-*.npz")):
            raise SystemExit(f"error: no composed strings of seed {args.seed} in {cache}")
        pixels, widths, texts = load_lines(cache, args.seed, args.strings)
    else:
        from mnistlab.data import load_dataset

        dataset = load_dataset("mnist", args.data_dir)
        pixels, widths, texts = compose_lines(
            dataset.train_images,
            dataset.train_labels,
            args.strings,
            args.seed,
            args.workers,
            cache,
        )
    composed = time.perf_counter() - started
    print(f"{len(pixels)} strings composed in {composed:.0f} s", flush=True)
    if args.compose_only:
        return 0
    log_lines = []

    def log(line: str) -> None:
        print(line, flush=True)
        log_lines.append(line)

    model = train(
        pixels, texts, args.epochs, args.batch, args.seed, log, args.start, args.learning_rate
    )
    model.save(cache / "reader.keras")  # to go on training from (not shipped)
    out = Path(args.out)
    export(model, out / READER_FILE)
    about = {
        "strings": int(len(pixels)),
        "epochs": args.epochs,
        "batch": args.batch,
        "seed": args.seed,
        "learning_rate": args.learning_rate,
        "started_from": Path(args.start).name if args.start else None,
        "parameters": int(model.count_params()),
        "compose_seconds": round(composed),
        "train_seconds": round(time.perf_counter() - started - composed),
        "cpus": os.cpu_count(),
        "log": log_lines,
    }
    # A model trained on from another keeps that one's record (saved beside it).
    earlier = Path(args.start).with_name("reader.json") if args.start else None
    if earlier is not None and earlier.is_file():
        about["earlier"] = json.loads(earlier.read_text())
    text = json.dumps(about, indent=2) + "\n"
    for folder in (out, cache):
        with atomic_path(folder / "reader.json") as temp:
            temp.write_text(text)
    print(f"wrote {out / READER_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
