"""Pages that are one table of runs: runs side by side (``mnistlab compare --html``) and a
sweep's ranked trials (sweep.html). Assembly only: the rows come from ``compare`` and
``sweep_results``.
"""

from __future__ import annotations

from typing import Any

from mnistlab.html_blocks import escape, page, table


def render_comparison(headers: list[str], rows: list[list]) -> str:
    """The comparison table as a self-contained HTML page."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f'<span data-value="{value!r}">{value:.4f}</span>'
        return escape("" if value is None else value)

    shown = table(headers, [[cell(value) for value in row] for row in rows], "comparison")
    return page("mnistlab: run comparison", f"<h1>Run comparison</h1><section>{shown}</section>")


def render_sweep(headers: list[str], rows: list[list], summary: dict[str, Any]) -> str:
    """A sweep's ranked trials (see sweep_results.table) and its summary as a self-contained page.
    A "run directory" cell, relative to the page, links to that run's report, or to the
    directory itself for a trial that did not finish (it has no report)."""
    status_column = headers.index("status")

    def cell(value: Any, header: str = "", status: str = "") -> str:
        if isinstance(value, float):
            return f'<span data-value="{value!r}">{value:.4g}</span>'
        if header == "run directory" and value:
            target = f"{value}/report.html" if status == "finished" else f"{value}/"
            return f'<a href="{escape(target)}">{escape(value)}</a>'
        return escape("" if value is None else value)

    facts = [[escape(key.replace("_", " ")), cell(value)] for key, value in summary.items()]
    cells = [[cell(v, h, row[status_column]) for h, v in zip(headers, row)] for row in rows]
    body = (
        "<h1>Sweep</h1><section><h2>Trials, best validation accuracy first</h2>"
        "<p>Trials are ranked by validation accuracy at their last epoch. The test accuracy is "
        "measured once per finished trial and plays no part in the ranking. A trial stopped "
        "early by the scheduler keeps its run directory (its config, its history up to the "
        "epoch it reached, its checkpoint if it had one) but has no model or test "
        "evaluation.</p>"
        + table(headers, cells, "sweep")
        + "</section><section><h2>Summary</h2>"
        + table(["", "value"], facts, "summary")
        + "</section>"
    )
    return page("mnistlab: sweep", body)
