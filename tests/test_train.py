"""Fitting helpers: batch-norm statistics that match the data after any number of epochs."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mnistlab import pipeline, runs
from mnistlab.config import Config
from mnistlab.train import calibrate_batch_norm


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
    np.testing.assert_allclose(np.asarray(first_bn.moving_mean), np.repeat(first.mean(), 4), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(first_bn.moving_variance), np.repeat(first.var(), 4), rtol=1e-4)
    # The second one sees the first one's calibrated output: mean 0, variance 1, then a Dense.
    reaching_second = np.asarray(model.layers[2](first_bn(inputs @ np.ones((6, 4)) + 1, training=False)))
    np.testing.assert_allclose(
        np.asarray(model.layers[3].moving_mean), reaching_second.mean(axis=0), rtol=1e-4, atol=1e-5
    )


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
