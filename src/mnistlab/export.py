"""ONNX export: ``model.onnx`` beside a run's ``model.keras``, which ``predict`` and ``serve``
then run through ONNX Runtime without importing a training framework.

Keras exports to ONNX through tf2onnx on TensorFlow; on JAX it would need jax2onnx, which
mnistlab does not install. A process on another backend (a seed-mlp run trains on JAX)
exports in a fresh TensorFlow process: ``python -m mnistlab.export RUN_DIR``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mnistlab import runs
from mnistlab.data import IMAGE_SIDE
from mnistlab.errors import RunError
from mnistlab.fileio import atomic_path

# The most ONNX Runtime's probabilities may differ from Keras's on the random probe images.
TOLERANCE = 1e-4


def export_onnx(run_dir: str | Path) -> Path:
    """Write ``model.onnx`` beside the run's ``model.keras`` (Keras 3's ONNX export) and check
    that ONNX Runtime reproduces the Keras probabilities.

    Returns:
        The path of ``model.onnx``.

    Raises:
        RunError: the export failed or disagrees with Keras; no ``model.onnx`` is written.
    """
    if _backend() != "tensorflow":
        return _export_in_tensorflow_process(Path(run_dir))
    import onnxruntime

    from mnistlab.models import without_augmentation

    run = runs.Run(run_dir)
    model = without_augmentation(run.load_model())
    probe = np.random.default_rng(0).random((64, IMAGE_SIDE * IMAGE_SIDE), dtype=np.float32)
    expected = np.asarray(model.predict(probe, verbose=0))  # Keras exports only a called model.
    with atomic_path(run.onnx_path) as temp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx probes np.object
        try:
            model.export(str(temp), format="onnx", verbose=False)
            session = onnxruntime.InferenceSession(str(temp), providers=["CPUExecutionProvider"])
            actual = session.run(None, {session.get_inputs()[0].name: probe})[0]
        except Exception as error:  # tf2onnx and ONNX Runtime raise many kinds
            message = str(error).splitlines()[0][:300]
            raise RunError(f"ONNX export of {run.path} failed: {message}") from None
        difference = float(np.abs(actual - expected).max())
        if difference > TOLERANCE:
            raise RunError(f"ONNX export of {run.path} disagrees with Keras by {difference:.2e}")
    return run.onnx_path


def export_onnx_or_warn(run_dir: str | Path, warn: Callable[[str], None]) -> Path | None:
    """``export_onnx``, where a failure costs only the ONNX file: ``warn`` gets one line, the
    run keeps ``model.keras`` (which ``predict`` then reads with Keras), and None is returned.
    """
    try:
        return export_onnx(run_dir)
    except Exception as error:  # Any failure: the trained run must survive it.
        lines = str(error).splitlines() or [type(error).__name__]
        warn(f"warning: no model.onnx ({lines[0][:300]}); model.keras is kept")
        return None


def _backend() -> str:
    """The Keras backend this process runs on, or will once it imports Keras."""
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def _export_in_tensorflow_process(run_dir: Path) -> Path:
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "mnistlab.export", str(run_dir)],
        capture_output=True,
        text=True,
        env=environment,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise RunError(lines[-1] if lines else f"ONNX export of {run_dir} failed")
    return runs.Run(run_dir).onnx_path


if __name__ == "__main__":
    try:
        export_onnx(sys.argv[1])
    except RunError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
