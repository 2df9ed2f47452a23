"""The audit workflow (`mnistlab audit`): cross-validated probabilities over train and test
pooled, then the pure checks of ``audit`` and the summary; ``audit_outputs`` writes the
tables and figures, ``audit_report`` the page, into the audit directory.

Each fold's model comes from the same ``models.build_model`` and ``train.fit`` as a run, and
each finished fold's probabilities are saved at once, so an interrupted audit resumes after
its last finished fold.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mnistlab import audit, audit_outputs, audit_report, audits, fileio, runs
from mnistlab.config import AUDIT_REVIEW, Config
from mnistlab.data import NUM_CLASSES
from mnistlab.errors import RunError
from mnistlab.pipeline import Hooks, load_for_config
from mnistlab.provenance import library_versions

# Test-time augmentation for a model trained on shifted images: its held-out probabilities
# are the mean over each image and its four copies moved by this many pixels. On MNIST with
# cnn-fast it ranked more of the published errors and planted flips first (README's table).
TTA_SHIFT_PIXELS = 1


def audit_dataset(
    config: Config,
    data_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    audits_root: str | Path = audits.AUDITS_ROOT,
    hooks: Hooks | None = None,
    resume: bool = False,
    review: int = AUDIT_REVIEW,
) -> Path:
    """Audit ``config.dataset`` with ``config.folds``-fold cross-validation of ``config.model``
    over the pooled train and test images; write the audit directory and return its path.

    With ``resume=True``, ``out_dir`` is an interrupted audit: its finished folds are kept and
    only the others are trained (``config`` must be the one in its config.json). ``review`` is
    how many images of each split the review queue (candidates.csv) holds.
    """
    if review < 1:
        raise RunError(f"the review queue needs at least 1 image per split; received: {review}")
    hooks = hooks or Hooks()
    started = time.perf_counter()
    if resume:
        audit_dir = Path(out_dir)
        if not audit_dir.is_dir():
            raise RunError(f"audit directory {audit_dir} does not exist")
        if not audits.Audit(audit_dir).fold_assignment_path.is_file():
            raise RunError(f"{audit_dir} holds no interrupted audit to resume")
    elif out_dir:
        audit_dir = Path(out_dir)
    else:
        audit_dir = runs.new_run_dir(Path(audits_root), f"{config.dataset}-{config.model}")
    files = audits.Audit(audit_dir)

    def resumable() -> bool:
        return bool(files.finished_folds(config.folds))

    def kept(error: BaseException) -> None:
        hooks.on_phase(
            f"stopped after {len(files.finished_folds(config.folds))} of {config.folds} folds;"
            f" they are kept: resume with `mnistlab audit --resume {audit_dir}`"
        )

    with runs.new_or_resumed(audit_dir, resume, resumable, kept):
        if not resume:
            files.write_config(config)
        hooks.on_phase(f"loading {config.dataset}")
        dataset = load_for_config(config, data_dir, hooks)
        images = np.concatenate([dataset.train_images, dataset.test_images])
        labels = np.concatenate([dataset.train_labels, dataset.test_labels]).astype(np.int64)
        assignment = _fold_assignment(files, labels, config, resume)
        data_seconds = time.perf_counter() - started
        fit_started = time.perf_counter()
        if resume and files.probabilities_path.is_file():
            # A finished cross-validation: only the checks are done again.
            hooks.on_phase("cross-validation finished earlier; its probabilities are kept")
            probabilities = fileio.read_npy(files.probabilities_path)
        else:
            probabilities = _cross_validate(files, images, labels, assignment, config, hooks)
        fit_seconds = time.perf_counter() - fit_started
    fileio.write_npy(files.probabilities_path, probabilities)
    fold_accuracy = [
        float(
            (probabilities[assignment == fold].argmax(axis=1) == labels[assignment == fold]).mean()
        )
        for fold in range(config.folds)
    ]

    hooks.on_phase("finding label issues, duplicates and outliers")
    checks_started = time.perf_counter()
    num_train = len(dataset.train_labels)
    issues = audit.find_label_issues(probabilities, labels)
    neighbours = audit.nearest_neighbours(audit.pixel_features(images, seed=config.seed))
    duplicates = audit.find_duplicates(images, neighbours)
    outliers = audit.find_outliers(neighbours)
    checks_seconds = time.perf_counter() - checks_started

    summary = _summary(
        config, dataset, probabilities, labels, fold_accuracy, issues, duplicates, outliers, review
    )
    queue = audit.review_queue(issues.label_quality, num_train, review)
    audit_outputs.write_tables(files, num_train, issues, duplicates, outliers, labels)
    audit_outputs.write_candidates(files, num_train, issues, queue)
    hooks.on_phase("drawing figures")
    figures = audit_outputs.draw_figures(
        config, images, labels, num_train, issues, neighbours, outliers
    )
    files.write_figures(figures)
    summary["timings"] = {
        "data_load_seconds": data_seconds,
        "cross_validation_seconds": fit_seconds,
        "checks_seconds": checks_seconds,
        "total_seconds": time.perf_counter() - started,
    }
    summary["versions"] = library_versions() | _cleanlab_version()
    summary["data"] = {"sha256": dataset.sha256}
    tables = audit_outputs.html_tables(
        num_train, issues, duplicates, outliers, labels, config.dataset
    )
    tables["candidates"] = audit_outputs.queue_cells(
        images, num_train, issues, queue, config.dataset
    )
    files.write_report(audit_report.render_audit(config.to_dict(), summary, tables, figures))
    # Written last: its presence marks a finished audit (audits.find_audit looks for it).
    files.write_summary(summary)
    files.remove_folds(config.folds)
    return audit_dir


def _fold_assignment(
    files: audits.Audit, labels: np.ndarray, config: Config, resume: bool
) -> np.ndarray:
    path = files.fold_assignment_path
    if resume:
        assignment = fileio.read_npy(path)
        if assignment.shape != labels.shape:
            raise RunError(
                f"{path} assigns {len(assignment)} images, but the dataset has {len(labels)}"
            )
        return assignment
    try:
        assignment = audit.fold_of_each_image(labels, config.folds, config.seed)
    except ValueError as error:
        raise RunError(str(error)) from None
    fileio.write_npy(path, assignment)
    return assignment


def _cross_validate(
    files: audits.Audit,
    images: np.ndarray,
    labels: np.ndarray,
    assignment: np.ndarray,
    config: Config,
    hooks: Hooks,
) -> np.ndarray:
    """Out-of-sample probabilities (float32 (N, 10)) for every image. Finished folds are read
    back; the others are trained and saved."""
    import keras

    from mnistlab.models import build_model, steps_per_epoch
    from mnistlab.train import fit, set_seed

    probabilities = np.zeros((len(labels), NUM_CLASSES), dtype=np.float32)
    for fold in range(config.folds):
        held_out = assignment == fold
        path = files.fold_path(fold)
        if path.is_file():
            fold_probabilities = fileio.read_npy(path)
            if fold_probabilities.shape != (held_out.sum(), NUM_CLASSES):
                raise RunError(
                    f"{path} has shape {fold_probabilities.shape}; it belongs to another audit"
                )
            hooks.on_phase(f"fold {fold + 1}/{config.folds}: finished earlier, kept")
        else:
            training = ~held_out
            hooks.on_phase(
                f"fold {fold + 1}/{config.folds}: training {config.model} on"
                f" {training.sum():,} images, scoring {held_out.sum():,}"
            )
            keras.backend.clear_session()
            # A seed per fold, so a resumed fold trains exactly as it would have without the stop.
            set_seed(config.seed + fold)
            model = build_model(config, steps_per_epoch(int(training.sum()), config.batch_size))
            # The held-out fold is only watched (its per-epoch scores), never used for a choice.
            fit(
                model,
                images[training],
                labels[training],
                images[held_out],
                labels[held_out],
                config,
                hooks.fit_callbacks,
            )
            fold_probabilities = _held_out_probabilities(model, images[held_out], config)
            fileio.write_npy(path, fold_probabilities)
        probabilities[held_out] = fold_probabilities
        hooks.on_fold(fold + 1, config.folds)
    return probabilities


def uses_test_time_augmentation(config: Config) -> bool:
    """Whether held-out probabilities average over shifted copies: only for a model trained
    on shifted or augmented images, to which a moved digit is nothing new."""
    return config.shift_pixels > 0 or config.augment


def _held_out_probabilities(model, images: np.ndarray, config: Config) -> np.ndarray:
    from mnistlab.inference import predict_probabilities

    views = [images]
    if uses_test_time_augmentation(config):
        views += audit.shifted_copies(images, TTA_SHIFT_PIXELS)
    probabilities = [predict_probabilities(model, view) for view in views]
    return np.mean(probabilities, axis=0).astype(np.float32)


def _summary(
    config, dataset, probabilities, labels, fold_accuracy, issues, duplicates, outliers, review
) -> dict:
    num_train, num_test = len(dataset.train_labels), len(dataset.test_labels)
    is_test = np.arange(len(labels)) >= num_train
    test_flagged = issues.flagged[is_test]
    accuracy_all, accuracy_kept = audit.accuracy_without(
        probabilities[is_test], labels[is_test], test_flagged
    )
    kinds = {"train-train": 0, "test-test": 0, "test-train": 0}
    test_with_train_twin: set[int] = set()
    for pair in duplicates:
        first_split, _ = audit.split_and_index(pair.first, num_train)
        second_split, second_index = audit.split_and_index(pair.second, num_train)
        if first_split != second_split:
            kinds["test-train"] += 1
            test_with_train_twin.add(second_index)
        else:
            kinds[f"{first_split}-{first_split}"] += 1
    test_ranking = np.argsort(issues.label_quality[is_test], kind="stable")
    published = audit.PUBLISHED_LABEL_ERRORS.get(config.dataset)
    return {
        "dataset": config.dataset,
        "model": config.model,
        "folds": config.folds,
        "images": {"train": num_train, "test": num_test},
        "cross_validated_accuracy": {
            "all": float((probabilities.argmax(axis=1) == labels).mean()),
            "per_fold": fold_accuracy,
        },
        "label_issues": {
            "train": int(issues.flagged[~is_test].sum()),
            "test": int(test_flagged.sum()),
            "total": int(issues.flagged.sum()),
        },
        "test_accuracy": {
            "all": accuracy_all,
            "without_flagged": accuracy_kept,
            "flagged_test_images": int(test_flagged.sum()),
        },
        "duplicates": {
            "pairs": len(duplicates),
            "exact_pairs": sum(pair.rms_difference == 0 for pair in duplicates),
            "near_pairs": sum(pair.rms_difference > 0 for pair in duplicates),
            "by_splits": kinds,
            "test_images_with_train_twin": len(test_with_train_twin),
            "threshold_rms": audit.NEAR_DUPLICATE_RMS,
        },
        "outliers": {
            "train": int(outliers.flagged[~is_test].sum()),
            "test": int(outliers.flagged[is_test].sum()),
            "total": int(outliers.flagged.sum()),
            "score_threshold": outliers.threshold,
            "fence_iqr": audit.OUTLIER_FENCE_IQR,
        },
        "probabilities": {
            "test_time_augmentation": uses_test_time_augmentation(config),
            "shift_pixels": TTA_SHIFT_PIXELS if uses_test_time_augmentation(config) else 0,
        },
        "review_queue": {"per_split": review, "ranking": "label_quality"},
        "published_label_errors": None
        if published is None
        else {
            **audit.published_overlap(test_ranking, test_flagged, published, review=review),
            "source": audit.PUBLISHED_LABEL_ERRORS_SOURCE,
        },
    }


def _cleanlab_version() -> dict[str, str]:
    from importlib import metadata

    return {"cleanlab": metadata.version("cleanlab")}
