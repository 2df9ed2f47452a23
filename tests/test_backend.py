"""Backend choice per model, JAX runs that never load TensorFlow, and the compilation cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab import backend

SMALL_FLAGS = ["--epochs", "1", "--train-limit", "2000", "--test-limit", "300"]


def python(script: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter (a backend can be chosen once per process)."""
    full_env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    full_env.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=full_env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_each_model_gets_its_backend_and_keras_backend_overrides_it(tmp_path):
    script = (
        "import os, sys; from mnistlab import backend\n"
        "print(backend.choose(sys.argv[1]) if len(sys.argv) > 1 else backend.choose('seed-mlp'),"
        " os.environ['KERAS_BACKEND'], 'keras' in sys.modules)\n"
    )
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    assert python(script, env).stdout.split() == ["jax", "jax", "False"]
    assert python(script.replace("'seed-mlp'", "'cnn-best'"), env).stdout.split()[0] == "tensorflow"
    assert python(script.replace("'seed-mlp'", "'cnn-fast'"), env).stdout.split()[0] == "jax"
    overridden = python(script, {**env, "KERAS_BACKEND": "tensorflow"}).stdout.split()
    assert overridden[:2] == ["tensorflow", "tensorflow"]


def test_keras_imports_without_its_optional_libraries_which_stay_importable_after():
    script = (
        "import sys; from mnistlab import backend\n"
        "backend.choose('seed-mlp')\n"
        "with backend.optional_imports_deferred():\n"
        "    import keras\n"
        "print('during', *[name in sys.modules for name in backend.OPTIONAL_FOR_KERAS])\n"
        "from sklearn.metrics import accuracy_score\n"
        "import pandas, matplotlib.pyplot\n"
        "print('after', accuracy_score([1, 2], [1, 3]), pandas.DataFrame([[1]]).shape[0])\n"
        "with backend.optional_imports_deferred():\n"  # Already imported: left as it is.
        "    import sklearn\n"
        "print('again', sklearn.__name__)\n"
    )
    during = ["during"] + ["False"] * len(backend.OPTIONAL_FOR_KERAS)
    assert python(script).stdout.split() == [*during, "after", "0.5", "1", "again", "sklearn"]


def test_jax_compilation_cache_lives_in_mnistlab_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert backend.jax_cache_dir() == tmp_path / "mnistlab" / "jax"


def train_in_subprocess(
    run_dir: Path,
    data_dir: Path,
    cache_home: Path,
    flags: list[str] = SMALL_FLAGS,
    env: dict | None = None,
) -> dict:
    """`mnistlab train` (seed-mlp unless ``flags`` say, backend chosen by mnistlab) in a fresh
    process; returns its metrics plus which frameworks the process had imported at the end."""
    args = ["train", *flags, "--data-dir", str(data_dir), "--out", str(run_dir)]
    script = (
        "import sys\n"
        "from mnistlab.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exit_:\n"
        "    assert not exit_.code, exit_.code\n"
        "print('MODULES', sorted(m for m in ('tensorflow', 'jax', 'torch') if m in sys.modules))\n"
        "from mnistlab import figure_workers\n"
        "print('PLOTTING', sorted(m for m in ('matplotlib', 'sklearn', 'pandas') if m in sys.modules),"
        " 'WORKERS', len(figure_workers.worker_pids()))\n"
    )
    result = python(script, {"XDG_CACHE_HOME": str(cache_home), **(env or {})})
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["modules"] = result.stdout.split("MODULES", 1)[1].split("PLOTTING")[0].strip()
    metrics["plotting"] = result.stdout.split("PLOTTING", 1)[1].strip()
    metrics["stderr"] = result.stderr
    return metrics


@pytest.mark.mnist
def test_jax_run_never_imports_tensorflow_and_survives_a_corrupt_cache(tmp_path, mnist_dir):
    pytest.importorskip("jax")
    cache_home = tmp_path / "cache"
    first = train_in_subprocess(tmp_path / "first", mnist_dir, cache_home)
    assert first["versions"]["keras_backend"] == "jax"
    assert first["modules"] == "['jax']"  # TensorFlow is installed, but a JAX run leaves it alone
    # Scoring and drawing ran in the figure worker: the training process never loaded them.
    assert first["plotting"] == "[] WORKERS 1"
    entries = [path for path in (cache_home / "mnistlab" / "jax").rglob("*") if path.is_file()]
    assert entries, "the JAX compilation cache was not written"

    for index, path in enumerate(entries):  # Every entry damaged: emptied, or garbage.
        path.write_bytes(b"\x00garbage" * (index % 2))
    second = train_in_subprocess(tmp_path / "second", mnist_dir, cache_home)
    # Same seed, same numbers, whether compiled fresh or past a damaged cache.
    assert second["test"] == first["test"]
    assert json.loads((tmp_path / "second" / "history.json").read_text()) == json.loads(
        (tmp_path / "first" / "history.json").read_text()
    )


@pytest.mark.mnist
def test_jax_traces_the_training_step_once_though_the_data_leaves_a_short_last_batch(
    tmp_path, mnist_dir
):
    pytest.importorskip("jax")
    # 1,800 training images in batches of 512: 3 full batches and 264 images left over.
    metrics = train_in_subprocess(
        tmp_path / "run", mnist_dir, tmp_path / "cache", env={"JAX_LOG_COMPILES": "1"}
    )
    assert metrics["versions"]["keras_backend"] == "jax"
    assert metrics["stderr"].count("Finished tracing train_step") == 1, metrics["stderr"][-2000:]
    assert metrics["stderr"].count("Finished tracing test_step") == 1


@pytest.mark.mnist
@pytest.mark.slow
def test_cnn_fast_trains_on_jax_alone_and_exports_through_tensorflow(tmp_path, mnist_dir):
    pytest.importorskip("jax")
    flags = [
        "--model",
        "cnn-fast",
        "--epochs",
        "2",
        "--train-limit",
        "6000",
        "--test-limit",
        "1000",
    ]
    metrics = train_in_subprocess(tmp_path / "run", mnist_dir, tmp_path / "cache", flags)
    assert metrics["versions"]["keras_backend"] == "jax"
    assert metrics["modules"] == "['jax']"
    assert metrics["test"]["accuracy"] > 0.9  # chance is 0.1
    # Batch norm calibrated: the test set scores what validation said, even this early.
    validation = json.loads((tmp_path / "run" / "history.json").read_text())["val_accuracy"][-1]
    assert abs(metrics["test"]["accuracy"] - validation) < 0.05

    # Without model.onnx, predict loads the .keras file on TensorFlow: one line per image and
    # none of TensorFlow's C++ start-up log lines.
    (tmp_path / "run" / "model.onnx").unlink()  # Written by train (in a TensorFlow process).
    from PIL import Image, ImageDraw

    one = Image.new("L", (100, 100), 0)
    ImageDraw.Draw(one).line([(50, 15), (50, 85)], fill=255, width=9)
    one.save(tmp_path / "one.png")
    predicted = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnistlab.cli",
            "predict",
            "--run",
            str(tmp_path / "run"),
            str(tmp_path / "one.png"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert predicted.stdout.startswith(f"{tmp_path / 'one.png'}: ")
    assert predicted.stderr == ""

    # The .keras file a JAX run saved exports to ONNX on TensorFlow.
    exported = subprocess.run(
        [sys.executable, "-m", "mnistlab.cli", "export", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (tmp_path / "run" / "model.onnx").is_file()
