"""Several runs side by side, from their run directories alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mnistlab import runs
from mnistlab.config import AUDIT_ONLY


def compare_runs(run_dirs: Sequence[str | Path]) -> tuple[list[str], list[list]]:
    """Headers and rows of a side-by-side table of runs (see comparison_table)."""
    named = []
    for run in map(runs.Run, run_dirs):
        named.append((str(run.path), run.read_config_values(), run.read_metrics()))
    return comparison_table(named)


def comparison_table(named_runs: Sequence[tuple[str, dict, dict]]) -> tuple[list[str], list[list]]:
    """Headers and rows comparing runs given as (name, config, metrics).

    Only the config fields that differ between the runs get a column; never ``model``, which
    the model column shows already (an ensemble's members included), nor audit-only fields.
    """
    keys = [
        key
        for key in dict.fromkeys(key for _, config, _ in named_runs for key in config)
        if key not in ("model", "model_input", *AUDIT_ONLY)
    ]
    differing = [
        key for key in keys if len({repr(config.get(key)) for _, config, _ in named_runs}) > 1
    ]
    headers = ["run", "model", *differing, "test accuracy", "test loss", "fit (s)"]
    rows = []
    for name, config, metrics in named_runs:
        fit_seconds = metrics.get("timings", {}).get("fit_seconds")
        rows.append(
            [
                name,
                metrics["model"],
                *(config.get(key) for key in differing),
                metrics["test"]["accuracy"],
                metrics["test"]["loss"],
                fit_seconds,
            ]
        )
    return headers, rows
