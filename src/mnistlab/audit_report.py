"""An audit's self-contained HTML page (audit.html, ``mnistlab audit``).

This module only assembles: the numbers come from the audit's summary.json and table rows,
and the pictures are PNG bytes, inlined as data URIs so the page opens offline.
"""

from __future__ import annotations

import base64

from mnistlab.html_blocks import escape, image, number, page, setting, table

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
    issues, duplicates and outliers (``audit_outputs.html_tables``); ``figures`` PNG bytes
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
    body = f"<h1>{escape(title)}</h1>"
    for section_id, heading in AUDIT_SECTIONS:
        body += (
            f'<section id="{section_id}"><h2>{escape(heading)}</h2>{sections[section_id]}</section>'
        )
    return page(title, body)


def _big(label: str, value: str) -> str:
    return f'<div><div class="label">{escape(label)}</div><div class="big">{value}</div></div>'


def _audit_summary(summary: dict) -> str:
    issues, duplicates, outliers = (
        summary["label_issues"],
        summary["duplicates"],
        summary["outliers"],
    )
    accuracy = summary["test_accuracy"]
    headline = (
        '<div class="headline">'
        + _big("likely label errors", number(issues["total"], "label_issues.total"))
        + _big("duplicate pairs", number(duplicates["pairs"], "duplicates.pairs"))
        + _big("test images with a twin in train", number(duplicates["test_images_with_train_twin"], "duplicates.test_images_with_train_twin"))
        + _big("outliers", number(outliers["total"], "outliers.total"))
        + "</div>"
    )  # fmt: skip
    rows = [
        ["likely label errors", number(issues["train"], "label_issues.train"), number(issues["test"], "label_issues.test")],
        ["outliers", number(outliers["train"], "outliers.train"), number(outliers["test"], "outliers.test")],
    ]  # fmt: skip
    kinds = duplicates["by_splits"]
    text = (
        f"<p>Images: {number(summary['images']['train'], 'images.train')} train and "
        f"{number(summary['images']['test'], 'images.test')} test, pooled and scored by "
        f"{number(summary['folds'], 'folds')}-fold cross-validation: every image's probabilities "
        "come from a model that never saw it.</p>"
        + table(["issue", "train", "test"], rows, "audit-counts")
        + f"<p>Duplicate pairs: {number(duplicates['exact_pairs'], 'duplicates.exact_pairs')} exact and "
        f"{number(duplicates['near_pairs'], 'duplicates.near_pairs')} near "
        f"({number(kinds['train-train'], 'duplicates.by_splits.train-train')} within train, "
        f"{number(kinds['test-test'], 'duplicates.by_splits.test-test')} within test, "
        f"{number(kinds['test-train'], 'duplicates.by_splits.test-train')} across test and train). "
        "A test image with a twin in train is leakage: the model is scored on what it has seen.</p>"
        f"<p><b>Test accuracy</b> of the cross-validated models: "
        f"{number(accuracy['all'], 'test_accuracy.all')} on all test images, "
        f"{number(accuracy['without_flagged'], 'test_accuracy.without_flagged')} without the "
        f"{number(accuracy['flagged_test_images'], 'test_accuracy.flagged_test_images')} flagged ones.</p>"
    )  # fmt: skip
    return headline + text + _published_paragraph(summary)


def _published_paragraph(summary: dict) -> str:
    published = summary.get("published_label_errors")
    if published is None:
        return (
            f"<p>No published, human-confirmed list of label errors is known to mnistlab for "
            f"{escape(summary['dataset'])}, so there is no overlap to report.</p>"
        )
    if published["published"] == 0:
        return (
            "<p><b>Published label errors.</b> None of the MNIST test-set label errors confirmed by "
            "people in the study below lies among the test images audited (a --test-limit cut them "
            f"off), so there is no overlap to report. Source: {escape(published['source'])}.</p>"
        )
    named = ""
    if "in_queue" in published:  # summaries written before the review queue lack the names
        found = ", ".join(f"#{index}" for index in published["in_queue"]) or "none"
        missed = ", ".join(f"#{index}" for index in published["missed"]) or "none"
        named = (
            f" In the test review queue ({number(published['review'], 'published.review')}"
            f" images): {escape(found)}; not in it: {escape(missed)}."
        )
    return (
        f"<p><b>Published label errors.</b> Of the {number(published['published'], 'published.published')} "
        "MNIST test-set label errors confirmed by people in the study below, the audit ranks "
        f"<b>{number(published['top_50'], 'published.top_50')}</b> among its 50 most suspect test images, "
        f"<b>{number(published['top_100'], 'published.top_100')}</b> among its 100 most suspect, and flags "
        f"{number(published['flagged'], 'published.flagged')} in all.{named} "
        f"Source: {escape(published['source'])}. "
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
        sheets += f"<h3>{escape(split)}: the {len(shown):,} lowest label qualities</h3>"
        sheets += f'<div class="sheet" id="queue-{split}">{figures}</div>'
    return text + sheets


def _queue_cell(cell: dict) -> str:
    encoded = base64.b64encode(cell["png"]).decode("ascii")
    mark = " ⚑" if cell["flagged"] else ""
    cls = ' class="published"' if cell["published"] else ""
    alt = f"{cell['split']} #{cell['index']}, given {cell['given_label']}"
    return (
        f'<figure{cls} data-split="{escape(cell["split"])}" data-index="{cell["index"]}">'
        f'<img alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{cell['rank']} · #{cell['index']}{mark}<br>"
        f"{cell['given_label']} → {cell['suggested_label']}</figcaption></figure>"
    )


def _audit_label_issues(summary: dict, rows: list[dict], figures: dict[str, bytes]) -> str:
    table_rows = [
        [
            number(row["rank"], f"label_issues.{row['rank']}.rank"),
            escape(row["split"]),
            escape(row["index"]),
            number(row["given_label"], f"label_issues.{row['rank']}.given_label"),
            number(row["suggested_label"], f"label_issues.{row['rank']}.suggested_label"),
            number(row["label_quality"], f"label_issues.{row['rank']}.label_quality", 5),
            number(row["self_confidence"], f"label_issues.{row['rank']}.self_confidence", 5),
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
        + image(figures["label_issues"], "the most likely label errors")
        + table(
            [
                "rank",
                "split",
                "index",
                "given",
                "suggested",
                "label quality",
                "self-confidence",
                "",
            ],
            table_rows,
            "label-issues",
        )
    )


def _audit_duplicates(summary: dict, rows: list[dict], figures: dict[str, bytes]) -> str:
    duplicates = summary["duplicates"]
    table_rows = [
        [
            escape(row["first"]),
            escape(row["second"]),
            number(row["rms_difference"], f"duplicates.{i}.rms"),
        ]
        for i, row in enumerate(rows)
    ]
    threshold = number(duplicates["threshold_rms"], "duplicates.threshold_rms", 3)
    return (
        "<p>Two images are near-duplicates when the root-mean-square difference of their pixels "
        f"(scaled to [0, 1]) is below {threshold}; exact ones (difference 0) are found by hashing "
        "the pixels. Below: the closest test-train pairs, test image left, whether or not they "
        "are below the threshold. All pairs: <code>duplicates.csv</code>.</p>"
        + image(figures["duplicates"], "the closest test-train pairs")
        + (table(["image", "its twin", "RMS difference"], table_rows, "duplicates") if rows else "<p>No duplicates.</p>")
    )  # fmt: skip


def _audit_outliers(summary: dict, rows: list[dict], figures: dict[str, bytes]) -> str:
    outliers = summary["outliers"]
    table_rows = [
        [
            number(row["rank"], f"outliers.{row['rank']}.rank"),
            escape(row["image"]),
            number(row["label"], f"outliers.{row['rank']}.label"),
            number(row["score"], f"outliers.{row['rank']}.score"),
        ]
        for row in rows
    ]
    return (
        "<p>cleanlab's out-of-distribution score (<code>cleanlab.outlier.OutOfDistribution</code>) "
        "from each image's 10 nearest neighbours among all images (50 principal components of the "
        "pixels); low means unlike any other image. Flagged: a mean neighbour distance beyond "
        f"Tukey's fence ({number(outliers['fence_iqr'], 'outliers.fence_iqr', 1)} "
        "interquartile ranges above the third quartile), i.e. a score below "
        f"{number(outliers['score_threshold'], 'outliers.score_threshold')}. Below: the most "
        "atypical images. All flagged rows: <code>outliers.csv</code>.</p>"
        + image(figures["outliers"], "the most atypical images")
        + (table(["rank", "image", "label", "score"], table_rows, "outliers") if rows else "<p>No outliers.</p>")
    )  # fmt: skip


def _audit_method(config: dict, summary: dict) -> str:
    fold_rows = [
        [str(fold), number(value, f"cross_validated_accuracy.per_fold.{fold}")]
        for fold, value in enumerate(summary["cross_validated_accuracy"]["per_fold"], start=1)
    ]
    config_rows = [
        [escape(key), setting(value)] for key, value in config.items() if key != "model_input"
    ]
    timing_rows = [
        [escape(key), number(value, f"timings.{key}", 2)]
        for key, value in summary["timings"].items()
    ]
    version_rows = [[escape(k), escape(v)] for k, v in summary["versions"].items()]
    return (
        "<p>The train and test images are pooled and split into stratified folds; for each fold a "
        f"fresh <b>{escape(summary['model'])}</b> is trained on the other folds (the same model and "
        "training as <code>mnistlab train</code>) and predicts the held-out images.</p>"
        + '<div class="grid">'
        + "<div><h3>Held-out accuracy per fold</h3>" + table(["fold", "accuracy"], fold_rows) + "</div>"
        + "<div><h3>Configuration</h3>" + table(["setting", "value"], config_rows) + "</div>"
        + "<div><h3>Timings (seconds)</h3>" + table(["phase", "seconds"], timing_rows) + "</div>"
        + "<div><h3>Library versions</h3>" + table(["library", "version"], version_rows) + "</div>"
        + "</div>"
    )  # fmt: skip
