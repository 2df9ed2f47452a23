"""Model builders by name. Every model takes the flat (N, 784) float input of
``data.to_model_input`` and returns (N, 10) class probabilities.

Only built-in Keras layers are used, so a saved ``model.keras`` loads in plain Keras.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from mnistlab.config import MODEL_NAMES, Config

NUM_PIXELS = 28 * 28
NUM_CLASSES = 10


def build_seed_mlp(dropout_rate: float = 0.25, hidden_units: int = 128) -> keras.Model:
    """The seed notebook's model, exactly: 118,282 parameters."""
    return keras.Sequential(
        [
            keras.Input(shape=(NUM_PIXELS,)),
            layers.Dense(hidden_units, activation="relu"),
            layers.Dense(hidden_units, activation="relu"),
            layers.Dropout(dropout_rate),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="seed_mlp",
    )


BUILDERS: dict[str, Callable[[], keras.Model]] = {
    "seed-mlp": build_seed_mlp,
}
assert tuple(BUILDERS) == MODEL_NAMES, "config.MODEL_NAMES and models.BUILDERS must agree"

# Several optimizer steps per call into the backend: the seed MLP is so small that per-step
# Python overhead, not arithmetic, bounds its speed. This changes no numbers, only batching
# of the calls (measured: ~0.45 s vs ~0.65 s per epoch on a 2-core CPU).
STEPS_PER_EXECUTION = 32


def build_model(config: Config) -> keras.Model:
    """A compiled model for ``config``: Adam, categorical cross-entropy, accuracy."""
    model = BUILDERS[config.model]()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model
