"""Commands that train: ``train``, ``audit``, ``sweep`` and ``ensemble`` (which evaluates)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mnistlab import extras
from mnistlab.cli import runtime, views
from mnistlab.cli.options import (
    DEFAULT_MODEL,
    FIELD_DEFAULTS,
    DataDirOption,
    DatasetOption,
    ModelOption,
    RunDirsArgument,
    SeedOption,
    TestLimitOption,
    TrainLimitOption,
    audit_epochs_default,
    choice,
    option,
    per_model_default,
    usage_error,
)
from mnistlab.config import (
    AUDIT_MODEL,
    AUDIT_REVIEW,
    LR_SCHEDULES,
    MODEL_NAMES,
    Config,
)
from mnistlab.errors import ConfigError, MnistlabError


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
            help="Carry on an interrupted run from its last checkpoint, with the run's own"
            " config.",
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


def audit(
    dataset: DatasetOption = None,
    model: Annotated[
        Optional[str],
        option(
            metavar="NAME",
            help=f"Architecture of each fold's model: {', '.join(MODEL_NAMES)}."
            f" [default: {AUDIT_MODEL}]",
            callback=choice(MODEL_NAMES),
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option(min=2, metavar="N", help="Cross-validation folds over train and test.")
    ] = FIELD_DEFAULTS["folds"],
    seed: SeedOption = None,
    epochs: Annotated[
        Optional[int],
        option(min=1, metavar="N", help=f"Epochs per fold. {audit_epochs_default()}"),
    ] = None,
    review: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Images of each split in the review queue, candidates.csv: the N lowest label"
            " qualities, flagged or not.",
        ),
    ] = AUDIT_REVIEW,
    train_limit: TrainLimitOption = None,
    test_limit: TestLimitOption = None,
    resume: Annotated[
        Optional[Path],
        option(
            "--resume",
            metavar="AUDIT_DIR",
            help="Carry on an interrupted audit after its last finished fold, with its own"
            " config.",
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        option(
            metavar="DIR",
            help="Audit directory to write. [default: audits/TIMESTAMP-DATASET-MODEL]",
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Find likely label errors, near-duplicates and outliers in train and test.

    Every image is scored by a model that never saw it (K-fold cross-validation over the pooled
    images); confident learning (cleanlab) flags labels the models contradict. Writes
    label_issues.csv (what cleanlab flags), candidates.csv (the review queue: each split's
    --review lowest label qualities), duplicates.csv, outliers.csv and a self-contained
    audit.html. Act on it with `mnistlab train --exclude AUDIT_DIR/label_issues.csv` (or a
    reviewed candidates.csv).
    """
    extras.require("audit", "mnistlab audit")
    if resume is not None:
        from mnistlab import runs

        config = runs.read_config(resume)
    else:
        flags = dict(
            dataset=dataset, folds=folds, seed=seed, epochs=epochs,
            train_limit=train_limit, test_limit=test_limit,
        )  # fmt: skip
        try:
            config = Config.for_audit(model or AUDIT_MODEL, **flags)
        except ConfigError as error:
            raise usage_error(error, flags) from None
    runtime.import_keras(config.model)
    from mnistlab import audit_workflow, audits

    with runtime.progress(config.epochs) as hooks:
        hooks.on_fold = lambda finished, total: views.notice(f"fold {finished}/{total} done")
        audit_dir = audit_workflow.audit_dataset(
            config, data_dir=data_dir, out_dir=resume or out, hooks=hooks,
            resume=resume is not None, review=review,
        )  # fmt: skip
    audit_files = audits.Audit(audit_dir)
    views.audit_summary(
        audit_dir, audit_files.read_summary(), audit_files.report_path, audit_files.candidates_path
    )


def sweep(
    space_file: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="SPACE_FILE",
            help="JSON object of Config fields: fixed values or search domains"
            ' {"choice": [...]}, {"uniform": [lo, hi]}, {"loguniform": [lo, hi]},'
            ' {"randint": [lo, hi]}.',
            show_default=False,
        ),
    ] = None,
    trials: Annotated[
        int, typer.Option(min=1, metavar="N", help="How many trials to sample.")
    ] = 8,
    max_concurrent: Annotated[
        Optional[int],
        option(
            min=1,
            metavar="N",
            help="Trials at a time; each gets an equal share of the CPUs. [default: one per CPU]",
        ),
    ] = None,
    address: Annotated[
        Optional[str],
        option(
            metavar="HOST:PORT",
            help="Join this running Ray cluster (e.g. 10.0.0.5:6379) instead of starting Ray"
            " here.",
        ),
    ] = None,
    sample_seed: Annotated[
        Optional[int],
        option(
            "--sample-seed",
            min=0,
            metavar="N",
            help="Seed for drawing the trials' values: the same space and seed draw the same"
            " trials. [default: a fresh draw]",
        ),
    ] = None,
    resume: Annotated[
        Optional[Path],
        option("--resume", metavar="SWEEP_DIR", help="Carry on an interrupted sweep directory."),
    ] = None,
    out: Annotated[
        Optional[Path],
        option(metavar="DIR", help="Sweep directory to write. [default: sweeps/TIMESTAMP-sweep]"),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Search hyper-parameters with Ray Tune; every trial is a run directory.

    ASHA stops trials whose validation accuracy trails the others'; a stopped trial keeps its
    config, history and checkpoint, marked stopped. The sweep directory gets a ranked table
    (sweep.html, results.json) and best_config.json for `mnistlab train --config`. Needs the
    sweep extra: pip install "mnistlab[sweep]".
    """
    from mnistlab import runs, sweep as sweeping, sweep_results, sweep_space

    if (space_file is None) == (resume is None):
        raise typer.BadParameter("give either SPACE_FILE or --resume SWEEP_DIR")
    if resume is None:
        values, _ = sweep_space.read_space(space_file)  # One-line errors before Ray starts.
        settings = sweeping.SweepSettings(
            values, trials, max_concurrent, str(data_dir.resolve()) if data_dir else None,
            sample_seed,
        )  # fmt: skip
    extras.require("sweep", "mnistlab sweep")
    if resume is None:
        sweep_dir = out or runs.new_run_dir(Path("sweeps"), "sweep")
        result = sweeping.run_sweep(settings, sweep_dir, address=address, on_event=views.notice)
    else:
        result = sweeping.resume_sweep(resume, address=address, on_event=views.notice)
    headers, rows = sweep_results.table(result.outcomes, result.searched)
    views.sweep_summary(
        result, headers, rows,
        best_config=result.sweep_dir / sweep_results.BEST_CONFIG_FILE,
        page=result.sweep_dir / sweep_results.HTML_FILE,
    )  # fmt: skip
    if result.interrupted:
        views.notice(
            "finished and stopped trials are kept; resume with"
            f" `mnistlab sweep --resume {result.sweep_dir}`"
        )
        raise typer.Exit(130)  # main() prints the one error line, as for any Ctrl-C
    if result.best_config is None:
        errors = [o.error for o in result.outcomes if o.error]
        first = f"; first error: {errors[0]}" if errors else ""
        raise MnistlabError(f"no trial finished{first}")


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
