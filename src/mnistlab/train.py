"""Seeding and fitting. Writes nothing and prints nothing: progress goes to the callbacks."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from mnistlab.backend import tensorflow_left_alone
from mnistlab.config import Config
from mnistlab.data import NUM_CLASSES, to_model_input


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend, so the same config gives the same weights.

    TensorFlow is seeded only if it is already loaded: a JAX run never imports it.
    """
    with tensorflow_left_alone():
        keras.utils.set_random_seed(seed)


def fit(
    model: keras.Model,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    validation_images: np.ndarray,
    validation_labels: np.ndarray,
    config: Config,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, list[float]]:
    """Train ``model`` with ``model.fit`` and return its per-epoch history.

    Images are uint8 (N, 28, 28); labels are integers 0..9, one-hot encoded here as the seed
    notebook does for categorical cross-entropy. The history holds ``loss``, ``accuracy``,
    ``val_loss`` and ``val_accuracy``, one float per epoch.
    """
    history = model.fit(
        to_model_input(train_images),
        keras.utils.to_categorical(train_labels, NUM_CLASSES),
        validation_data=(
            to_model_input(validation_images),
            keras.utils.to_categorical(validation_labels, NUM_CLASSES),
        ),
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        verbose=0,
        callbacks=list(callbacks),
    )
    return {name: [float(value) for value in values] for name, values in history.history.items()}


def predict_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Class probabilities, float32 of shape (N, 10), for uint8 images of shape (N, 28, 28)."""
    return np.asarray(model.predict(to_model_input(images), batch_size=2048, verbose=0))
