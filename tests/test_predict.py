"""Prediction on people's images, the shipped model, and ONNX export."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnistlab import runs
from mnistlab.config import Config
from mnistlab.data import to_model_input
from mnistlab.images import normalize_digit
from mnistlab.predict import Predictor, predict_files, pretrained_dir
from tests.helpers import AUGMENTED_MODEL, drawing, run_cli


def paper_photo(digit: np.ndarray, path, offset=(60, 140), side=120):
    """An MNIST digit as dark ink on light grey paper, off-centre on a 400x300 JPEG."""
    ink = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (400, 300), 215)
    canvas.paste(Image.new("L", ink.size, 30), offset, mask=ink)
    canvas.convert("RGB").save(path, quality=85)


def mouse_drawing(digit: np.ndarray, path):
    """White strokes on a black 280x280 canvas, as a drawing app exports it."""
    Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR).point(
        lambda v: 255 if v > 60 else 0
    ).save(path)


def test_shipped_model_is_documented_and_strong():
    shipped = pretrained_dir()
    config = runs.read_config(shipped)
    metrics = runs.read_json(shipped, runs.METRICS_FILE)
    assert config.model in ("cnn", "cnn-best")
    assert metrics["test"]["accuracy"] >= 0.993
    provenance = (shipped / "README.md").read_text()
    assert "mnistlab train" in provenance and f"{metrics['test']['accuracy']:.4f}" in provenance
    # The wheel stays small: the model twice (Keras, ONNX), each about 7 MB with its heads, and
    # the number reader (1.7 MB).
    size = sum(p.stat().st_size for p in shipped.iterdir())
    assert size < 17_000_000
    assert Predictor.from_run().engine == "onnxruntime"


@pytest.mark.mnist
def test_shipped_model_reads_real_mnist(mnist):
    predictor = Predictor.from_run()
    probabilities = predictor.probabilities(mnist.test_images[:2000])
    accuracy = (probabilities.argmax(axis=1) == mnist.test_labels[:2000]).mean()
    assert accuracy >= 0.99
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


@pytest.mark.mnist
def test_shipped_model_reads_photos_and_drawings(mnist, tmp_path):
    for index in range(40):
        paper_photo(mnist.test_images[index], tmp_path / f"{index:03d}-photo.jpg")
        mouse_drawing(mnist.test_images[index], tmp_path / f"{index:03d}-mouse.png")
    results = list(predict_files([tmp_path], Predictor.from_run()))
    labels = [int(mnist.test_labels[int(r.file.split("/")[-1][:3])]) for r in results]
    correct = sum(r.label == label for r, label in zip(results, labels))
    assert len(results) == 80
    assert correct / len(results) >= 0.9


def write_folder(tmp_path, digit):
    folder = tmp_path / "images"
    folder.mkdir()
    paper_photo(digit, folder / "a-digit.jpg")
    Image.new("L", (100, 100), 255).save(folder / "b-blank.png")
    (folder / "c-broken.png").write_bytes(b"this is not a PNG")
    return folder


@pytest.mark.mnist
def test_cli_predict_lines_errors_and_exit_code(tmp_path, capsys, mnist):
    seven = mnist.test_images[0]  # a 7
    folder = write_folder(tmp_path, seven)
    code, out, err = run_cli(capsys, "predict", folder)
    assert code == 1  # one file could not be read; the others were still processed
    lines = out.strip().splitlines()
    assert lines[0].endswith("a-digit.jpg: 7 (p=1.000)") or "a-digit.jpg: 7 (p=" in lines[0]
    assert "b-blank.png: rejected (no digit-like ink" in lines[1]
    assert len(lines) == 2
    errors = err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and "c-broken.png" in errors[0]


@pytest.mark.mnist
def test_cli_predict_json_and_preview(tmp_path, capsys, mnist):
    folder = write_folder(tmp_path, mnist.test_images[0])
    (folder / "c-broken.png").unlink()
    code, out, _ = run_cli(capsys, "predict", folder, "--json", "--save-preview", tmp_path / "seen")
    assert code == 0
    objects = [json.loads(line) for line in out.strip().splitlines()]
    assert [o["file"].rsplit("/", 1)[1] for o in objects] == ["a-digit.jpg", "b-blank.png"]
    digit, blank = objects
    assert digit["label"] == 7 and digit["rejected"] is None
    assert len(digit["probabilities"]) == 10 and abs(sum(digit["probabilities"]) - 1) < 1e-4
    assert digit["confidence"] == max(digit["probabilities"])
    assert blank["label"] is None and "no digit-like ink" in blank["rejected"]
    previews = sorted((tmp_path / "seen").iterdir())
    assert len(previews) == 1  # the blank image gave the model nothing to see
    seen = np.asarray(Image.open(previews[0]))
    from mnistlab.images import load_image

    assert np.array_equal(seen, normalize_digit(load_image(folder / "a-digit.jpg")))


def test_cli_predict_missing_path_and_bad_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "predict", tmp_path / "nope.png")
    assert code == 1 and "nope.png" in err and err.startswith("error: ")
    code, _, err = run_cli(capsys, "predict", "--model", tmp_path / "no-run", tmp_path)
    assert code == 1 and "does not exist" in err


def test_low_confidence_keeps_the_best_guess_flagged_uncertain(tmp_path, mnist_dir):
    (tmp_path / "seven.png").write_bytes(drawing("7"))
    (sure,) = predict_files([tmp_path / "seven.png"], Predictor.from_run(), min_confidence=0.0)
    (unsure,) = predict_files([tmp_path / "seven.png"], Predictor.from_run(), min_confidence=1.01)
    # Below the threshold the label is still given, with the flag; nothing else changes.
    assert sure.uncertain is False and unsure.uncertain is True
    assert unsure.label == sure.label == int(np.argmax(unsure.probabilities))
    assert unsure.confidence == max(unsure.probabilities) and unsure.rejected is None


def test_a_not_a_digit_score_above_the_threshold_is_a_rejection(tmp_path):
    from mnistlab.predict import NOT_A_DIGIT, Prediction, classify

    class Scored:
        """A model whose not-a-digit score is 0.2 for the first image, 0.9 for the second."""

        not_digit_threshold = 0.95  # The run's own; the call below overrides it.

        def scores(self, digits):
            probabilities = np.tile(np.eye(10)[7] * 0.9 + 0.01, (len(digits), 1))
            return probabilities, np.array([0.2, 0.9])[: len(digits)]

    digit, scribble = Prediction(file="a"), Prediction(file="b")
    digit.digit = scribble.digit = np.zeros((28, 28), np.uint8)
    classify([digit, scribble], Scored(), not_digit_threshold=0.5)
    assert digit.label == 7 and digit.rejected is None and digit.not_digit == 0.2
    assert scribble.label is None and scribble.rejected == NOT_A_DIGIT
    # What the model made of it is still reported.
    assert scribble.confidence == max(scribble.probabilities) and scribble.not_digit == 0.9


def test_model_outputs_split_into_digits_and_the_not_a_digit_score():
    from mnistlab.predict import split_outputs

    raw = np.arange(22, dtype=np.float32).reshape(2, 11)
    probabilities, scores = split_outputs(raw)
    assert probabilities.shape == (2, 10) and scores.tolist() == [10.0, 21.0]
    probabilities, scores = split_outputs(raw[:, :10])
    assert probabilities.shape == (2, 10) and scores is None


@pytest.mark.mnist
@pytest.mark.slow
def test_onnx_export_matches_keras(tmp_path, mnist_dir, mnist, capsys):
    from mnistlab import pipeline

    # Exported by the command below: the run starts with model.keras alone.
    config = Config(epochs=1, train_limit=3000, test_limit=1000, export_onnx=False)
    run_dir = pipeline.train_run(config, data_dir=mnist_dir, out_dir=tmp_path / "run")
    keras_predictor = Predictor.from_run(run_dir)
    assert keras_predictor.engine == "keras"
    code, out, _ = run_cli(capsys, "export", run_dir, "--format", "onnx")
    assert code == 0 and (run_dir / "model.onnx").is_file()
    onnx_predictor = Predictor.from_run(run_dir)
    assert onnx_predictor.engine == "onnxruntime"
    images = mnist.test_images[:1000]
    difference = np.abs(
        onnx_predictor.probabilities(images) - keras_predictor.probabilities(images)
    )
    assert difference.max() <= 1e-5
    code, _, err = run_cli(capsys, "export", run_dir, "--format", "tflite")
    assert code == 2 and "tflite" in err


@pytest.mark.slow
def test_export_of_a_model_saved_with_augmentation_layers_drops_them(tmp_path):
    """The shipped cnn-best holds Keras's random augmentation layers (it was trained when they
    did the augmenting), which cannot go to ONNX; inference never uses them."""
    import shutil

    from mnistlab.export import export_onnx

    shutil.copytree(
        pretrained_dir(),
        tmp_path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("model.onnx", "not_digit.json"),
    )
    shutil.copy(AUGMENTED_MODEL, tmp_path / "model.keras")
    model = runs.load_model(tmp_path)
    probe = np.random.default_rng(1).random((8, 784), dtype=np.float32)
    export_onnx(tmp_path)
    onnx = Predictor.from_run(tmp_path)
    digits = (probe.reshape(8, 28, 28) * 255).astype(np.uint8)
    expected = model.predict(to_model_input(digits), verbose=0)
    assert np.abs(onnx.probabilities(digits) - expected).max() <= 1e-5


def test_a_filled_shape_is_not_a_digit(tmp_path):
    from mnistlab.predict import SOLID_BLOB

    image = Image.new("L", (280, 280), 0)
    image.paste(255, (60, 60, 220, 220))  # A filled square, drawn on the canvas.
    image.save(tmp_path / "square.png")
    (answer,) = predict_files([tmp_path / "square.png"], Predictor.from_run())
    assert answer.label is None and answer.rejected == SOLID_BLOB
    assert answer.confidence == max(answer.probabilities)  # What the model made of it.


def test_no_mnist_digit_is_a_solid_blob(mnist):
    from mnistlab.images import is_solid_blob

    assert not any(is_solid_blob(digit) for digit in mnist.test_images)


def test_several_digits_side_by_side_are_pointed_to_reading_a_number(tmp_path):
    from mnistlab.predict import SEVERAL_DIGITS

    image = Image.new("L", (280, 280), 0)
    draw = ImageDraw.Draw(image)
    draw.line([(60, 60), (60, 220)], fill=255, width=16)  # A 1 ...
    draw.line([(140, 60), (210, 60), (140, 220)], fill=255, width=16)  # ... and a 7.
    image.save(tmp_path / "17.png")
    (tmp_path / "7.png").write_bytes(drawing("7"))
    number, seven = predict_files([tmp_path / "17.png", tmp_path / "7.png"], Predictor.from_run())
    assert number.label is None and number.rejected == SEVERAL_DIGITS
    assert seven.label == 7 and seven.rejected is None


def test_hardly_any_mnist_digit_looks_like_several(mnist):
    from mnistlab.images import looks_like_several_digits

    assert sum(looks_like_several_digits(digit) for digit in mnist.test_images) <= 5
