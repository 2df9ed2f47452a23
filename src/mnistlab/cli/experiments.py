"""Commands that train many models into a directory of their own: ``audit`` (one model per
cross-validation fold) and ``sweep`` (one run directory per trial)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mnistlab import extras
from mnistlab.cli import runtime, views
from mnistlab.cli.options import (
    FIELD_DEFAULTS,
    DataDirOption,
    DatasetOption,
    SeedOption,
    TestLimitOption,
    TrainLimitOption,
    audit_epochs_default,
    choice,
    option,
    usage_error,
)
from mnistlab.config import AUDIT_MODEL, AUDIT_REVIEW, MODEL_NAMES, Config
from mnistlab.errors import ConfigError, MnistlabError


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
            help="Carry on an interrupted audit after its last finished fold, with its own config.",
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
    trials: Annotated[int, typer.Option(min=1, metavar="N", help="How many trials to sample.")] = 8,
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
            help="Join this running Ray cluster (e.g. 10.0.0.5:6379) instead of starting Ray here.",
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
