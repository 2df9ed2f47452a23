"""The ``mnistlab`` command line. Parses, calls the pipeline, prints.

Heavy libraries (Keras and its backend, matplotlib) are imported inside the commands that need
them, so ``mnistlab --help`` and ``mnistlab data info`` answer at once.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException
from rich.console import Console
from rich.table import Table

from mnistlab.config import DATASETS, LR_SCHEDULES, MODEL_NAMES, Config
from mnistlab.errors import MnistlabError

# TensorFlow's C++ start-up chatter is noise for a CLI user; --debug shows it again.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

console = Console()
error_console = Console(stderr=True)

app = typer.Typer(
    name="mnistlab",
    help="Train, evaluate and explain handwritten-digit classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain Click help: Typer's Rich help imports Rich's Markdown and traceback renderers
    # (0.12 s), which would put `mnistlab --help` over 0.3 s.
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Fetch and inspect the datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DataDirOption = Annotated[
    Optional[Path],
    typer.Option(
        "--data-dir",
        help="Folder holding <dataset>/ with the four IDX files (.gz or not). "
        "Default: $MNISTLAB_DATA_DIR, then the cache, then download.",
        show_default=False,
    ),
]


def _choice(allowed: tuple[str, ...]):
    """A Typer callback that accepts only ``allowed`` values (or None: not given)."""

    def check(value: Optional[str]) -> Optional[str]:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return check


def _start_figure_workers() -> None:
    """For commands that end by drawing a run's figures: start the workers before Keras is
    imported, so their own imports overlap it (see figure_workers)."""
    from mnistlab import figure_workers

    figure_workers.start()


def _import_keras(model: str | None = None) -> None:
    """Choose the backend for training ``model`` (backend.choose), then import Keras with fd 2
    silenced and without the libraries it imports for features mnistlab does not use
    (backend.optional_imports_deferred)."""
    from mnistlab import backend

    backend.choose(model)
    with backend.optional_imports_deferred(), _native_stderr_silenced():
        import keras  # noqa: F401


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point fd 2 at /dev/null while inside: TensorFlow and JAX print C++ log lines while they
    load, which are noise to a CLI user (--debug lets them through)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        fd = None  # Not a real file (e.g. a test runner's capture): nothing to silence.
    if fd is None or os.environ.get("MNISTLAB_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _notice(message: str) -> None:
    """A progress note on stderr, never wrapped (paths stay whole) and never read as markup."""
    error_console.print(message, style="dim", markup=False, highlight=False, soft_wrap=True)


def _hooks(epochs: int):
    from mnistlab.pipeline import Hooks
    from mnistlab.progress import DownloadBars, training_progress

    downloads = DownloadBars(error_console)
    return (
        Hooks(
            on_phase=_notice,
            on_download=downloads,
            fit_callbacks=(training_progress(error_console, epochs), _interrupt_check()),
        ),
        downloads,
    )


# Ctrl-C raises KeyboardInterrupt wherever the main thread is. Inside a garbage-collector
# callback (JAX registers one) Python prints the exception and drops it, and a run went on
# training. The flag outlives that: training checks it after every call into the backend.
_interrupted = threading.Event()


def _on_interrupt(signum, frame) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def _install_interrupt_handler() -> None:
    """Remember every Ctrl-C (see _interrupted); a SIGINT that the parent ignores stays ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_interrupt)


def _interrupt_check():
    """A Keras callback that stops training with KeyboardInterrupt once Ctrl-C was pressed,
    even if the exception itself was lost."""
    import keras

    class InterruptCheck(keras.callbacks.Callback):
        def _check(self, *args, **kwargs) -> None:
            if _interrupted.is_set():
                raise KeyboardInterrupt

        on_train_batch_end = on_test_batch_end = on_epoch_end = _check

    return InterruptCheck()


def _print_summary(run_dir: Path, metrics: dict) -> None:
    test = metrics["test"]
    timings = metrics["timings"]
    table = Table(title=f"{metrics['model']} on {metrics['dataset']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("test accuracy", f"{test['accuracy']:.4f}")
    table.add_row("test loss", f"{test['loss']:.4f}")
    table.add_row("parameters", f"{metrics['parameters']:,}")
    for name in ("data_load_seconds", "fit_seconds", "evaluate_seconds", "total_seconds"):
        if timings.get(name) is not None:
            table.add_row(name.replace("_seconds", " (s)").replace("_", " "), f"{timings[name]:.2f}")
    table.add_row("run directory", str(run_dir))
    console.print(table)
    console.print(f"report: {Path(run_dir) / 'report.html'}", highlight=False, soft_wrap=True)


def _show_version(value: bool) -> None:
    if value:
        from mnistlab import __version__

        console.print(f"mnistlab {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.", callback=_show_version, is_eager=True)] = False,
) -> None:
    """Train, evaluate and explain handwritten-digit classifiers."""
    if debug:
        os.environ["MNISTLAB_DEBUG"] = "1"


@app.command(short_help="Train a model, evaluate it and write a run directory.")
def train(
    model: Annotated[
        Optional[str],
        typer.Option(help=f"Model: {', '.join(MODEL_NAMES)}. [default: seed-mlp]",
                     callback=_choice(MODEL_NAMES), show_default=False),
    ] = None,
    dataset: Annotated[
        Optional[str],
        typer.Option(help=f"Dataset: {', '.join(DATASETS)}. [default: mnist]",
                     callback=_choice(DATASETS), show_default=False),
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Epochs. [default: 10; cnn 8, cnn-best 40, cnn-fast 2]", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Batch size. [default: 512; 128 for the convolutional models]", show_default=False)] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Adam learning rate. [default: 0.001; the model's own for the convolutional models]", show_default=False)] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(help=f"Learning-rate schedule: {', '.join(LR_SCHEDULES)}.", callback=_choice(LR_SCHEDULES), show_default=False)] = None,
    warmup_epochs: Annotated[Optional[float], typer.Option(help="Raise the learning rate linearly from 0 over the first N epochs (fractions allowed). [default: 0; 0.25 for cnn, cnn-fast]", show_default=False)] = None,
    mixed_precision: Annotated[Optional[bool], typer.Option("--mixed-precision/--no-mixed-precision", help="Train in bfloat16 (the saved model is float32). [default: on for cnn, cnn-best where the CPU has bfloat16 instructions]", show_default=False)] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Turn, zoom and move every training image at random, afresh each epoch (up to 10.8°, ±10%, a tenth of its side). [default: on for cnn-best]", show_default=False)] = None,
    shift_pixels: Annotated[Optional[int], typer.Option(min=0, help="Move each training image by up to N pixels each way, at random, every epoch. [default: 0; 1 for cnn, cnn-fast]", show_default=False)] = None,
    drawings: Annotated[Optional[int], typer.Option(min=0, help="Also train on N training digits redrawn as canvas drawings (a round brush along each digit's skeleton), read as `serve` reads a canvas; about 25 ms each per core. [default: 0]", show_default=False)] = None,
    init_from: Annotated[Optional[str], typer.Option("--init-from", help="Start from this run's trained weights (fine-tuning) instead of random ones; 'shipped' is the shipped model. The run must hold the same model.", show_default=False)] = None,
    validation_split: Annotated[Optional[float], typer.Option(help="Fraction of the training set held out for validation; 0 trains on every image and validates nothing. [default: 0.1]", show_default=False)] = None,
    ema_momentum: Annotated[Optional[float], typer.Option(help="Average the weights as Adam trains (exponential moving average with this momentum, e.g. 0.999), and validate and save the average; 0 saves the last step's weights. [default: 0]", show_default=False)] = None,
    dropout: Annotated[Optional[float], typer.Option(help="Rate of every dropout layer, in place of the model's own. [default: seed-mlp 0.25, cnn 0.3, cnn-best 0.4; cnn-fast has none]", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, help="Random seed. [default: 0]", show_default=False)] = None,
    top_errors: Annotated[Optional[int], typer.Option(min=0, help="How many confident mistakes to show. [default: 10]", show_default=False)] = None,
    train_limit: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N training images.", show_default=False)] = None,
    test_limit: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N test images.", show_default=False)] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="JSON config file (e.g. a run's config.json); flags override it.", show_default=False)] = None,
    checkpoint: Annotated[Optional[bool], typer.Option("--checkpoint/--no-checkpoint", help="Save a checkpoint every epoch so an interrupted run can resume. [default: on for cnn, cnn-best]", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Carry on an interrupted run from its last checkpoint, with the run's own config.", show_default=False)] = None,
    exclude: Annotated[Optional[Path], typer.Option("--exclude", help="Leave out the training images listed in this CSV (split,index columns), e.g. an audit's label_issues.csv.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory to write. [default: runs/<timestamp>-<model>]", show_default=False)] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Train a model, evaluate it on the test set and write a run directory.

    Without --config, settings start from the model's own defaults: the seed notebook's for
    seed-mlp, tuned ones for the convolutional models. Flags override either.
    """
    if resume is not None:
        from mnistlab import runs

        config = runs.read_config(resume)
        _start_figure_workers()
        _import_keras(config.model)
        _train(config, data_dir, resume, resume=True)
        return
    base = Config.from_json_file(config_file) if config_file else Config.for_model(model or "seed-mlp")
    config = base.replace(
        model=model,
        checkpoint=checkpoint,
        lr_schedule=lr_schedule,
        warmup_epochs=warmup_epochs,
        mixed_precision=mixed_precision,
        augment=augment,
        shift_pixels=shift_pixels,
        drawings=drawings,
        init_from=_run_path(init_from),
        dataset=dataset,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        validation_split=validation_split,
        ema_momentum=ema_momentum,
        dropout=dropout,
        seed=seed,
        top_errors=top_errors,
        train_limit=train_limit,
        test_limit=test_limit,
    )
    if exclude is not None:
        from mnistlab import pipeline

        config = pipeline.with_exclusion(config, exclude)
    _start_figure_workers()
    _import_keras(config.model)
    _train(config, data_dir, out)


def _run_path(value: Optional[str]) -> Optional[str]:
    """A run directory given on the command line; 'shipped' names the shipped model's."""
    if value == "shipped":
        from mnistlab.predict import pretrained_dir

        return str(pretrained_dir())
    return value


def _train(config: Config, data_dir: Optional[Path], out: Optional[Path], resume: bool = False) -> None:
    from mnistlab import pipeline, runs

    hooks, downloads = _hooks(config.epochs)
    try:
        run_dir = pipeline.train_run(config, data_dir=data_dir, out_dir=out, hooks=hooks, resume=resume)
    finally:
        downloads.close()
    _print_summary(run_dir, runs.read_json(run_dir, runs.METRICS_FILE))


@app.command(short_help="Find likely label errors, near-duplicates and outliers.")
def audit(
    dataset: Annotated[str, typer.Option(help=f"Dataset: {', '.join(DATASETS)}.", callback=_choice(DATASETS))] = "mnist",
    model: Annotated[str, typer.Option(help=f"Model scoring the images: {', '.join(MODEL_NAMES)}.", callback=_choice(MODEL_NAMES))] = "seed-mlp",
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds over train and test pooled.")] = 5,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (folds and models).")] = 0,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Epochs per fold. [default: the model's own; 4 for cnn and cnn-best]", show_default=False)] = None,
    train_limit: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N training images.", show_default=False)] = None,
    test_limit: Annotated[Optional[int], typer.Option(min=1, help="Use only the first N test images.", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Carry on an interrupted audit after its last finished fold, with its own config.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Audit directory to write. [default: audits/<timestamp>-<dataset>-<model>]", show_default=False)] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Find likely label errors, near-duplicates and outliers in train and test.

    Every image is scored by a model that never saw it (K-fold cross-validation over the pooled
    images); confident learning (cleanlab) flags labels the models contradict. Writes
    label_issues.csv, duplicates.csv, outliers.csv and a self-contained audit.html.
    Act on it with `mnistlab train --exclude AUDIT_DIR/label_issues.csv`.
    """
    if resume is not None:
        from mnistlab import runs

        config = runs.read_config(resume)
    else:
        config = Config.for_audit(
            model, dataset=dataset, folds=folds, seed=seed, epochs=epochs,
            train_limit=train_limit, test_limit=test_limit,
        )  # fmt: skip
    _import_keras(config.model)
    from mnistlab import audit_workflow, runs

    hooks, downloads = _hooks(config.epochs)
    hooks.on_fold = lambda finished, total: _notice(f"fold {finished}/{total} done")
    try:
        audit_dir = audit_workflow.audit_dataset(
            config, data_dir=data_dir, out_dir=resume or out, hooks=hooks, resume=resume is not None
        )
    finally:
        downloads.close()
    summary = runs.read_json(audit_dir, runs.SUMMARY_FILE)
    table = Table(title=f"audit of {summary['dataset']} ({summary['model']}, {summary['folds']} folds)", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    issues, duplicates, outliers = summary["label_issues"], summary["duplicates"], summary["outliers"]
    accuracy = summary["test_accuracy"]
    table.add_row("likely label errors", f"{issues['total']:,} (train {issues['train']:,}, test {issues['test']:,})")
    table.add_row("duplicate pairs", f"{duplicates['pairs']:,} ({duplicates['exact_pairs']:,} exact)")
    table.add_row("test images with a train twin", f"{duplicates['test_images_with_train_twin']:,}")
    table.add_row("outliers", f"{outliers['total']:,} (train {outliers['train']:,}, test {outliers['test']:,})")
    table.add_row("test accuracy", f"{accuracy['all']:.4f} all, {accuracy['without_flagged']:.4f} without flagged")
    published = summary.get("published_label_errors")
    if published:
        table.add_row(
            "published label errors found",
            f"{published['top_50']} in top 50, {published['top_100']} in top 100 (of {published['published']})",
        )
    table.add_row("total (s)", f"{summary['timings']['total_seconds']:.1f}")
    table.add_row("audit directory", str(audit_dir))
    console.print(table)
    console.print(f"report: {audit_dir / runs.AUDIT_REPORT_FILE}", highlight=False, soft_wrap=True)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `mnistlab train`.")],
    data_dir: DataDirOption = None,
) -> None:
    """Rebuild a run's metrics and figures from its directory alone."""
    from mnistlab import runs

    config = runs.read_config(run_dir)  # Fail fast, before the slow imports, on a wrong directory.
    _start_figure_workers()
    _import_keras(config.model)
    from mnistlab import pipeline

    hooks, downloads = _hooks(1)
    try:
        metrics = pipeline.evaluate_run(run_dir, data_dir=data_dir, hooks=hooks)
    finally:
        downloads.close()
    _print_summary(run_dir, metrics)


@app.command(short_help="Write the run's self-contained, offline report.html.")
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `mnistlab train`.")],
) -> None:
    """Write the run's self-contained report.html (opens offline in any browser)."""
    from mnistlab import pipeline

    console.print(str(pipeline.write_report(run_dir)), highlight=False, soft_wrap=True)


@app.command(short_help="Show runs side by side: config, accuracy, loss, fit time.")
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories.")],
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write the table as an HTML page here.", show_default=False)] = None,
) -> None:
    """Show several runs side by side: model, config differences, test accuracy and loss, fit time."""
    from mnistlab import pipeline, report as report_module, runs

    headers, rows = pipeline.compare_runs(run_dirs)
    table = Table(title="runs")
    for header in headers:
        table.add_column(header, justify="left" if header in ("run", "model") else "right")
    for row in rows:
        table.add_row(*("" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    if html is not None:
        runs.write_text(html, report_module.render_comparison(headers, rows))
        console.print(f"written: {html}", highlight=False, soft_wrap=True)


@app.command(short_help="Export a run's model to ONNX (RUN_DIR/model.onnx).")
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `mnistlab train`.")],
    format: Annotated[str, typer.Option("--format", help="Export format: onnx.", callback=_choice(("onnx",)))] = "onnx",
) -> None:
    """Export a run's model for deployment (RUN_DIR/model.onnx); predict then uses it."""
    from mnistlab import runs

    runs.read_config(run_dir)  # Fail fast on a wrong directory, before the slow imports.
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # Export goes through tf2onnx.
    _import_keras()
    from mnistlab import pipeline

    console.print(str(pipeline.export_onnx(run_dir)), highlight=False, soft_wrap=True)


@app.command()
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders (PNG, JPEG, BMP, TIFF, WebP, GIF).")],
    model: Annotated[Optional[Path], typer.Option("--model", help="Run directory to use. [default: the model shipped with mnistlab]", show_default=False)] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="One JSON object per image: file, label, confidence, probabilities, rejected.")] = False,
    save_preview: Annotated[Optional[Path], typer.Option("--save-preview", help="Write the 28x28 image the model saw, per file, into this folder.", show_default=False)] = None,
    min_confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="Reject predictions less sure than this.")] = 0.5,
) -> None:
    """Read handwritten digits from your own images.

    Each image is normalised the way MNIST was (grayscale, ink polarity, background removed,
    cropped, longest side 20 px, centred by mass in 28x28) before the model sees it.
    Exits 1 if any file could not be read; the others are still processed.
    """
    import json

    from mnistlab import predict as predicting

    with _native_stderr_silenced():  # A run without model.onnx loads Keras and its backend.
        predictor = predicting.Predictor.from_run(model)
    failures = 0
    for index, item in enumerate(predicting.predict_files(paths, predictor, min_confidence)):
        if isinstance(item, predicting.FileError):
            failures += 1
            _print_error(f"{item.file}: {item.message}")
            continue
        if save_preview is not None:
            predicting.save_preview(item, save_preview, index)
        if json_lines:
            console.print(json.dumps(item.to_dict()), markup=False, highlight=False, soft_wrap=True)
        elif item.rejected:
            console.print(f"{item.file}: rejected ({item.rejected})", markup=False, highlight=False, soft_wrap=True)
        else:
            console.print(f"{item.file}: {item.label} (p={item.confidence:.3f})", markup=False, highlight=False, soft_wrap=True)
    if failures:
        raise typer.Exit(1)


@app.command(short_help="Serve the draw-a-digit page and the JSON API.")
def serve(
    model: Annotated[Optional[Path], typer.Option("--model", help="Run directory to use. [default: the model shipped with mnistlab]", show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens the server to your network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", min=0.001, help="Largest request body accepted, in MiB.")] = 10.0,
    cors: Annotated[Optional[list[str]], typer.Option("--cors", help="Allow this web origin (e.g. https://example.org) to call the API; repeatable.", show_default=False)] = None,
    min_confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="Reject predictions less sure than this.")] = 0.5,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes, each with its own copy of the model; one per CPU core gives the most requests per second.")] = 1,
) -> None:
    """Serve the draw-a-digit page at / and the JSON API under /api (docs at /docs).

    The model is loaded once per worker, on ONNX Runtime when the run has model.onnx.
    Ctrl-C stops it.
    """
    from mnistlab import predict as predicting, serve as serving

    # One thread per call: many small requests in parallel beat one request on all cores.
    with _native_stderr_silenced():  # A run without model.onnx loads Keras and its backend.
        predictor = predicting.Predictor.from_run(model, threads=1)
    listener = serving.listen(host, port)
    plural = "s" if workers > 1 else ""
    console.print(
        f"mnistlab serve: {serving.url_of(listener)}  ({predictor.engine}, model {predictor.run_dir},"
        f" {workers} worker{plural}); Ctrl-C stops it",
        markup=False, highlight=False, soft_wrap=True,
    )
    options = serving.ServeOptions(
        run_dir=predictor.run_dir, host=host, port=port, workers=workers,
        max_upload_mb=max_upload_mb, cors_origins=tuple(cors or ()), min_confidence=min_confidence,
    )
    serving.run(listener, options, predictor)
    console.print("stopped", markup=False, highlight=False)


@app.command(short_help="Search hyper-parameters with Ray Tune.")
def sweep(
    space_file: Annotated[Optional[Path], typer.Argument(help="JSON object of Config fields: fixed values or search domains {\"choice\": [...]}, {\"uniform\": [lo, hi]}, {\"loguniform\": [lo, hi]}, {\"randint\": [lo, hi]}.", show_default=False)] = None,
    trials: Annotated[int, typer.Option(min=1, help="How many trials to sample.")] = 8,
    max_concurrent: Annotated[Optional[int], typer.Option(min=1, help="Trials at a time; each gets an equal share of the CPUs. [default: one per CPU]", show_default=False)] = None,
    address: Annotated[Optional[str], typer.Option(help="Join this running Ray cluster (e.g. 10.0.0.5:6379) instead of starting Ray here.", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Carry on an interrupted sweep directory.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Sweep directory to write. [default: sweeps/<timestamp>-sweep]", show_default=False)] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Search hyper-parameters with Ray Tune; every finished trial is a run directory.

    ASHA stops trials whose validation accuracy trails the others'. The sweep directory gets a
    ranked table (sweep.html, results.json) and best_config.json for `mnistlab train --config`.
    Needs the sweep extra: pip install "mnistlab[sweep]".
    """
    from mnistlab import runs, sweep as sweeping

    if (space_file is None) == (resume is None):
        raise typer.BadParameter("give either SPACE_FILE or --resume DIR")
    if resume is None:
        values, _ = sweeping.read_space(space_file)  # One-line errors before Ray starts.
        settings = sweeping.SweepSettings(
            values, trials, max_concurrent, str(data_dir.resolve()) if data_dir else None
        )
    _require("ray", "sweep")
    if resume is None:
        sweep_dir = out or runs.new_run_dir(Path("sweeps"), "sweep")
        result = sweeping.run_sweep(settings, sweep_dir, address=address, on_event=_notice)
    else:
        result = sweeping.resume_sweep(resume, address=address, on_event=_notice)
    _print_sweep(result)
    if result.interrupted:
        _notice(f"finished trials are kept; resume with `mnistlab sweep --resume {result.sweep_dir}`")
        raise typer.Exit(130)  # main() prints the one error line, as for any Ctrl-C
    if result.best_config is None:
        errors = [o.error for o in result.outcomes if o.error]
        raise MnistlabError(f"no trial finished{'; first error: ' + errors[0] if errors else ''}")


def _require(module: str, extra: str) -> None:
    """One line naming the extra to install when an optional dependency is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MnistlabError(f"{module} is not installed; install it with: pip install \"mnistlab[{extra}]\"")


def _print_sweep(result) -> None:
    from mnistlab import sweep as sweeping

    headers, rows = sweeping.table(result.outcomes, result.searched)
    table = Table(title=f"sweep: {len(rows)} trials, best validation accuracy first")
    for header in headers[:-1]:  # Run directories are long: sweep.html and results.json have them.
        table.add_column(header, justify="left" if header in ("trial", "status", "node") else "right")
    for row in rows:
        table.add_row(*("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row[:-1]))
    # In a log (not a terminal), a wide table beats squeezed columns.
    (console if console.is_terminal else Console(file=console.file, width=200)).print(table)
    summary = result.summary
    if summary["fit_seconds_saved_by_early_stopping"]:
        console.print(
            f"early stopping skipped {summary['epochs_skipped_by_early_stopping']} epochs"
            f" (~{summary['fit_seconds_saved_by_early_stopping']:.0f} s of training)", highlight=False
        )
    console.print(f"wall time: {summary['wall_seconds']:.1f} s", highlight=False)
    if result.best_config is not None:
        best = result.outcomes[0]
        console.print(
            f"best: {best.trial_id} (validation accuracy {best.val_accuracy:.4f}, test {best.test_accuracy:.4f})",
            highlight=False, soft_wrap=True,
        )
        console.print(f"best run: {best.run_dir}", highlight=False, soft_wrap=True)
        console.print(f"best config: {result.sweep_dir / sweeping.BEST_CONFIG_FILE}", highlight=False, soft_wrap=True)
    console.print(f"table: {result.sweep_dir / sweeping.HTML_FILE}", highlight=False, soft_wrap=True)


@app.command()
def ensemble(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories to average.")],
    out: Annotated[Path, typer.Option(help="Run directory to write for the ensemble.")],
    data_dir: DataDirOption = None,
) -> None:
    """Average the class probabilities of several runs into one model.

    The ensemble is evaluated on the test set like any run (metrics, figures, report.html) and
    exported as one ONNX graph, so `mnistlab predict --model OUT` uses it like any model.
    """
    from mnistlab import runs

    for run_dir in run_dirs:
        runs.read_config(run_dir)  # Fail fast on a wrong directory, before the slow imports.
    _start_figure_workers()
    _import_keras()
    from mnistlab import pipeline

    hooks, downloads = _hooks(1)
    try:
        run_dir = pipeline.ensemble_run(run_dirs, out, data_dir=data_dir, hooks=hooks)
    finally:
        downloads.close()
    _print_summary(run_dir, runs.read_json(run_dir, runs.METRICS_FILE))
    for member in runs.read_json(run_dir, runs.ENSEMBLE_FILE)["members"]:
        console.print(f"member {member['run_dir']}: test accuracy {member['test_accuracy']:.4f}", highlight=False, soft_wrap=True)


@data_app.command("fetch", short_help="Download the dataset if needed and verify its four files.")
def data_fetch(
    dataset: Annotated[str, typer.Option(help=f"Dataset: {', '.join(DATASETS)}.", callback=_choice(DATASETS))] = "mnist",
    data_dir: DataDirOption = None,
) -> None:
    """Make sure the dataset's four files are present and verified (download if needed)."""
    from mnistlab.data import load_dataset
    from mnistlab.progress import DownloadBars

    downloads = DownloadBars(error_console)
    try:
        loaded = load_dataset(dataset, data_dir, downloads, notify=_notice)
    finally:
        downloads.close()
    for filename, source in loaded.sources.items():
        console.print(f"[green]ok[/green] {filename}  {source}", highlight=False, soft_wrap=True)


@data_app.command("info", short_help="Show each file's source and checksum, shapes, class balance.")
def data_info(
    dataset: Annotated[str, typer.Option(help=f"Dataset: {', '.join(DATASETS)}.", callback=_choice(DATASETS))] = "mnist",
    data_dir: DataDirOption = None,
) -> None:
    """Show where each file is read from, its checksum, shapes and class balance."""
    import numpy as np

    from mnistlab.data import load_dataset

    loaded = load_dataset(dataset, data_dir, notify=_notice)
    table = Table(title=f"{loaded.name}")
    table.add_column("file")
    table.add_column("source")
    table.add_column("sha256 (decompressed)")
    for filename, source in loaded.sources.items():
        table.add_row(filename, source, loaded.sha256[filename][:16] + "…")
    console.print(table)
    console.print(f"train: {loaded.train_images.shape} images, test: {loaded.test_images.shape} images")
    counts = np.bincount(loaded.train_labels, minlength=10)
    console.print("train images per class: " + ", ".join(f"{d}:{c}" for d, c in enumerate(counts)))


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one line and exit non-zero; --debug shows tracebacks."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    _install_interrupt_handler()
    try:
        # Without standalone mode, an Exit raised by a command comes back as its exit code.
        result = command.main(args=args, prog_name="mnistlab", standalone_mode=False)
        if isinstance(result, int) and result:
            if result == 130:  # Typer turns Ctrl-C into exit code 130.
                _print_error("interrupted")
            _stop_figure_workers(kill=True)
            if result == 130 and argv is None:
                _exit_now(130)
            sys.exit(result)
        if argv is None:
            _exit_now()
    except typer.Exit as exit_:
        _stop_figure_workers(kill=exit_.exit_code != 0)
        sys.exit(exit_.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _print_error("interrupted")
        _stop_figure_workers(kill=True)
        if argv is None:
            _exit_now(130)
        sys.exit(130)
    except MnistlabError as error:
        _stop_figure_workers(kill=True)
        if debug:
            raise
        _print_error(str(error))
        sys.exit(1)
    except TyperException as error:  # Usage errors: bad flag, bad value, missing argument.
        if type(error).__name__ == "NoArgsIsHelpError":
            command.main(args=[*args, "--help"], prog_name="mnistlab", standalone_mode=False)
            sys.exit(0)
        _print_error(error.format_message())
        sys.exit(getattr(error, "exit_code", 2))


def _exit_now(code: int = 0) -> None:
    """End a successful or interrupted command without interpreter teardown (about 1 s after
    Keras and its backend loaded, and teardown in the middle of a JAX step can crash). Every
    file is already closed and renamed into place, or removed, by then; only the standard
    streams may still hold output, and figure workers may still be waiting for work.
    Only for the real command line, never a library call.
    """
    _stop_figure_workers()
    if "logging" in sys.modules:
        import logging

        logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _stop_figure_workers(kill: bool = False) -> None:
    """Stop the figure workers if this command started them; ``kill`` after a failure, so the
    error is not kept waiting on a worker's imports."""
    if "mnistlab.figure_workers" in sys.modules:
        sys.modules["mnistlab.figure_workers"].shutdown(kill=kill)


def _print_error(message: str) -> None:
    """One line on stderr, however long: a user error is never a wall of text."""
    line = " ".join(message.split())
    error_console.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
