"""The seed MLP trained in PyTorch eager mode: a peer for bench/bench_train.py.

Same model (784-128-128-10, ReLU, dropout 0.25, softmax), Adam 0.001, batch 512, 10 epochs,
10% held out for validation (scored every epoch, as Keras does), then test accuracy. float32,
torch.nn + torch.optim.Adam, torch's default thread count, seeded. Same validation split as
bench/numpy_mlp.py. Last line: ``BENCH {json}`` with fit_seconds and test_accuracy.

--bf16 runs the forward pass and loss under torch.autocast("cpu", dtype=torch.bfloat16) (the
backward follows the dtypes autocast chose; weights and Adam stay float32). On an AVX2-only CPU
such as the 2-core AMD EPYC dev VM there are no bfloat16 instructions: oneDNN emulates bf16
there, so expect it to be slower than float32, not faster.

bench_train.py runs it with OMP_WAIT_POLICY=PASSIVE: on a machine whose cores other jobs are
using, OpenMP's default spin-waiting made every step ~30x slower. Set it too when running by hand.

Needs a venv with torch and numpy (see bench/README.md):

    OMP_WAIT_POLICY=PASSIVE /tmp/peer-torch/bin/python bench/torch_mlp.py
        --data-dir /work/shared/data [--bf16] [--epochs 10]
"""

import time

_SCRIPT_STARTED = time.perf_counter()

import argparse
import contextlib
import gzip
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn


def find_mnist_folder(data_dir: str) -> Path:
    """Accept DIR/ with the files, or DIR/mnist/ with them (mnistlab's layout)."""
    for folder in (Path(data_dir), Path(data_dir) / "mnist"):
        if (folder / "train-images-idx3-ubyte.gz").is_file():
            return folder
    raise SystemExit(f"error: no MNIST IDX .gz files in {data_dir} or {data_dir}/mnist")


def load(folder: Path, name: str, offset: int) -> np.ndarray:
    with gzip.open(folder / f"{name}.gz", "rb") as file:
        return np.frombuffer(file.read(), np.uint8, offset=offset)


def build_model() -> nn.Sequential:
    model = nn.Sequential(
        nn.Linear(784, 128),
        nn.ReLU(),
        nn.Linear(128, 128),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(128, 10),
    )
    # Keras's defaults (Glorot uniform, zero bias), not torch's: only the framework differs.
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cast) -> float:
    model.eval()
    with torch.no_grad(), cast():
        predicted = model(x).argmax(1)
    model.train()
    return (predicted == y).sum().item() / len(y)  # exact, like numpy's mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        required=True,
        help="Folder with the four MNIST IDX .gz files, or one holding mnist/.",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--bf16", action="store_true", help="Forward pass and loss under CPU autocast to bfloat16."
    )
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    folder = find_mnist_folder(args.data_dir)
    images = load(folder, "train-images-idx3-ubyte", 16).reshape(-1, 784)
    labels = load(folder, "train-labels-idx1-ubyte", 8).astype(np.int64)
    test_images = load(folder, "t10k-images-idx3-ubyte", 16).reshape(-1, 784)
    test_labels = load(folder, "t10k-labels-idx1-ubyte", 8).astype(np.int64)

    # The same held-out 6,000 as numpy_mlp.py (its first draw from default_rng(0)).
    order = np.random.default_rng(0).permutation(len(images))
    validation, train = order[:6000], order[6000:]
    x = torch.from_numpy(images[train].astype(np.float32) / 255)
    y = torch.from_numpy(labels[train])
    x_validation = torch.from_numpy(images[validation].astype(np.float32) / 255)
    y_validation = torch.from_numpy(labels[validation])
    x_test = torch.from_numpy(test_images.astype(np.float32) / 255)
    y_test = torch.from_numpy(test_labels)

    torch.manual_seed(0)  # init, dropout masks and the per-epoch shuffles
    model = build_model()
    # eps 1e-7 is Keras's Adam default (torch's is 1e-8).
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()  # softmax + mean cross-entropy on the logits, in one stable op
    if args.bf16:

        def cast():
            return torch.autocast("cpu", dtype=torch.bfloat16)
    else:
        cast = contextlib.nullcontext

    fit_started = time.perf_counter()
    for epoch in range(args.epochs):
        shuffled = torch.randperm(len(x))
        for start in range(0, len(x), 512):
            index = shuffled[start : start + 512]
            with cast():
                loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # outside autocast, as torch recommends
            optimizer.step()
        validation_accuracy = accuracy(model, x_validation, y_validation, cast)
    fit_seconds = time.perf_counter() - fit_started

    test_accuracy = accuracy(model, x_test, y_test, cast)
    print(
        "BENCH "
        + json.dumps(
            {
                "fit_seconds": round(fit_seconds, 4),
                "test_accuracy": float(test_accuracy),
                "validation_accuracy": float(validation_accuracy),
                "script_seconds": round(time.perf_counter() - _SCRIPT_STARTED, 4),
                "threads": torch.get_num_threads(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
