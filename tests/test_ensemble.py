"""Ensembles: the combined model averages its members (checked against the mean of the
members' own probabilities), and its run directory works like any other."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from mnistlab import pipeline, predict, runs
from mnistlab.config import Config
from mnistlab.ensemble import build_ensemble
from mnistlab.errors import ConfigError
from mnistlab.models import build_model
from mnistlab.inference import predict_probabilities
from tests.helpers import AUGMENTED_MODEL, assert_one_line_error, run_cli

# Members without model.onnx: the ensemble exports its own.
SMALL = Config(epochs=1, train_limit=2000, test_limit=400, top_errors=3, export_onnx=False)


def test_ensemble_output_is_the_mean_of_its_members(digit_images):
    images, _ = digit_images
    members = []
    # Two seed MLPs and a cnn-best saved with augmentation layers, which the ensemble drops.
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        members.append(build_model(Config(), steps_per_epoch=1))
    members.append(keras.saving.load_model(AUGMENTED_MODEL, compile=False))
    expected = np.mean([predict_probabilities(m, images) for m in members], axis=0)
    ensemble = build_ensemble(members)
    actual = predict_probabilities(ensemble, images)
    np.testing.assert_allclose(actual, expected, atol=1e-6)
    assert actual.shape == (20, 10)
    np.testing.assert_allclose(actual.sum(axis=1), 1.0, atol=1e-5)


def test_a_member_with_a_not_a_digit_head_is_refused():
    shipped = runs.load_model(predict.pretrained_dir())  # ten probabilities and the head's score
    with pytest.raises(ConfigError, match="11 columns"):
        build_ensemble([build_model(Config()), shipped])


def test_an_ensemble_needs_two_members():
    with pytest.raises(ConfigError, match="at least two"):
        build_ensemble([build_model(Config())])


@pytest.fixture(scope="module")
def member_runs(tmp_path_factory, mnist_dir):
    root = tmp_path_factory.mktemp("members")
    return [
        pipeline.train_run(
            SMALL.replace(seed=seed), data_dir=mnist_dir, out_dir=root / f"seed-{seed}"
        )
        for seed in (0, 1)
    ]


@pytest.mark.mnist
def test_ensemble_run_is_an_ordinary_run_directory(tmp_path, mnist_dir, mnist, member_runs, capsys):
    out = tmp_path / "ensemble"
    code, stdout, err = run_cli(
        capsys, "ensemble", *member_runs, "--out", out, "--data-dir", mnist_dir
    )
    assert code == 0, err
    assert "test accuracy" in stdout

    # Oracle: the mean of the members' probabilities on the same test images.
    test_images = mnist.test_images[: SMALL.test_limit]
    test_labels = mnist.test_labels[: SMALL.test_limit]
    mean = np.mean(
        [predict_probabilities(runs.load_model(d), test_images) for d in member_runs], axis=0
    )
    metrics = runs.read_json(out, "metrics.json")
    assert metrics["test"]["accuracy"] == pytest.approx(
        float((mean.argmax(1) == test_labels).mean())
    )
    assert metrics["model"] == "ensemble of 2 (seed-mlp, seed-mlp)"
    np.testing.assert_allclose(
        predict_probabilities(runs.load_model(out), test_images), mean, atol=1e-6
    )

    members = json.loads((out / "ensemble.json").read_text())["members"]
    assert [m["seed"] for m in members] == [0, 1]
    page = (out / "report.html").read_text()
    assert "ensemble of 2" in page and page.count(str(member_runs[1].resolve())) == 1

    # One ONNX graph, used by predict like any run's, agreeing with the Keras mean.
    predictor = predict.Predictor.from_run(out)
    assert predictor.engine == "onnxruntime"
    np.testing.assert_allclose(predictor.probabilities(test_images[:64]), mean[:64], atol=1e-5)
    image_path = tmp_path / "digit.png"
    Image.fromarray(255 - test_images[0]).save(image_path)  # dark ink on white, like paper
    # Members trained this briefly are unsure; --min-confidence 0 reports their best guess.
    code, stdout, err = run_cli(
        capsys, "predict", "--model", out, "--json", "--min-confidence", "0", image_path
    )
    assert code == 0, err
    assert json.loads(stdout)["label"] == int(mean[0].argmax())

    # evaluate and compare treat it like any run.
    rebuilt = pipeline.evaluate_run(out, data_dir=mnist_dir)
    assert rebuilt["test"]["accuracy"] == metrics["test"]["accuracy"]
    assert rebuilt["model"] == metrics["model"]
    _, rows = pipeline.compare_runs([*member_runs, out])
    assert rows[-1][1] == "ensemble of 2 (seed-mlp, seed-mlp)"


@pytest.mark.mnist
def test_ensemble_cli_refuses_a_wrong_directory_in_one_line(tmp_path, member_runs, capsys):
    code, _, err = run_cli(
        capsys, "ensemble", member_runs[0], tmp_path / "missing", "--out", tmp_path / "e"
    )
    assert code == 1
    assert_one_line_error(err)
    assert not (tmp_path / "e").exists()
