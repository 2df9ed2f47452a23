"""What an audit writes about its findings, besides summary.json: the CSV tables (label
issues, duplicates, outliers, and the review queue candidates.csv), the figures, and the rows
and contact sheet that audit.html shows (``audit_report`` assembles the page).
"""

from __future__ import annotations

import numpy as np

from mnistlab import audit, audits, fileio, plots

# How many of each kind of issue the figures and the HTML tables show (the CSVs hold all).
SHOWN_LABEL_ISSUES = 60
SHOWN_DUPLICATE_PAIRS = 16
SHOWN_OUTLIERS = 40
TABLE_ROWS = 100


def _label_issue_rows(num_train, issues):
    for rank, position in enumerate(issues.ranked, start=1):
        split, index = audit.split_and_index(int(position), num_train)
        yield rank, split, index, position


def write_tables(files: audits.Audit, num_train, issues, duplicates, outliers, labels) -> None:
    """label_issues.csv, duplicates.csv and outliers.csv, every row."""
    fileio.write_csv(
        files.label_issues_path,
        ["rank", "split", "index", "given_label", "suggested_label", "label_quality", "self_confidence"],
        [
            [rank, split, index, int(issues.given_labels[position]),
             int(issues.suggested_labels[position]),
             f"{issues.label_quality[position]:.6f}", f"{issues.self_confidence[position]:.6f}"]
            for rank, split, index, position in _label_issue_rows(num_train, issues)
        ],
    )  # fmt: skip
    duplicate_rows = []
    for pair in duplicates:
        first_split, first_index = audit.split_and_index(pair.first, num_train)
        second_split, second_index = audit.split_and_index(pair.second, num_train)
        duplicate_rows.append(
            [first_split, first_index, int(labels[pair.first]), second_split, second_index,
             int(labels[pair.second]), f"{pair.rms_difference:.6f}",
             "exact" if pair.rms_difference == 0 else "near"]
        )  # fmt: skip
    fileio.write_csv(
        files.duplicates_path,
        ["first_split", "first_index", "first_label", "second_split", "second_index",
         "second_label", "rms_difference", "kind"],
        duplicate_rows,
    )  # fmt: skip
    fileio.write_csv(
        files.outliers_path,
        ["rank", "split", "index", "label", "outlier_score"],
        [
            [rank, *audit.split_and_index(int(position), num_train), int(labels[position]),
             f"{outliers.scores[position]:.6f}"]
            for rank, position in enumerate(outliers.ranked, start=1)
        ],
    )  # fmt: skip


CANDIDATE_COLUMNS = [
    "rank", "split", "index", "given_label", "suggested_label", "label_quality", "flagged",
]  # fmt: skip


def write_candidates(files: audits.Audit, num_train: int, issues, queue: np.ndarray) -> None:
    """The review queue: each split's lowest label qualities, flagged or not, rank 1 first."""
    rows, ranks = [], {}
    for position in queue:
        split, index = audit.split_and_index(int(position), num_train)
        ranks[split] = ranks.get(split, 0) + 1
        rows.append(
            [ranks[split], split, index, int(issues.given_labels[position]),
             int(issues.suggested_labels[position]), f"{issues.label_quality[position]:.6f}",
             int(issues.flagged[position])]
        )  # fmt: skip
    fileio.write_csv(files.candidates_path, CANDIDATE_COLUMNS, rows)


def queue_cells(images, num_train, issues, queue, dataset) -> list[dict]:
    """The review queue for audit_report.render_audit's contact sheet: each image as PNG bytes."""
    cells, ranks = [], {}
    for position in queue:
        split, index = audit.split_and_index(int(position), num_train)
        ranks[split] = ranks.get(split, 0) + 1
        cells.append(
            {"rank": ranks[split], "split": split, "index": index,
             "given_label": int(issues.given_labels[position]),
             "suggested_label": int(issues.suggested_labels[position]),
             "label_quality": float(issues.label_quality[position]),
             "flagged": bool(issues.flagged[position]),
             "published": _is_published(dataset, split, index),
             "png": _digit_png(images[position])}
        )  # fmt: skip
    return cells


def _digit_png(image: np.ndarray) -> bytes:
    """One 28x28 image as a small PNG, ink dark on white as the contact sheets draw it."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(255 - np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _is_published(dataset: str, split: str, index: int) -> bool:
    published = audit.PUBLISHED_LABEL_ERRORS.get(dataset, {})
    return split == "test" and index in published


def draw_figures(
    config, images, labels, num_train, issues, neighbours, outliers
) -> dict[str, bytes]:
    """The three figures as PNG bytes: the likeliest label errors, the closest test-train
    pairs and the most atypical images."""
    shown = issues.ranked[:SHOWN_LABEL_ISSUES]
    captions, marked = [], []
    for position in shown:
        split, index = audit.split_and_index(int(position), num_train)
        captions.append(
            f"{split} #{index}\ngiven {issues.given_labels[position]}"
            f" → {issues.suggested_labels[position]}"
        )
        marked.append(_is_published(config.dataset, split, index))
    label_sheet = plots.contact_sheet(
        images[shown], captions, highlighted=marked, empty_text="no label issues"
    )

    # The pooled order puts train first, so pair.second is the test image.
    closest = audit.closest_cross_pairs(images, neighbours, num_train, SHOWN_DUPLICATE_PAIRS)
    pair_figure = plots.image_pairs(
        images[[pair.second for pair in closest]],
        images[[pair.first for pair in closest]],
        [
            f"test #{pair.second - num_train} ({labels[pair.second]}) |"
            f" train #{pair.first} ({labels[pair.first]})\nRMS difference {pair.rms_difference:.3f}"
            for pair in closest
        ],
    )
    # The most atypical images whether flagged or not: even with no outliers a reader sees
    # what the least typical images look like.
    shown = outliers.order[:SHOWN_OUTLIERS]
    outlier_sheet = plots.contact_sheet(
        images[shown],
        [
            "{} #{} ({})\nscore {:.3f}".format(
                *audit.split_and_index(int(position), num_train), labels[position],
                outliers.scores[position],
            )
            for position in shown
        ],
        empty_text="no images",
    )  # fmt: skip
    figures = {"label_issues": label_sheet, "duplicates": pair_figure, "outliers": outlier_sheet}
    return {name: plots.to_png(figure) for name, figure in figures.items()}


def html_tables(num_train, issues, duplicates, outliers, labels, dataset) -> dict[str, list[dict]]:
    """The first rows of each table, as plain dicts for audit_report.render_audit."""
    label_rows = [
        {
            "rank": rank, "split": split, "index": index,
            "given_label": int(issues.given_labels[position]),
            "suggested_label": int(issues.suggested_labels[position]),
            "label_quality": float(issues.label_quality[position]),
            "self_confidence": float(issues.self_confidence[position]),
            "published": _is_published(dataset, split, index),
        }
        for rank, split, index, position in _label_issue_rows(num_train, issues)
        if rank <= TABLE_ROWS
    ]  # fmt: skip
    duplicate_rows = []
    for pair in duplicates[:TABLE_ROWS]:
        first_split, first_index = audit.split_and_index(pair.first, num_train)
        second_split, second_index = audit.split_and_index(pair.second, num_train)
        duplicate_rows.append(
            {"first": f"{first_split} #{first_index} ({labels[pair.first]})",
             "second": f"{second_split} #{second_index} ({labels[pair.second]})",
             "rms_difference": pair.rms_difference}
        )  # fmt: skip
    outlier_rows = [
        {"rank": rank, "image": "{} #{}".format(*audit.split_and_index(int(position), num_train)),
         "label": int(labels[position]), "score": float(outliers.scores[position])}
        for rank, position in enumerate(outliers.ranked[:TABLE_ROWS], start=1)
    ]  # fmt: skip
    return {"label_issues": label_rows, "duplicates": duplicate_rows, "outliers": outlier_rows}
