"""The seed MLP trained by hand in NumPy: a peer for bench/bench_train.py.

Same model (784-128-128-10, ReLU, dropout 0.25, softmax), Adam 0.001, batch 512, 10 epochs,
10% held out for validation (scored every epoch, as Keras does), then test accuracy. float32
throughout. Last line: ``BENCH {json}`` with fit_seconds and test_accuracy.

    python bench/numpy_mlp.py --data-dir /work/shared/data
"""

import time

_SCRIPT_STARTED = time.perf_counter()

import argparse
import gzip
import json
from pathlib import Path

import numpy as np


def load(folder: Path, name: str, offset: int) -> np.ndarray:
    with gzip.open(folder / f"{name}.gz", "rb") as file:
        return np.frombuffer(file.read(), np.uint8, offset=offset)


def forward(params, x, rng=None):
    """Activations of every layer; dropout (inverted, rate 0.25) only when rng is given."""
    w1, b1, w2, b2, w3, b3 = params
    h1 = np.maximum(x @ w1 + b1, 0)
    h2 = np.maximum(h1 @ w2 + b2, 0)
    mask = None
    if rng is not None:
        mask = (rng.random(h2.shape, dtype=np.float32) >= 0.25).astype(np.float32) / 0.75
        h2 = h2 * mask
    logits = h2 @ w3 + b3
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return h1, h2, mask, probabilities


def glorot(rng, fan_in, fan_out):
    limit = np.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    folder = Path(args.data_dir) / "mnist"
    images = load(folder, "train-images-idx3-ubyte", 16).reshape(-1, 784)
    labels = load(folder, "train-labels-idx1-ubyte", 8).astype(np.int64)
    test_images = load(folder, "t10k-images-idx3-ubyte", 16).reshape(-1, 784)
    test_labels = load(folder, "t10k-labels-idx1-ubyte", 8).astype(np.int64)

    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    validation, train = order[:6000], order[6000:]
    x = images[train].astype(np.float32) / 255
    y = labels[train]
    x_validation = images[validation].astype(np.float32) / 255
    y_validation = labels[validation]

    params = [
        glorot(rng, 784, 128),
        np.zeros(128, np.float32),
        glorot(rng, 128, 128),
        np.zeros(128, np.float32),
        glorot(rng, 128, 10),
        np.zeros(10, np.float32),
    ]
    moments = [np.zeros_like(p) for p in params]
    velocities = [np.zeros_like(p) for p in params]
    learning_rate, beta1, beta2, epsilon = 1e-3, 0.9, 0.999, 1e-7
    step = 0

    fit_started = time.perf_counter()
    for epoch in range(10):
        shuffled = rng.permutation(len(x))
        for start in range(0, len(x), 512):
            index = shuffled[start : start + 512]
            xb, yb = x[index], y[index]
            h1, h2, mask, probabilities = forward(params, xb, rng)
            # Backward pass of mean categorical cross-entropy.
            d_logits = probabilities
            d_logits[np.arange(len(yb)), yb] -= 1
            d_logits /= len(yb)
            w1, b1, w2, b2, w3, b3 = params
            d_h2 = (d_logits @ w3.T) * mask * (h2 > 0)
            d_h1 = (d_h2 @ w2.T) * (h1 > 0)
            gradients = [
                xb.T @ d_h1,
                d_h1.sum(0),
                h1.T @ d_h2,
                d_h2.sum(0),
                h2.T @ d_logits,
                d_logits.sum(0),
            ]
            step += 1
            correction = np.sqrt(1 - beta2**step) / (1 - beta1**step)
            for p, g, m, v in zip(params, gradients, moments, velocities):
                m += (1 - beta1) * (g - m)
                v += (1 - beta2) * (g * g - v)
                p -= learning_rate * correction * m / (np.sqrt(v) + epsilon)
        validation_accuracy = (forward(params, x_validation)[3].argmax(1) == y_validation).mean()
    fit_seconds = time.perf_counter() - fit_started

    test_accuracy = (
        forward(params, test_images.astype(np.float32) / 255)[3].argmax(1) == test_labels
    ).mean()
    print(
        "BENCH "
        + json.dumps(
            {
                "fit_seconds": round(fit_seconds, 4),
                "test_accuracy": float(test_accuracy),
                "validation_accuracy": float(validation_accuracy),
                "script_seconds": round(time.perf_counter() - _SCRIPT_STARTED, 4),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
