"""Workflows the CLI, the web app and the notebook share: train a run, evaluate a run."""

from __future__ import annotations

import hashlib
import platform
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from mnistlab import figure_workers, report, runs
from mnistlab.config import Config
from mnistlab.errors import CheckpointMismatch, ConfigError, RunError
from mnistlab.data import IMAGE_SIDE, Dataset, DownloadProgress, load_dataset, split_validation
from mnistlab.evaluate import Evaluation, evaluate_probabilities

# Keras (and TensorFlow behind it) takes seconds to import; the functions that train or load a
# model import it themselves, so writing a report or comparing runs stays fast.

# Index of the test image shown as "a sample prediction", as in the seed notebook.
SAMPLE_INDEX = 0


@dataclass
class Hooks:
    """Where progress goes: the CLI passes Rich-backed hooks; library callers may pass none."""

    on_phase: Callable[[str], None] = lambda message: None
    on_download: DownloadProgress | None = None
    fit_callbacks: Sequence = ()  # keras.callbacks.Callback instances
    # Called as on_fold(finished, total) after each cross-validation fold of an audit is saved.
    on_fold: Callable[[int, int], None] = lambda finished, total: None


def warm_imports() -> threading.Thread:
    """Import what evaluation and figures need (scikit-learn, seaborn and pandas: about 1.5 s)
    in a background thread, so the import overlaps training instead of following it, when no
    figure workers do it in their own processes. Python's import lock makes a later import of
    the same module wait for this one, never run twice."""

    def work() -> None:
        try:
            import sklearn.metrics  # noqa: F401
            import seaborn  # noqa: F401
        except Exception:  # pragma: no cover - the real import later reports any problem
            pass

    thread = threading.Thread(target=work, name="mnistlab-warm-imports", daemon=True)
    thread.start()
    return thread


def release_freed_memory() -> bool:
    """Hand the C heap's free pages back to the operating system; True if that was possible.

    Training frees its batches and arrays, but glibc keeps freed heap pages for reuse, so the
    process would hold them (about 50 MB after the seed model) while it waits for the figure
    workers, whose memory adds to it. Elsewhere than glibc (musl, macOS) this does nothing.
    """
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim  # The C library this process already runs on.
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


def library_versions() -> dict[str, str]:
    import keras

    versions = {"python": platform.python_version(), "keras_backend": keras.backend.backend()}
    packages = ["mnistlab", "keras", keras.backend.backend(), "numpy", "scikit-learn"]
    packages += ["matplotlib", "seaborn", "pillow"]
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


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
    audits_root: str | Path = runs.AUDITS_ROOT,
) -> Path:
    """Train ``config``'s model, evaluate it on the test set and write a run directory.

    If training fails or is interrupted before the model is saved, the run directory is
    removed, unless ``config.checkpoint`` saved at least one epoch: then it stays, and
    ``resume=True`` with the same ``out_dir`` carries on from the last finished epoch.
    After the model is saved, whatever was written stays, and ``evaluate_run`` can finish it.
    Returns the run directory.
    """
    import keras

    from mnistlab.models import build_model, float32_copy, load_trained_weights, steps_per_epoch
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
        if runs.checkpointed_epochs(run_dir) == 0:
            raise RunError(f"{run_dir} holds no checkpoint to resume from")
    else:
        run_dir = runs.prepare_run_dir(
            Path(out_dir) if out_dir else runs.new_run_dir(Path(runs_root), config.model)
        )
    callbacks = list(hooks.fit_callbacks)
    if config.checkpoint:
        # The epoch log is written before the checkpoint: a crash between the two repeats an
        # epoch on resume (read_epoch_log keeps the last row) rather than losing its row.
        callbacks += [
            keras.callbacks.CSVLogger(str(run_dir / runs.EPOCH_LOG), append=True),
            Checkpoint(str(run_dir / runs.CHECKPOINT_DIR), double_checkpoint=True),
        ]
    try:
        excluded = excluded_train_indices(config, run_dir)
        if not resume:
            runs.write_json(run_dir / runs.CONFIG_FILE, config.to_dict())
            if config.exclude is not None:
                runs.write_json(run_dir / runs.EXCLUDED_FILE, excluded)
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
            history = runs.read_epoch_log(run_dir)
        if config.mixed_precision:
            model = float32_copy(model, config)
        runs.write_json(run_dir / runs.HISTORY_FILE, history)
        runs.save_model(model, run_dir)
    except BaseException as error:
        finished = runs.checkpointed_epochs(run_dir) if config.checkpoint else 0
        if not finished:
            shutil.rmtree(run_dir, ignore_errors=True)
        elif not isinstance(error, CheckpointMismatch):
            hooks.on_phase(
                f"stopped after {finished} of {config.epochs} epochs; the checkpoint is kept:"
                f" resume with `mnistlab train --resume {run_dir}`"
            )
        raise
    (run_dir / runs.EPOCH_LOG).unlink(missing_ok=True)
    timings = {"data_load_seconds": data_seconds, "fit_seconds": fit_seconds}
    if config.drawings:
        timings["drawing_seconds"] = drawing_seconds
    _evaluate_and_write(run_dir, model, config, dataset, history, timings, hooks, started, audits_root)
    return run_dir


def evaluate_run(
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    hooks: Hooks | None = None,
    audits_root: str | Path = runs.AUDITS_ROOT,
) -> dict:
    """Rebuild a run's metrics and figures from the run directory and the dataset alone."""
    hooks = hooks or Hooks()
    started = time.perf_counter()
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir)
    model = runs.load_model(run_dir)
    history = runs.read_json(run_dir, runs.HISTORY_FILE)
    previous = {}
    if (run_dir / runs.METRICS_FILE).exists():
        previous = runs.read_json(run_dir, runs.METRICS_FILE).get("timings", {})
    hooks.on_phase(f"loading {config.dataset}")
    dataset = load_for_config(config, data_dir, hooks, excluded_train_indices(config, run_dir))
    timings = {
        "data_load_seconds": time.perf_counter() - started,
        "fit_seconds": previous.get("fit_seconds"),
    }
    return _evaluate_and_write(
        run_dir, model, config, dataset, history, timings, hooks, started, audits_root
    )


def _evaluate_and_write(
    run_dir: Path,
    model,
    config: Config,
    dataset: Dataset,
    history: dict,
    timings: dict,
    hooks: Hooks,
    started: float,
    audits_root: str | Path = runs.AUDITS_ROOT,
) -> dict:
    from mnistlab.train import predict_probabilities

    hooks.on_phase("evaluating on the test set")
    evaluate_started = time.perf_counter()
    probabilities = predict_probabilities(model, dataset.test_images)
    [evaluation] = figure_workers.run(
        [(evaluate_probabilities, (probabilities, dataset.test_labels, config.top_errors))]
    )
    timings["evaluate_seconds"] = time.perf_counter() - evaluate_started
    audit_dir = _audit_for(config, audits_root)
    flagged = runs.read_flagged_test_indices(audit_dir) if audit_dir else set()

    hooks.on_phase("drawing figures")
    release_freed_memory()  # Before the figure workers' memory peaks beside this process's.
    figures = render_figures(dataset, history, evaluation, probabilities, flagged)
    for name, png in figures.items():
        runs.write_png(run_dir / runs.FIGURE_FILES[name], png)

    timings["total_seconds"] = time.perf_counter() - started
    sample = int(min(SAMPLE_INDEX, len(dataset.test_labels) - 1))
    metrics = {
        "model": runs.model_label(run_dir, config),
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
        "versions": library_versions(),
        "data": {"sha256": dataset.sha256},
    }
    if audit_dir is not None:
        metrics["audit"] = {"dir": str(audit_dir), "flagged_test_images": len(flagged)}
        for error in metrics["test"]["top_errors"]:
            error["audit_flagged"] = error["index"] in flagged
    members = runs.ensemble_members(run_dir)
    if members is not None:
        metrics["ensemble_members"] = members
    runs.write_json(run_dir / runs.METRICS_FILE, metrics)
    # From what was just computed: no need to read the files back.
    html = report.render_report(config.to_dict(), metrics, history, figures)
    runs.write_text(run_dir / runs.REPORT_FILE, html)
    return metrics


def write_report(run_dir: str | Path) -> Path:
    """(Re)write ``report.html`` from the run directory's files alone; return its path."""
    run_dir = Path(run_dir)
    html = report.render_report(
        config=runs.read_json(run_dir, runs.CONFIG_FILE),
        metrics=runs.read_json(run_dir, runs.METRICS_FILE),
        history=runs.read_json(run_dir, runs.HISTORY_FILE),
        figures=runs.read_figures(run_dir),
    )
    path = run_dir / runs.REPORT_FILE
    runs.write_text(path, html)
    return path


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
    member_dirs = [Path(d) for d in member_dirs]
    configs = [runs.read_config(d) for d in member_dirs]
    datasets = sorted({c.dataset for c in configs})
    if len(datasets) > 1:
        raise RunError(f"ensemble members must share a dataset; received: {', '.join(datasets)}")
    hooks.on_phase(f"combining {len(member_dirs)} models")
    model = build_ensemble([runs.load_model(d) for d in member_dirs])
    members = []
    for run_dir, member_config in zip(member_dirs, configs):
        metrics = runs.read_json(run_dir, runs.METRICS_FILE)
        members.append({
            "run_dir": str(run_dir.resolve()),
            "model": member_config.model,
            "seed": member_config.seed,
            "test_accuracy": metrics["test"]["accuracy"],
            "val_accuracy": metrics.get("final_epoch", {}).get("val_accuracy"),
        })
    config = configs[0]
    run_dir = runs.prepare_run_dir(Path(out_dir))
    try:
        runs.write_json(run_dir / runs.CONFIG_FILE, config.to_dict())
        runs.write_json(
            run_dir / runs.ENSEMBLE_FILE,
            {"combination": "mean of class probabilities", "members": members},
        )
        runs.write_json(run_dir / runs.HISTORY_FILE, {})  # Nothing was trained.
        runs.save_model(model, run_dir)
    except BaseException:
        runs.remove_run_dir(run_dir)
        raise
    hooks.on_phase(f"loading {config.dataset}")
    dataset = load_for_config(config, data_dir, hooks)
    timings = {"data_load_seconds": time.perf_counter() - started, "fit_seconds": None}
    _evaluate_and_write(run_dir, model, config, dataset, {}, timings, hooks, started)
    hooks.on_phase("exporting to ONNX")
    export_onnx(run_dir)
    return run_dir


def export_onnx(run_dir: str | Path) -> Path:
    """Write ``model.onnx`` beside the run's ``model.keras`` (Keras 3's ONNX export) and check
    that ONNX Runtime reproduces the Keras probabilities; return its path."""
    import onnxruntime

    from mnistlab.fileio import atomic_path
    from mnistlab.models import without_augmentation

    run_dir = Path(run_dir)
    model = without_augmentation(runs.load_model(run_dir))
    probe = np.random.default_rng(0).random((64, IMAGE_SIDE * IMAGE_SIDE), dtype=np.float32)
    expected = np.asarray(model.predict(probe, verbose=0))  # Keras exports only a called model.
    path = run_dir / runs.ONNX_FILE
    with atomic_path(path) as temp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx probes np.object
        try:
            model.export(str(temp), format="onnx", verbose=False)
            session = onnxruntime.InferenceSession(str(temp), providers=["CPUExecutionProvider"])
            actual = session.run(None, {session.get_inputs()[0].name: probe})[0]
        except Exception as error:  # tf2onnx and ONNX Runtime raise many kinds
            message = str(error).splitlines()[0][:300]
            raise RunError(f"ONNX export of {run_dir} failed: {message}") from None
        difference = float(np.abs(actual - expected).max())
        if difference > 1e-4:
            raise RunError(f"ONNX export of {run_dir} disagrees with Keras by {difference:.2e}")
    return path


def compare_runs(run_dirs: Sequence[str | Path]) -> tuple[list[str], list[list]]:
    """Headers and rows of a side-by-side table of runs (see report.comparison_table)."""
    named = [
        (str(d), runs.read_json(d, runs.CONFIG_FILE), runs.read_json(d, runs.METRICS_FILE))
        for d in map(Path, run_dirs)
    ]
    return report.comparison_table(named)


def render_figures(
    dataset: Dataset,
    history: dict,
    evaluation: Evaluation,
    probabilities: np.ndarray,
    audit_flagged: set[int] = frozenset(),
) -> dict[str, bytes]:
    """Every figure of a run, as PNG bytes keyed like ``runs.FIGURE_FILES``, drawn by the
    figure workers when they are started."""
    sample = int(min(SAMPLE_INDEX, len(dataset.test_labels) - 1))
    # The first training image of each digit: all samples_per_digit shows, and far less to send.
    firsts = np.concatenate([np.flatnonzero(dataset.train_labels == digit)[:1] for digit in range(10)])
    # Slowest first: dealt alternately to the worker and its copy, they split the time evenly.
    figures = {
        "confusion_matrix": ("confusion_matrix", evaluation.confusion_matrix),
        "confusion_matrix_normalized": ("confusion_matrix", evaluation.confusion_matrix, True),
        "training_curves": ("training_curves", history),
        "confident_errors": (
            "confident_errors", dataset.test_images, evaluation.top_errors, audit_flagged
        ),
        "samples": (
            "samples_per_digit", dataset.train_images[firsts], dataset.train_labels[firsts]
        ),
        "reliability": (
            "reliability_diagram", evaluation.calibration_bins, evaluation.expected_calibration_error
        ),
        "sample_prediction": (
            "sample_prediction",
            dataset.test_images[sample],
            int(dataset.test_labels[sample]),
            int(probabilities[sample].argmax()),
            float(probabilities[sample].max()),
        ),
    }
    pngs = dict(zip(figures, figure_workers.run([(figure_png, args) for args in figures.values()])))
    return {name: pngs[name] for name in runs.FIGURE_FILES}


def figure_png(plot: str, *arguments) -> bytes:
    """``plots.<plot>(*arguments)`` as PNG bytes. Named by a string so that a caller sending it
    to a figure worker need not import matplotlib itself."""
    from mnistlab import plots

    return runs.figure_png(getattr(plots, plot)(*arguments))


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


def with_exclusion(config: Config, exclude: str | Path) -> Config:
    """``config`` training without the training images listed in the CSV ``exclude`` (e.g. an
    audit's label_issues.csv); the config records the file, the count and a hash of the indices."""
    indices = runs.read_excluded_train_indices(Path(exclude))
    return config.replace(
        exclude=str(Path(exclude).resolve()),
        excluded_count=len(indices),
        excluded_sha256=indices_sha256(indices),
    )


def indices_sha256(indices: Sequence[int]) -> str:
    """A short hash of sorted indices, to tell exclusion lists apart in config.json and compare."""
    text = ",".join(str(index) for index in sorted(indices))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def excluded_train_indices(config: Config, run_dir: Path | None = None) -> list[int]:
    """The training indices a run leaves out: the copy kept in the run directory when there is
    one (the source CSV may have changed since), else the config's file; checked against the
    config's hash."""
    if config.exclude is None:
        return []
    kept_copy = Path(run_dir) / runs.EXCLUDED_FILE if run_dir is not None else None
    if kept_copy is not None and kept_copy.is_file():
        indices = runs.read_json(run_dir, runs.EXCLUDED_FILE)
    else:
        indices = runs.read_excluded_train_indices(Path(config.exclude))
    if config.excluded_sha256 is not None and indices_sha256(indices) != config.excluded_sha256:
        raise RunError(
            f"the excluded indices from {config.exclude} hash to {indices_sha256(indices)},"
            f" not {config.excluded_sha256} as the config records; the file has changed"
        )
    return list(indices)


def _audit_for(config: Config, audits_root: str | Path) -> Path | None:
    """The audit whose flags a run's report shows: the one the run's exclusion came from, else
    the newest audit of the run's dataset."""
    if config.exclude is not None:
        source = Path(config.exclude).parent
        if (source / runs.SUMMARY_FILE).is_file() and (source / runs.LABEL_ISSUES_FILE).is_file():
            return source
    return runs.find_audit(config.dataset, Path(audits_root))
