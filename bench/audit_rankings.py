"""How the audit's choices rank known label errors: 5-fold out-of-sample probabilities on MNIST
(train and test pooled, as `mnistlab audit` does) with 600 training labels flipped at random,
plain and with test-time shifts, scored by three of cleanlab's label-quality rankings.

Per ranking it prints the published test errors in the test top 100 and the planted flips
among the 600 (and 1,200) lowest-quality training images, and saves them in
bench/results/audit.json (in place of the rows of the same model, epochs and ranking;
`--no-save` only prints) for bench/tables.py. The probabilities are saved, so rescoring needs no
training (`--saved FILE`; the file names its model and epochs):

    .venv/bin/python bench/audit_rankings.py --model cnn-fast --epochs 4 [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from audit_results import save_rows
from measured import where

FLIPS = 600
SHIFTS = 1
METHODS = ("normalized_margin", "self_confidence", "confidence_weighted_entropy")


def probabilities(args) -> dict[str, np.ndarray]:
    from mnistlab import backend

    backend.choose(args.model)
    import keras

    from mnistlab import audit
    from mnistlab.config import Config
    from mnistlab.data import load_dataset
    from mnistlab.inference import predict_probabilities
    from mnistlab.models import build_model, steps_per_epoch
    from mnistlab.train import fit, set_seed

    dataset = load_dataset("mnist", args.data_dir)
    images = np.concatenate([dataset.train_images, dataset.test_images])
    true = np.concatenate([dataset.train_labels, dataset.test_labels]).astype(np.int64)
    rng = np.random.default_rng(123)
    flipped = rng.choice(len(dataset.train_labels), FLIPS, replace=False)
    labels = true.copy()
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, FLIPS)) % 10
    config = Config.for_audit(args.model, epochs=args.epochs)
    assignment = audit.fold_of_each_image(labels, config.folds, config.seed)
    plain = np.zeros((len(labels), 10), np.float32)
    shifted = plain.copy()
    for fold in range(config.folds):
        held_out, training = assignment == fold, assignment != fold
        keras.backend.clear_session()
        set_seed(config.seed + fold)
        model = build_model(config, steps_per_epoch(int(training.sum()), config.batch_size))
        started = time.perf_counter()
        fit(model, images[training], labels[training], images[:0], labels[:0], config)
        views = [images[held_out], *audit.shifted_copies(images[held_out], SHIFTS)]
        outputs = [predict_probabilities(model, view) for view in views]
        plain[held_out], shifted[held_out] = outputs[0], np.mean(outputs, axis=0)
        print(f"fold {fold + 1}: {time.perf_counter() - started:.1f} s", flush=True)
    return {"plain": plain, "shifted": shifted, "labels": labels, "flipped": flipped, "true": true}


def score(saved: dict[str, np.ndarray], num_train: int = 60_000) -> list[dict]:
    """Print each ranking's scores; return them as rows of audit.json's "rankings"."""
    from cleanlab.rank import get_label_quality_scores

    from mnistlab.audit import MNIST_TEST_LABEL_ERRORS

    labels, flipped = saved["labels"], set(saved["flipped"].tolist())
    rows = {
        method: {
            "model": str(saved["model"]), "epochs": int(saved["epochs"]), "method": method,
            "published": len(MNIST_TEST_LABEL_ERRORS), "published_in_test_top_100": {},
            "flips_in_train_top_600": {}, "flips_in_train_top_1200": {},
        }
        for method in METHODS
    }  # fmt: skip
    for kind, name in (("plain", "plain"), ("shifted", "shifts")):
        probabilities = saved[kind].astype(np.float64)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        accuracy = (probabilities.argmax(axis=1) == saved["true"]).mean()
        for method in METHODS:
            quality = get_label_quality_scores(labels, probabilities, method=method)
            test = set(np.argsort(quality[num_train:], kind="stable")[:100].tolist())
            train = np.argsort(quality[:num_train], kind="stable")
            at = [len(flipped & set(train[:n].tolist())) / FLIPS for n in (FLIPS, 2 * FLIPS)]
            published = len(set(MNIST_TEST_LABEL_ERRORS) & test)
            rows[method]["published_in_test_top_100"][name] = published
            rows[method][f"flips_in_train_top_{FLIPS}"][name] = round(at[0], 3)
            rows[method][f"flips_in_train_top_{2 * FLIPS}"][name] = round(at[1], 3)
            print(
                f"{kind:8} {method:28} accuracy {accuracy:.4f}"
                f"  published in test top 100: {published:2d}"
                f"  flips in train top {FLIPS}, {2 * FLIPS}: {at[0]:.3f}, {at[1]:.3f}"
            )
    return list(rows.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNISTLAB_DATA_DIR"))
    parser.add_argument("--model", default="cnn-fast")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--saved", type=Path, default=None, help="rescore saved probabilities")
    parser.add_argument("--no-save", action="store_true", help="print only; leave audit.json")
    args = parser.parse_args()
    from mnistlab.config import Config

    # The epochs each fold trained: the audit's default for the model when not given.
    epochs = Config.for_audit(args.model, epochs=args.epochs).epochs
    named = {"model": np.array(args.model), "epochs": np.array(epochs)}
    if args.saved:
        saved = {**named, **np.load(args.saved)}  # files saved before they named them: the flags
    else:
        saved = {**probabilities(args), **named}
        np.savez(f"audit-rankings-{args.model}-{epochs}.npz", **saved)
    rows = score(saved)
    if not args.no_save:
        save_rows(
            "rankings", [{**row, **where()} for row in rows], key=("model", "epochs", "method")
        )


if __name__ == "__main__":
    main()
