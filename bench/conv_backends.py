"""Training throughput of convolutional networks on TensorFlow (oneDNN) and on JAX (XLA:CPU),
in float32 and in bfloat16: the measurement behind backend.MODEL_BACKENDS for the
convolutional models and behind training them in bfloat16 only where the CPU has its
instructions (config.cpu_has_native_bfloat16).

For each backend and precision (a fresh subprocess each, since Keras picks its backend once)
and each network: compile and run 16 steps, then time one epoch over N random images (batch
128, Adam), and print images per second and the seconds an epoch of 54,000 images would take.
Networks: mnistlab's ``cnn``, ``cnn-best`` and ``cnn-fast``, and smaller designs that were
candidates for a faster recipe (``tiny``: two strided convolutions; ``small``: two 3x3 "same"
convolutions with pooling; ``bn-small``: three 3x3 convolutions with batch norm and pooling;
``bn-strided``: four 3x3 convolutions with batch norm, two strided).

    .venv/bin/python bench/conv_backends.py [--images 8192] [--networks cnn tiny small]
        [--backends tensorflow] [--precisions float32 mixed_bfloat16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

NETWORKS = ("cnn", "cnn-best", "cnn-fast", "tiny", "small", "bn-small", "bn-strided")
BACKENDS = ("tensorflow", "jax")
# Keras dtype policies: float32, or bfloat16 compute with float32 weights (what
# --mixed-precision trains in).
PRECISIONS = ("float32", "mixed_bfloat16")
EPOCH_IMAGES = 54_000


def build(name: str):
    import keras
    from keras import layers

    from mnistlab import models

    if name in models.BUILDERS:
        return models.BUILDERS[name]()

    def bn_conv(filters: int, strides: int = 1) -> list:
        return [
            layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
        ]

    inputs = [keras.Input((784,)), layers.Reshape((28, 28, 1))]
    body = {
        "tiny": [
            layers.Conv2D(16, 5, strides=2, padding="same", activation="relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            layers.Flatten(),
        ],
        "small": [
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
        ],
        "bn-small": [
            *bn_conv(32),
            layers.MaxPooling2D(),
            *bn_conv(64),
            layers.MaxPooling2D(),
            *bn_conv(128),
            layers.MaxPooling2D(),
            layers.GlobalMaxPooling2D(),
        ],
        "bn-strided": [
            *bn_conv(32, 2),
            *bn_conv(64),
            *bn_conv(64, 2),
            *bn_conv(128),
            layers.GlobalAveragePooling2D(),
        ],
    }[name]
    return keras.Sequential([*inputs, *body, layers.Dense(10, activation="softmax")])


def measure(networks: list[str], images: int, batch_size: int, precision: str) -> None:
    """In this process, on the backend KERAS_BACKEND names."""
    import keras
    import numpy as np

    # Layers built without a dtype (all but mnistlab's float32 softmax) follow this policy.
    keras.config.set_dtype_policy(precision)

    rng = np.random.default_rng(0)
    x = rng.random((images, 784), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 10, images), 10)
    backend = keras.backend.backend()
    for name in networks:
        model = build(name)
        model.compile(optimizer=keras.optimizers.Adam(0.002), loss="categorical_crossentropy")
        started = time.perf_counter()
        model.fit(x[: 16 * batch_size], y[: 16 * batch_size], batch_size=batch_size, verbose=0)
        compile_seconds = time.perf_counter() - started
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        rate = images / (time.perf_counter() - started)
        print(
            f"{backend:<11}{precision:<15}{name:<12}{model.count_params():>10,}"
            f"{compile_seconds:>10.1f}{rate:>10,.0f}{EPOCH_IMAGES / rate:>12.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--precisions", nargs="+", default=["float32"], choices=PRECISIONS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # the child's precision
    args = parser.parse_args()
    if args.child:
        measure(args.networks, args.images, args.batch_size, args.child)
        return
    print(
        f"{'backend':<11}{'precision':<15}{'network':<12}{'params':>10}{'compile s':>10}"
        f"{'img/s':>10}{'s/epoch':>12}",
        flush=True,
    )
    for backend in args.backends:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        for precision in args.precisions:
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    precision,
                    "--images",
                    str(args.images),
                    "--batch-size",
                    str(args.batch_size),
                    "--networks",
                    *args.networks,
                ],
                env=env,
                check=True,
                stderr=subprocess.DEVNULL,
            )


if __name__ == "__main__":
    main()
