"""What a sweep found: each trial's outcome, their ranking and summary, and the files that
hold them in the sweep directory: results.json, sweep.html and best_config.json.

Ranking and summing are pure functions; the test accuracy is shown, never used to rank.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistlab import fileio, run_tables, runs
from mnistlab.config import Config

# The metric ASHA and the ranking use: accuracy on the held-out validation split.
METRIC = "val_accuracy"
RESULTS_FILE = "results.json"
HTML_FILE = "sweep.html"
BEST_CONFIG_FILE = "best_config.json"


@dataclass
class TrialOutcome:
    """What one trial did, as the ranked table shows it."""

    trial_id: str
    status: str  # "finished", "stopped" (by ASHA), "error", "unfinished" (interrupted)
    params: dict[str, Any]  # the searched fields' values
    planned_epochs: int
    epochs: int = 0  # epochs reported to Tune
    val_accuracy: float | None = None  # at the last reported epoch
    test_accuracy: float | None = None  # finished trials only
    fit_seconds: float = 0.0  # time spent in epochs, summed
    node_id: str | None = None
    run_dir: str | None = None
    error: str | None = None

    @property
    def skipped_seconds(self) -> float:
        """Training time early stopping saved: the epochs left, at this trial's pace."""
        if self.status != "stopped" or not self.epochs:
            return 0.0
        return (self.planned_epochs - self.epochs) * self.fit_seconds / self.epochs


STATUS_ORDER = {"finished": 0, "stopped": 1, "unfinished": 2, "error": 3}


def rank(outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
    """Finished trials by validation accuracy, then stopped ones (longest-lived first), then
    the rest; ties in trial order. The test accuracy plays no part."""

    def key(outcome: TrialOutcome):
        accuracy = outcome.val_accuracy if outcome.val_accuracy is not None else -math.inf
        epochs = 0 if outcome.status == "finished" else -outcome.epochs
        return (STATUS_ORDER[outcome.status], epochs, -accuracy, outcome.trial_id)

    return sorted(outcomes, key=key)


def summarize(outcomes: list[TrialOutcome], wall_seconds: float | None) -> dict[str, Any]:
    """Counts and times over all trials; ``outcomes`` ranked, best first."""
    best = outcomes[0] if outcomes and outcomes[0].status == "finished" else None
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUS_ORDER}
    fit_seconds = sum(o.fit_seconds for o in outcomes)
    skipped = sum(o.skipped_seconds for o in outcomes)
    return {
        "trials": len(outcomes),
        **counts,
        "best_trial": best.trial_id if best else None,
        "best_val_accuracy": best.val_accuracy if best else None,
        "best_test_accuracy": best.test_accuracy if best else None,
        "epochs_trained": sum(o.epochs for o in outcomes),
        "epochs_skipped_by_early_stopping": sum(
            o.planned_epochs - o.epochs for o in outcomes if o.status == "stopped"
        ),
        "fit_seconds": fit_seconds,
        "fit_seconds_saved_by_early_stopping": skipped,
        "wall_seconds": wall_seconds,
        "nodes": sorted({o.node_id for o in outcomes if o.node_id}),
    }


def table(outcomes: list[TrialOutcome], searched: list[str]) -> tuple[list[str], list[list]]:
    """Headers and rows of the ranked table (terminal and sweep.html)."""
    headers = ["trial", "status", "trained", *searched]
    headers += ["val acc", "test acc", "fit s", "node", "run directory"]
    rows = []
    for outcome in outcomes:
        status = outcome.status
        if status == "error" and outcome.error:
            status = f"error: {outcome.error}"
        rows.append(
            [
                outcome.trial_id,
                status,
                f"{outcome.epochs}/{outcome.planned_epochs}",
                *(outcome.params.get(name) for name in searched),
                outcome.val_accuracy,
                outcome.test_accuracy,
                outcome.fit_seconds,
                (outcome.node_id or "")[:8],
                outcome.run_dir or "",
            ]
        )
    return headers, rows


@dataclass
class SweepResult:
    sweep_dir: Path
    outcomes: list[TrialOutcome]  # ranked, best first
    summary: dict[str, Any]
    searched: list[str]
    interrupted: bool = False
    best_config: Config | None = field(default=None)


def write_results(result: SweepResult) -> None:
    """results.json, sweep.html and (when a trial finished) best_config.json."""
    headers, rows = table(result.outcomes, result.searched)
    fileio.write_json(
        result.sweep_dir / RESULTS_FILE,
        {
            "metric": METRIC,
            "summary": result.summary,
            "trials": [dataclasses.asdict(o) for o in result.outcomes],
        },
    )
    # The page links each run by a path relative to itself, so the sweep directory can move.
    relative = [
        [*row[:-1], os.path.relpath(row[-1], result.sweep_dir) if row[-1] else ""] for row in rows
    ]
    fileio.write_text(
        result.sweep_dir / HTML_FILE, run_tables.render_sweep(headers, relative, result.summary)
    )
    best = result.outcomes[0] if result.outcomes else None
    if best is not None and best.status == "finished":
        result.best_config = runs.read_config(Path(best.run_dir))
        fileio.write_json(result.sweep_dir / BEST_CONFIG_FILE, result.best_config.to_dict())
