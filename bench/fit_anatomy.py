"""Where the seed model's fit time goes on this machine: the training step, or the loop around it.

The speed target asks `mnistlab train`'s fit for <= 2.0x the fp32 GEMM floor. This script splits
that distance. Four contenders, each in a fresh subprocess, alternating for ``--rounds`` rounds,
train the seed MLP on the same random images (54,000 uint8 28x28: 106 batches of 512), timing 10
epochs after one untimed epoch that compiles:

* floor       - bench/gemm_floor.py: only the step's eight GEMMs
* jax-step    - the whole step written in plain JAX (dense layers, dropout, softmax cross-entropy,
                Adam), one ``lax.scan`` per epoch over batches already in memory: no framework
* keras-step  - Keras's own ``train_step`` of mnistlab's compiled seed model, one ``lax.scan`` per
                epoch over the same batches: Keras's step, no Python between steps
* keras-fit   - ``train.fit``, as `mnistlab train` runs it (``model.fit`` over
                ``train.EqualBatches``, a new order each epoch), without validation

It prints the medians, each against the floor, and the split: what the step costs over the floor
(keras-step) and what the loop around it adds (keras-fit minus keras-step).

    .venv/bin/python bench/fit_anatomy.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
GEMM_FLOOR = BENCH_DIR / "gemm_floor.py"
CONTENDERS = ("floor", "jax-step", "keras-step", "keras-fit")
IMAGES, BATCH, EPOCHS = 54_000, 512, 10


def random_mnist():
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (IMAGES, 28, 28), dtype=np.uint8), rng.integers(0, 10, IMAGES)


def seed_model():
    """mnistlab's compiled seed model on JAX, its optimizer and metrics built by one epoch."""
    import keras

    from mnistlab import models
    from mnistlab.config import Config

    assert keras.backend.backend() == "jax", "Keras was imported before the backend was chosen"

    images, labels = random_mnist()
    model = models.build_model(Config())
    fit_without_validation(model, images, labels, epochs=1)  # untimed: builds and compiles
    return model, images, labels


def fit_without_validation(model, images, labels, epochs: int) -> None:
    from mnistlab import train
    from mnistlab.config import Config

    train.fit(model, images, labels, images[:0], labels[:0], Config(epochs=epochs))


def epoch_batches(images, labels):
    """The first epoch's 106 batches, stacked: (x float32, one-hot y, sample weights)."""
    import numpy as np

    from mnistlab import train

    batches = train.EqualBatches(images, labels, BATCH, seed=0)
    return [np.stack(part) for part in zip(*(batches[i] for i in range(batches.num_batches)))]


def time_scanned(step, state, batches) -> float:
    """Seconds for EPOCHS epochs of ``step``, one ``lax.scan`` per epoch, after one untimed."""
    import jax

    @jax.jit
    def epoch(state, data):
        return jax.lax.scan(lambda carry, batch: (step(carry, batch), None), state, data)[0]

    data = tuple(jax.device_put(part) for part in batches)
    state = jax.block_until_ready(epoch(state, data))
    started = time.perf_counter()
    for _ in range(EPOCHS):
        state = epoch(state, data)
    jax.block_until_ready(state)
    return time.perf_counter() - started


def jax_step_seconds() -> float:
    """The seed MLP's step by hand: the arithmetic Keras's step does, with no framework."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    params = []
    for fan_in, fan_out in ((784, 128), (128, 128), (128, 10)):
        limit = np.sqrt(6 / (fan_in + fan_out))
        params += [jnp.asarray(rng.uniform(-limit, limit, (fan_in, fan_out)), jnp.float32),
                   jnp.zeros(fan_out, jnp.float32)]

    def loss(params, x, y, weights, key):
        w1, b1, w2, b2, w3, b3 = params
        hidden = jax.nn.relu(jax.nn.relu(x @ w1 + b1) @ w2 + b2)
        kept = jax.random.bernoulli(key, 0.75, hidden.shape)
        hidden = jnp.where(kept, hidden / 0.75, 0.0)
        log_probabilities = jax.nn.log_softmax(hidden @ w3 + b3)
        return -jnp.sum(weights * jnp.sum(y * log_probabilities, axis=1)) / x.shape[0]

    def step(state, batch):
        params, first, second, count, key = state
        key, dropout_key = jax.random.split(key)
        grads = jax.grad(loss)(params, *batch, dropout_key)
        count = count + 1
        first = [0.9 * m + 0.1 * g for m, g in zip(first, grads)]
        second = [0.999 * v + 0.001 * g * g for v, g in zip(second, grads)]
        rate = 1e-3 * jnp.sqrt(1 - 0.999**count) / (1 - 0.9**count)
        params = [p - rate * m / (jnp.sqrt(v) + 1e-7) for p, m, v in zip(params, first, second)]
        return params, first, second, count, key

    zeros = [jnp.zeros_like(p) for p in params]
    state = (params, zeros, list(zeros), jnp.float32(0), jax.random.key(0))
    return time_scanned(step, state, epoch_batches(*random_mnist()))


def keras_step_seconds() -> float:
    model, images, labels = seed_model()
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    return time_scanned(lambda s, batch: model.train_step(s, batch)[1], state,
                        epoch_batches(images, labels))


def keras_fit_seconds() -> float:
    model, images, labels = seed_model()
    started = time.perf_counter()
    fit_without_validation(model, images, labels, EPOCHS)
    return time.perf_counter() - started


def child(name: str) -> None:
    from mnistlab import backend

    # Before anything imports Keras (mnistlab.train does), which reads the backend once.
    os.environ["KERAS_BACKEND"] = "jax"
    backend.choose("seed-mlp")
    seconds = {"jax-step": jax_step_seconds, "keras-step": keras_step_seconds,
               "keras-fit": keras_fit_seconds}[name]()
    print("BENCH " + json.dumps({"fit_seconds": round(seconds, 4)}), flush=True)


def run(name: str) -> float:
    command = ([sys.executable, str(GEMM_FLOOR)] if name == "floor"
               else [sys.executable, __file__, "--child", name])
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in finished.stdout.splitlines() if line.startswith("BENCH ")]
    if finished.returncode or not lines:
        sys.exit(f"error: {name} failed (exit {finished.returncode}):\n{finished.stderr[-2000:]}")
    return json.loads(lines[-1][6:])["fit_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=CONTENDERS[1:], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for round_number in range(1, args.rounds + 1):
        for name in CONTENDERS:
            times[name].append(run(name))
        print(f"round {round_number}: "
              + "  ".join(f"{name} {times[name][-1]:.2f} s" for name in CONTENDERS), flush=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\nmedians of {args.rounds} rounds, {EPOCHS} epochs of {IMAGES:,} images "
          f"(load average {os.getloadavg()[0]:.1f}):")
    for name in CONTENDERS:
        ratio = median[name] / median["floor"]
        print(f"  {name:11} {median[name]:6.2f} s  {ratio:5.2f}x the floor")
    loop = median["keras-fit"] - median["keras-step"]
    print(f"  the step over the floor (keras-step): {median['keras-step'] / median['floor']:.2f}x;"
          f" Keras's step over plain JAX's: {median['keras-step'] / median['jax-step']:.2f}x;"
          f" the loop around it (keras-fit - keras-step): {loop:+.2f} s, "
          f"{loop / median['floor']:+.2f}x the floor")


if __name__ == "__main__":
    main()
