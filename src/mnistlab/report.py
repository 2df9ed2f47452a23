"""Self-contained HTML pages: a run's report and a side-by-side comparison of runs.

This module only assembles: numbers come from ``metrics.json`` (computed by ``evaluate``) and
pictures are PNG bytes (drawn by ``plots``), inlined as data URIs so a page opens offline.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

# Short, plain CSS: readable on a laptop and a phone, no external fonts or scripts.
_STYLE = """
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6575; --line: #d9dee6; --accent: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #f6f7f9; }
main { max-width: 980px; margin: 0 auto; padding: 16px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
          padding: 16px; margin: 16px 0; overflow-x: auto; }
h1 { font-size: 1.6rem; margin: 8px 0; }
h2 { font-size: 1.25rem; margin: 0 0 12px; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
table { border-collapse: collapse; font-size: 0.92rem; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.headline { display: flex; flex-wrap: wrap; gap: 24px; margin: 8px 0 16px; }
.headline div { min-width: 180px; }
.big { font-size: 2.6rem; font-weight: 700; color: var(--accent); line-height: 1.1; }
.label { color: var(--muted); font-size: 0.9rem; }
code { font-size: 0.85rem; word-break: break-all; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 12px; }
"""

SECTIONS = (
    ("summary", "Run summary"),
    ("samples", "One sample per digit"),
    ("learning-curves", "Learning curves"),
    ("confusion-matrix", "Confusion matrix"),
    ("per-class", "Per-class precision, recall and F1"),
    ("confident-mistakes", "Most confident mistakes"),
    ("sample-prediction", "A sample prediction"),
    ("calibration", "Calibration"),
)


def _text(value: Any) -> str:
    return html.escape(str(value))


def _number(value: float | int | None, key: str, digits: int = 4) -> str:
    """A number shown rounded, with its exact value kept in data attributes for checking."""
    if value is None:
        return '<span class="na">n/a</span>'
    shown = f"{value:,}" if isinstance(value, int) else f"{value:.{digits}f}"
    return f'<span data-metric="{_text(key)}" data-value="{value!r}">{shown}</span>'


def _image(png: bytes, alt: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_text(alt)}" src="data:image/png;base64,{encoded}">'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_text(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_text(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def render_report(
    config: dict, metrics: dict, history: dict[str, list[float]], figures: dict[str, bytes]
) -> str:
    """The run's report as one HTML string. ``figures`` are PNG bytes keyed like runs.FIGURE_FILES."""
    test = metrics["test"]
    sections = {
        "summary": _summary(config, metrics),
        "samples": _image(figures["samples"], "one training sample per digit"),
        "learning-curves": _image(figures["training_curves"], "loss and accuracy per epoch")
        + _history_table(history),
        "confusion-matrix": _confusion(test, figures),
        "per-class": _per_class(test["per_class"]),
        "confident-mistakes": _mistakes(test["top_errors"], figures),
        "sample-prediction": _sample(metrics["sample_prediction"], figures),
        "calibration": _calibration(test, figures),
    }
    body = f"<h1>mnistlab report: {_text(metrics['model'])} on {_text(metrics['dataset'])}</h1>"
    for section_id, heading in SECTIONS:
        body += f'<section id="{section_id}"><h2>{_text(heading)}</h2>{sections[section_id]}</section>'
    return _page(f"mnistlab: {metrics['model']} on {metrics['dataset']}", body)


def _summary(config: dict, metrics: dict) -> str:
    test = metrics["test"]
    headline = (
        '<div class="headline">'
        f'<div><div class="label">test accuracy</div><div class="big">{_number(test["accuracy"], "test.accuracy")}</div></div>'
        f'<div><div class="label">test loss</div><div class="big">{_number(test["loss"], "test.loss")}</div></div>'
        f'<div><div class="label">test examples</div><div class="big">{_number(test["num_examples"], "test.num_examples")}</div></div>'
        "</div>"
    )
    config_rows = [[_text(key), f"<code>{_text(value)}</code>"] for key, value in config.items()]
    timing_rows = [
        [_text(key), _number(value, f"timings.{key}", 2)]
        for key, value in metrics["timings"].items()
    ]
    version_rows = [[_text(k), _text(v)] for k, v in metrics["versions"].items()]
    checksum_rows = [
        [_text(name), f"<code>{_text(digest)}</code>"]
        for name, digest in metrics["data"]["sha256"].items()
    ]
    parameters = _number(metrics.get("parameters"), "parameters")
    members = ""
    if metrics.get("ensemble_members"):
        member_rows = [
            [f"<code>{_text(m['run_dir'])}</code>", _text(m["model"]), _text(m["seed"]),
             _number(m["test_accuracy"], f"ensemble_members.{i}.test_accuracy")]
            for i, m in enumerate(metrics["ensemble_members"])
        ]
        members = (
            "<h3>Ensemble members (class probabilities averaged)</h3>"
            + _table(["run", "model", "seed", "test accuracy"], member_rows, "members")
            + "<p>The configuration below is the first member's; it sets the evaluation.</p>"
        )
    return (
        headline
        + members
        + f"<p>Model <b>{_text(metrics['model'])}</b> ({parameters} parameters) on dataset "
        f"<b>{_text(metrics['dataset'])}</b>.</p>"
        + '<div class="grid">'
        + "<div><h3>Configuration</h3>" + _table(["setting", "value"], config_rows) + "</div>"
        + "<div><h3>Timings (seconds)</h3>" + _table(["phase", "seconds"], timing_rows) + "</div>"
        + "<div><h3>Library versions</h3>" + _table(["library", "version"], version_rows) + "</div>"
        + "</div><h3>Dataset checksums (SHA-256 of the decompressed files)</h3>"
        + _table(["file", "sha256"], checksum_rows)
    )


def _history_table(history: dict[str, list[float]]) -> str:
    names = [n for n in ("loss", "accuracy", "val_loss", "val_accuracy") if n in history]
    epochs = len(history[names[0]]) if names else 0
    rows = [
        [str(epoch + 1)] + [_number(history[n][epoch], f"history.{n}.{epoch}") for n in names]
        for epoch in range(epochs)
    ]
    return _table(["epoch", *names], rows)


def _confusion(test: dict, figures: dict[str, bytes]) -> str:
    pairs = [
        [
            _number(pair["true_label"], "most_confused.true_label"),
            _number(pair["predicted_label"], "most_confused.predicted_label"),
            _number(pair["count"], "most_confused.count"),
        ]
        for pair in test["most_confused"]
    ]
    return (
        '<div class="grid">'
        + _image(figures["confusion_matrix"], "confusion matrix, counts")
        + _image(figures["confusion_matrix_normalized"], "confusion matrix, row-normalised")
        + "</div><h3>Most confused pairs</h3>"
        + (_table(["true", "predicted as", "count"], pairs, "confused") if pairs else "<p>No mistakes.</p>")
    )


def _per_class(per_class: list[dict]) -> str:
    rows = [
        [
            str(row["label"]),
            _number(row["precision"], f"per_class.{row['label']}.precision"),
            _number(row["recall"], f"per_class.{row['label']}.recall"),
            _number(row["f1"], f"per_class.{row['label']}.f1"),
            _number(row["support"], f"per_class.{row['label']}.support"),
        ]
        for row in per_class
    ]
    return _table(["digit", "precision", "recall", "F1", "support"], rows, "per-class")


def _mistakes(errors: list[dict], figures: dict[str, bytes]) -> str:
    rows = [
        [
            _number(error["index"], f"top_errors.{rank}.index"),
            _number(error["true_label"], f"top_errors.{rank}.true_label"),
            _number(error["predicted_label"], f"top_errors.{rank}.predicted_label"),
            _number(error["confidence"], f"top_errors.{rank}.confidence"),
            ", ".join(f"{label}: {probability:.4f}" for label, probability in error["top3"]),
        ]
        for rank, error in enumerate(errors)
    ]
    return (
        _image(figures["confident_errors"], "the most confident mistakes")
        + _table(["test index", "true", "predicted", "confidence", "top-3 probabilities"], rows, "mistakes")
    )


def _sample(sample: dict, figures: dict[str, bytes]) -> str:
    return _image(figures["sample_prediction"], "a sample test prediction") + (
        f"<p>Test image #{_number(sample['index'], 'sample_prediction.index')}: predicted "
        f"{_number(sample['predicted_label'], 'sample_prediction.predicted_label')} with probability "
        f"{_number(sample['confidence'], 'sample_prediction.confidence')}; true label "
        f"{_number(sample['true_label'], 'sample_prediction.true_label')}.</p>"
    )


def _calibration(test: dict, figures: dict[str, bytes]) -> str:
    rows = [
        [
            f"{b['lower']:.1f}–{b['upper']:.1f}",
            _number(b["count"], f"calibration_bins.{i}.count"),
            _number(b["mean_confidence"], f"calibration_bins.{i}.mean_confidence"),
            _number(b["accuracy"], f"calibration_bins.{i}.accuracy"),
        ]
        for i, b in enumerate(test["calibration_bins"])
    ]
    ece = _number(test["expected_calibration_error"], "test.expected_calibration_error")
    return (
        f"<p>Expected calibration error (ECE, 10 equal-width bins): <b>{ece}</b>. "
        "It is the average gap between how sure the model is and how often it is right.</p>"
        + _image(figures["reliability"], "reliability diagram")
        + _table(["confidence", "count", "mean confidence", "accuracy"], rows, "calibration")
    )


def comparison_table(named_runs: Sequence[tuple[str, dict, dict]]) -> tuple[list[str], list[list]]:
    """Headers and rows comparing runs given as (name, config, metrics).

    Only the config fields that differ between the runs get a column.
    """
    keys = list(dict.fromkeys(key for _, config, _ in named_runs for key in config))
    differing = [
        key for key in keys if len({repr(config.get(key)) for _, config, _ in named_runs}) > 1
    ]
    headers = ["run", "model", *differing, "test accuracy", "test loss", "fit (s)"]
    rows = []
    for name, config, metrics in named_runs:
        fit_seconds = metrics.get("timings", {}).get("fit_seconds")
        rows.append(
            [name, metrics["model"], *(config.get(key) for key in differing),
             metrics["test"]["accuracy"], metrics["test"]["loss"], fit_seconds]
        )
    return headers, rows


def render_comparison(headers: list[str], rows: list[list]) -> str:
    """The comparison table as a self-contained HTML page."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f'<span data-value="{value!r}">{value:.4f}</span>'
        return _text("" if value is None else value)

    table = _table(headers, [[cell(value) for value in row] for row in rows], "comparison")
    return _page("mnistlab: run comparison", f"<h1>Run comparison</h1><section>{table}</section>")


def render_sweep(headers: list[str], rows: list[list], summary: dict[str, Any]) -> str:
    """A sweep's ranked trials (see sweep.table) and its summary as a self-contained page.
    A "run directory" cell, relative to the page, links to that run's report."""

    def cell(value: Any, header: str = "") -> str:
        if isinstance(value, float):
            return f'<span data-value="{value!r}">{value:.4g}</span>'
        if header == "run directory" and value:
            return f'<a href="{_text(value)}/report.html">{_text(value)}</a>'
        return _text("" if value is None else value)

    facts = [[_text(key.replace("_", " ")), cell(value)] for key, value in summary.items()]
    body = (
        "<h1>Sweep</h1><section><h2>Trials, best validation accuracy first</h2>"
        "<p>Trials are ranked by validation accuracy at their last epoch. The test accuracy is "
        "measured once per finished trial and plays no part in the ranking. A trial stopped "
        "early by the scheduler has no run directory.</p>"
        + _table(headers, [[cell(v, h) for h, v in zip(headers, row)] for row in rows], "sweep")
        + "</section><section><h2>Summary</h2>"
        + _table(["", "value"], facts, "summary")
        + "</section>"
    )
    return _page("mnistlab: sweep", body)
