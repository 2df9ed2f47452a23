"""Several runs side by side, from their run directories alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mnistlab import report, runs


def compare_runs(run_dirs: Sequence[str | Path]) -> tuple[list[str], list[list]]:
    """Headers and rows of a side-by-side table of runs (see report.comparison_table)."""
    named = []
    for run in map(runs.Run, run_dirs):
        named.append((str(run.path), run.read_config_values(), run.read_metrics()))
    return report.comparison_table(named)
