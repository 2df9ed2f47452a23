"""Model builders by name. Every model takes the flat (N, 784) float input of
``data.to_model_input`` and returns (N, 10) class probabilities.

Only built-in Keras layers are used, so a saved ``model.keras`` loads in plain Keras.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
from keras import layers

from mnistlab.config import MODEL_NAMES, Config
from mnistlab.data import IMAGE_SIDE, NUM_CLASSES
from mnistlab.errors import ConfigError

NUM_PIXELS = IMAGE_SIDE * IMAGE_SIDE


def _images(dtype: str | None) -> layers.Layer:
    """The flat input as (28, 28, 1) images."""
    return layers.Reshape((28, 28, 1), dtype=dtype)


def build_seed_mlp(dtype: str | None = None) -> keras.Model:
    """The seed notebook's model, exactly: 118,282 parameters."""
    return keras.Sequential(
        [
            keras.Input(shape=(NUM_PIXELS,)),
            layers.Dense(128, activation="relu", dtype=dtype),
            layers.Dense(128, activation="relu", dtype=dtype),
            layers.Dropout(0.25, dtype=dtype),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype=dtype),
        ],
        name="seed_mlp",
    )


def build_cnn(dtype: str | None = None) -> keras.Model:
    """A small LeNet-style network: two 5x5 convolutions with pooling, then a dense layer.

    ~99.5% in 8 epochs on images shifted by up to a pixel (about 30 s per epoch on a 2-core
    AVX2 CPU in float32, 6-10 s on an AVX-512 one in bfloat16).
    """
    return keras.Sequential(
        [
            keras.Input(shape=(NUM_PIXELS,)),
            _images(dtype),
            layers.Conv2D(32, 5, activation="relu", dtype=dtype),
            layers.MaxPooling2D(dtype=dtype),
            layers.Conv2D(64, 5, activation="relu", dtype=dtype),
            layers.MaxPooling2D(dtype=dtype),
            layers.Flatten(dtype=dtype),
            layers.Dropout(0.3, dtype=dtype),
            layers.Dense(128, activation="relu", dtype=dtype),
            layers.Dropout(0.3, dtype=dtype),
            # Softmax in float32 even when training in bfloat16, for a stable loss.
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="cnn",
    )


def build_cnn_best(dtype: str | None = None) -> keras.Model:
    """A deeper network with batch norm, strided 5x5 convolutions in place of pooling and
    (its default config) random shifts, rotations and zooms during training.

    After the Kaggle "25 million images" MNIST experiments by Chris Deotte
    (https://www.kaggle.com/code/cdeotte/how-to-choose-cnn-architecture-mnist).
    """

    def conv_block(filters: int, kernel: int, strides: int = 1) -> list[layers.Layer]:
        padding = "same" if strides > 1 else "valid"
        return [
            layers.Conv2D(
                filters, kernel, strides=strides, padding=padding, use_bias=False, dtype=dtype
            ),
            layers.BatchNormalization(dtype=dtype),
            layers.Activation("relu", dtype=dtype),
        ]

    return keras.Sequential(
        [
            keras.Input(shape=(NUM_PIXELS,)),
            _images(dtype),
            *conv_block(32, 3),
            *conv_block(32, 3),
            *conv_block(32, 5, strides=2),
            layers.Dropout(0.4, dtype=dtype),
            *conv_block(64, 3),
            *conv_block(64, 3),
            *conv_block(64, 5, strides=2),
            layers.Dropout(0.4, dtype=dtype),
            *conv_block(128, 4),
            layers.Flatten(dtype=dtype),
            layers.Dropout(0.4, dtype=dtype),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="cnn_best",
    )


def build_cnn_fast(dtype: str | None = None) -> keras.Model:
    """Two strided convolutions with batch norm, then a dense layer: ~99.1% in 2 epochs.

    Built for time to accuracy on a CPU: the strides shrink the image at once (no pooling), so
    an epoch costs about a fifth of ``cnn``'s, and XLA (JAX) runs it fastest. The first
    convolution is unpadded, so 12x12 comes out instead of 14x14: its windows miss only the
    last row and column, where ink is rare, and every layer after it has 27% less to do. These
    layers are bound by memory, not arithmetic: an epoch took 2.4-2.9 s instead of 3.4-3.9 s,
    at the same accuracy.
    """

    def conv_block(filters: int, kernel: int, padding: str) -> list[layers.Layer]:
        return [
            layers.Conv2D(filters, kernel, strides=2, padding=padding, use_bias=False, dtype=dtype),
            layers.BatchNormalization(dtype=dtype),
            layers.Activation("relu", dtype=dtype),
        ]

    return keras.Sequential(
        [
            keras.Input(shape=(NUM_PIXELS,)),
            _images(dtype),
            *conv_block(16, 5, padding="valid"),
            *conv_block(32, 3, padding="same"),
            layers.Flatten(dtype=dtype),
            layers.Dense(128, activation="relu", dtype=dtype),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="cnn_fast",
    )


BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "seed-mlp": build_seed_mlp,
    "cnn": build_cnn,
    "cnn-best": build_cnn_best,
    "cnn-fast": build_cnn_fast,
}
assert tuple(BUILDERS) == MODEL_NAMES, "config.MODEL_NAMES and models.BUILDERS must agree"

# Keras runs callbacks and collects logs once per this many steps, not every step: the seed MLP
# is so small that per-step Python overhead, not arithmetic, bounds its speed. This changes no
# numbers (measured: ~0.45 s vs ~0.65 s per epoch on a 2-core CPU). On TensorFlow the steps are
# also one call into the backend; on JAX, Keras 3.15.1 still calls the compiled step once per
# batch.
STEPS_PER_EXECUTION = 32


def _compile(model: keras.Model, learning_rate, ema_momentum: float = 0.0) -> keras.Model:
    if ema_momentum:
        optimizer = keras.optimizers.Adam(learning_rate, use_ema=True, ema_momentum=ema_momentum)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    model.compile(
        optimizer=optimizer,
        loss="categorical_crossentropy",
        # Weighted: a filled-up last batch (train.EqualBatches) counts only its real images.
        weighted_metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def build_model(config: Config, steps_per_epoch: int | None = None) -> keras.Model:
    """A compiled model for ``config``: Adam (averaging the weights if the config says so),
    categorical cross-entropy, accuracy.

    ``steps_per_epoch`` sizes the learning-rate schedule (cosine decay, warm-up); it is
    needed only for those.
    """
    dtype = "mixed_bfloat16" if config.mixed_precision else None
    model = _with_dropout(BUILDERS[config.model](dtype=dtype), config)
    return _compile(model, learning_rate_schedule(config, steps_per_epoch), config.ema_momentum)


def _with_dropout(model: keras.Model, config: Config) -> keras.Model:
    """``model`` with every dropout layer at ``config.dropout``, when the config sets one.

    Set before the first call traces the layer; the saved model records the rate it trained with.
    """
    if config.dropout is not None:
        for layer in model.layers:
            if isinstance(layer, layers.Dropout):
                layer.rate = float(config.dropout)
    return model


def learning_rate_schedule(config: Config, steps_per_epoch: int | None):
    """Adam's rate: ``config.learning_rate``, or a schedule when warm-up or cosine decay
    needs the run's step count."""
    if config.lr_schedule == "constant" and not config.warmup_epochs:
        return config.learning_rate
    if not steps_per_epoch:
        raise ValueError("a learning-rate schedule needs steps_per_epoch")
    total = config.epochs * steps_per_epoch
    # Config keeps warmup_epochs below epochs; a decay needs at least one step after it.
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    # After any warm-up, cosine decays to 1% of the rate; alpha=1 holds it constant.
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else config.learning_rate,
        decay_steps=total - warmup,
        alpha=0.01 if config.lr_schedule == "cosine" else 1.0,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    return math.ceil(num_examples / batch_size)


# Random augmentation layers, which models saved before mnistlab augmented in NumPy (the
# shipped cnn-best among them) hold: identity at inference, but their (unused) random ops would
# still be traced into an exported graph, and ONNX has no kernels for them.
AUGMENTATION_LAYERS = (layers.RandomRotation, layers.RandomTranslation, layers.RandomZoom)


def without_augmentation(model: keras.Model) -> keras.Model:
    """The same trained layers (shared, not copied) minus the augmentation layers: the model
    as it computes at inference, ready for export."""
    kept = [layer for layer in model.layers if not isinstance(layer, AUGMENTATION_LAYERS)]
    if len(kept) == len(model.layers):
        return model
    return keras.Sequential(
        [keras.Input(shape=(NUM_PIXELS,)), *kept], name=f"{model.name}_inference"
    )


def without_optimizer(model: keras.Model) -> keras.Model:
    """The trained network, uncompiled: what model.keras holds. A compiled model saves its
    optimizer too, which plain Keras then warns it cannot restore (the float32 copy of a
    mixed-precision run never stepped its own); inference needs none, and the file is a third
    the size. The copy shares the trained layers: rebuilding from get_config would import
    TensorFlow on JAX (Keras's serialisation checks for its shapes), and clone_model would
    compile the copy again."""
    if isinstance(model, keras.Sequential):
        return keras.Sequential(
            [keras.Input(shape=model.inputs[0].shape[1:]), *model.layers], name=model.name
        )
    return keras.Model(model.inputs, model.outputs, name=model.name)


def load_trained_weights(model: keras.Model, trained: keras.Model) -> None:
    """Copy ``trained``'s weights into ``model``, layer by layer.

    Augmentation layers (in models saved by earlier versions) hold only random-number state,
    not learned weights, so they are passed over on either side.
    Raises ConfigError when the two are not the same network.
    """

    def learned(network: keras.Model) -> list[layers.Layer]:
        return [
            layer
            for layer in network.layers
            if layer.weights and not isinstance(layer, AUGMENTATION_LAYERS)
        ]

    targets, sources = learned(model), learned(trained)
    shapes = [[tuple(w.shape) for w in layer.weights] for layer in targets]
    if shapes != [[tuple(w.shape) for w in layer.weights] for layer in sources]:
        raise ConfigError(
            f"cannot start {model.name} from a trained {trained.name}: the networks differ"
        )
    for target, source in zip(targets, sources):
        target.set_weights(source.get_weights())


def float32_copy(model: keras.Model, config: Config) -> keras.Model:
    """The same network with float32 compute and the trained weights: what a run saves, so
    inference and ONNX export never depend on bfloat16 kernels."""
    copy = _with_dropout(BUILDERS[config.model](dtype="float32"), config)
    copy.set_weights(model.get_weights())
    return _compile(copy, config.learning_rate)
