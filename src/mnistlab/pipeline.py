"""Workflows the CLI, the web app and the notebook share: train a run, evaluate a run, rewrite
its report, combine runs into an ensemble.

The rest of what a run needs lives below this module: ``runs`` (the run directory),
``figures``, ``export`` (ONNX), ``exclusion``, ``provenance``, ``compare`` and ``inference``.
The names the command line calls are importable from here as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mnistlab import audits, figure_workers, report, runs
from mnistlab.compare import compare_runs
from mnistlab.config import Config
from mnistlab.data import Dataset, load_dataset, split_validation
from mnistlab.downloads import DownloadProgress
from mnistlab.errors import CheckpointMismatch, ConfigError, RunError
from mnistlab.evaluate import evaluate_probabilities
from mnistlab.exclusion import excluded_train_indices, indices_sha256, with_exclusion
from mnistlab.export import export_onnx, export_onnx_or_warn
from mnistlab.figures import (
    figure_png,
    render_figures,
    sample_index,
    warm_imports,
)
from mnistlab.heap import release_freed_memory
from mnistlab.provenance import library_versions

# Keras (and TensorFlow behind it) takes seconds to import; the functions that train or load a
# model import it themselves, so writing a report or comparing runs stays fast.

# Importable from here, where the command line and older callers find them.
__all__ = [
    "Hooks",
    "compare_runs",
    "ensemble_run",
    "evaluate_run",
    "excluded_train_indices",
    "export_onnx",
    "figure_png",
    "indices_sha256",
    "library_versions",
    "load_for_config",
    "release_freed_memory",
    "render_figures",
    "train_run",
    "warm_imports",
    "with_drawings",
    "with_exclusion",
    "write_report",
]


@dataclass
class Hooks:
    """Where progress goes: the CLI passes Rich-backed hooks; library callers may pass none."""

    on_phase: Callable[[str], None] = lambda message: None
    on_download: DownloadProgress | None = None
    fit_callbacks: Sequence = ()  # keras.callbacks.Callback instances
    # Called as on_fold(finished, total) after each cross-validation fold of an audit is saved.
    on_fold: Callable[[int, int], None] = lambda finished, total: None


def load_for_config(
    config: Config,
    data_dir: str | Path | None = None,
    hooks: Hooks | None = None,
    excluded_train: Sequence[int] = (),
) -> Dataset:
    """The dataset the config names, cut to its train/test limits, without the training images
    whose indices (in the full training set) are in ``excluded_train``."""
    hooks = hooks or Hooks()
    dataset = load_dataset(config.dataset, data_dir, hooks.on_download, hooks.on_phase)
    kept = np.ones(len(dataset.train_labels), dtype=bool)
    kept[[index for index in excluded_train if index < len(kept)]] = False
    if config.train_limit is not None:
        kept[config.train_limit :] = False
    return Dataset(
        name=dataset.name,
        train_images=dataset.train_images[kept],
        train_labels=dataset.train_labels[kept],
        test_images=dataset.test_images[: config.test_limit],
        test_labels=dataset.test_labels[: config.test_limit],
        sha256=dataset.sha256,
        sources=dataset.sources,
    )


def train_run(
    config: Config,
    data_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    runs_root: str | Path = "runs",
    hooks: Hooks | None = None,
    resume: bool = False,
    audits_root: str | Path = audits.AUDITS_ROOT,
) -> Path:
    """Train ``config``'s model, evaluate it on the test set and write a run directory, with
    ``model.onnx`` unless ``config.export_onnx`` is off (a failed export only warns).

    If training fails or is interrupted before the model is saved, the run directory is
    removed, unless ``config.checkpoint`` saved at least one epoch: then it stays, and
    ``resume=True`` with the same ``out_dir`` carries on from the last finished epoch.
    After the model is saved, whatever was written stays, and ``evaluate_run`` can finish it.
    Returns the run directory.
    """
    import keras

    from mnistlab.models import (
        build_model,
        float32_copy,
        load_trained_weights,
        steps_per_epoch,
        without_optimizer,
    )
    from mnistlab.train import Checkpoint, fit, set_seed

    hooks = hooks or Hooks()
    started = time.perf_counter()
    # The run whose weights this one starts from; on resume the checkpoint wins.
    initial = Path(config.init_from) if config.init_from is not None and not resume else None
    if initial is not None:
        source = runs.read_config(initial)  # A missing or foreign directory fails here, early.
        if source.model != config.model:
            raise ConfigError(
                f"init_from {initial} holds a {source.model} model; this run trains {config.model}"
            )
    if resume:
        run_dir = Path(out_dir)
        if runs.Run(run_dir).checkpointed_epochs() == 0:
            raise RunError(f"{run_dir} holds no checkpoint to resume from")
    else:
        run_dir = Path(out_dir) if out_dir else runs.new_run_dir(Path(runs_root), config.model)
    run = runs.Run(run_dir)

    def resumable() -> bool:
        return config.checkpoint and run.checkpointed_epochs() > 0

    def kept(error: BaseException) -> None:
        if not isinstance(error, CheckpointMismatch):
            hooks.on_phase(
                f"stopped after {run.checkpointed_epochs()} of {config.epochs} epochs; the"
                f" checkpoint is kept: resume with `mnistlab train --resume {run_dir}`"
            )

    with runs.new_or_resumed(run_dir, resume, resumable, kept):
        callbacks = list(hooks.fit_callbacks)
        if config.checkpoint:
            # The epoch log is written before the checkpoint: a crash between the two repeats
            # an epoch on resume (read_epoch_log keeps the last row) rather than losing its row.
            callbacks += [
                keras.callbacks.CSVLogger(str(run.epoch_log_path), append=True),
                Checkpoint(str(run.checkpoint_dir), double_checkpoint=True),
            ]
        excluded = excluded_train_indices(config, run_dir)
        if not resume:
            run.write_config(config)
            if config.exclude is not None:
                run.write_excluded(excluded)
        hooks.on_phase(f"loading {config.dataset}")
        dataset = load_for_config(config, data_dir, hooks, excluded)
        data_seconds = time.perf_counter() - started

        train_images, train_labels, validation_images, validation_labels = split_validation(
            dataset.train_images, dataset.train_labels, config.validation_split, config.seed
        )
        drawing_seconds = 0.0
        if config.drawings:
            # Drawn from the training part only: validation stays MNIST, and no digit is
            # validated on while its drawing is trained on.
            drawing_started = time.perf_counter()
            train_images, train_labels = with_drawings(train_images, train_labels, config, hooks)
            drawing_seconds = time.perf_counter() - drawing_started
        set_seed(config.seed)
        model = build_model(config, steps_per_epoch(len(train_images), config.batch_size))
        if initial is not None:
            load_trained_weights(model, runs.load_model(initial))
        hooks.on_phase(f"training {config.model}")
        if not figure_workers.started():
            warm_imports()
        fit_started = time.perf_counter()
        history = fit(
            model,
            train_images,
            train_labels,
            validation_images,
            validation_labels,
            config,
            callbacks,
        )
        fit_seconds = time.perf_counter() - fit_started
        if config.checkpoint:
            history = run.read_epoch_log()
        if config.mixed_precision:
            model = float32_copy(model, config)
        run.write_history(history)
        model = without_optimizer(model)
        run.save_model(model)
    run.remove_epoch_log()
    timings = {"data_load_seconds": data_seconds, "fit_seconds": fit_seconds}
    if config.drawings:
        timings["drawing_seconds"] = drawing_seconds
    _evaluate_and_write(run, model, config, dataset, history, timings, hooks, started, audits_root)
    if config.export_onnx:
        hooks.on_phase("exporting to ONNX")
        export_onnx_or_warn(run_dir, hooks.on_phase)
    return run_dir


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    hooks: Hooks | None = None,
    audits_root: str | Path = audits.AUDITS_ROOT,
) -> dict:
    """Rebuild a run's metrics and figures from the run directory and the dataset alone."""
    hooks = hooks or Hooks()
    started = time.perf_counter()
    run = runs.Run(run_dir)
    config = run.read_config()
    model = run.load_model()
    history = run.read_history()
    previous = run.read_metrics() if run.has_metrics() else {}
    hooks.on_phase(f"loading {config.dataset}")
    dataset = load_for_config(config, data_dir, hooks, excluded_train_indices(config, run.path))
    own = {"data_load_seconds": time.perf_counter() - started}
    # The training's timings and date are the run's record: this evaluation's own go beside
    # them, under "evaluation", never over them.
    training = {k: v for k, v in previous.get("timings", {}).items() if k != "evaluation"}
    return _evaluate_and_write(
        run, model, config, dataset, history, own, hooks, started, audits_root,
        kept={"timings": training, "trained_at": previous.get("trained_at")},
    )  # fmt: skip


def _evaluate_and_write(
    run: runs.Run,
    model,
    config: Config,
    dataset: Dataset,
    history: dict,
    timings: dict,
    hooks: Hooks,
    started: float,
    audits_root: str | Path = audits.AUDITS_ROOT,
    kept: dict | None = None,
) -> dict:
    """Evaluate, draw and write metrics.json and report.html. Without ``kept`` this ends a
    training (``timings`` are its own); with it (``evaluate_run``), ``timings`` are the
    evaluation's, and ``kept`` holds the training's timings and date to keep as they were."""
    from mnistlab.inference import predict_probabilities

    hooks.on_phase("evaluating on the test set")
    evaluate_started = time.perf_counter()
    probabilities = predict_probabilities(model, dataset.test_images)
    [evaluation] = figure_workers.run(
        [(evaluate_probabilities, (probabilities, dataset.test_labels, config.top_errors))]
    )
    timings["evaluate_seconds"] = time.perf_counter() - evaluate_started
    audit_dir = _audit_for(config, audits_root)
    flagged = audits.Audit(audit_dir).read_flagged_test_indices() if audit_dir else set()

    hooks.on_phase("drawing figures")
    release_freed_memory()  # Before the figure workers' memory peaks beside this process's.
    figures = render_figures(dataset, history, evaluation, probabilities, flagged)
    run.write_figures(figures)

    timings["total_seconds"] = time.perf_counter() - started
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if kept is None:
        dates = {"trained_at": now}
    else:
        timings = {**kept["timings"], "evaluation": timings}
        dates = {"trained_at": kept["trained_at"], "evaluated_at": now}
    sample = sample_index(dataset.test_labels)
    metrics = {
        "model": run.model_label(config),
        "dataset": config.dataset,
        "parameters": int(model.count_params()),
        "test": evaluation.to_dict(),
        "final_epoch": {name: values[-1] for name, values in history.items() if values},
        "sample_prediction": {
            "index": sample,
            "true_label": int(dataset.test_labels[sample]),
            "predicted_label": int(probabilities[sample].argmax()),
            "confidence": float(probabilities[sample].max()),
        },
        "timings": timings,
        **{name: value for name, value in dates.items() if value is not None},
        "versions": library_versions(),
        "data": {"sha256": dataset.sha256},
    }
    if audit_dir is not None:
        metrics["audit"] = {"dir": str(audit_dir), "flagged_test_images": len(flagged)}
        for error in metrics["test"]["top_errors"]:
            error["audit_flagged"] = error["index"] in flagged
    members = run.ensemble_members()
    if members is not None:
        metrics["ensemble_members"] = members
    run.write_metrics(metrics)
    # From what was just computed: no need to read the files back.
    run.write_report(report.render_report(config.to_dict(), metrics, history, figures))
    return metrics


def write_report(run_dir: str | Path) -> Path:
    """(Re)write ``report.html`` from the run directory's files alone; return its path."""
    run = runs.Run(run_dir)
    html = report.render_report(
        config=run.read_config_values(),
        metrics=run.read_metrics(),
        history=run.read_history(),
        figures=run.read_figures(),
    )
    return run.write_report(html)


def ensemble_run(
    member_dirs: Sequence[str | Path],
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    hooks: Hooks | None = None,
) -> Path:
    """Write a run directory for the mean of several runs' class probabilities: the combined
    model, its test evaluation and report, and its ONNX export. Returns the run directory.

    ``config.json`` is the first member's config, which supplies the evaluation settings
    (dataset, test subset, top errors); ``ensemble.json`` lists the members. The members must
    share a dataset. There is no validation score: members with different seeds held out
    different images, so each one's validation split is partly another's training data.
    """
    from mnistlab.ensemble import build_ensemble

    hooks = hooks or Hooks()
    started = time.perf_counter()
    member_runs = [runs.Run(d) for d in member_dirs]
    configs = [member.read_config() for member in member_runs]
    datasets = sorted({c.dataset for c in configs})
    if len(datasets) > 1:
        raise RunError(f"ensemble members must share a dataset; received: {', '.join(datasets)}")
    hooks.on_phase(f"combining {len(member_runs)} models")
    model = build_ensemble([member.load_model() for member in member_runs])
    members = []
    for member, member_config in zip(member_runs, configs):
        metrics = member.read_metrics()
        members.append(
            {
                "run_dir": str(member.path.resolve()),
                "model": member_config.model,
                "seed": member_config.seed,
                "test_accuracy": metrics["test"]["accuracy"],
                "val_accuracy": metrics.get("final_epoch", {}).get("val_accuracy"),
            }
        )
    config = configs[0]
    with runs.new_or_resumed(Path(out_dir)) as run_dir:
        run = runs.Run(run_dir)
        run.write_config(config)
        run.write_ensemble({"combination": "mean of class probabilities", "members": members})
        run.write_history({})  # Nothing was trained.
        run.save_model(model)
    hooks.on_phase(f"loading {config.dataset}")
    dataset = load_for_config(config, data_dir, hooks)
    timings = {"data_load_seconds": time.perf_counter() - started, "fit_seconds": None}
    _evaluate_and_write(run, model, config, dataset, {}, timings, hooks, started)
    hooks.on_phase("exporting to ONNX")
    export_onnx(run_dir)
    return run_dir


def with_drawings(
    images: np.ndarray, labels: np.ndarray, config: Config, hooks: Hooks
) -> tuple[np.ndarray, np.ndarray]:
    """The training digits plus ``config.drawings`` of them redrawn as canvas drawings."""
    from mnistlab.drawings import drawn_training_digits

    if config.drawings > len(labels):
        raise ConfigError(
            f"drawings is {config.drawings:,}, more than the {len(labels):,} training digits"
        )
    hooks.on_phase(f"drawing {config.drawings:,} training digits as canvas drawings")
    drawn, drawn_labels = drawn_training_digits(images, labels, config.drawings, config.seed)
    return np.concatenate([images, drawn]), np.concatenate([labels, drawn_labels])


def _audit_for(config: Config, audits_root: str | Path) -> Path | None:
    """The audit whose flags a run's report shows: the one the run's exclusion came from, else
    the newest audit of the run's dataset."""
    if config.exclude is not None:
        source = audits.Audit(Path(config.exclude).parent)
        if source.is_finished() and source.label_issues_path.is_file():
            return source.path
    return audits.find_audit(config.dataset, Path(audits_root))
