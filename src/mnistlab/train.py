"""Seeding and fitting. Writes nothing and prints nothing: progress goes to the callbacks."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from mnistlab.augmentation import shifted, warped
from mnistlab.backend import tensorflow_left_alone
from mnistlab.config import Config
from mnistlab.data import NUM_CLASSES, to_model_input
from mnistlab.errors import CheckpointMismatch
from mnistlab.inference import EVAL_BATCH_SIZE


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
    notebook does for categorical cross-entropy. The history holds ``loss`` and ``accuracy``,
    one float per epoch, and ``val_loss`` and ``val_accuracy`` unless there are no validation
    images. With ``config.ema_momentum``, validation scores the averaged weights, and the
    model ends with them.
    """
    batches = EqualBatches(
        train_images,
        train_labels,
        config.batch_size,
        config.seed,
        shift_pixels=config.shift_pixels,
        augment=config.augment,
    )
    callbacks = [EpochRandomness(batches), *callbacks]
    if config.ema_momentum:
        # Before BatchNormCalibration: batch norm is calibrated for the weights validated.
        callbacks.append(keras.callbacks.SwapEMAWeights())
    if any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers):
        callbacks.append(BatchNormCalibration(train_images[:CALIBRATION_IMAGES]))
    validation_data = None
    if len(validation_labels):
        validation_data = (
            to_model_input(validation_images),
            keras.utils.to_categorical(validation_labels, NUM_CLASSES),
        )
    history = model.fit(
        fit_input(batches),
        shuffle=False,  # EqualBatches orders the images; fit's shuffle would reorder batches.
        validation_data=validation_data,
        validation_batch_size=EVAL_BATCH_SIZE,
        epochs=config.epochs,
        verbose=0,
        callbacks=callbacks,
    )
    return {name: [float(value) for value in values] for name, values in history.history.items()}


def fit_input(batches: EqualBatches):
    """What ``model.fit`` reads ``batches`` from: the dataset itself, except on TensorFlow.

    There Keras reads a ``PyDataset`` through tf.data with autotuning on and a new iterator
    every epoch, and on a 2-core CPU whole epochs of cnn-best went idle for 35-40 s, every
    thread waiting while tf.data's autotuning thread sat in a timed wait. The same batches
    through tf.data with autotuning off train bit-identically, without those waits. The batch
    dimension stays unknown, as Keras leaves it: a fixed one changes the compiled step and so
    the weights.
    """
    if keras.backend.backend() != "tensorflow":
        return batches
    import tensorflow as tf

    signature = tuple(
        tf.TensorSpec((None, *part.shape[1:]), tf.as_dtype(part.dtype)) for part in batches[0]
    )
    dataset = tf.data.Dataset.from_generator(
        lambda: (batches[index] for index in range(batches.num_batches)),
        output_signature=signature,
    )
    options = tf.data.Options()
    options.autotune.enabled = False
    # The known length gives fit its steps per epoch (and progress bars their total).
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches.num_batches))
    return dataset.prefetch(2).with_options(options)


class EqualBatches(keras.utils.PyDataset):
    """Every training image once per epoch, in a fresh order, in batches that all have
    ``batch_size`` images.

    JAX compiles the training step once per batch shape, so a short last batch (54,000 =
    105 x 512 + 240 for the seed model) would cost a second trace and compile in every run.
    Here the last batch is filled up with images from the start of the epoch's order, weighted
    0, and its real images are weighted ``batch_size / real``: Keras divides a batch's weighted
    loss by the batch size, so that batch's loss and gradient are the mean over its real
    images, as in a short batch. Images stay uint8 until a batch is taken (a quarter of the
    memory).

    The order of epoch ``e`` depends on ``(seed, e)`` only, not on what ran before, so a run
    resumed at epoch ``e`` sees the batches an uninterrupted run sees (``EpochRandomness``
    tells this dataset which epoch ``fit`` is on). With ``shift_pixels`` and ``augment``, each
    image of a batch is moved (``augmentation.shifted``, ``augmentation.warped``) by amounts
    drawn from ``(seed, epoch, batch)`` in the same way.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        seed: int,
        shift_pixels: int = 0,
        augment: bool = False,
    ):
        super().__init__()
        self.images = images
        self.shift_pixels = shift_pixels
        self.augment = augment
        self.targets = keras.utils.to_categorical(labels, NUM_CLASSES)
        self.batch_size = batch_size
        self.seed = seed
        batches = -(-len(images) // batch_size)
        self.weights = np.ones(batches * batch_size, dtype=np.float32)
        last_real = len(images) - (batches - 1) * batch_size
        self.weights[(batches - 1) * batch_size :] = np.float32(batch_size / last_real)
        self.weights[len(images) :] = 0.0
        self.epoch = None
        self.set_epoch(0)

    @property
    def num_batches(self) -> int:
        return len(self.weights) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Order the images as epoch ``epoch`` (0-based) trains on them, and move them now."""
        if epoch == self.epoch:
            return  # fit starts epoch 0 again after __init__ prepared it: no second set of warps.
        self.epoch = epoch
        permutation = np.random.default_rng([self.seed, epoch]).permutation(len(self.images))
        # np.resize repeats the order from its start to fill the last batch.
        self.order = np.resize(permutation, len(self.weights))
        # The whole epoch's moves at once, between epochs: done batch by batch while the
        # steps ran (in tf.data's thread), they left TensorFlow's bfloat16 steps on one core
        # for whole epochs at a time, twice as slow (bench/README.md, 2026-11-27).
        self.epoch_images = self.images[self.order]
        if self.shift_pixels or self.augment:
            for index in range(self.num_batches):
                batch = self._batch(index)
                self.epoch_images[batch] = self._moved(self.epoch_images[batch], index)

    def _batch(self, index: int) -> slice:
        return slice(index * self.batch_size, (index + 1) * self.batch_size)

    def _moved(self, images: np.ndarray, index: int) -> np.ndarray:
        # The trailing 2 keeps this stream apart from EpochRandomness's (seed, epoch, 1).
        moves = np.random.default_rng([self.seed, self.epoch, index, 2])
        if self.shift_pixels:
            images = shifted(images, self.shift_pixels, moves)
        if self.augment:
            images = warped(images, moves)
        return images

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        batch = self._batch(index)
        chosen = self.order[batch]
        return to_model_input(self.epoch_images[batch]), self.targets[chosen], self.weights[batch]


class EpochRandomness(keras.callbacks.Callback):
    """As each epoch begins, draw everything random in it from ``(seed, epoch)``, the seed being
    the batches': the batch order and the state of every random layer (dropout).

    A checkpoint holds the weights and the optimizer but not the random layers' state, so
    without this a resumed run would repeat the first epochs' dropout masks and orders; with it,
    ``--resume`` ends with the very weights of a run never interrupted (a test checks this).
    Keras calls ``on_epoch_begin`` with the true epoch, resumed ones included.
    """

    def __init__(self, batches: EqualBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)
        generators = [
            value
            for layer in self.model.layers
            for value in vars(layer).values()
            if isinstance(value, keras.random.SeedGenerator)
        ]
        rng = np.random.default_rng([self.batches.seed, epoch, 1])
        starts = rng.integers(1, 2**30, len(generators))
        for generator, start in zip(generators, starts):
            generator.state.assign(np.array([start, 0], dtype=generator.state.dtype))


class Checkpoint(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, with a checkpoint the network cannot take (one saved before
    its layers changed) reported as a CheckpointMismatch instead of Keras's ValueError."""

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except ValueError:
            raise CheckpointMismatch(
                f"{self.backup_dir} holds weights of a network other than this mnistlab's"
                f" {self.model.name.replace('_', '-')} (saved by an older version?), so the run"
                " cannot be resumed; train it afresh"
            ) from None


# Images whose activations set each batch-norm layer's statistics: ~600,000 values per channel.
CALIBRATION_IMAGES = 1024


class BatchNormCalibration(keras.callbacks.Callback):
    """Before every validation and when training ends (after Keras puts any averaged weights
    in place), set each batch-norm layer's moving mean and variance to the exact statistics of
    its inputs on training images (unmoved, dropout off).

    Keras's moving averages (momentum 0.99) still hold 37% of their initial values after 100
    steps, so cnn-best trained one epoch on 12,000 images scored ~10% at inference while it
    trained far higher. Exact statistics make validation, test and prediction agree from
    the first epoch ("precise BN", Wu & Johnson, https://arxiv.org/abs/2105.07576).
    """

    def __init__(self, images: np.ndarray):
        super().__init__()
        self.inputs = to_model_input(images)

    def on_test_begin(self, logs=None):
        calibrate_batch_norm(self.model, self.inputs)

    def on_train_end(self, logs=None):
        calibrate_batch_norm(self.model, self.inputs)


def calibrate_batch_norm(model: keras.Sequential, inputs: np.ndarray) -> None:
    """Layer by layer in inference mode: each batch-norm layer gets the mean and variance of
    what reaches it, computed after the earlier ones were calibrated."""
    values = inputs
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            reduced = tuple(range(len(values.shape) - 1))  # every axis but the channels
            as_float = keras.ops.cast(values, "float32")
            layer.moving_mean.assign(keras.ops.mean(as_float, axis=reduced))
            layer.moving_variance.assign(keras.ops.var(as_float, axis=reduced))
        values = layer(values, training=False)
