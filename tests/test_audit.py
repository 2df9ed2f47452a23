"""The dataset audit: pure checks (audit.py), the cross-validated workflow (audit_workflow.py)
with resume, `train --exclude`, and the CLI's one-line errors."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from mnistlab import (
    audit,
    audit_workflow,
    audits,
    datafiles,
    downloads,
    exclusion,
    fileio,
    pipeline,
    runs,
)
from mnistlab.config import Config
from mnistlab.data import Dataset
from mnistlab.errors import RunError
from mnistlab.pipeline import Hooks

from tests.helpers import assert_one_line_error, run_cli

NUM_TRAIN, NUM_TEST = 800, 200
FLIPPED_FRACTION = 0.03


def synthetic_dataset(seed: int = 0):
    """Ten random binary 'glyphs', each image one of them with 8% of its pixels toggled, so a
    small MLP separates the classes. 3% of the labels are flipped to another class; three test
    images are exact copies of train images; one test image is uniform noise.

    Returns the dataset (with the corrupted labels), the pooled positions of the flipped
    labels, the planted (train, test) duplicate index pairs and the noise image's test index.
    """
    rng = np.random.default_rng(seed)
    glyphs = rng.random((10, 28, 28)) < 0.25
    total = NUM_TRAIN + NUM_TEST
    labels = np.arange(total) % 10
    rng.shuffle(labels)
    toggles = rng.random((total, 28, 28)) < 0.08
    images = (np.logical_xor(glyphs[labels], toggles) * 255).astype(np.uint8)
    flipped = rng.choice(total, size=int(FLIPPED_FRACTION * total), replace=False)
    given = labels.copy()
    given[flipped] = (labels[flipped] + rng.integers(1, 10, size=len(flipped))) % 10
    planted_pairs = [(5, 10), (6, 20), (7, 30)]  # (train index, test index)
    for train_index, test_index in planted_pairs:
        images[NUM_TRAIN + test_index] = images[train_index]
        given[NUM_TRAIN + test_index] = given[train_index]
    noise_index = 50
    images[NUM_TRAIN + noise_index] = rng.integers(0, 256, size=(28, 28), dtype=np.uint8)
    flipped = np.array(
        sorted(set(flipped) - {NUM_TRAIN + t for _, t in planted_pairs} - {NUM_TRAIN + noise_index})
    )
    dataset = Dataset(
        name="mnist",
        train_images=images[:NUM_TRAIN],
        train_labels=given[:NUM_TRAIN].astype(np.uint8),
        test_images=images[NUM_TRAIN:],
        test_labels=given[NUM_TRAIN:].astype(np.uint8),
        sha256={},
        sources={},
    )
    return dataset, flipped, planted_pairs, noise_index


@pytest.fixture
def synthetic(monkeypatch):
    """The synthetic dataset, served wherever mnistlab loads data."""
    dataset, flipped, pairs, noise_index = synthetic_dataset()
    monkeypatch.setattr(pipeline, "load_dataset", lambda *args, **kwargs: dataset)
    return dataset, flipped, pairs, noise_index


SMALL_AUDIT = Config.for_model("seed-mlp", epochs=8, batch_size=64, folds=3)


# Pure functions ---------------------------------------------------------------------------


def test_folds_are_stratified_and_cover_every_image_once():
    labels = np.repeat(np.arange(10), 30)
    assignment = audit.fold_of_each_image(labels, folds=3, seed=0)
    assert sorted(np.unique(assignment)) == [0, 1, 2]
    for fold in range(3):
        assert np.array_equal(np.bincount(labels[assignment == fold], minlength=10), [10] * 10)
    assert np.array_equal(assignment, audit.fold_of_each_image(labels, folds=3, seed=0))
    with pytest.raises(ValueError, match="folds"):
        audit.fold_of_each_image(labels, folds=1, seed=0)


def test_label_issues_rank_the_contradicted_labels_first():
    rng = np.random.default_rng(0)
    true_labels = np.arange(1000) % 10
    probabilities = np.full((1000, 10), 0.01)
    probabilities[np.arange(1000), true_labels] = 0.91
    probabilities += rng.random((1000, 10)) * 0.01
    given = true_labels.copy()
    wrong = rng.choice(1000, size=30, replace=False)
    given[wrong] = (given[wrong] + rng.integers(1, 10, size=30)) % 10
    issues = audit.find_label_issues(probabilities, given)
    # No false alarms, and at least 90% of the wrong labels found (cleanlab's noise-rate
    # pruning may keep a few when a class pair has a single error).
    assert set(issues.ranked) <= set(wrong)
    assert len(issues.ranked) >= 27
    assert np.array_equal(issues.suggested_labels[wrong], true_labels[wrong])
    assert np.all(np.diff(issues.label_quality[issues.ranked]) >= 0)
    normalized = probabilities / probabilities.sum(axis=1, keepdims=True)
    assert np.allclose(issues.self_confidence, normalized[np.arange(1000), given])


def test_planted_duplicates_are_found_and_distinct_images_are_not():
    dataset, _, pairs, _ = synthetic_dataset()
    images = np.concatenate([dataset.train_images, dataset.test_images])
    near = images[100].copy()
    near[0, :3] = 255 - near[0, :3]  # Three pixels changed: RMS difference ~0.06, not "near".
    images[101] = images[100]
    found = audit.find_duplicates(images, audit.nearest_neighbours(audit.pixel_features(images)))
    found_pairs = {(pair.first, pair.second) for pair in found}
    expected = {(train, NUM_TRAIN + test) for train, test in pairs} | {(100, 101)}
    assert found_pairs == expected
    assert all(pair.rms_difference == 0 for pair in found)


def test_closest_cross_pairs_are_train_test_pairs_by_difference():
    dataset, _, pairs, _ = synthetic_dataset()
    images = np.concatenate([dataset.train_images, dataset.test_images])
    neighbours = audit.nearest_neighbours(audit.pixel_features(images))
    closest = audit.closest_cross_pairs(images, neighbours, NUM_TRAIN, count=5)
    assert len(closest) == 5
    assert {(p.first, p.second) for p in closest[:3]} == {(t, NUM_TRAIN + s) for t, s in pairs}
    assert all(p.first < NUM_TRAIN <= p.second for p in closest)
    assert [p.rms_difference for p in closest] == sorted(p.rms_difference for p in closest)
    assert closest[3].rms_difference > 0.1  # the rest are merely the nearest, not duplicates


def test_a_near_duplicate_below_the_threshold_is_found():
    dataset, _, _, _ = synthetic_dataset()
    images = dataset.train_images.copy()
    images[1] = images[0]
    images[1, 14, 14] = 255 - images[1, 14, 14]  # One pixel: RMS difference 1/28 ~ 0.036.
    found = audit.find_duplicates(
        images, audit.nearest_neighbours(audit.pixel_features(images)), threshold=0.04
    )
    assert [(pair.first, pair.second) for pair in found] == [(0, 1)]
    assert found[0].rms_difference == pytest.approx(1 / 28, rel=1e-5)


def test_an_image_of_noise_is_the_top_outlier():
    dataset, _, _, noise_index = synthetic_dataset()
    images = np.concatenate([dataset.train_images, dataset.test_images])
    outliers = audit.find_outliers(audit.nearest_neighbours(audit.pixel_features(images)))
    assert outliers.ranked[0] == NUM_TRAIN + noise_index
    # Tukey's fence flags a few per cent of ordinary images at most (16 of 1,000 here).
    assert outliers.flagged.sum() < 0.03 * len(images)
    assert outliers.scores[NUM_TRAIN + noise_index] < 0.5 * np.median(outliers.scores)


def test_published_overlap_and_accuracy_without():
    flagged = np.zeros(20, dtype=bool)
    flagged[[2, 5]] = True
    ranking = np.array([5, 9, 2, 1, 0])
    overlap = audit.published_overlap(
        ranking, flagged, {2: 1, 9: 4, 15: 0, 99: 3}, tops=(1, 3), review=2
    )
    assert overlap == {
        "published": 3, "flagged": 1, "top_1": 0, "top_3": 2,
        "review": 2, "in_queue": [9], "missed": [2, 15],
    }  # fmt: skip
    probabilities = np.eye(10)[[0, 1, 2, 3]]
    assert audit.accuracy_without(
        probabilities, np.array([0, 1, 5, 5]), np.array([0, 0, 1, 0], bool)
    ) == (
        0.5,
        pytest.approx(2 / 3),
    )


def test_review_queue_takes_each_splits_lowest_quality_in_order():
    quality = np.array([0.9, 0.1, 0.5, 0.1, 0.7, 0.3, 0.8, 0.2, 0.05])  # 5 train, then 4 test
    queue = audit.review_queue(quality, num_train=5, count=3)
    # Ties (positions 1 and 3) in position order; test's queue follows train's.
    assert queue.tolist() == [1, 3, 2, 8, 7, 5]
    whole = audit.review_queue(quality, num_train=5, count=10)
    assert whole.tolist() == [1, 3, 2, 4, 0, 8, 7, 5, 6]


def test_shifted_copies_move_the_image_one_pixel_each_way():
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    image[0, 10, 12] = 255
    moved = [np.argwhere(copy[0]).tolist() for copy in audit.shifted_copies(image, 1)]
    assert sorted(moved) == sorted([[[10, 11]], [[10, 13]], [[9, 12]], [[11, 12]]])
    edge = np.zeros((1, 28, 28), dtype=np.uint8)
    edge[0, 0, :] = 255  # a shifted copy does not wrap the top row round to the bottom
    assert all(copy[0, 27].max() == 0 for copy in audit.shifted_copies(edge, 1))


@pytest.mark.mnist
def test_published_list_matches_the_mnist_test_labels(mnist):
    """The list's given labels are MNIST's test labels at those indices: the indexing agrees."""
    for index, given in audit.MNIST_TEST_LABEL_ERRORS.items():
        assert mnist.test_labels[index] == given


# The workflow -----------------------------------------------------------------------------


def test_audit_finds_flipped_labels_duplicates_and_noise(synthetic, tmp_path):
    dataset, flipped, pairs, noise_index = synthetic
    audit_dir = audit_workflow.audit_dataset(SMALL_AUDIT, out_dir=tmp_path / "audit")

    for name in ("config.json", "summary.json", "audit.html", "label_issues.csv", "duplicates.csv",
                 "outliers.csv", "probabilities.npy", *audits.AUDIT_FIGURE_FILES.values()):  # fmt: skip
        assert (audit_dir / name).is_file(), name
    # Fold files are cleared at the end.
    assert audits.Audit(audit_dir).finished_folds(SMALL_AUDIT.folds) == []
    assert Config.from_json_file(audit_dir / "config.json") == SMALL_AUDIT

    rows = list(csv.DictReader((audit_dir / "label_issues.csv").read_text().splitlines()))
    ranked = [NUM_TRAIN * (row["split"] == "test") + int(row["index"]) for row in rows]
    # Recall at the number flagged: cleanlab's noise-rate pruning flags 25 images here, all of
    # them flipped labels (measured: recall 25/30 = 0.83, precision 1.0). It keeps a few
    # contradicted labels when a class pair holds a single error, hence 0.75, not 1.
    found = set(ranked) & set(flipped)
    assert len(found) >= 0.75 * len(flipped)
    assert len(found) >= 0.9 * len(rows)
    # Ranked by label quality, every flipped label is among the len(flipped) most suspect images.
    issues = audit.find_label_issues(
        fileio.read_npy(audit_dir / "probabilities.npy"),
        np.concatenate([dataset.train_labels, dataset.test_labels]),
    )
    most_suspect = np.argsort(issues.label_quality, kind="stable")[: len(flipped)]
    assert len(set(most_suspect) & set(flipped)) >= 0.9 * len(flipped)

    summary = json.loads((audit_dir / "summary.json").read_text())
    assert summary["duplicates"]["test_images_with_train_twin"] == len(pairs)
    assert summary["duplicates"]["exact_pairs"] == len(pairs)
    duplicates = list(csv.DictReader((audit_dir / "duplicates.csv").read_text().splitlines()))
    assert {(int(r["first_index"]), int(r["second_index"])) for r in duplicates} == set(pairs)
    outliers = list(csv.DictReader((audit_dir / "outliers.csv").read_text().splitlines()))
    assert (outliers[0]["split"], int(outliers[0]["index"])) == ("test", noise_index)
    # Accuracy without the flagged test images is higher: they are mostly wrong labels.
    assert summary["test_accuracy"]["without_flagged"] > summary["test_accuracy"]["all"]
    html = (audit_dir / "audit.html").read_text()
    assert "http://" not in html.replace("https://labelerrors.com", "").split("<body>")[0]
    assert 'data-metric="label_issues.total"' in html


def read_candidates(audit_dir):
    return list(csv.DictReader((audit_dir / audits.CANDIDATES_FILE).read_text().splitlines()))


def test_the_review_queue_ranks_planted_flips_first_in_label_quality_order(synthetic, tmp_path):
    dataset, flipped, _, _ = synthetic
    train_flips = {int(position) for position in flipped if position < NUM_TRAIN}
    review = len(train_flips)
    audit_dir = audit_workflow.audit_dataset(SMALL_AUDIT, out_dir=tmp_path / "audit", review=review)
    rows = read_candidates(audit_dir)
    assert list(rows[0]) == [
        "rank", "split", "index", "given_label", "suggested_label", "label_quality", "flagged",
    ]  # fmt: skip
    # Train's queue, then test's, each `review` long, ranked 1..review.
    assert [row["split"] for row in rows] == ["train"] * review + ["test"] * review
    for split in ("train", "test"):
        queue = [row for row in rows if row["split"] == split]
        assert [int(row["rank"]) for row in queue] == list(range(1, review + 1))
        qualities = [float(row["label_quality"]) for row in queue]
        assert qualities == sorted(qualities)
    # The queue's order and values are the audit's label quality over that split.
    labels = np.concatenate([dataset.train_labels, dataset.test_labels])
    issues = audit.find_label_issues(fileio.read_npy(audit_dir / "probabilities.npy"), labels)
    train_rows = rows[:review]
    assert [int(row["index"]) for row in train_rows] == np.argsort(
        issues.label_quality[:NUM_TRAIN], kind="stable"
    )[:review].tolist()
    for row in rows:
        position = int(row["index"]) + NUM_TRAIN * (row["split"] == "test")
        quality = issues.label_quality[position]
        assert float(row["label_quality"]) == pytest.approx(quality, abs=1e-6)
        assert int(row["given_label"]) == labels[position]
        assert int(row["suggested_label"]) == issues.suggested_labels[position]
        assert row["flagged"] == str(int(issues.flagged[position]))
    # Recall at the queue's length: the planted training flips fill the top of train's queue.
    queued = {int(row["index"]) for row in train_rows}
    assert len(queued & train_flips) >= 0.9 * len(train_flips)
    # label_issues.csv is unchanged: only the flagged images.
    flagged_rows = list(csv.DictReader((audit_dir / "label_issues.csv").read_text().splitlines()))
    assert len(flagged_rows) == issues.flagged.sum()

    # The contact sheet shows the same queue, test first, with given and suggested labels.
    html = (audit_dir / "audit.html").read_text()
    sheet = html.split('id="queue-test"')[1].split("</div>")[0]
    test_rows = rows[review:]
    assert sheet.count("<figure") == review
    first = test_rows[0]
    assert f'data-index="{first["index"]}"' in sheet.split("<figure")[1]
    assert f"{first['given_label']} → {first['suggested_label']}" in sheet.split("<figure")[1]
    train_sheet = html.split('id="queue-train"')[1].split("</div>")[0]
    assert train_sheet.count("<figure") == review
    assert html.index('id="queue-test"') < html.index('id="queue-train"')
    summary = json.loads((audit_dir / "summary.json").read_text())
    assert summary["review_queue"]["per_split"] == review


def test_the_contact_sheet_marks_published_errors_and_flags():
    from mnistlab import audit_report

    cell = {"rank": 1, "split": "test", "index": 947, "given_label": 8, "suggested_label": 4,
            "label_quality": 0.01, "flagged": True, "published": True, "png": b"png"}  # fmt: skip
    shown = audit_report._queue_cell(cell)
    assert 'class="published"' in shown and "⚑" in shown and "8 → 4" in shown
    plain = audit_report._queue_cell({**cell, "flagged": False, "published": False})
    assert "published" not in plain and "⚑" not in plain


class StopAfter(Exception):
    pass


def test_an_interrupted_audit_resumes_after_its_last_finished_fold(synthetic, tmp_path):
    config = SMALL_AUDIT.replace(epochs=2)
    complete = audit_workflow.audit_dataset(config, out_dir=tmp_path / "complete")

    def stop_after_two(finished, total):
        if finished == 2:
            raise StopAfter()

    interrupted = tmp_path / "interrupted"
    with pytest.raises(StopAfter):
        audit_workflow.audit_dataset(
            config, out_dir=interrupted, hooks=Hooks(on_fold=stop_after_two)
        )
    assert audits.Audit(interrupted).finished_folds(config.folds) == [0, 1]
    assert not (interrupted / audits.SUMMARY_FILE).exists()

    phases = []
    audit_workflow.audit_dataset(
        runs.read_config(interrupted),
        out_dir=interrupted,
        resume=True,
        hooks=Hooks(on_phase=phases.append),
    )
    trained = [phase for phase in phases if "training" in phase]
    assert len(trained) == 1 and trained[0].startswith("fold 3/3")
    resumed = fileio.read_npy(interrupted / audits.PROBABILITIES_FILE)
    assert np.allclose(resumed, fileio.read_npy(complete / audits.PROBABILITIES_FILE), atol=1e-5)
    assert (interrupted / "label_issues.csv").read_text() == (
        complete / "label_issues.csv"
    ).read_text()


def test_an_audit_interrupted_before_any_fold_leaves_nothing(synthetic, tmp_path):
    def stop(message):
        if message.startswith("fold 1/"):
            raise StopAfter()

    with pytest.raises(StopAfter):
        audit_workflow.audit_dataset(
            SMALL_AUDIT, out_dir=tmp_path / "audit", hooks=Hooks(on_phase=stop)
        )
    assert not (tmp_path / "audit").exists()


# train --exclude --------------------------------------------------------------------------


def write_issues(path, rows):
    path.write_text(
        "rank,split,index,given_label\n"
        + "".join(f"{i},{s},{n},0\n" for i, (s, n) in enumerate(rows))
    )
    return path


def test_exclude_drops_exactly_the_listed_train_images(synthetic, tmp_path):
    dataset = synthetic[0]
    csv_path = write_issues(
        tmp_path / "issues.csv", [("train", 3), ("test", 4), ("train", 700), ("train", 3)]
    )
    config = exclusion.with_exclusion(Config(train_limit=500), csv_path)
    assert (config.excluded_count, config.exclude) == (2, str(csv_path.resolve()))
    indices = exclusion.excluded_train_indices(config)
    assert indices == [3, 700]
    loaded = pipeline.load_for_config(config, excluded_train=indices)
    kept = np.delete(np.arange(500), [3])
    assert np.array_equal(loaded.train_images, dataset.train_images[kept])
    assert np.array_equal(loaded.train_labels, dataset.train_labels[kept])
    assert np.array_equal(loaded.test_images, dataset.test_images)

    # A run keeps its own copy; if the source file changes, the recorded hash catches it.
    write_issues(csv_path, [("train", 9)])
    with pytest.raises(RunError, match="changed"):
        exclusion.excluded_train_indices(config)


def test_bad_exclusion_files_are_errors(tmp_path):
    (tmp_path / "wrong.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RunError, match="split"):
        exclusion.with_exclusion(Config(), tmp_path / "wrong.csv")
    with pytest.raises(RunError, match="does not exist"):
        exclusion.with_exclusion(Config(), tmp_path / "missing.csv")


def test_train_with_exclude_records_it_and_marks_audit_flags(synthetic, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    audit_dir = audit_workflow.audit_dataset(
        SMALL_AUDIT.replace(epochs=2), out_dir=tmp_path / "audits" / "a"
    )
    issues = audit_dir / "label_issues.csv"
    config = exclusion.with_exclusion(Config(epochs=1, export_onnx=False), issues)
    run_dir = pipeline.train_run(config, out_dir=tmp_path / "run")
    saved = runs.read_config(run_dir)
    listed = exclusion.read_excluded_train_indices(issues)
    assert saved.excluded_count == len(listed) > 0
    assert json.loads((run_dir / runs.EXCLUDED_FILE).read_text()) == listed
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["audit"]["dir"] == str(audit_dir)
    flagged = audits.Audit(audit_dir).read_flagged_test_indices()
    assert all(
        error["audit_flagged"] == (error["index"] in flagged)
        for error in metrics["test"]["top_errors"]
    )
    assert "label suspect" in (run_dir / "report.html").read_text()

    # The review queue excludes its training rows: all of them, flagged or not.
    candidates = audits.Audit(audit_dir).candidates_path
    rows = read_candidates(audit_dir)
    queued = sorted(int(row["index"]) for row in rows if row["split"] == "train")
    config = exclusion.with_exclusion(Config(epochs=1, export_onnx=False), candidates)
    assert exclusion.excluded_train_indices(config) == queued
    assert config.excluded_count == len(queued) == min(audit_workflow.AUDIT_REVIEW, NUM_TRAIN)
    run_dir = pipeline.train_run(config, out_dir=tmp_path / "run-candidates")
    assert json.loads((run_dir / runs.EXCLUDED_FILE).read_text()) == queued
    assert json.loads((run_dir / "metrics.json").read_text())["audit"]["dir"] == str(audit_dir)


# The CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["audit", "--folds", "1"], 2, "--folds"),
        (["audit", "--model", "resnet"], 2, "seed-mlp"),
        (["audit", "--dataset", "cifar"], 2, "cifar"),
        (["audit", "--review", "0"], 2, "--review"),
        (["audit", "--no-such-flag"], 2, "no-such-flag"),
        (["audit", "--resume", "/nonexistent/audit"], 1, "does not exist"),
        (["train", "--exclude", "/nonexistent/issues.csv"], 1, "does not exist"),
    ],
)
def test_bad_audit_input_is_one_line(capsys, args, code, fragment):
    exit_code, _, err = run_cli(capsys, *args)
    assert exit_code == code
    assert_one_line_error(err)
    assert fragment in err


def test_audit_with_missing_data_is_one_line_and_leaves_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(
        datafiles.SPECS, "mnist", dataclasses.replace(datafiles.SPECS["mnist"], npm_package=None)
    )
    monkeypatch.setenv("MNISTLAB_MIRRORS", "http://127.0.0.1:9/")
    monkeypatch.setattr(downloads, "DOWNLOAD_TIMEOUT_SECONDS", 2)
    (tmp_path / "empty").mkdir()  # A folder that does not exist is a usage error instead.
    code, _, err = run_cli(
        capsys, "audit", "--data-dir", tmp_path / "empty", "--out", tmp_path / "audit"
    )
    assert code == 1
    assert_one_line_error(err)
    assert "could not fetch" in err
    assert not (tmp_path / "audit").exists()


def test_audit_command_prints_the_counts(capsys, synthetic, tmp_path):
    code, out, _ = run_cli(
        capsys,
        "audit",
        "--folds",
        "3",
        "--epochs",
        "2",
        "--review",
        "7",
        "--out",
        tmp_path / "audit",
    )
    assert code == 0
    summary = json.loads((tmp_path / "audit" / "summary.json").read_text())
    assert f"{summary['label_issues']['total']:,}" in out
    assert "published label errors found" in out
    # The audit's own default model, with test-time shifts; --review sets the queue's length.
    assert summary["model"] == "cnn-fast" and summary["probabilities"]["test_time_augmentation"]
    rows = read_candidates(tmp_path / "audit")
    assert [row["split"] for row in rows] == ["train"] * 7 + ["test"] * 7
    assert "audit.html" in out
    assert f"review queue: {tmp_path / 'audit' / 'candidates.csv'}" in out
    # The synthetic test set is too small to hold any of the published MNIST errors.
    assert summary["published_label_errors"]["published"] == 0
    assert "none among the audited test images" in out


def test_audit_summary_names_the_queue_and_the_published_errors_in_it(
    capsys, tmp_path, monkeypatch
):
    from rich.console import Console

    from mnistlab.cli import views

    monkeypatch.setattr(views, "console", Console(width=200))  # a wide terminal: rows unwrapped

    summary = {
        "dataset": "mnist", "model": "cnn-fast", "folds": 5,
        "label_issues": {"total": 120, "train": 119, "test": 1},
        "duplicates": {"pairs": 3, "exact_pairs": 1, "test_images_with_train_twin": 2},
        "outliers": {"total": 40, "train": 30, "test": 10},
        "test_accuracy": {"all": 0.99, "without_flagged": 0.991},
        "review_queue": {"per_split": 100, "ranking": "label_quality"},
        "published_label_errors": {
            "published": 15, "flagged": 1, "top_50": 9, "top_100": 13, "review": 100,
            "in_queue": [947, 1621, 1901, 2130, 2462, 2597, 2654, 3520, 3558, 5937, 6651, 6783,
                         8527], "missed": [9679, 9729],
        },
        "timings": {"total_seconds": 600.0},
    }  # fmt: skip
    audit_dir = tmp_path / "audit"
    files = audits.Audit(audit_dir)
    views.audit_summary(audit_dir, summary, files.report_path, files.candidates_path)
    out = capsys.readouterr().out
    assert "9 in top 50, 13 in top 100, 1 flagged (of 15)" in out
    assert "13 of 15 in candidates.csv's test rows" in out
    assert out.splitlines()[-2:] == [
        f"review queue: {files.candidates_path}",
        f"report: {files.report_path}",
    ]


def test_audit_help_states_the_epochs_config_gives_each_model():
    from typer.main import get_command

    from mnistlab.cli import app
    from mnistlab.config import AUDIT_EPOCHS

    [epochs_option] = [p for p in get_command(app).commands["audit"].params if p.name == "epochs"]
    parts = epochs_option.help.split("[default: ", 1)[1].rstrip("]").split("; ")
    for model, epochs in AUDIT_EPOCHS.items():
        [part] = [part for part in parts if part.startswith(f"{epochs} for ")]
        assert model in part.removeprefix(f"{epochs} for ").replace(" and ", ", ").split(", ")
    assert parts[-1] == "the model's own otherwise"
