"""Audit directories (`mnistlab audit`): their layout, and the only code that writes or reads
them.

    audits/<YYYYmmdd-HHMMSS>-<dataset>-<model>/
        config.json  fold_of_image.npy  fold-<k>.npy (one per finished fold)  probabilities.npy
        label_issues.csv  candidates.csv  duplicates.csv  outliers.csv  summary.json  *.png
        audit.html

``Audit`` owns the paths of its files and reads and writes them, each atomically; an audit
directory is created and removed like a run's (``runs.new_or_resumed``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from mnistlab.config import Config
from mnistlab.errors import RunError
from mnistlab.fileio import write_json, write_png, write_text
from mnistlab.runs import CONFIG_FILE, Run, read_json

AUDITS_ROOT = "audits"
FOLD_ASSIGNMENT_FILE = "fold_of_image.npy"
PROBABILITIES_FILE = "probabilities.npy"
LABEL_ISSUES_FILE = "label_issues.csv"
# The review queue: each split's lowest label qualities, flagged or not.
CANDIDATES_FILE = "candidates.csv"
DUPLICATES_FILE = "duplicates.csv"
OUTLIERS_FILE = "outliers.csv"
SUMMARY_FILE = "summary.json"
AUDIT_REPORT_FILE = "audit.html"
AUDIT_FIGURE_FILES = {
    "label_issues": "label_issues.png",
    "duplicates": "duplicates.png",
    "outliers": "outliers.png",
}


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


class Audit:
    """An audit directory (`mnistlab audit`): where each of its files lives, and reading and
    writing them.

    Args:
        path: the audit directory; it need not exist yet.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / CONFIG_FILE
        self.fold_assignment_path = self.path / FOLD_ASSIGNMENT_FILE
        self.probabilities_path = self.path / PROBABILITIES_FILE
        self.label_issues_path = self.path / LABEL_ISSUES_FILE
        self.candidates_path = self.path / CANDIDATES_FILE
        self.duplicates_path = self.path / DUPLICATES_FILE
        self.outliers_path = self.path / OUTLIERS_FILE
        self.summary_path = self.path / SUMMARY_FILE
        self.report_path = self.path / AUDIT_REPORT_FILE

    def __repr__(self) -> str:
        return f"Audit({str(self.path)!r})"

    def figure_path(self, name: str) -> Path:
        """Where figure ``name`` (a key of AUDIT_FIGURE_FILES) is saved."""
        return self.path / AUDIT_FIGURE_FILES[name]

    def fold_path(self, fold: int) -> Path:
        """Where fold ``fold`` (0-based) keeps its held-out images' probabilities."""
        return self.path / f"fold-{fold + 1}.npy"

    def finished_folds(self, folds: int) -> list[int]:
        """The 0-based folds whose probabilities are saved (an interrupted audit resumes after
        them)."""
        return [fold for fold in range(folds) if self.fold_path(fold).is_file()]

    def remove_folds(self, folds: int) -> None:
        for fold in range(folds):
            self.fold_path(fold).unlink(missing_ok=True)

    def is_finished(self) -> bool:
        """Whether the audit finished: its summary is written last."""
        return self.summary_path.is_file()

    def read_config(self) -> Config:
        return Run(self.path).read_config()

    def write_config(self, config: Config) -> None:
        write_json(self.config_path, config.to_dict())

    def read_summary(self) -> dict[str, Any]:
        return read_json(self.path, SUMMARY_FILE)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary)

    def write_figures(self, figures: dict[str, bytes]) -> None:
        """PNG bytes keyed like AUDIT_FIGURE_FILES."""
        for name, png in figures.items():
            write_png(self.figure_path(name), png)

    def write_report(self, html: str) -> Path:
        write_text(self.report_path, html)
        return self.report_path

    def read_candidates(self) -> list[dict[str, str]]:
        """The review queue's rows (candidates.csv) as written, train's first, each in rank
        order."""
        path = self.candidates_path
        try:
            return list(csv.DictReader(path.read_text().splitlines()))
        except (OSError, csv.Error) as error:
            raise RunError(f"{path} cannot be read ({error})") from None

    def read_flagged_test_indices(self) -> set[int]:
        """The test-set indices the audit flagged as likely label errors."""
        path = self.label_issues_path
        try:
            rows = csv.DictReader(path.read_text().splitlines())
            return {int(row["index"]) for row in rows if row["split"] == "test"}
        except (OSError, KeyError, ValueError, csv.Error) as error:
            raise RunError(f"{path} cannot be read ({error})") from None
