"""Commands that write a run directory: ``train``, and ``ensemble``, which combines trained
runs into one model and evaluates it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mnistlab import extras
from mnistlab.cli import runtime, views
from mnistlab.cli.options import (
    DEFAULT_MODEL,
    DataDirOption,
    DatasetOption,
    ModelOption,
    RunDirsArgument,
    SeedOption,
    TestLimitOption,
    TrainLimitOption,
    choice,
    option,
    per_model_default,
    usage_error,
)
from mnistlab.config import LR_SCHEDULES, Config
from mnistlab.errors import ConfigError


def train(
    model: ModelOption = None,
    dataset: DatasetOption = None,
    epochs: Annotated[
        Optional[int], option(min=1, metavar="N", help=f"Epochs. {per_model_default('epochs')}")
    ] = None,
    batch_size: Annotated[
        Optional[int],
        option(min=1, metavar="N", help=f"Batch size. {per_model_default('batch_size')}"),
    ] = None,
    learning_rate: Annotated[
        Optional[float],
        option(metavar="RATE", help=f"Adam learning rate. {per_model_default('learning_rate')}"),
    ] = None,
    lr_schedule: Annotated[
        Optional[str],
        option(
            metavar="NAME",
            help=f"Learning-rate schedule: {', '.join(LR_SCHEDULES)}."
            f" {per_model_default('lr_schedule')}",
            callback=choice(LR_SCHEDULES),
        ),
    ] = None,
    warmup_epochs: Annotated[
        Optional[float],
        option(
            metavar="N",
            help="Raise the learning rate linearly from 0 over the first N epochs (fractions"
            f" allowed). {per_model_default('warmup_epochs')}",
        ),
    ] = None,
    mixed_precision: Annotated[
        Optional[bool],
        option(
            "--mixed-precision/--no-mixed-precision",
            help="Train in bfloat16 (the saved model is float32)."
            f" {per_model_default('mixed_precision')}",
        ),
    ] = None,
    augment: Annotated[
        Optional[bool],
        option(
            "--augment/--no-augment",
            help="Turn, zoom and move every training image at random, afresh each epoch (up to"
            f" 10.8°, ±10%, a tenth of its side). {per_model_default('augment')}",
        ),
    ] = None,
    shift_pixels: Annotated[
        Optional[int],
        option(
            min=0,
            metavar="N",
            help="Move each training image by up to N pixels each way, at random, every epoch."
            f" {per_model_default('shift_pixels')}",
        ),
    ] = None,
    drawings: Annotated[
        Optional[int],
        option(
            min=0,
            metavar="N",
            help="Also train on N training digits redrawn as canvas drawings (a round brush along"
            " each digit's skeleton), read as `serve` reads a canvas; about 25 ms each per"
            f" core. {per_model_default('drawings')}",
        ),
    ] = None,
    init_from: Annotated[
        Optional[str],
        option(
            "--init-from",
            metavar="RUN_DIR",
            help="Start from this run's trained weights (fine-tuning) instead of random ones;"
            " 'shipped' is the shipped model. The run must hold the same architecture.",
        ),
    ] = None,
    validation_split: Annotated[
        Optional[float],
        option(
            metavar="FRACTION",
            help="Fraction of the training set held out for validation; 0 trains on every image"
            f" and validates nothing. {per_model_default('validation_split')}",
        ),
    ] = None,
    ema_momentum: Annotated[
        Optional[float],
        option(
            metavar="MOMENTUM",
            help="Average the weights as Adam trains (exponential moving average with this"
            " momentum, e.g. 0.999), and validate and save the average; 0 saves the last"
            f" step's weights. {per_model_default('ema_momentum')}",
        ),
    ] = None,
    dropout: Annotated[
        Optional[float],
        option(
            metavar="RATE",
            help="Rate of every dropout layer, in place of the architecture's own."
            " [default: the architecture's own]",
        ),
    ] = None,
    seed: SeedOption = None,
    top_errors: Annotated[
        Optional[int],
        option(
            min=0,
            metavar="N",
            help=f"How many confident mistakes to show. {per_model_default('top_errors')}",
        ),
    ] = None,
    train_limit: TrainLimitOption = None,
    test_limit: TestLimitOption = None,
    config_file: Annotated[
        Optional[Path],
        option(
            "--config",
            metavar="FILE",
            help="JSON config file (e.g. a run's config.json); flags override it.",
        ),
    ] = None,
    checkpoint: Annotated[
        Optional[bool],
        option(
            "--checkpoint/--no-checkpoint",
            help="Save a checkpoint every epoch so an interrupted run can resume."
            f" {per_model_default('checkpoint')}",
        ),
    ] = None,
    export_onnx: Annotated[
        Optional[bool],
        option(
            "--export-onnx/--no-export-onnx",
            help="Write model.onnx beside model.keras, so predict and serve run the model on ONNX"
            f" Runtime. {per_model_default('export_onnx')}",
        ),
    ] = None,
    resume: Annotated[
        Optional[Path],
        option(
            "--resume",
            metavar="RUN_DIR",
            help="Carry on an interrupted run from its last checkpoint, with the run's own config.",
        ),
    ] = None,
    exclude: Annotated[
        Optional[Path],
        option(
            "--exclude",
            metavar="FILE",
            help="Leave out the training images listed in this CSV (split,index columns), e.g. an"
            " audit's label_issues.csv.",
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        option(metavar="DIR", help="Run directory to write. [default: runs/TIMESTAMP-MODEL]"),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Train a model, evaluate it on the test set and write a run directory.

    Without --config, settings start from the architecture's own defaults: the seed notebook's
    for seed-mlp, tuned ones for the convolutional models. Flags override either.
    """
    extras.require("train", "mnistlab train")
    if resume is not None:
        from mnistlab import runs

        config = runs.read_config(resume)
        runtime.start_figure_workers()
        runtime.import_keras(config.model)
        _train(config, data_dir, resume, resume=True)
        return
    if config_file is not None:
        base = Config.from_json_file(config_file)  # A bad file is not a usage error.
    else:
        base = Config.for_model(model or DEFAULT_MODEL)
    flags = dict(
        model=model, checkpoint=checkpoint, lr_schedule=lr_schedule, warmup_epochs=warmup_epochs,
        mixed_precision=mixed_precision, augment=augment, shift_pixels=shift_pixels,
        drawings=drawings, init_from=_run_path(init_from), dataset=dataset, epochs=epochs,
        export_onnx=export_onnx,
        batch_size=batch_size, learning_rate=learning_rate, validation_split=validation_split,
        ema_momentum=ema_momentum, dropout=dropout, seed=seed, top_errors=top_errors,
        train_limit=train_limit, test_limit=test_limit,
    )  # fmt: skip
    try:
        config = base.replace(**flags)
    except ConfigError as error:
        raise usage_error(error, flags) from None
    if exclude is not None:
        from mnistlab import pipeline

        config = pipeline.with_exclusion(config, exclude)
    runtime.start_figure_workers()
    runtime.import_keras(config.model)
    _train(config, data_dir, out)


def _run_path(value: Optional[str]) -> Optional[str]:
    """A run directory given on the command line; 'shipped' names the shipped model's."""
    if value == "shipped":
        from mnistlab.predict import pretrained_dir

        return str(pretrained_dir())
    return value


def _train(config: Config, data_dir, out: Optional[Path], resume: bool = False) -> None:
    from mnistlab import pipeline, runs

    with runtime.progress(config.epochs) as hooks:
        run_dir = pipeline.train_run(
            config, data_dir=data_dir, out_dir=out, hooks=hooks, resume=resume
        )
    views.run_summary(run_dir, runs.Run(run_dir).read_metrics())


def ensemble(
    run_dirs: RunDirsArgument,
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Run directory to write for the ensemble.")
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Average the class probabilities of several runs into one model.

    The ensemble is evaluated on the test set like any run (metrics, figures, report.html) and
    exported as one ONNX graph, so `mnistlab predict --run OUT` uses it like any model.
    """
    from mnistlab import runs

    extras.require("train", "mnistlab ensemble")
    if len(run_dirs) < 2:
        raise typer.BadParameter(
            f"an ensemble needs at least two runs; received: {len(run_dirs)}",
            param_hint="RUN_DIR...",
        )
    for run_dir in run_dirs:
        runs.read_config(run_dir)  # Fail fast on a wrong directory, before the slow imports.
    runtime.start_figure_workers()
    runtime.import_keras()
    from mnistlab import pipeline

    with runtime.progress(epochs=1) as hooks:
        run_dir = pipeline.ensemble_run(run_dirs, out, data_dir=data_dir, hooks=hooks)
    run = runs.Run(run_dir)
    views.run_summary(run_dir, run.read_metrics())
    views.ensemble_members(run.ensemble_members())
