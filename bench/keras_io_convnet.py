"""The keras.io "Simple MNIST convnet" example (examples/vision/mnist_convnet.py), as a baseline
for bench/bench_conv.py: two 3x3 convolutions with pooling, dropout 0.5, batch 128, Adam,
10% validation split, 15 epochs; data read from local IDX files instead of downloaded.
Last line: ``BENCH {json}`` with fit_seconds, epoch_seconds and test_accuracy.

    python bench/keras_io_convnet.py --data-dir /work/shared/data [--epochs 15]
"""

import time

_SCRIPT_STARTED = time.perf_counter()

import argparse
import gzip
import json
from pathlib import Path

import keras
import numpy as np
from keras import layers


def load(folder: Path, name: str, offset: int) -> np.ndarray:
    with gzip.open(folder / f"{name}.gz", "rb") as file:
        return np.frombuffer(file.read(), np.uint8, offset=offset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    folder = Path(args.data_dir) / "mnist"
    x_train = (
        load(folder, "train-images-idx3-ubyte", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
    )
    y_train = keras.utils.to_categorical(load(folder, "train-labels-idx1-ubyte", 8), 10)
    x_test = (
        load(folder, "t10k-images-idx3-ubyte", 16).reshape(-1, 28, 28, 1).astype("float32") / 255
    )
    y_test = keras.utils.to_categorical(load(folder, "t10k-labels-idx1-ubyte", 8), 10)

    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    epoch_seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(round(time.perf_counter() - self.started, 3))

    fit_started = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=128,
        epochs=args.epochs,
        validation_split=0.1,
        verbose=0,
        callbacks=[EpochTimer()],
    )
    fit_seconds = time.perf_counter() - fit_started
    _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(
        "BENCH "
        + json.dumps(
            {
                "fit_seconds": round(fit_seconds, 3),
                "epoch_seconds": epoch_seconds,
                "test_accuracy": float(test_accuracy),
                "script_seconds": round(time.perf_counter() - _SCRIPT_STARTED, 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
