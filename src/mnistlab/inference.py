"""Class probabilities from a trained Keras model, for evaluation, audits and prediction.

Imports no framework itself: the model's own ``predict`` runs on the backend it was loaded on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mnistlab.data import NUM_CLASSES, to_model_input

if TYPE_CHECKING:
    import keras

# Batch size for validation and prediction. It divides MNIST's 12,000 validation, 10,000 test
# and 14,000 audit-fold images, so each is evaluated in batches of one shape: every other
# shape (a short last batch) costs another trace and compile of the step.
EVAL_BATCH_SIZE = 2000


def model_outputs(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The model's whole output for uint8 images (N, 28, 28): (N, 10) class probabilities,
    then, for a model with the not-a-digit head (notdigit.py), an eleventh column."""
    return np.asarray(model.predict(to_model_input(images), batch_size=EVAL_BATCH_SIZE, verbose=0))


def predict_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Class probabilities, float32 of shape (N, 10), for uint8 images of shape (N, 28, 28)."""
    return model_outputs(model, images)[:, :NUM_CLASSES]
