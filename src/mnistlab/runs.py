"""The run directory: its layout, and the only code that writes or reads it.

    runs/<YYYYmmdd-HHMMSS>-<model>/
        config.json  model.keras  history.json  metrics.json  *.png  report.html

Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

from mnistlab.config import Config
from mnistlab.errors import ConfigError, RunError
from mnistlab.fileio import atomic_path, atomic_write_bytes

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
ONNX_FILE = "model.onnx"
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
REPORT_FILE = "report.html"
# Only in an ensemble's run directory: its members and how they are combined.
ENSEMBLE_FILE = "ensemble.json"
# Present only while a checkpointed run is unfinished: Keras's BackupAndRestore files and one
# CSV row per finished epoch (history across resumes).
CHECKPOINT_DIR = "checkpoint"
EPOCH_LOG = "epochs.csv"
# A run trained with `--exclude` keeps the excluded training indices it used.
EXCLUDED_FILE = "excluded.json"

# The audit directory (`mnistlab audit`):
#     audits/<YYYYmmdd-HHMMSS>-<dataset>-<model>/
#         config.json  fold_of_image.npy  fold-<k>.npy (one per finished fold)  probabilities.npy
#         label_issues.csv  duplicates.csv  outliers.csv  summary.json  *.png  audit.html
AUDITS_ROOT = "audits"
FOLD_ASSIGNMENT_FILE = "fold_of_image.npy"
PROBABILITIES_FILE = "probabilities.npy"
LABEL_ISSUES_FILE = "label_issues.csv"
DUPLICATES_FILE = "duplicates.csv"
OUTLIERS_FILE = "outliers.csv"
SUMMARY_FILE = "summary.json"
AUDIT_REPORT_FILE = "audit.html"
AUDIT_FIGURE_FILES = {
    "label_issues": "label_issues.png",
    "duplicates": "duplicates.png",
    "outliers": "outliers.png",
}


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
        raise RunError(f"output directory {path} already exists and is not empty; choose another --out")
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_run_dir(path: Path) -> None:
    """Delete an unfinished run directory (an interrupted or abandoned run)."""
    shutil.rmtree(path, ignore_errors=True)


def write_json(path: Path, content: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(content, indent=2) + "\n").encode())


def write_text(path: Path, content: str) -> None:
    atomic_write_bytes(Path(path), content.encode())


def figure_png(figure, dpi: int = 100) -> bytes:
    """A matplotlib Figure rendered as PNG bytes.

    zlib level 1: these flat-colour plots encode several times faster than at the default
    level 6, for files only slightly larger.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def write_png(path: Path, png: bytes) -> None:
    atomic_write_bytes(Path(path), png)


def checkpointed_epochs(run_dir: Path) -> int:
    """How many epochs an unfinished run's checkpoint holds (0: none)."""
    metadata = Path(run_dir) / CHECKPOINT_DIR / "training_metadata.json"
    try:
        return int(json.loads(metadata.read_text())["epoch"])  # Keras stores epochs finished
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def read_epoch_log(run_dir: Path) -> dict[str, list[float]]:
    """The per-epoch history from EPOCH_LOG; a repeated epoch (re-run after a resume) counts once."""
    path = Path(run_dir) / EPOCH_LOG
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


def ensemble_members(run_dir: Path) -> list[dict] | None:
    """The members listed in an ensemble's ENSEMBLE_FILE; None for an ordinary run."""
    if not (Path(run_dir) / ENSEMBLE_FILE).is_file():
        return None
    return read_json(run_dir, ENSEMBLE_FILE)["members"]


def model_label(run_dir: Path, config: Config) -> str:
    """What a run's model is called in reports: the config's model, or the ensemble's members."""
    members = ensemble_members(run_dir)
    if members is None:
        return config.model
    return f"ensemble of {len(members)} ({', '.join(member['model'] for member in members)})"


def read_figures(run_dir: Path) -> dict[str, bytes]:
    """The run's PNG figures keyed like FIGURE_FILES; a missing one is a RunError."""
    figures = {}
    for name, filename in FIGURE_FILES.items():
        path = Path(run_dir) / filename
        try:
            figures[name] = path.read_bytes()
        except OSError:
            raise RunError(f"{path} is missing; run `mnistlab evaluate {run_dir}` to redraw it") from None
    return figures


def save_model(model, run_dir: Path) -> Path:
    path = Path(run_dir) / MODEL_FILE
    from mnistlab.backend import tensorflow_left_alone

    # Keras wants the .keras suffix, which atomic_path keeps.
    with atomic_path(path) as temp, tensorflow_left_alone():
        model.save(temp)
    return path


def read_json(run_dir: Path, name: str) -> Any:
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
    try:
        return Config.from_dict(read_json(run_dir, CONFIG_FILE))
    except ConfigError as error:
        raise RunError(f"{Path(run_dir) / CONFIG_FILE}: {error}") from None


def load_model(run_dir: Path):
    """The run's trained Keras model (plain Keras: no custom objects needed)."""
    import keras

    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise RunError(f"{path} is missing; the run did not finish training")
    try:
        return keras.saving.load_model(path, compile=False)  # inference only: no optimizer state
    except Exception as error:  # Keras raises many kinds for a damaged archive.
        raise RunError(f"{path} cannot be loaded by Keras ({type(error).__name__}: {error})") from None


def write_csv(path: Path, headers: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    atomic_write_bytes(Path(path), buffer.getvalue().encode())


def write_npy(path: Path, array) -> None:
    import numpy as np

    with atomic_path(Path(path)) as temp:
        np.save(temp, array, allow_pickle=False)


def read_npy(path: Path):
    import numpy as np

    try:
        return np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as error:
        raise RunError(f"{path} cannot be read ({error})") from None


def fold_file(audit_dir: Path, fold: int) -> Path:
    """Where fold ``fold`` (0-based) keeps its held-out images' probabilities."""
    return Path(audit_dir) / f"fold-{fold + 1}.npy"


def finished_folds(audit_dir: Path, folds: int) -> list[int]:
    """The 0-based folds whose probabilities are saved (an interrupted audit resumes after them)."""
    return [fold for fold in range(folds) if fold_file(audit_dir, fold).is_file()]


def read_excluded_train_indices(path: Path) -> list[int]:
    """The training-set indices listed in a CSV with ``split`` and ``index`` columns (such as an
    audit's label_issues.csv), sorted and without repeats; rows of other splits are ignored."""
    path = Path(path)
    try:
        rows = list(csv.DictReader(path.read_text().splitlines()))
    except FileNotFoundError:
        raise RunError(f"exclusion file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise RunError(f"exclusion file {path} cannot be read ({error})") from None
    if rows and not {"split", "index"} <= set(rows[0]):
        raise RunError(
            f"exclusion file {path} needs 'split' and 'index' columns (like an audit's"
            f" {LABEL_ISSUES_FILE}); received: {', '.join(rows[0])}"
        )
    try:
        indices = {int(row["index"]) for row in rows if row["split"] == "train"}
    except (TypeError, ValueError) as error:
        raise RunError(f"exclusion file {path} has an index that is not an integer ({error})") from None
    if any(index < 0 for index in indices):
        raise RunError(f"exclusion file {path} has a negative index")
    return sorted(indices)


def find_audit(dataset: str, root: Path = Path(AUDITS_ROOT)) -> Path | None:
    """The newest finished audit of ``dataset`` under ``root`` (None if there is none)."""
    finished = []
    for summary in Path(root).glob(f"*/{SUMMARY_FILE}"):
        try:
            if json.loads(summary.read_text()).get("dataset") == dataset:
                finished.append(summary.parent)
        except (OSError, ValueError, AttributeError):
            continue
    return max(finished, key=lambda path: (path.stat().st_mtime, path.name), default=None)


def read_flagged_test_indices(audit_dir: Path) -> set[int]:
    """The test-set indices an audit flagged as likely label errors."""
    path = Path(audit_dir) / LABEL_ISSUES_FILE
    try:
        rows = csv.DictReader(path.read_text().splitlines())
        return {int(row["index"]) for row in rows if row["split"] == "test"}
    except (OSError, KeyError, ValueError, csv.Error) as error:
        raise RunError(f"{path} cannot be read ({error})") from None
