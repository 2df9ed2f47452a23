"""Run directories: their layout, and the only code that writes or reads them.

    runs/<YYYYmmdd-HHMMSS>-<model>/
        config.json  model.keras  model.onnx  history.json  metrics.json  *.png  report.html

A sweep trial the scheduler stopped early keeps config.json, history.json (the epochs it
reached), its checkpoint if it had one, and status.json saying so; it has no model or metrics.

``Run`` owns the paths of its files and reads and writes them (``audits.Audit`` does the same
for an audit directory); ``new_or_resumed`` creates a directory for new work, a run's or an
audit's, and removes it if the work fails. Every file is written to a temporary name and
renamed into place (``fileio``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mnistlab.config import Config
from mnistlab.errors import ConfigError, RunError
from mnistlab.fileio import atomic_path, write_json, write_png, write_text

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
ONNX_FILE = "model.onnx"
# The not-a-digit head's threshold and how it was chosen (notdigit.py); absent without a head.
NOT_DIGIT_FILE = "not_digit.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
FIGURE_FILES = {
    "samples": "samples.png",
    "training_curves": "training_curves.png",
    "confusion_matrix": "confusion_matrix.png",
    "confusion_matrix_normalized": "confusion_matrix_normalized.png",
    "confident_errors": "confident_errors.png",
    "sample_prediction": "sample_prediction.png",
    "reliability": "reliability.png",
}
# The names of a run's figures, in the order FIGURE_FILES lists them.
FIGURES = tuple(FIGURE_FILES)
REPORT_FILE = "report.html"
# Only in an ensemble's run directory: its members and how they are combined.
ENSEMBLE_FILE = "ensemble.json"
# Present only while a checkpointed run is unfinished: Keras's BackupAndRestore files and one
# CSV row per finished epoch (history across resumes).
CHECKPOINT_DIR = "checkpoint"
EPOCH_LOG = "epochs.csv"
# A run trained with `--exclude` keeps the excluded training indices it used.
EXCLUDED_FILE = "excluded.json"
# Only in a sweep trial stopped early: who stopped it, and after how many of its epochs.
STATUS_FILE = "status.json"


def new_run_dir(root: Path, model_name: str) -> Path:
    """A fresh ``root/<timestamp>-<model>`` path that does not exist yet."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = Path(root) / f"{stamp}-{model_name}"
    suffix = 2
    while candidate.exists():
        candidate = Path(root) / f"{stamp}-{model_name}-{suffix}"
        suffix += 1
    return candidate


def prepare_run_dir(path: Path) -> Path:
    """Create ``path`` for a new run; refuse to mix a new run into a non-empty directory."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunError(
            f"output directory {path} already exists and is not empty; choose another --out"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_run_dir(path: Path) -> None:
    """Delete an unfinished run directory (an interrupted or abandoned run)."""
    shutil.rmtree(path, ignore_errors=True)


def read_json(run_dir: Path, name: str) -> Any:
    """The JSON file ``name`` of a run or audit directory; a RunError names what is wrong."""
    path = Path(run_dir) / name
    if not Path(run_dir).is_dir():
        raise RunError(f"run directory {run_dir} does not exist")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path} is missing; is {run_dir} a mnistlab run directory?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"{path} is not readable JSON ({error})") from None


def read_config(run_dir: Path) -> Config:
    return Run(run_dir).read_config()


def load_model(run_dir: Path):
    """The run's trained Keras model (plain Keras: no custom objects needed)."""
    return Run(run_dir).load_model()


def save_model(model, run_dir: Path) -> Path:
    return Run(run_dir).save_model(model)


@contextlib.contextmanager
def new_or_resumed(
    path: Path,
    resume: bool = False,
    resumable: Callable[[], bool] = lambda: False,
    on_kept: Callable[[BaseException], None] = lambda error: None,
) -> Iterator[Path]:
    """A directory for new work, or the one being resumed, kept only if the work can go on.

    A new directory is created empty (``prepare_run_dir``). If the body raises, the directory
    is removed, unless ``resumable()`` finds something in it to resume from: then it stays, and
    ``on_kept(error)`` can say how to resume. A resumed directory is never removed: it held
    the user's work before this call.

    Args:
        path: the directory.
        resume: ``path`` is an interrupted run or audit to carry on; it is used as it is.
        resumable: called after a failure; True keeps the directory.
        on_kept: called with the failure when the directory is kept because it is resumable.

    Yields:
        The directory.
    """
    path = Path(path) if resume else prepare_run_dir(path)
    try:
        yield path
    except BaseException as error:
        if resumable():
            on_kept(error)
        elif not resume:
            remove_run_dir(path)
        raise


class Run:
    """A run directory: where each of its files lives, and reading and writing them.

    Args:
        path: the run directory; it need not exist yet.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / CONFIG_FILE
        self.model_path = self.path / MODEL_FILE
        self.onnx_path = self.path / ONNX_FILE
        self.not_digit_path = self.path / NOT_DIGIT_FILE
        self.history_path = self.path / HISTORY_FILE
        self.metrics_path = self.path / METRICS_FILE
        self.report_path = self.path / REPORT_FILE
        self.ensemble_path = self.path / ENSEMBLE_FILE
        self.checkpoint_dir = self.path / CHECKPOINT_DIR
        self.epoch_log_path = self.path / EPOCH_LOG
        self.excluded_path = self.path / EXCLUDED_FILE
        self.status_path = self.path / STATUS_FILE

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def figure_path(self, name: str) -> Path:
        """Where figure ``name`` (a key of FIGURE_FILES) is saved."""
        return self.path / FIGURE_FILES[name]

    # The JSON files.

    def read_config(self) -> Config:
        try:
            return Config.from_dict(self.read_config_values())
        except ConfigError as error:
            raise RunError(f"{self.config_path}: {error}") from None

    def read_config_values(self) -> dict[str, Any]:
        """config.json as saved, unchecked (a report shows what the run recorded)."""
        return read_json(self.path, CONFIG_FILE)

    def write_config(self, config: Config) -> None:
        write_json(self.config_path, config.to_dict())

    def read_history(self) -> dict[str, list[float]]:
        return read_json(self.path, HISTORY_FILE)

    def write_history(self, history: dict[str, list[float]]) -> None:
        write_json(self.history_path, history)

    def has_metrics(self) -> bool:
        """Whether the run was evaluated: metrics.json is written once training is scored."""
        return self.metrics_path.is_file()

    def read_metrics(self) -> dict[str, Any]:
        self._refuse_if_stopped("it has no test evaluation")
        return read_json(self.path, METRICS_FILE)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics_path, metrics)

    def write_ensemble(self, content: dict[str, Any]) -> None:
        write_json(self.ensemble_path, content)

    def ensemble_members(self) -> list[dict] | None:
        """The members listed in an ensemble's ENSEMBLE_FILE; None for an ordinary run."""
        if not self.ensemble_path.is_file():
            return None
        return read_json(self.path, ENSEMBLE_FILE)["members"]

    def model_label(self, config: Config) -> str:
        """What the model is called in reports: the config's model, or the ensemble's members."""
        members = self.ensemble_members()
        if members is None:
            return config.model
        return f"ensemble of {len(members)} ({', '.join(member['model'] for member in members)})"

    def has_excluded(self) -> bool:
        return self.excluded_path.is_file()

    def read_excluded(self) -> list[int]:
        """The training indices the run left out, as it kept them (``train --exclude``)."""
        return read_json(self.path, EXCLUDED_FILE)

    def write_excluded(self, indices: list[int]) -> None:
        write_json(self.excluded_path, indices)

    # A sweep trial stopped early.

    def mark_stopped(self, epochs: int, planned_epochs: int, by: str) -> None:
        """Record that ``by`` (e.g. the sweep's scheduler) stopped training after ``epochs``
        of ``planned_epochs``: the directory is kept, and never read as a finished run."""
        status = {"status": "stopped", "by": by, "epochs": epochs, "planned_epochs": planned_epochs}
        write_json(self.status_path, status)

    def stopped(self) -> dict[str, Any] | None:
        """``mark_stopped``'s record, or None for a run that was not stopped (or was trained
        to the end afterwards: it has metrics)."""
        if self.has_metrics() or not self.status_path.is_file():
            return None
        status = read_json(self.path, STATUS_FILE)
        return status if isinstance(status, dict) and status.get("status") == "stopped" else None

    def _refuse_if_stopped(self, missing: str) -> None:
        """A RunError saying why a stopped trial lacks what a finished run has."""
        status = self.stopped()
        if status is not None:
            raise RunError(
                f"{self.path} was stopped by {status.get('by', 'its sweep')} after"
                f" {status.get('epochs')} of {status.get('planned_epochs')} epochs: {missing}"
            )

    # The model.

    def save_model(self, model) -> Path:
        from mnistlab.backend import tensorflow_left_alone

        # Keras wants the .keras suffix, which atomic_path keeps.
        with atomic_path(self.model_path) as temp, tensorflow_left_alone():
            model.save(temp)
        return self.model_path

    def load_model(self):
        """The trained Keras model (plain Keras: no custom objects needed)."""
        import keras

        path = self.model_path
        if not path.is_file():
            self._refuse_if_stopped("it has no trained model")
            raise RunError(f"{path} is missing; the run did not finish training")
        try:
            return keras.saving.load_model(path, compile=False)  # inference only: no optimizer
        except Exception as error:  # Keras raises many kinds for a damaged archive.
            raise RunError(
                f"{path} cannot be loaded by Keras ({type(error).__name__}: {error})"
            ) from None

    def has_onnx(self) -> bool:
        return self.onnx_path.is_file()

    def read_not_digit(self) -> dict[str, Any] | None:
        """The not-a-digit head's settings (``threshold``, ...), or None for a run without one."""
        if not self.not_digit_path.is_file():
            return None
        return read_json(self.path, NOT_DIGIT_FILE)

    def write_not_digit(self, settings: dict[str, Any]) -> None:
        write_json(self.not_digit_path, settings)

    # The checkpoint of an unfinished run.

    def checkpointed_epochs(self) -> int:
        """How many epochs an unfinished run's checkpoint holds (0: none)."""
        metadata = self.checkpoint_dir / "training_metadata.json"
        try:
            return int(json.loads(metadata.read_text())["epoch"])  # Keras stores epochs finished
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def read_epoch_log(self) -> dict[str, list[float]]:
        """The per-epoch history from EPOCH_LOG; a repeated epoch (re-run after a resume) counts
        once."""
        path = self.epoch_log_path
        try:
            rows = list(csv.DictReader(path.read_text().splitlines()))
        except OSError as error:
            raise RunError(f"{path} cannot be read ({error})") from None
        by_epoch = {int(row.pop("epoch")): row for row in rows}
        ordered = [by_epoch[epoch] for epoch in sorted(by_epoch)]
        names = list(ordered[0]) if ordered else []
        # Keras's CSVLogger writes val_ columns of "NA" for a run without validation.
        names = [name for name in names if any(row[name] != "NA" for row in ordered)]
        return {name: [float(row[name]) for row in ordered] for name in names}

    def remove_epoch_log(self) -> None:
        self.epoch_log_path.unlink(missing_ok=True)

    # Figures and the report.

    def write_figures(self, figures: dict[str, bytes]) -> None:
        """PNG bytes keyed like FIGURE_FILES."""
        for name, png in figures.items():
            write_png(self.figure_path(name), png)

    def read_figures(self) -> dict[str, bytes]:
        """The PNG figures keyed like FIGURE_FILES; a missing one is a RunError."""
        figures = {}
        for name in FIGURE_FILES:
            path = self.figure_path(name)
            try:
                figures[name] = path.read_bytes()
            except OSError:
                raise RunError(
                    f"{path} is missing; run `mnistlab evaluate {self.path}` to redraw it"
                ) from None
        return figures

    def write_report(self, html: str) -> Path:
        write_text(self.report_path, html)
        return self.report_path
