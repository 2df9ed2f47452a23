"""Self-contained HTML pages: a run's report and a side-by-side comparison of runs.

This module only assembles: numbers come from ``metrics.json`` (computed by ``evaluate``) and
pictures are PNG bytes (drawn by ``plots``), inlined as data URIs so a page opens offline.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

from mnistlab.config import AUDIT_ONLY

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
.model-input td { text-align: left; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 12px; }
.sheet { display: flex; flex-wrap: wrap; gap: 6px; margin: 8px 0 16px; }
.sheet figure { margin: 0; width: 76px; text-align: center; font-size: 0.72rem; line-height: 1.25; }
.sheet img { width: 56px; margin: 0 auto 2px; image-rendering: pixelated;
             border: 1px solid var(--line); }
.sheet .published { color: crimson; font-weight: 700; }
.sheet .published img { border: 2px solid crimson; }
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
    """The run's report as one HTML string. ``figures`` are PNG bytes keyed like runs.FIGURES."""
    test = metrics["test"]
    sections = {
        "summary": _summary(config, metrics),
        "samples": _image(figures["samples"], "one training sample per digit"),
        "learning-curves": _image(figures["training_curves"], "loss and accuracy per epoch")
        + _history_table(history),
        "confusion-matrix": _confusion(test, figures),
        "per-class": _per_class(test["per_class"]),
        "confident-mistakes": _mistakes(test["top_errors"], figures, metrics.get("audit")),
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
    config_rows = [
        [_text(key), _setting(value)]
        for key, value in config.items()
        if key not in AUDIT_ONLY and key != "model_input"
    ]
    model_input = ""
    if config.get("model_input"):  # Runs written before it was recorded have none.
        input_rows = [[_text(k), _text(v)] for k, v in config["model_input"].items()]
        model_input = (
            "<h3>What model.keras and model.onnx take and give</h3>"
            + _table(["", ""], input_rows, "model-input")
        )
    timings = dict(metrics["timings"])
    evaluation = timings.pop("evaluation", None)
    timing_rows = [
        [_text(key), _number(value, f"timings.{key}", 2)] for key, value in timings.items()
    ]
    if evaluation:  # `mnistlab evaluate` ran later: its own timings, below the training's.
        timing_rows += [
            [_text(f"evaluation: {key}"), _number(value, f"timings.evaluation.{key}", 2)]
            for key, value in evaluation.items()
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
        f"<b>{_text(metrics['dataset'])}</b>.{_dates(metrics)}</p>"
        + '<div class="grid">'
        + "<div><h3>Configuration</h3>" + _table(["setting", "value"], config_rows) + "</div>"
        + "<div><h3>Timings (seconds)</h3>" + _table(["phase", "seconds"], timing_rows) + "</div>"
        + "<div><h3>Library versions</h3>" + _table(["library", "version"], version_rows) + "</div>"
        + "</div>"
        + model_input
        + "<h3>Dataset checksums (SHA-256 of the decompressed files)</h3>"
        + _table(["file", "sha256"], checksum_rows)
    )


def _setting(value: Any) -> str:
    """A config value; an unset option (null in config.json) reads as a dash, not None."""
    return "—" if value is None else f"<code>{_text(value)}</code>"


def _dates(metrics: dict) -> str:
    """When the run was trained (and last evaluated), as recorded in UTC."""
    text = ""
    for key, label in (("trained_at", "Trained"), ("evaluated_at", "Evaluated again")):
        if metrics.get(key):
            text += f' {label} <time datetime="{_text(metrics[key])}">{_text(_utc(metrics[key]))}</time>.'
    return text


def _utc(stamp: str) -> str:
    """An ISO time in UTC as its date, hours and minutes followed by "UTC"; others unchanged."""
    return stamp.replace("T", " ")[:16] + " UTC" if stamp.endswith("+00:00") else stamp


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
    # One above the other: side by side, each cell's number shrank to about 6 px.
    return (
        _image(figures["confusion_matrix"], "confusion matrix, counts")
        + _image(figures["confusion_matrix_normalized"], "confusion matrix, row-normalised")
        + "<h3>Most confused pairs</h3>"
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


def _mistakes(errors: list[dict], figures: dict[str, bytes], audit: dict | None = None) -> str:
    audited = audit is not None
    rows = [
        [
            _number(error["index"], f"top_errors.{rank}.index"),
            _number(error["true_label"], f"top_errors.{rank}.true_label"),
            _number(error["predicted_label"], f"top_errors.{rank}.predicted_label"),
            _number(error["confidence"], f"top_errors.{rank}.confidence"),
            ", ".join(f"{label}: {probability:.4f}" for label, probability in error["top3"]),
        ]
        + (["<b>label suspect</b>" if error.get("audit_flagged") else ""] if audited else [])
        for rank, error in enumerate(errors)
    ]
    headers = ["test index", "true", "predicted", "confidence", "top-3 probabilities"]
    note = ""
    if audited:
        headers.append("audit")
        note = (
            f"<p>Marked red and <i>label suspect</i>: test images that the audit in "
            f"<code>{_text(audit['dir'])}</code> flags as likely label errors (its "
            f"{_number(audit['flagged_test_images'], 'audit.flagged_test_images')} flagged test "
            "images): there the label, not the model, is probably wrong.</p>"
        )
    return note + _image(figures["confident_errors"], "the most confident mistakes") + _table(headers, rows, "mistakes")


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
            # An empty bin has no confidence or accuracy (metrics.json stores 0).
            _number(b["mean_confidence"], f"calibration_bins.{i}.mean_confidence")
            if b["count"] else "—",
            _number(b["accuracy"], f"calibration_bins.{i}.accuracy") if b["count"] else "—",
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
    A "run directory" cell, relative to the page, links to that run's report, or to the
    directory itself for a trial that did not finish (it has no report)."""
    status_column = headers.index("status")

    def cell(value: Any, header: str = "", status: str = "") -> str:
        if isinstance(value, float):
            return f'<span data-value="{value!r}">{value:.4g}</span>'
        if header == "run directory" and value:
            target = f"{value}/report.html" if status == "finished" else f"{value}/"
            return f'<a href="{_text(target)}">{_text(value)}</a>'
        return _text("" if value is None else value)

    facts = [[_text(key.replace("_", " ")), cell(value)] for key, value in summary.items()]
    cells = [[cell(v, h, row[status_column]) for h, v in zip(headers, row)] for row in rows]
    body = (
        "<h1>Sweep</h1><section><h2>Trials, best validation accuracy first</h2>"
        "<p>Trials are ranked by validation accuracy at their last epoch. The test accuracy is "
        "measured once per finished trial and plays no part in the ranking. A trial stopped "
        "early by the scheduler keeps its run directory (its config, its history up to the "
        "epoch it reached, its checkpoint if it had one) but has no model or test "
        "evaluation.</p>"
        + _table(headers, cells, "sweep")
        + "</section><section><h2>Summary</h2>"
        + _table(["", "value"], facts, "summary")
        + "</section>"
    )
    return _page("mnistlab: sweep", body)


AUDIT_SECTIONS = (
    ("summary", "What the audit found"),
    ("review-queue", "Review queue"),
    ("label-issues", "Likely label errors"),
    ("duplicates", "Duplicates and near-duplicates"),
    ("outliers", "Outliers"),
    ("method", "How it was computed"),
)


def render_audit(
    config: dict, summary: dict, tables: dict[str, list[dict]], figures: dict[str, bytes]
) -> str:
    """An audit (``mnistlab audit``) as one HTML string.

    ``summary`` is the audit's summary.json; ``tables`` holds the first rows of the label
    issues, duplicates and outliers (``audit_workflow._html_tables``); ``figures`` PNG bytes
    keyed by the same three names.
    """
    sections = {
        "summary": _audit_summary(summary),
        "review-queue": _audit_review_queue(summary, tables.get("candidates", [])),
        "label-issues": _audit_label_issues(summary, tables["label_issues"], figures),
        "duplicates": _audit_duplicates(summary, tables["duplicates"], figures),
        "outliers": _audit_outliers(summary, tables["outliers"], figures),
        "method": _audit_method(config, summary),
    }
    title = f"mnistlab audit: {summary['dataset']} ({summary['model']}, {summary['folds']} folds)"
    body = f"<h1>{_text(title)}</h1>"
    for section_id, heading in AUDIT_SECTIONS:
        body += f'<section id="{section_id}"><h2>{_text(heading)}</h2>{sections[section_id]}</section>'
    return _page(title, body)


def _big(label: str, value: str) -> str:
    return f'<div><div class="label">{_text(label)}</div><div class="big">{value}</div></div>'


def _audit_summary(summary: dict) -> str:
    issues, duplicates, outliers = summary["label_issues"], summary["duplicates"], summary["outliers"]
    accuracy = summary["test_accuracy"]
    headline = (
        '<div class="headline">'
        + _big("likely label errors", _number(issues["total"], "label_issues.total"))
        + _big("duplicate pairs", _number(duplicates["pairs"], "duplicates.pairs"))
        + _big("test images with a twin in train", _number(duplicates["test_images_with_train_twin"], "duplicates.test_images_with_train_twin"))
        + _big("outliers", _number(outliers["total"], "outliers.total"))
        + "</div>"
    )  # fmt: skip
    rows = [
        ["likely label errors", _number(issues["train"], "label_issues.train"), _number(issues["test"], "label_issues.test")],
        ["outliers", _number(outliers["train"], "outliers.train"), _number(outliers["test"], "outliers.test")],
    ]  # fmt: skip
    kinds = duplicates["by_splits"]
    text = (
        f"<p>Images: {_number(summary['images']['train'], 'images.train')} train and "
        f"{_number(summary['images']['test'], 'images.test')} test, pooled and scored by "
        f"{_number(summary['folds'], 'folds')}-fold cross-validation: every image's probabilities "
        "come from a model that never saw it.</p>"
        + _table(["issue", "train", "test"], rows, "audit-counts")
        + f"<p>Duplicate pairs: {_number(duplicates['exact_pairs'], 'duplicates.exact_pairs')} exact and "
        f"{_number(duplicates['near_pairs'], 'duplicates.near_pairs')} near "
        f"({_number(kinds['train-train'], 'duplicates.by_splits.train-train')} within train, "
        f"{_number(kinds['test-test'], 'duplicates.by_splits.test-test')} within test, "
        f"{_number(kinds['test-train'], 'duplicates.by_splits.test-train')} across test and train). "
        "A test image with a twin in train is leakage: the model is scored on what it has seen.</p>"
        f"<p><b>Test accuracy</b> of the cross-validated models: "
        f"{_number(accuracy['all'], 'test_accuracy.all')} on all test images, "
        f"{_number(accuracy['without_flagged'], 'test_accuracy.without_flagged')} without the "
        f"{_number(accuracy['flagged_test_images'], 'test_accuracy.flagged_test_images')} flagged ones.</p>"
    )  # fmt: skip
    return headline + text + _published_paragraph(summary)


def _published_paragraph(summary: dict) -> str:
    published = summary.get("published_label_errors")
    if published is None:
        return (
            f"<p>No published, human-confirmed list of label errors is known to mnistlab for "
            f"{_text(summary['dataset'])}, so there is no overlap to report.</p>"
        )
    if published["published"] == 0:
        return (
            "<p><b>Published label errors.</b> None of the MNIST test-set label errors confirmed by "
            "people in the study below lies among the test images audited (a --test-limit cut them "
            f"off), so there is no overlap to report. Source: {_text(published['source'])}.</p>"
        )
    named = ""
    if "in_queue" in published:  # summaries written before the review queue lack the names
        found = ", ".join(f"#{index}" for index in published["in_queue"]) or "none"
        missed = ", ".join(f"#{index}" for index in published["missed"]) or "none"
        named = (
            f" In the test review queue ({_number(published['review'], 'published.review')}"
            f" images): {_text(found)}; not in it: {_text(missed)}."
        )
    return (
        f"<p><b>Published label errors.</b> Of the {_number(published['published'], 'published.published')} "
        "MNIST test-set label errors confirmed by people in the study below, the audit ranks "
        f"<b>{_number(published['top_50'], 'published.top_50')}</b> among its 50 most suspect test images, "
        f"<b>{_number(published['top_100'], 'published.top_100')}</b> among its 100 most suspect, and flags "
        f"{_number(published['flagged'], 'published.flagged')} in all.{named} "
        f"Source: {_text(published['source'])}. "
        "The list only scores the audit; the method was chosen on it and on planted flips.</p>"
    )  # fmt: skip


def _audit_review_queue(summary: dict, cells: list[dict]) -> str:
    """The review queue (candidates.csv) as contact sheets, test first: what a person checks."""
    per_split = summary.get("review_queue", {}).get("per_split")
    text = (
        "<p>Each split's images in order of label quality, lowest first, whether confident "
        "learning flagged them or not: the queue to review by eye. Captions read "
        "<i>rank · index</i> and <i>given → suggested</i>; a marked caption is flagged (⚑), a "
        "red one a published error. The same rows: <code>candidates.csv</code>; train without "
        "the training rows you keep in it with"
        " <code>mnistlab train --exclude candidates.csv</code>.</p>"
    )
    if per_split is None:
        return text
    sheets = ""
    for split in ("test", "train"):
        shown = [cell for cell in cells if cell["split"] == split]
        figures = "".join(_queue_cell(cell) for cell in shown) or "<p>No images.</p>"
        sheets += f"<h3>{_text(split)}: the {len(shown):,} lowest label qualities</h3>"
        sheets += f'<div class="sheet" id="queue-{split}">{figures}</div>'
    return text + sheets


def _queue_cell(cell: dict) -> str:
    encoded = base64.b64encode(cell["png"]).decode("ascii")
    mark = " ⚑" if cell["flagged"] else ""
    cls = ' class="published"' if cell["published"] else ""
    alt = f"{cell['split']} #{cell['index']}, given {cell['given_label']}"
    return (
        f'<figure{cls} data-split="{_text(cell["split"])}" data-index="{cell["index"]}">'
        f'<img alt="{_text(alt)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{cell['rank']} · #{cell['index']}{mark}<br>"
        f"{cell['given_label']} → {cell['suggested_label']}</figcaption></figure>"
    )


def _audit_label_issues(summary: dict, rows: list[dict], figures: dict[str, bytes]) -> str:
    table_rows = [
        [
            _number(row["rank"], f"label_issues.{row['rank']}.rank"),
            _text(row["split"]),
            _text(row["index"]),
            _number(row["given_label"], f"label_issues.{row['rank']}.given_label"),
            _number(row["suggested_label"], f"label_issues.{row['rank']}.suggested_label"),
            _number(row["label_quality"], f"label_issues.{row['rank']}.label_quality", 5),
            _number(row["self_confidence"], f"label_issues.{row['rank']}.self_confidence", 5),
            "<b>published error</b>" if row["published"] else "",
        ]
        for row in rows
    ]
    return (
        "<p>Flagged by confident learning (<code>cleanlab.filter.find_label_issues</code>) and ranked "
        "by label quality (the normalized margin: the given label's probability minus the largest "
        "other one, mapped to [0, 1]); low means the given label is likely wrong. Captions read "
        "<i>given → suggested</i>; red ones are in the published list. All rows: "
        "<code>label_issues.csv</code>; train on the rest with "
        "<code>mnistlab train --exclude label_issues.csv</code>.</p>"
        + _image(figures["label_issues"], "the most likely label errors")
        + _table(
            ["rank", "split", "index", "given", "suggested", "label quality", "self-confidence", ""],
            table_rows,
            "label-issues",
        )
    )


def _audit_duplicates(summary: dict, rows: list[dict], figures: dict[str, bytes]) -> str:
    duplicates = summary["duplicates"]
    table_rows = [
        [_text(row["first"]), _text(row["second"]), _number(row["rms_difference"], f"duplicates.{i}.rms")]
        for i, row in enumerate(rows)
    ]
    threshold = _number(duplicates["threshold_rms"], "duplicates.threshold_rms", 3)
    return (
        "<p>Two images are near-duplicates when the root-mean-square difference of their pixels "
        f"(scaled to [0, 1]) is below {threshold}; exact ones (difference 0) are found by hashing "
        "the pixels. Below: the closest test-train pairs, test image left, whether or not they "
        "are below the threshold. All pairs: <code>duplicates.csv</code>.</p>"
        + _image(figures["duplicates"], "the closest test-train pairs")
        + (_table(["image", "its twin", "RMS difference"], table_rows, "duplicates") if rows else "<p>No duplicates.</p>")
    )  # fmt: skip


def _audit_outliers(summary: dict, rows: list[dict], figures: dict[str, bytes]) -> str:
    outliers = summary["outliers"]
    table_rows = [
        [
            _number(row["rank"], f"outliers.{row['rank']}.rank"),
            _text(row["image"]),
            _number(row["label"], f"outliers.{row['rank']}.label"),
            _number(row["score"], f"outliers.{row['rank']}.score"),
        ]
        for row in rows
    ]
    return (
        "<p>cleanlab's out-of-distribution score (<code>cleanlab.outlier.OutOfDistribution</code>) "
        "from each image's 10 nearest neighbours among all images (50 principal components of the "
        "pixels); low means unlike any other image. Flagged: a mean neighbour distance beyond "
        f"Tukey's fence ({_number(outliers['fence_iqr'], 'outliers.fence_iqr', 1)} "
        "interquartile ranges above the third quartile), i.e. a score below "
        f"{_number(outliers['score_threshold'], 'outliers.score_threshold')}. Below: the most "
        "atypical images. All flagged rows: <code>outliers.csv</code>.</p>"
        + _image(figures["outliers"], "the most atypical images")
        + (_table(["rank", "image", "label", "score"], table_rows, "outliers") if rows else "<p>No outliers.</p>")
    )  # fmt: skip


def _audit_method(config: dict, summary: dict) -> str:
    fold_rows = [
        [str(fold), _number(value, f"cross_validated_accuracy.per_fold.{fold}")]
        for fold, value in enumerate(summary["cross_validated_accuracy"]["per_fold"], start=1)
    ]
    config_rows = [
        [_text(key), _setting(value)] for key, value in config.items() if key != "model_input"
    ]
    timing_rows = [
        [_text(key), _number(value, f"timings.{key}", 2)] for key, value in summary["timings"].items()
    ]
    version_rows = [[_text(k), _text(v)] for k, v in summary["versions"].items()]
    return (
        "<p>The train and test images are pooled and split into stratified folds; for each fold a "
        f"fresh <b>{_text(summary['model'])}</b> is trained on the other folds (the same model and "
        "training as <code>mnistlab train</code>) and predicts the held-out images.</p>"
        + '<div class="grid">'
        + "<div><h3>Held-out accuracy per fold</h3>" + _table(["fold", "accuracy"], fold_rows) + "</div>"
        + "<div><h3>Configuration</h3>" + _table(["setting", "value"], config_rows) + "</div>"
        + "<div><h3>Timings (seconds)</h3>" + _table(["phase", "seconds"], timing_rows) + "</div>"
        + "<div><h3>Library versions</h3>" + _table(["library", "version"], version_rows) + "</div>"
        + "</div>"
    )  # fmt: skip
