"""End-to-end runs on a small subset of real MNIST."""

import json
import platform
import subprocess
import sys

import keras
import numpy as np
import pytest

from mnistlab import pipeline, runs
from mnistlab.config import Config

pytestmark = pytest.mark.mnist

# Without model.onnx (tests of ONNX export turn it on): the export takes seconds.
SMALL = Config(epochs=2, train_limit=3000, test_limit=500, top_errors=4, export_onnx=False)
TINY = SMALL.replace(epochs=1, train_limit=600, test_limit=100)


def weights(run_dir):
    return keras.saving.load_model(run_dir / "model.keras").get_weights()


def test_same_seed_gives_identical_weights_and_accuracy(tmp_path, mnist_dir):
    first = pipeline.train_run(SMALL, data_dir=mnist_dir, out_dir=tmp_path / "a")
    second = pipeline.train_run(SMALL, data_dir=mnist_dir, out_dir=tmp_path / "b")
    for left, right in zip(weights(first), weights(second), strict=True):
        assert np.array_equal(left, right)
    metrics = [runs.read_json(d, "metrics.json")["test"] for d in (first, second)]
    assert metrics[0]["accuracy"] == metrics[1]["accuracy"]
    assert metrics[0]["loss"] == metrics[1]["loss"]

    other_seed = pipeline.train_run(
        SMALL.replace(seed=1), data_dir=mnist_dir, out_dir=tmp_path / "c"
    )
    assert not np.array_equal(weights(first)[0], weights(other_seed)[0])


def test_run_directory_holds_everything_and_evaluate_rebuilds_it(tmp_path, mnist_dir, mnist):
    run_dir = pipeline.train_run(
        SMALL.replace(export_onnx=True), data_dir=mnist_dir, out_dir=tmp_path / "run"
    )
    expected = {"config.json", "model.keras", "model.onnx", "history.json", "metrics.json"}
    assert expected | set(runs.FIGURE_FILES.values()) <= {p.name for p in run_dir.iterdir()}
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no temp files left
    # predict reads the run through ONNX Runtime, with the probabilities Keras computes.
    from mnistlab.inference import predict_probabilities
    from mnistlab.predict import Predictor

    predictor = Predictor.from_run(run_dir)
    assert predictor.engine == "onnxruntime"
    images = mnist.test_images[:500]
    keras_probabilities = predict_probabilities(runs.load_model(run_dir), images)
    assert np.abs(predictor.probabilities(images) - keras_probabilities).max() <= 1e-5

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["num_examples"] == 500
    assert len(metrics["test"]["top_errors"]) == 4
    assert np.array(metrics["test"]["confusion_matrix"]).sum() == 500
    assert set(metrics["data"]["sha256"]) == {
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    }
    assert {"data_load_seconds", "fit_seconds", "evaluate_seconds", "total_seconds"} <= set(
        metrics["timings"]
    )
    assert metrics["versions"]["keras"] == keras.__version__
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["val_accuracy"]) == SMALL.epochs

    for name in runs.FIGURE_FILES.values():
        (run_dir / name).unlink()
    (run_dir / "metrics.json").unlink()
    rebuilt = pipeline.evaluate_run(run_dir, data_dir=mnist_dir)
    assert json.loads(json.dumps(rebuilt["test"])) == metrics["test"]
    assert all(
        (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        for name in runs.FIGURE_FILES.values()
    )


def test_interrupted_training_leaves_no_run_directory(tmp_path, mnist_dir, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    import mnistlab.train

    monkeypatch.setattr(mnistlab.train, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.train_run(SMALL, data_dir=mnist_dir, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_export_onnx_off_writes_no_onnx_file(tmp_path, mnist_dir):
    run_dir = pipeline.train_run(TINY, data_dir=mnist_dir, out_dir=tmp_path / "run")
    assert (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()
    assert not (run_dir / "model.onnx").exists()
    assert json.loads((run_dir / "config.json").read_text())["export_onnx"] is False


def test_a_failed_export_warns_in_one_line_and_keeps_the_trained_run(
    tmp_path, mnist_dir, monkeypatch
):
    from mnistlab import export
    from mnistlab.errors import RunError

    def broken(run_dir):
        raise RunError(f"ONNX export of {run_dir} failed: no converter\nfor this layer")

    monkeypatch.setattr(export, "export_onnx", broken)
    messages = []
    hooks = pipeline.Hooks(on_phase=messages.append)
    config = TINY.replace(export_onnx=True)
    run_dir = pipeline.train_run(config, data_dir=mnist_dir, out_dir=tmp_path / "run", hooks=hooks)
    warnings = [message for message in messages if message.startswith("warning:")]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "no converter" in warnings[0] and "model.keras is kept" in warnings[0]
    assert (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()
    assert not (run_dir / "model.onnx").exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]


def test_the_names_the_command_line_calls_stay_in_pipeline():
    from mnistlab import compare, exclusion, export, figures

    assert pipeline.export_onnx is export.export_onnx
    assert pipeline.with_exclusion is exclusion.with_exclusion
    assert pipeline.compare_runs is compare.compare_runs
    assert pipeline.render_figures is figures.render_figures
    for name in ("train_run", "evaluate_run", "write_report", "ensemble_run", "Hooks"):
        assert callable(getattr(pipeline, name))


def validation_scores(run_dir, mnist_dir):
    """(accuracy, loss) of the run's saved model on the validation images its training held out."""
    from mnistlab.data import split_validation
    from mnistlab.inference import predict_probabilities

    config = runs.read_config(run_dir)
    dataset = pipeline.load_for_config(config, mnist_dir)
    *_, images, labels = split_validation(
        dataset.train_images, dataset.train_labels, config.validation_split, config.seed
    )
    probabilities = predict_probabilities(runs.load_model(run_dir), images)
    accuracy = np.mean(probabilities.argmax(axis=1) == labels)
    # Categorical cross-entropy as Keras computes it, probabilities clipped at 1e-7.
    loss = -np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1)))
    return accuracy, loss


def test_averaged_weights_are_the_ones_validated_and_saved(tmp_path, mnist_dir):
    """With ema_momentum, each epoch validates the average, and the run saves it: the saved
    model scores on the held-out images what the last epoch's validation said."""
    config = SMALL.replace(ema_momentum=0.9)
    averaged = pipeline.train_run(config, data_dir=mnist_dir, out_dir=tmp_path / "averaged")
    last = pipeline.train_run(SMALL, data_dir=mnist_dir, out_dir=tmp_path / "last")
    # The same seed and steps: only the averaging differs.
    assert not np.allclose(weights(averaged)[0], weights(last)[0], atol=1e-3)
    scores = {run_dir: validation_scores(run_dir, mnist_dir) for run_dir in (averaged, last)}
    for run_dir, (accuracy, loss) in scores.items():
        history = json.loads((run_dir / "history.json").read_text())
        assert accuracy == pytest.approx(history["val_accuracy"][-1], abs=1e-6)
        assert loss == pytest.approx(history["val_loss"][-1], rel=1e-4)
    assert scores[averaged][1] != pytest.approx(scores[last][1], rel=1e-3)


@pytest.mark.slow
def test_training_on_every_image_still_calibrates_batch_norm(tmp_path, mnist_dir, capsys):
    """--validation-split 0 trains on every image and validates nothing; batch norm is still
    calibrated (when training ends), so one short epoch of cnn-best tests far above chance."""
    from tests.helpers import run_cli

    run_dir = tmp_path / "run"
    code, out, err = run_cli(
        capsys,
        "train",
        "--model",
        "cnn-best",
        "--epochs",
        "1",
        "--validation-split",
        "0",
        "--no-mixed-precision",
        "--train-limit",
        "6000",
        "--test-limit",
        "1000",
        "--out",
        run_dir,
        "--data-dir",
        mnist_dir,
    )
    assert code == 0, err
    assert "epoch 1/1" in out + err and "val_" not in out + err
    history = json.loads((run_dir / "history.json").read_text())
    assert set(history) == {"loss", "accuracy"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["final_epoch"]) == {"loss", "accuracy"}
    assert metrics["test"]["accuracy"] > 0.6  # chance is 0.1; uncalibrated it scores about that
    assert "val_accuracy" not in (run_dir / "report.html").read_text()


@pytest.mark.slow
def test_seed_model_reaches_the_notebooks_accuracy(tmp_path, mnist_dir):
    """The full seed configuration: 10 epochs on all 60k images."""
    run_dir = pipeline.train_run(Config(), data_dir=mnist_dir, out_dir=tmp_path / "seed")
    accuracy = runs.read_json(run_dir, "metrics.json")["test"]["accuracy"]
    assert accuracy >= 0.97


def test_interrupted_checkpointed_run_resumes_where_it_stopped(tmp_path, mnist_dir, capsys):
    """With checkpoints, Ctrl-C after two of four epochs keeps the run; --resume finishes it
    with the very weights an uninterrupted run ends with."""
    from mnistlab.pipeline import Hooks
    from tests.helpers import run_cli

    class StopAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    # Shifted images, a warm-up and averaged weights too: their randomness, schedule and
    # average must resume as well.
    config = SMALL.replace(
        epochs=4, checkpoint=True, shift_pixels=1, warmup_epochs=1.5, ema_momentum=0.9
    )
    run_dir = tmp_path / "run"
    messages = []
    hooks = Hooks(on_phase=messages.append, fit_callbacks=[StopAfterSecondEpoch()])
    with pytest.raises(KeyboardInterrupt):
        pipeline.train_run(config, data_dir=mnist_dir, out_dir=run_dir, hooks=hooks)
    assert runs.Run(run_dir).checkpointed_epochs() == 2
    assert "resume with `mnistlab train --resume" in messages[-1]
    assert len(runs.Run(run_dir).read_epoch_log()["loss"]) == 2

    code, out, _ = run_cli(capsys, "train", "--resume", run_dir, "--data-dir", mnist_dir)
    assert code == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_accuracy"]) == 4
    assert not (run_dir / runs.CHECKPOINT_DIR).exists() and not (run_dir / runs.EPOCH_LOG).exists()
    assert json.loads((run_dir / "metrics.json").read_text())["test"]["num_examples"] == 500
    uninterrupted = pipeline.train_run(config, data_dir=mnist_dir, out_dir=tmp_path / "whole")
    for resumed, whole in zip(weights(run_dir), weights(uninterrupted), strict=True):
        assert np.array_equal(resumed, whole)

    code, _, err = run_cli(capsys, "train", "--resume", run_dir)
    assert code == 1 and "no checkpoint" in err


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_checkpoint_of_a_changed_network_is_kept_and_refused_in_one_line(
    tmp_path, mnist_dir, capsys, monkeypatch
):
    """A checkpoint saved before a model's layers changed (an older mnistlab) cannot be
    resumed: one line says so, nothing is deleted, and no resume hint is printed."""
    from mnistlab import models
    from mnistlab.pipeline import Hooks
    from tests.helpers import run_cli

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    hooks = Hooks(fit_callbacks=[StopAfterFirstEpoch()])
    with pytest.raises(KeyboardInterrupt):
        pipeline.train_run(
            SMALL.replace(epochs=3, checkpoint=True),
            data_dir=mnist_dir,
            out_dir=run_dir,
            hooks=hooks,
        )
    kept = sorted(path.name for path in (run_dir / runs.CHECKPOINT_DIR).iterdir())

    def narrower_seed_mlp(dtype=None):
        return keras.Sequential(
            [
                keras.Input(shape=(784,)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ],
            name="seed_mlp",
        )

    monkeypatch.setitem(models.BUILDERS, "seed-mlp", narrower_seed_mlp)
    code, out, err = run_cli(capsys, "train", "--resume", run_dir, "--data-dir", mnist_dir)
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in err
    assert "cannot be resumed" in err and "seed-mlp" in err
    assert "--resume" not in out + err
    assert runs.Run(run_dir).checkpointed_epochs() == 1
    assert sorted(path.name for path in (run_dir / runs.CHECKPOINT_DIR).iterdir()) == kept


def test_warm_imports_loads_the_evaluation_stack_in_the_background():
    """train_run overlaps these imports with training; in a fresh process nothing else has
    imported them yet."""
    script = (
        "import sys\n"
        "from mnistlab import figures\n"
        "assert 'sklearn.metrics' not in sys.modules and 'seaborn' not in sys.modules\n"
        "thread = figures.warm_imports()\n"
        "assert thread.daemon\n"
        "thread.join(120)\n"
        "assert 'sklearn.metrics' in sys.modules and 'seaborn' in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr


def test_init_from_starts_where_the_given_run_ended(tmp_path, mnist_dir):
    from mnistlab.errors import ConfigError

    first = pipeline.train_run(SMALL, data_dir=mnist_dir, out_dir=tmp_path / "first")
    # A learning rate too small to move the weights: the result is the starting point.
    still = SMALL.replace(epochs=1, learning_rate=1e-9, seed=3)
    tuned = pipeline.train_run(
        still.replace(init_from=str(first)), data_dir=mnist_dir, out_dir=tmp_path / "tuned"
    )
    for left, right in zip(weights(first), weights(tuned), strict=True):
        np.testing.assert_allclose(left, right, atol=1e-6)
    assert json.loads((tuned / "config.json").read_text())["init_from"] == str(first)
    accuracy = {
        d.name: runs.read_json(d, "metrics.json")["test"]["accuracy"] for d in (first, tuned)
    }
    assert accuracy["tuned"] == pytest.approx(accuracy["first"], abs=0.002)

    scratch = pipeline.train_run(still, data_dir=mnist_dir, out_dir=tmp_path / "scratch")
    assert runs.read_json(scratch, "metrics.json")["test"]["accuracy"] < accuracy["first"] - 0.3

    with pytest.raises(ConfigError, match="holds a seed-mlp model; this run trains cnn"):
        pipeline.train_run(
            Config.for_model("cnn", init_from=str(first)),
            data_dir=mnist_dir,
            out_dir=tmp_path / "bad",
        )
    assert not (tmp_path / "bad").exists()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_freed_memory_hands_a_fragmented_heap_back():
    # 3,000 blocks of 64 KiB come from the heap (below glibc's mmap threshold); keeping every
    # tenth alive stops glibc trimming the freed ones by itself.
    script = """
from mnistlab.heap import release_freed_memory

def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

blocks = [bytearray(b"x" * 65536) for _ in range(3000)]
kept = blocks[::10]
del blocks
before = resident_mib()
released = release_freed_memory()
print(released, before, resident_mib())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    released, before, after = result.stdout.split()
    assert released == "True"
    assert float(before) - float(after) > 100  # Of the ~170 MiB freed.


ARENAS_SCRIPT = """
import ctypes, sys, tempfile, threading
from mnistlab.heap import limit_arenas

if sys.argv[1] == "limit":
    assert limit_arenas(1)
kept = []

def allocate():
    kept.append([bytearray(4096) for _ in range(100)])

threads = [threading.Thread(target=allocate) for _ in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(open(report.name).read().count("<heap nr="))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_limit_arenas_makes_new_threads_share_the_heap():
    counts = {}
    for mode in ("free", "limit"):
        result = subprocess.run(
            [sys.executable, "-c", ARENAS_SCRIPT, mode], capture_output=True, text=True, check=True
        )
        counts[mode] = int(result.stdout)
    assert counts["limit"] == 1 < counts["free"]
