"""The Typer app: the commands that use a run or a dataset, the commands that train from
``training`` and ``experiments``, and ``main``, which turns every failure into one line and an
exit code.

Heavy libraries (Keras and its backend, matplotlib) are imported inside the commands that need
them, so ``mnistlab --help`` and ``mnistlab data info`` answer at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException

from mnistlab import extras
from mnistlab.cli import experiments, runtime, training, views
from mnistlab.cli.options import (
    DEFAULT_DATASET,
    DataDirOption,
    DatasetOption,
    MinConfidenceOption,
    OldRunOption,
    PlainHelpCommand,
    RunDirArgument,
    RunDirsArgument,
    RunOption,
    choice,
    option,
    renamed,
)
from mnistlab.errors import MnistlabError

# TensorFlow's C++ start-up chatter is noise for a CLI user; --debug shows it again.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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


def _show_version(value: bool) -> None:
    if value:
        from mnistlab import __version__

        views.print_line(f"mnistlab {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Train, evaluate and explain handwritten-digit classifiers."""
    if debug:
        os.environ["MNISTLAB_DEBUG"] = "1"


def evaluate(run_dir: RunDirArgument, data_dir: DataDirOption = None) -> None:
    """Rebuild a run's metrics and figures from its directory alone."""
    from mnistlab import runs

    extras.require("train", "mnistlab evaluate")
    config = runs.read_config(run_dir)  # Fail fast, before the slow imports, on a wrong directory.
    runtime.start_figure_workers()
    runtime.import_keras(config.model)
    from mnistlab import pipeline

    with runtime.progress(epochs=1) as hooks:
        metrics = pipeline.evaluate_run(run_dir, data_dir=data_dir, hooks=hooks)
    views.run_summary(run_dir, metrics)


def report(run_dir: RunDirArgument) -> None:
    """Write the run's self-contained report.html (opens offline in any browser)."""
    from mnistlab import pipeline

    views.print_line(pipeline.write_report(run_dir))


def compare(
    run_dirs: RunDirsArgument,
    html: Annotated[
        Optional[Path],
        option("--html", metavar="FILE", help="Also write the table as an HTML page here."),
    ] = None,
) -> None:
    """Show several runs side by side: architecture, config differences, test accuracy and
    loss, fit time."""
    if len(run_dirs) < 2:
        raise typer.BadParameter("give two or more run directories", param_hint="RUN_DIR...")
    seen: dict[Path, Path] = {}
    for run_dir in run_dirs:
        twin = seen.setdefault(run_dir.resolve(), run_dir)
        if twin is not run_dir:
            raise typer.BadParameter(
                f"the same run is given twice: {twin}, {run_dir}", param_hint="RUN_DIR..."
            )
    from mnistlab import fileio, pipeline, run_tables

    headers, rows = pipeline.compare_runs(run_dirs)
    views.comparison(headers, rows)
    if html is not None:
        fileio.write_text(html, run_tables.render_comparison(headers, rows))
        views.print_line(f"written: {html}")


def export(
    run_dir: RunDirArgument,
    format: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="Export format: onnx.", callback=choice(("onnx",))
        ),
    ] = "onnx",
) -> None:
    """Export a run's model for deployment (RUN_DIR/model.onnx); predict then uses it."""
    from mnistlab import runs

    extras.require("train", "mnistlab export")
    runs.read_config(run_dir)  # Fail fast on a wrong directory, before the slow imports.
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # Export goes through tf2onnx.
    runtime.import_keras()
    from mnistlab import pipeline

    views.print_line(pipeline.export_onnx(run_dir))


def predict(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...",
            help="Image files or folders (PNG, JPEG, BMP, TIFF, WebP, GIF).",
            show_default=False,
        ),
    ],
    run: RunOption = None,
    model: OldRunOption = None,
    json_lines: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object per image: file, label, confidence, probabilities, uncertain,"
            " rejected, not_digit.",
        ),
    ] = False,
    save_preview: Annotated[
        Optional[Path],
        option(
            "--save-preview",
            metavar="DIR",
            help="Write the 28x28 image the model saw, per file, into this folder.",
        ),
    ] = None,
    min_confidence: MinConfidenceOption = 0.5,
) -> None:
    """Read handwritten digits from your own images.

    Each image is normalised the way MNIST was (grayscale, ink polarity, background removed,
    cropped, longest side 20 px, centred by mass in 28x28) before the model sees it.
    Exits 1 if any file could not be read; the others are still processed.
    """
    run = renamed(run, model, "--model", "--run")
    from mnistlab import predict as predicting

    # A run without model.onnx loads Keras and its backend.
    with runtime.native_stderr_silenced():
        predictor = predicting.Predictor.from_run(run)
    failures = 0
    for index, item in enumerate(predicting.predict_files(paths, predictor, min_confidence)):
        if isinstance(item, predicting.FileError):
            failures += 1
            views.print_error(f"{item.file}: {item.message}")
            continue
        if save_preview is not None:
            predicting.save_preview(item, save_preview, index)
        views.prediction(item, json_lines)
    if failures:
        raise typer.Exit(1)


def read(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="IMAGE...",
            help="Images of a handwritten number, its digits on one line (PNG, JPEG, BMP, TIFF,"
            " WebP, GIF).",
            show_default=False,
        ),
    ],
    run: RunOption = None,
    json_lines: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object per image: file, text, confidence, uncertain, digits (label,"
            " confidence, uncertain, box [x, y, w, h]), rejected.",
        ),
    ] = False,
    expect_digits: Annotated[
        Optional[int],
        typer.Option(min=1, max=24, metavar="N", help="Read exactly N digits."),
    ] = None,
    min_confidence: MinConfidenceOption = 0.5,
) -> None:
    """Read a handwritten number (1 to about 20 digits on one line) from each image.

    Digits may touch, overlap a little, be broken in two or lean (italic writing); each is cut
    out and normalised the way MNIST was before the model reads it. Exits 1 if any file could
    not be read.
    """
    import json

    from mnistlab import predict as predicting
    from mnistlab.errors import ImageError
    from mnistlab.reading import read_number

    with runtime.native_stderr_silenced():
        predictor = predicting.Predictor.from_run(run)
    failures = 0
    for item in predicting.expand_paths(paths):
        if isinstance(item, predicting.FileError):
            failures += 1
            views.print_error(f"{item.file}: {item.message}")
            continue
        try:
            reading = read_number(
                item, predictor, expect_digits, min_confidence=min_confidence, file=str(item)
            )
        except ImageError as error:
            failures += 1
            views.print_error(str(error) if str(item) in str(error) else f"{item}: {error}")
            continue
        if json_lines:
            views.print_line(json.dumps(reading.to_dict()))
        elif reading.rejected:
            views.print_line(f"{reading.file}: rejected ({reading.rejected})")
        else:
            unsure = sum(digit.uncertain for digit in reading.digits)
            if unsure:
                note = f", {unsure} digit{'s' * (unsure > 1)} not sure"
            else:
                note = ", not sure" if reading.uncertain else ""
            mark = "?" if reading.uncertain else ""
            views.print_line(
                f"{reading.file}: {reading.text}{mark} (p={reading.confidence:.3f}{note})"
            )
    if failures:
        raise typer.Exit(1)


def serve(
    run: RunOption = None,
    model: OldRunOption = None,
    host: Annotated[
        str,
        typer.Option(
            metavar="ADDRESS",
            help="Address to listen on; 0.0.0.0 opens the server to your network.",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            min=0, max=65535, metavar="PORT", help="Port to listen on (0: any free port)."
        ),
    ] = 8000,
    max_upload_mb: Annotated[
        float,
        typer.Option(
            "--max-upload-mb", min=0.001, metavar="MIB", help="Largest request body accepted."
        ),
    ] = 10.0,
    cors: Annotated[
        Optional[list[str]],
        option(
            "--cors",
            metavar="ORIGIN",
            help="Allow this web origin (e.g. https://example.org) to call the API; repeatable.",
        ),
    ] = None,
    min_confidence: MinConfidenceOption = 0.5,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Worker processes, each with its own copy of the model; one per CPU core gives"
            " the most requests per second.",
        ),
    ] = 1,
    max_in_flight: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Image requests handled at once per worker (fewer, down to N/8, while"
            " clients are being turned away); more are answered 503 with Retry-After at"
            " once, not queued.",
        ),
    ] = 32,
    read_timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            help="An upload that sends nothing for this long is answered 408.",
        ),
    ] = 15.0,
) -> None:
    """Serve the draw-a-digit page at / and the JSON API under /api (docs at /docs).

    The model is loaded once per worker, on ONNX Runtime when the run has model.onnx.
    Ctrl-C stops it.
    """
    run = renamed(run, model, "--model", "--run")
    from mnistlab import predict as predicting, serve as serving

    # One thread per call: many small requests in parallel beat one request on all cores.
    with runtime.native_stderr_silenced():  # A run without model.onnx loads Keras.
        predictor = predicting.Predictor.from_run(run, threads=1)
    listener = serving.listen(host, port)
    warning = serving.exposure_warning(host)
    if warning:
        views.notice(warning)
    plural = "s" if workers > 1 else ""
    views.print_line(
        f"mnistlab serve: {serving.url_of(listener)}  ({predictor.engine}, model"
        f" {predictor.run_dir}, {workers} worker{plural}); Ctrl-C stops it"
    )
    options = serving.ServeOptions(
        run_dir=predictor.run_dir, host=host, port=port, workers=workers,
        max_upload_mb=max_upload_mb, cors_origins=tuple(cors or ()), min_confidence=min_confidence,
        max_in_flight=max_in_flight, read_timeout=read_timeout,
    )  # fmt: skip
    serving.run(listener, options, predictor)
    views.print_line("stopped")


def data_fetch(dataset: DatasetOption = None, data_dir: DataDirOption = None) -> None:
    """Make sure the dataset's four files are present and verified (download if needed)."""
    from mnistlab.data import load_dataset

    with runtime.progress() as hooks:
        loaded = load_dataset(
            dataset or DEFAULT_DATASET, data_dir, hooks.on_download, notify=hooks.on_phase
        )
    views.dataset_files(loaded)


def data_info(dataset: DatasetOption = None, data_dir: DataDirOption = None) -> None:
    """Show where each file is read from, its checksum, shapes and class balance.

    Downloads nothing: a dataset that is not here is an error naming `mnistlab data fetch`.
    """
    from mnistlab.data import load_dataset

    views.dataset_info(load_dataset(dataset or DEFAULT_DATASET, data_dir, fetch=False))


# Help order is registration order: making runs, using them, then the datasets.
for command, short_help in (
    (training.train, "Train a model, evaluate it and write a run directory."),
    (experiments.audit, "Find likely label errors, near-duplicates and outliers."),
    (evaluate, None),
    (report, "Write the run's self-contained, offline report.html."),
    (compare, "Show runs side by side: config, accuracy, loss, fit time."),
    (export, "Export a run's model to ONNX (RUN_DIR/model.onnx)."),
    (predict, None),
    (read, "Read a handwritten number (digits on one line) from images."),
    (serve, "Serve the draw-a-digit page and the JSON API."),
    (experiments.sweep, "Search hyper-parameters with Ray Tune."),
    (training.ensemble, None),
):
    app.command(short_help=short_help, cls=PlainHelpCommand)(command)
app.add_typer(data_app, name="data")
for name, command, short_help in (
    ("fetch", data_fetch, "Download the dataset if needed and verify its four files."),
    ("info", data_info, "Show each file's source and checksum, shapes, class balance."),
):
    data_app.command(name, short_help=short_help, cls=PlainHelpCommand)(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print one line and exit non-zero; --debug shows tracebacks."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    runtime.install_interrupt_handler()
    try:
        # Without standalone mode, an Exit raised by a command comes back as its exit code.
        result = command.main(args=args, prog_name="mnistlab", standalone_mode=False)
        if isinstance(result, int) and result:
            if result == 130:  # Typer turns Ctrl-C into exit code 130.
                views.print_error("interrupted")
            runtime.stop_figure_workers(kill=True)
            if result == 130 and argv is None:
                runtime.exit_now(130)
            sys.exit(result)
        if argv is None:
            runtime.exit_now()
    except typer.Exit as exit_:
        runtime.stop_figure_workers(kill=exit_.exit_code != 0)
        sys.exit(exit_.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        views.print_error("interrupted")
        runtime.stop_figure_workers(kill=True)
        if argv is None:
            runtime.exit_now(130)
        sys.exit(130)
    except MnistlabError as error:
        runtime.stop_figure_workers(kill=True)
        if debug:
            raise
        views.print_error(str(error))
        sys.exit(1)
    except ModuleNotFoundError as error:
        # A module of an extra that is not installed, met on a path no command checks first.
        extra = extras.extra_of(error.name)
        if extra is None or debug:
            raise
        runtime.stop_figure_workers(kill=True)
        views.print_error(extras.message(_command_of(args), extra))
        sys.exit(1)
    except TyperException as error:  # Usage errors: bad flag, bad value, missing argument.
        if type(error).__name__ == "NoArgsIsHelpError":
            command.main(args=[*args, "--help"], prog_name="mnistlab", standalone_mode=False)
            sys.exit(0)
        views.print_error(error.format_message())
        sys.exit(getattr(error, "exit_code", 2))


def _command_of(args: list[str]) -> str:
    """``mnistlab COMMAND`` for the error line: the first argument that is not an option."""
    words = [arg for arg in args if not arg.startswith("-")][:1]
    return " ".join(["mnistlab", *words])
