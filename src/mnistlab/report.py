"""A run's self-contained HTML report (report.html).

This module only assembles: numbers come from ``metrics.json`` (computed by ``evaluate``) and
pictures are PNG bytes (drawn by ``plots``), inlined as data URIs so the page opens offline.
"""

from __future__ import annotations

from mnistlab.config import AUDIT_ONLY
from mnistlab.html_blocks import escape, image, number, page, setting, table

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


def render_report(
    config: dict, metrics: dict, history: dict[str, list[float]], figures: dict[str, bytes]
) -> str:
    """The run's report as one HTML string. ``figures`` are PNG bytes keyed like runs.FIGURES."""
    test = metrics["test"]
    sections = {
        "summary": _summary(config, metrics),
        "samples": image(figures["samples"], "one training sample per digit"),
        "learning-curves": image(figures["training_curves"], "loss and accuracy per epoch")
        + _history_table(history),
        "confusion-matrix": _confusion(test, figures),
        "per-class": _per_class(test["per_class"]),
        "confident-mistakes": _mistakes(test["top_errors"], figures, metrics.get("audit")),
        "sample-prediction": _sample(metrics["sample_prediction"], figures),
        "calibration": _calibration(test, figures),
    }
    body = f"<h1>mnistlab report: {escape(metrics['model'])} on {escape(metrics['dataset'])}</h1>"
    for section_id, heading in SECTIONS:
        body += (
            f'<section id="{section_id}"><h2>{escape(heading)}</h2>{sections[section_id]}</section>'
        )
    return page(f"mnistlab: {metrics['model']} on {metrics['dataset']}", body)


def _summary(config: dict, metrics: dict) -> str:
    test = metrics["test"]
    headline = (
        '<div class="headline">'
        f'<div><div class="label">test accuracy</div><div class="big">{number(test["accuracy"], "test.accuracy")}</div></div>'
        f'<div><div class="label">test loss</div><div class="big">{number(test["loss"], "test.loss")}</div></div>'
        f'<div><div class="label">test examples</div><div class="big">{number(test["num_examples"], "test.num_examples")}</div></div>'
        "</div>"
    )
    config_rows = [
        [escape(key), setting(value)]
        for key, value in config.items()
        if key not in AUDIT_ONLY and key != "model_input"
    ]
    model_input = ""
    if config.get("model_input"):  # Runs written before it was recorded have none.
        input_rows = [[escape(k), escape(v)] for k, v in config["model_input"].items()]
        model_input = "<h3>What model.keras and model.onnx take and give</h3>" + table(
            ["", ""], input_rows, "model-input"
        )
    timings = dict(metrics["timings"])
    evaluation = timings.pop("evaluation", None)
    timing_rows = [
        [escape(key), number(value, f"timings.{key}", 2)] for key, value in timings.items()
    ]
    if evaluation:  # `mnistlab evaluate` ran later: its own timings, below the training's.
        timing_rows += [
            [escape(f"evaluation: {key}"), number(value, f"timings.evaluation.{key}", 2)]
            for key, value in evaluation.items()
        ]
    version_rows = [[escape(k), escape(v)] for k, v in metrics["versions"].items()]
    checksum_rows = [
        [escape(name), f"<code>{escape(digest)}</code>"]
        for name, digest in metrics["data"]["sha256"].items()
    ]
    parameters = number(metrics.get("parameters"), "parameters")
    members = ""
    if metrics.get("ensemble_members"):
        member_rows = [
            [
                f"<code>{escape(m['run_dir'])}</code>",
                escape(m["model"]),
                escape(m["seed"]),
                number(m["test_accuracy"], f"ensemble_members.{i}.test_accuracy"),
            ]
            for i, m in enumerate(metrics["ensemble_members"])
        ]
        members = (
            "<h3>Ensemble members (class probabilities averaged)</h3>"
            + table(["run", "model", "seed", "test accuracy"], member_rows, "members")
            + "<p>The configuration below is the first member's; it sets the evaluation.</p>"
        )
    return (
        headline
        + members
        + f"<p>Model <b>{escape(metrics['model'])}</b> ({parameters} parameters) on dataset "
        f"<b>{escape(metrics['dataset'])}</b>.{_dates(metrics)}</p>"
        + '<div class="grid">'
        + "<div><h3>Configuration</h3>"
        + table(["setting", "value"], config_rows)
        + "</div>"
        + "<div><h3>Timings (seconds)</h3>"
        + table(["phase", "seconds"], timing_rows)
        + "</div>"
        + "<div><h3>Library versions</h3>"
        + table(["library", "version"], version_rows)
        + "</div>"
        + "</div>"
        + model_input
        + "<h3>Dataset checksums (SHA-256 of the decompressed files)</h3>"
        + table(["file", "sha256"], checksum_rows)
    )


def _dates(metrics: dict) -> str:
    """When the run was trained (and last evaluated), as recorded in UTC."""
    text = ""
    for key, label in (("trained_at", "Trained"), ("evaluated_at", "Evaluated again")):
        if metrics.get(key):
            text += f' {label} <time datetime="{escape(metrics[key])}">{escape(_utc(metrics[key]))}</time>.'
    return text


def _utc(stamp: str) -> str:
    """An ISO time in UTC as its date, hours and minutes followed by "UTC"; others unchanged."""
    return stamp.replace("T", " ")[:16] + " UTC" if stamp.endswith("+00:00") else stamp


def _history_table(history: dict[str, list[float]]) -> str:
    names = [n for n in ("loss", "accuracy", "val_loss", "val_accuracy") if n in history]
    epochs = len(history[names[0]]) if names else 0
    rows = [
        [str(epoch + 1)] + [number(history[n][epoch], f"history.{n}.{epoch}") for n in names]
        for epoch in range(epochs)
    ]
    return table(["epoch", *names], rows)


def _confusion(test: dict, figures: dict[str, bytes]) -> str:
    pairs = [
        [
            number(pair["true_label"], "most_confused.true_label"),
            number(pair["predicted_label"], "most_confused.predicted_label"),
            number(pair["count"], "most_confused.count"),
        ]
        for pair in test["most_confused"]
    ]
    # One above the other: side by side, each cell's number shrank to about 6 px.
    return (
        image(figures["confusion_matrix"], "confusion matrix, counts")
        + image(figures["confusion_matrix_normalized"], "confusion matrix, row-normalised")
        + "<h3>Most confused pairs</h3>"
        + (
            table(["true", "predicted as", "count"], pairs, "confused")
            if pairs
            else "<p>No mistakes.</p>"
        )
    )


def _per_class(per_class: list[dict]) -> str:
    rows = [
        [
            str(row["label"]),
            number(row["precision"], f"per_class.{row['label']}.precision"),
            number(row["recall"], f"per_class.{row['label']}.recall"),
            number(row["f1"], f"per_class.{row['label']}.f1"),
            number(row["support"], f"per_class.{row['label']}.support"),
        ]
        for row in per_class
    ]
    return table(["digit", "precision", "recall", "F1", "support"], rows, "per-class")


def _mistakes(errors: list[dict], figures: dict[str, bytes], audit: dict | None = None) -> str:
    audited = audit is not None
    rows = [
        [
            number(error["index"], f"top_errors.{rank}.index"),
            number(error["true_label"], f"top_errors.{rank}.true_label"),
            number(error["predicted_label"], f"top_errors.{rank}.predicted_label"),
            number(error["confidence"], f"top_errors.{rank}.confidence"),
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
            f"<code>{escape(audit['dir'])}</code> flags as likely label errors (its "
            f"{number(audit['flagged_test_images'], 'audit.flagged_test_images')} flagged test "
            "images): there the label, not the model, is probably wrong.</p>"
        )
    return (
        note
        + image(figures["confident_errors"], "the most confident mistakes")
        + table(headers, rows, "mistakes")
    )


def _sample(sample: dict, figures: dict[str, bytes]) -> str:
    return image(figures["sample_prediction"], "a sample test prediction") + (
        f"<p>Test image #{number(sample['index'], 'sample_prediction.index')}: predicted "
        f"{number(sample['predicted_label'], 'sample_prediction.predicted_label')} with probability "
        f"{number(sample['confidence'], 'sample_prediction.confidence')}; true label "
        f"{number(sample['true_label'], 'sample_prediction.true_label')}.</p>"
    )


def _calibration(test: dict, figures: dict[str, bytes]) -> str:
    rows = [
        [
            f"{b['lower']:.1f}–{b['upper']:.1f}",
            number(b["count"], f"calibration_bins.{i}.count"),
            # An empty bin has no confidence or accuracy (metrics.json stores 0).
            number(b["mean_confidence"], f"calibration_bins.{i}.mean_confidence")
            if b["count"]
            else "—",
            number(b["accuracy"], f"calibration_bins.{i}.accuracy") if b["count"] else "—",
        ]
        for i, b in enumerate(test["calibration_bins"])
    ]
    ece = number(test["expected_calibration_error"], "test.expected_calibration_error")
    return (
        f"<p>Expected calibration error (ECE, 10 equal-width bins): <b>{ece}</b>. "
        "It is the average gap between how sure the model is and how often it is right.</p>"
        + image(figures["reliability"], "reliability diagram")
        + table(["confidence", "count", "mean confidence", "accuracy"], rows, "calibration")
    )
