"""The figure worker: the same results as in-process, on two processes, and never lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

SMALL_FLAGS = ["--epochs", "1", "--train-limit", "2000", "--test-limit", "300"]


def python(script: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``script`` in a fresh interpreter (no framework imported yet, as at the CLI's start)."""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr
    return result


# A run's inputs, made up but of the real shapes: the figures of one fake evaluation.
FAKE_RUN = """
import numpy as np
from mnistlab.data import Dataset
from mnistlab.evaluate import evaluate_probabilities
rng = np.random.default_rng(0)
labels = np.arange(300) % 10
images = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
probabilities = rng.random((300, 10)).astype(np.float32)
probabilities[np.arange(300), labels] += 2 * rng.random(300).astype(np.float32)
probabilities /= probabilities.sum(axis=1, keepdims=True)
dataset = Dataset("mnist", images, labels, images[:100], labels[:100], {}, {})
history = {"loss": [1.0, 0.5], "accuracy": [0.7, 0.8], "val_loss": [0.9, 0.6], "val_accuracy": [0.6, 0.7]}
"""


def test_worker_draws_the_same_figures_on_two_processes_and_the_caller_imports_no_plotting():
    script = (
        FAKE_RUN
        + """
import json, os, sys
from mnistlab import figure_workers, figures
figure_workers.start()
[evaluation] = figure_workers.run([(evaluate_probabilities, (probabilities[:100], labels[:100], 5))])
from_worker = figures.render_figures(dataset, history, evaluation, probabilities[:100])
pids = figure_workers.run([(os.getpid, ())] * 4)
plotting = sorted(m for m in ("matplotlib", "sklearn", "seaborn", "pandas") if m in sys.modules)
figure_workers.shutdown()
here = figures.render_figures(dataset, history, evaluate_probabilities(probabilities[:100], labels[:100], 5), probabilities[:100])
print(json.dumps({
    "plotting": plotting,
    "same": sorted(name for name in here if here[name] == from_worker[name]),
    "names": sorted(here),
    "worker_pids": sorted(set(pids)),
    "main_pid": os.getpid(),
    "errors": len(evaluation.top_errors),
}))
"""
    )
    result = json.loads(python(script).stdout)
    assert result["plotting"] == []  # all of it happened in the worker
    assert result["names"] == result["same"] and len(result["names"]) == 7  # byte for byte
    assert result["errors"] == 5
    # The worker and the copy it forks each took calls; the caller took none.
    assert len(result["worker_pids"]) == 2 and result["main_pid"] not in result["worker_pids"]


def test_a_killed_worker_loses_nothing():
    script = """
import os, signal
from mnistlab import figure_workers
figure_workers.start()
figure_workers.run([(int, ())])  # the worker is up
[worker] = figure_workers.worker_pids()
os.kill(worker, signal.SIGKILL)
results = figure_workers.run([(pow, (2, 10)), (os.getpid, ())])
print(results[0], results[1] == os.getpid(), figure_workers.started())
"""
    assert python(script).stdout.split() == ["1024", "True", "False"]


def test_no_worker_is_forked_once_a_framework_is_running():
    pytest.importorskip("jax")
    script = """
import os
import jax.numpy
from mnistlab import figure_workers
figure_workers.start()
print(figure_workers.started(), figure_workers.run([(os.getpid, ())])[0] == os.getpid())
"""
    assert python(script).stdout.split() == ["False", "True"]


@pytest.mark.mnist
def test_ctrl_c_in_a_terminal_stops_the_run_and_its_worker_with_one_line(tmp_path, mnist_dir):
    """Ctrl-C signals the terminal's whole process group: the worker must leave the answer to
    the main process, not print a traceback of its own or linger."""
    process = subprocess.Popen(
        # More epochs than the test waits for, even on a fast hour (~0.1 s each).
        [
            sys.executable,
            "-m",
            "mnistlab.cli",
            "train",
            "--epochs",
            "500",
            "--train-limit",
            "20000",
            "--data-dir",
            str(mnist_dir),
            "--out",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # As in a terminal: a test runner started in the background has SIGINT ignored, and
        # its children would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    # The run directory's config appears once the worker is forked and training is under way.
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "config.json").exists() and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    time.sleep(3)  # into the epochs
    os.killpg(process.pid, signal.SIGINT)
    try:
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # Ctrl-C did not stop it: leave nothing running.
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "error: interrupted"
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-s", str(process.pid)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""  # no process of that session is left
    assert not (tmp_path / "run").exists()  # no checkpoint by default: nothing half-written kept


def test_an_error_after_the_worker_started_is_one_line(tmp_path):
    """The data fails its check after the worker was forked: the worker is killed, not awaited,
    and the user sees the error, not a worker's traceback."""
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bdamaged")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnistlab.cli",
            "train",
            *SMALL_FLAGS,
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after the progress lines
    assert last.startswith("error: ") and "damaged gzip file" in last, result.stderr
    assert not (tmp_path / "run").exists()
