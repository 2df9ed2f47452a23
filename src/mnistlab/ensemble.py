"""An ensemble: one Keras model that averages the class probabilities of trained models.

Only built-in layers (nested models and ``Average``), so the ensemble saves as an ordinary
``model.keras`` and exports to one ONNX graph like any single model.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from mnistlab.data import NUM_CLASSES
from mnistlab.errors import ConfigError
from mnistlab.models import NUM_PIXELS, without_augmentation


def build_ensemble(members: Sequence[keras.Model]) -> keras.Model:
    """A model whose output, float32 (N, 10), is the mean of the members' probabilities.

    Members take the flat (N, 784) input of ``data.to_model_input``; they are used as they
    compute at inference (augmentation layers dropped) and their weights are shared, not copied.
    """
    if len(members) < 2:
        raise ConfigError(f"an ensemble needs at least two models; received: {len(members)}")
    inputs = keras.Input(shape=(NUM_PIXELS,), name="pixels")
    outputs = []
    for index, member in enumerate(members):
        if member.outputs[0].shape[-1] != NUM_CLASSES:  # e.g. a not-a-digit head's column
            raise ConfigError(
                f"ensemble members must output {NUM_CLASSES} class probabilities; member"
                f" {index} outputs {member.outputs[0].shape[-1]} columns"
            )
        member = without_augmentation(member)
        # Nested models need distinct names; runs of the same model all share one.
        member.name = f"member_{index}_{member.name}"
        outputs.append(member(inputs))
    averaged = layers.Average(name="mean_probabilities")(outputs)
    return keras.Model(inputs, averaged, name="ensemble")
