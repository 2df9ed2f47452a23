"""The fp32 GEMM floor of the seed model's 10 epochs, measured in XLA (JAX) on this machine.

Per training step (batch 512) the seed MLP multiplies 8 matrices: three forward
(784->128->128->10) and five backward (two weight gradients and one input gradient for the
top two layers, one weight gradient for the first). 106 steps an epoch (54,000 images), 10
epochs. Only these products run, with loop-carried weights so XLA cannot hoist them; no data
loading, activations, optimizer or validation. Last line: ``BENCH {json}`` with fit_seconds.

    python bench/gemm_floor.py
"""

import json
import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np

BATCH, STEPS_PER_EPOCH, EPOCHS = 512, 106, 10


@jax.jit
def epoch_of_gemms(x, w1, w2, w3):
    def step(_, weights):
        w1, w2, w3 = weights
        h1 = x @ w1
        h2 = h1 @ w2
        logits = h2 @ w3
        d_w3 = h2.T @ logits
        d_h2 = logits @ w3.T
        d_w2 = h1.T @ d_h2
        d_h1 = d_h2 @ w2.T
        d_w1 = x.T @ d_h1
        return w1 - 1e-9 * d_w1, w2 - 1e-9 * d_w2, w3 - 1e-9 * d_w3

    return jax.lax.fori_loop(0, STEPS_PER_EPOCH, step, (w1, w2, w3))


def main() -> None:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((BATCH, 784), dtype=np.float32))
    weights = [
        jnp.asarray(rng.standard_normal(shape, dtype=np.float32) * 0.05)
        for shape in ((784, 128), (128, 128), (128, 10))
    ]
    jax.block_until_ready(epoch_of_gemms(x, *weights))  # compile
    best = float("inf")
    for _ in range(3):  # the floor: best of three, each 10 epochs
        started = time.perf_counter()
        for _ in range(EPOCHS):
            weights = epoch_of_gemms(x, *weights)
        jax.block_until_ready(weights)
        best = min(best, time.perf_counter() - started)
    flops = EPOCHS * STEPS_PER_EPOCH * 2 * BATCH * (784 * 128 * 2 + 128 * 128 * 3 + 128 * 10 * 3)
    print(
        "BENCH "
        + json.dumps(
            {
                "fit_seconds": round(best, 4),
                "gflops": round(flops / 1e9, 2),
                "gflop_per_second": round(flops / 1e9 / best, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
