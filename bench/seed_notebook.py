"""The seed notebook (MNIST-Digit-Classification), re-created cell by cell as one script.

Baseline for bench/bench_train.py. It follows the notebook's own code path (Keras 3 on the
TensorFlow backend, Sequential MLP, model.fit with validation_split and the default verbose,
evaluate, predict + argmax, confusion matrix, most confident errors). Only two things differ,
both forced by running headless and offline:

* keras.datasets.mnist.load_data() would download; the same four IDX .gz files are read from
  --data-dir with gzip + numpy instead, giving the same uint8 arrays load_data() returns.
* A notebook shows each figure inline; here each one is saved as a PNG under --out
  (matplotlib's Agg backend) and closed, which is what inline display amounts to.

The last line printed is ``BENCH {json}`` with fit_seconds (time around model.fit only) and
test_accuracy, read by the bench driver.

    python bench/seed_notebook.py --data-dir /work/shared/data --out /tmp/seed-figures
"""

import time

_SCRIPT_STARTED = time.perf_counter()  # before the heavy imports, like a fresh kernel

import argparse
import gzip
import json
import os
import tempfile
from pathlib import Path

# --- Cell: imports -------------------------------------------------------------------------
import matplotlib

matplotlib.use("Agg")  # headless stand-in for %matplotlib inline

import keras
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from keras.layers import Dense, Dropout
from keras.models import Sequential
from sklearn.metrics import confusion_matrix

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("MNISTLAB_DATA_DIR"),
        help="Folder with the four MNIST IDX .gz files, or a folder holding mnist/ with them "
        "(the layout `mnistlab --data-dir` takes). Default: $MNISTLAB_DATA_DIR.",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="Folder for the figures (PNG). Default: a new temporary folder.",
    )
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("--data-dir is required (or set MNISTLAB_DATA_DIR)")
    return args


def find_mnist_folder(data_dir):
    """Accept DIR/ with the files, or DIR/mnist/ with them (mnistlab's layout)."""
    for folder in (Path(data_dir), Path(data_dir) / "mnist"):
        if all((folder / name).is_file() for name in MNIST_FILES):
            return folder
    raise SystemExit(f"error: no MNIST IDX .gz files in {data_dir} or {data_dir}/mnist")


def load_mnist(folder):
    """What keras.datasets.mnist.load_data() returns, read from local IDX .gz files."""

    def images(name):
        with gzip.open(folder / name, "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)

    def labels(name):
        with gzip.open(folder / name, "rb") as f:
            return np.frombuffer(f.read(), np.uint8, offset=8)

    return (
        (images(MNIST_FILES[0]), labels(MNIST_FILES[1])),
        (images(MNIST_FILES[2]), labels(MNIST_FILES[3])),
    )


def show(out_dir, name):
    """plt.show() in the notebook: here, save the current figure and close it."""
    plt.savefig(out_dir / f"{name}.png")
    plt.close("all")


def main():
    args = parse_args()
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="seed-notebook-"))
    out_dir.mkdir(parents=True, exist_ok=True)

    # --- Cell: reproducibility ---------------------------------------------------------------
    keras.utils.set_random_seed(0)  # seeds Python's random, NumPy and the backend

    # --- Cell: data loading ------------------------------------------------------------------
    (x_train, y_train), (x_test, y_test) = load_mnist(find_mnist_folder(args.data_dir))
    print(x_train.shape, y_train.shape)
    print(x_test.shape, y_test.shape)

    # --- Cell: one sample per digit ----------------------------------------------------------
    num_classes = 10
    f, ax = plt.subplots(1, num_classes, figsize=(20, 20))
    for i in range(0, num_classes):
        sample = x_train[y_train == i][0]
        ax[i].imshow(sample, cmap="gray")
        ax[i].set_title("Label: {}".format(i), fontsize=16)
    show(out_dir, "samples")

    for i in range(10):
        print(y_train[i])

    # --- Cell: one-hot labels ----------------------------------------------------------------
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)

    for i in range(10):
        print(y_train[i])

    # --- Cell: prepare data ------------------------------------------------------------------
    x_train = x_train / 255.0
    x_test = x_test / 255.0

    x_train = x_train.reshape(x_train.shape[0], -1)
    x_test = x_test.reshape(x_test.shape[0], -1)
    print(x_train.shape)

    # --- Cell: model -------------------------------------------------------------------------
    model = Sequential()
    model.add(Dense(units=128, input_shape=(784,), activation="relu"))
    model.add(Dense(units=128, activation="relu"))
    model.add(Dropout(0.25))
    model.add(Dense(units=10, activation="softmax"))

    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.summary()

    # --- Cell: train -------------------------------------------------------------------------
    batch_size = 512
    epochs = 10
    fit_started = time.perf_counter()
    model.fit(x=x_train, y=y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)
    fit_seconds = time.perf_counter() - fit_started

    # --- Cell: evaluate ----------------------------------------------------------------------
    test_loss, test_acc = model.evaluate(x_test, y_test)
    print("Test Loss: {}, Test Accuracy: {}".format(test_loss, test_acc))

    # --- Cell: predict -----------------------------------------------------------------------
    y_pred = model.predict(x_test)
    y_pred_classes = np.argmax(y_pred, axis=1)
    print(y_pred)
    print(y_pred_classes)

    # --- Cell: single example ----------------------------------------------------------------
    random_idx = np.random.choice(len(x_test))
    x_sample = x_test[random_idx]
    y_true = np.argmax(y_test, axis=1)
    y_sample_true = y_true[random_idx]
    y_sample_pred_class = y_pred_classes[random_idx]

    plt.title("Predicted: {}, True: {}".format(y_sample_pred_class, y_sample_true), fontsize=16)
    plt.imshow(x_sample.reshape(28, 28), cmap="gray")
    show(out_dir, "prediction")

    # --- Cell: confusion matrix --------------------------------------------------------------
    confusion_mtx = confusion_matrix(y_true, y_pred_classes)

    fig, ax = plt.subplots(figsize=(15, 10))
    ax = sns.heatmap(confusion_mtx, annot=True, fmt="d", ax=ax, cmap="Blues")
    ax.set_xlabel("Predicted Label")
    ax.set_ylabel("True Label")
    ax.set_title("Confusion Matrix")
    show(out_dir, "confusion_matrix")

    # --- Cell: investigate errors ------------------------------------------------------------
    errors = y_pred_classes - y_true != 0
    y_pred_classes_errors = y_pred_classes[errors]
    y_pred_errors = y_pred[errors]
    y_true_errors = y_true[errors]
    x_test_errors = x_test[errors]

    y_pred_errors_probability = np.max(y_pred_errors, axis=1)
    true_probability_errors = np.diagonal(np.take(y_pred_errors, y_true_errors, axis=1))
    diff_errors_pred_true = y_pred_errors_probability - true_probability_errors

    # Sorted from the smallest to the largest gap: the last ten are the most confident errors.
    sorted_idx_diff_errors = np.argsort(diff_errors_pred_true)
    top_idx_diff_errors = sorted_idx_diff_errors[-10:]

    # --- Cell: show top errors ---------------------------------------------------------------
    num = len(top_idx_diff_errors)
    f, ax = plt.subplots(1, num, figsize=(30, 30))
    for i in range(0, num):
        idx = top_idx_diff_errors[i]
        sample = x_test_errors[idx].reshape(28, 28)
        y_t = y_true_errors[idx]
        y_p = y_pred_classes_errors[idx]
        ax[i].imshow(sample, cmap="gray")
        ax[i].set_title("Predicted label :{}\nTrue label: {}".format(y_p, y_t), fontsize=22)
    show(out_dir, "top_errors")

    print(
        "BENCH "
        + json.dumps(
            {
                "fit_seconds": round(fit_seconds, 4),
                "test_accuracy": float(test_acc),
                "test_loss": float(test_loss),
                "script_seconds": round(time.perf_counter() - _SCRIPT_STARTED, 4),
                "figures": str(out_dir),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
