"""Fitting helpers: batch-norm statistics that match the data after any number of epochs, and
equal-sized training batches that train on every image once per epoch."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from mnistlab import pipeline, runs
from mnistlab.config import Config
from mnistlab.data import to_model_input
from mnistlab.train import EqualBatches, calibrate_batch_norm, fit_input


def test_calibration_sets_each_batch_norm_to_the_statistics_of_its_input():
    model = keras.Sequential(
        [
            keras.Input(shape=(6,)),
            keras.layers.Dense(4, kernel_initializer="ones", bias_initializer="ones"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3),
            keras.layers.BatchNormalization(),
        ]
    )
    inputs = np.random.default_rng(0).normal(3.0, 2.0, size=(256, 6)).astype(np.float32)
    calibrate_batch_norm(model, inputs)

    first = inputs.sum(axis=1, keepdims=True) + 1  # the first Dense: all-ones weights and bias
    first_bn = model.layers[1]
    np.testing.assert_allclose(
        np.asarray(first_bn.moving_mean), np.repeat(first.mean(), 4), rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(first_bn.moving_variance), np.repeat(first.var(), 4), rtol=1e-4
    )
    # The second one sees the first one's calibrated output: mean 0, variance 1, then a Dense.
    reaching_second = np.asarray(
        model.layers[2](first_bn(inputs @ np.ones((6, 4)) + 1, training=False))
    )
    np.testing.assert_allclose(
        np.asarray(model.layers[3].moving_mean), reaching_second.mean(axis=0), rtol=1e-4, atol=1e-5
    )


def _epoch(batches: EqualBatches, epoch: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    batches.set_epoch(epoch)
    return [batches[index] for index in range(batches.num_batches)]


def test_equal_batches_hold_every_image_once_per_epoch_in_a_fresh_order():
    count, batch_size = 1100, 512  # 2 full batches and 76 left over
    index = np.arange(count)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = index // 256, index % 256  # each image says which it is
    labels = index % 10
    batches = EqualBatches(images, labels, batch_size, seed=7)
    first, second = _epoch(batches, 0), _epoch(batches, 1)

    assert batches.num_batches == 3
    for epoch in (first, second):
        assert all(len(x) == len(y) == len(w) == batch_size for x, y, w in epoch)
        inputs = np.concatenate([x for x, _, _ in epoch])
        targets = np.concatenate([y for _, y, _ in epoch])
        weights = np.concatenate([w for _, _, w in epoch])
        assert inputs.dtype == np.float32 and inputs.max() <= 1.0
        which = np.round(inputs[:, 0] * 255).astype(int) * 256 + np.round(
            inputs[:, 1] * 255
        ).astype(int)
        assert np.array_equal(targets.argmax(axis=1), which % 10)  # labels travel with images
        real = weights > 0
        assert np.array_equal(np.sort(which[real]), index)  # every image once, with weight
        assert (~real).sum() == 3 * batch_size - count
        # The real images of the filled-up batch weigh batch/real, the others 1.
        np.testing.assert_allclose(weights[2 * batch_size : count], batch_size / 76)
        assert np.all(weights[: 2 * batch_size] == 1)
    assert not np.array_equal(first[0][0], second[0][0])  # a new order each epoch
    # An epoch's order depends on the seed and the epoch alone: a fresh dataset started at
    # epoch 1, as a resumed run starts, gives the second epoch's batches; another seed does not.
    np.random.seed(0)  # the global generator plays no part
    resumed = _epoch(EqualBatches(images, labels, batch_size, seed=7), 1)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(second, resumed))
    other_seed = _epoch(EqualBatches(images, labels, batch_size, seed=8), 1)
    assert not np.array_equal(second[0][0], other_seed[0][0])


def test_shifted_batches_move_afresh_each_epoch_and_repeat_on_resume():
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, size=(300, 28, 28), dtype=np.uint8)
    images[:, :2], images[:, -2:], images[:, :, :2], images[:, :, -2:] = 0, 0, 0, 0
    labels = rng.integers(0, 10, size=300)
    plain = _epoch(EqualBatches(images, labels, 100, seed=3), 1)
    moving = EqualBatches(images, labels, 100, seed=3, shift_pixels=2)
    first, second = _epoch(moving, 0), _epoch(moving, 1)

    for (x, y, w), (x0, y0, w0) in zip(second, plain):
        assert np.array_equal(y, y0) and np.array_equal(w, w0)  # the same order and labels
        assert not np.array_equal(x, x0)
        # Each image only moved: the same pixel values, all of them still in the frame.
        assert np.array_equal(np.sort(x, axis=1), np.sort(x0, axis=1))
    resumed = _epoch(EqualBatches(images, labels, 100, seed=3, shift_pixels=2), 1)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(second, resumed))
    again = EqualBatches(images, labels, 100, seed=3, shift_pixels=2)
    again.set_epoch(1)
    first_order_moves = _epoch(again, 0)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, first_order_moves))


def test_augmented_batches_are_warped_afresh_each_epoch_and_repeat_on_resume(digit_images):
    images, labels = (np.tile(array, (15,) + (1,) * (array.ndim - 1)) for array in digit_images)
    plain = _epoch(EqualBatches(images, labels, 100, seed=3), 1)
    warping = EqualBatches(images, labels, 100, seed=3, augment=True)
    second = _epoch(warping, 1)

    for (x, y, w), (x0, y0, w0) in zip(second, plain):
        assert np.array_equal(y, y0) and np.array_equal(w, w0)  # the same order and labels
        assert x.dtype == x0.dtype and x.shape == x0.shape
        assert (x != x0).any(axis=1).all()  # every image moved
        # Turned, zoomed and moved a little, a bar keeps most of its ink.
        ink = x.sum(axis=1, dtype=np.float64) / x0.sum(axis=1, dtype=np.float64)
        assert 0.7 < ink.min() and ink.max() < 1.3
    resumed = _epoch(EqualBatches(images, labels, 100, seed=3, augment=True), 1)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(second, resumed))

    # Each image is warped afresh every epoch, not once for the whole run.
    def by_image(epoch: int) -> np.ndarray:
        warping.set_epoch(epoch)
        batch_size = warping.batch_size
        seen = np.empty((len(images), 28 * 28), dtype=np.float32)
        for index in range(warping.num_batches):
            inputs, _, weights = warping[index]
            chosen = warping.order[index * batch_size : (index + 1) * batch_size]
            seen[chosen[weights > 0]] = inputs[weights > 0]
        return seen

    assert (by_image(0) != by_image(1)).any(axis=1).all()


def test_a_filled_up_batch_has_the_loss_of_its_real_images_alone():
    rng = np.random.default_rng(0)
    count, batch_size = 600, 256  # the last batch: 88 real images, 168 fillers
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count)
    batches = EqualBatches(images, labels, batch_size, seed=0)
    inputs, targets, weights = batches[batches.num_batches - 1]
    predictions = keras.ops.softmax(rng.normal(size=(batch_size, 10)).astype(np.float32))
    loss = keras.losses.CategoricalCrossentropy()  # Keras's reduction: sum over batch size

    real = weights > 0
    padded = float(loss(targets, predictions, sample_weight=weights))
    alone = float(loss(targets[real], np.asarray(predictions)[real]))
    assert real.sum() == 88
    assert padded == pytest.approx(alone, rel=1e-5)
    order = batches.order[(batches.num_batches - 1) * batch_size :]
    assert np.array_equal(targets.argmax(axis=1), labels[order])
    np.testing.assert_allclose(inputs, to_model_input(images[order]))


def _random_digits(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8), rng.integers(
        0, 10, size=count
    )


def test_fit_input_is_the_batches_themselves_except_on_tensorflow(monkeypatch):
    images, labels = _random_digits(600)
    batches = EqualBatches(images, labels, 256, seed=0)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    assert fit_input(batches) is batches


def test_fit_reads_each_epochs_very_batches_through_tf_data_without_autotuning(monkeypatch):
    images, labels = _random_digits(600)
    batches = EqualBatches(images, labels, 256, seed=0, shift_pixels=1)
    # The tf.data pipeline is TensorFlow's alone, whichever backend this suite runs on.
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    source = fit_input(batches)
    assert source is not batches
    assert source.cardinality() == batches.num_batches
    assert source.options().autotune.enabled is False
    for epoch in (0, 1):  # a new iterator each epoch reads the epoch set_epoch prepared
        expected = _epoch(batches, epoch)
        read = list(source)
        assert len(read) == len(expected)
        for batch, expected_batch in zip(read, expected):
            for part, expected_part in zip(batch, expected_batch, strict=True):
                np.testing.assert_array_equal(part.numpy(), expected_part)


def test_training_through_fit_input_gives_the_weights_of_training_on_the_batches():
    """On TensorFlow, where fit_input builds the tf.data pipeline; in a fresh interpreter,
    since a process chooses its backend once."""
    # cnn-best: with bfloat16 convolutions, even a fixed batch dimension changes the weights.
    script = """
import keras
import numpy as np
from mnistlab import models, train
from mnistlab.config import Config

assert keras.backend.backend() == "tensorflow"
rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(512, 28, 28), dtype=np.uint8)
labels = rng.integers(0, 10, size=512)
config = Config.for_model("cnn-best", epochs=1, validation_split=0.0, checkpoint=False)

def trained():
    train.set_seed(config.seed)
    model = models.build_model(config, models.steps_per_epoch(len(images), config.batch_size))
    train.fit(model, images, labels, images[:0], labels[:0], config)
    return model.get_weights()

through_tf_data = trained()
train.fit_input = lambda batches: batches
directly = trained()
for mine, theirs in zip(through_tf_data, directly, strict=True):
    np.testing.assert_array_equal(mine, theirs)
print("same weights")
"""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["same", "weights"]


@pytest.mark.mnist
@pytest.mark.slow
def test_one_short_epoch_of_cnn_best_scores_what_validation_says(tmp_path, mnist_dir):
    # 2,000 images, batch 32: ~56 steps, where Keras's moving averages alone left the model at
    # ~10% on validation and test alike while it trained at ~40%.
    config = Config.for_model(
        "cnn-best", epochs=1, batch_size=32, train_limit=2000, test_limit=1000, checkpoint=False
    )
    run_dir = pipeline.train_run(config, data_dir=mnist_dir, out_dir=tmp_path / "run")
    validation = runs.read_json(run_dir, runs.HISTORY_FILE)["val_accuracy"][-1]
    test = runs.read_json(run_dir, runs.METRICS_FILE)["test"]["accuracy"]
    assert validation > 0.5  # chance is 0.1
    assert abs(test - validation) < 0.05
