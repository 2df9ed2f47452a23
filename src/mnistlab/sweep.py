"""Hyper-parameter sweeps on Ray Tune, where every trial is a run directory.

This module runs the trials; ``sweep_space`` checks the space file and ``sweep_results`` ranks
the outcomes and writes them. Ray Tune samples the trials and runs them in parallel, here or on
a cluster; ASHA stops the trials whose validation accuracy trails the others' at the same
epoch. Each trial calls ``pipeline.train_run``, so a finished trial is a normal run directory,
scored once on the test set; the test score is shown, never used to choose. A trial stopped
early keeps its directory: its config, its history up to the epoch it reached (written after
every epoch), its checkpoint if it had one, and a status saying it was stopped; it has no model
and no test evaluation.

    SWEEP_DIR/
        sweep.json          the space and settings, read back by --resume
        tune/               Ray Tune's experiment state (what --resume restores)
        trials/<trial-id>/  one run directory per trial, finished or stopped early
        results.json  sweep.html  best_config.json

Ray is imported only inside the functions that run a sweep, so ``import mnistlab`` never
needs it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnistlab import fileio, runs
from mnistlab.errors import ConfigError, MnistlabError, RunError
from mnistlab.sweep_results import METRIC, SweepResult, TrialOutcome, rank, summarize, write_results
from mnistlab.sweep_space import Domain, SearchSpace, parse_space

SETTINGS_FILE = "sweep.json"
TUNE_DIR = "tune"
TRIALS_DIR = "trials"
# ASHA keeps the best third of the trials at each rung (epochs 1, 3, 9, ...).
REDUCTION_FACTOR = 3
GRACE_EPOCHS = 1


def _check_integer(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; received: {value!r}")


@dataclass
class SweepSettings:
    """Everything a sweep needs besides Ray; saved as sweep.json so --resume can rebuild it."""

    space: dict[str, Any]
    trials: int = 8
    max_concurrent: int | None = None  # None: one trial per CPU of the cluster
    data_dir: str | None = None
    sample_seed: int | None = None  # Seeds the drawing of the trials' values; None: fresh.

    def __post_init__(self) -> None:
        _check_integer("trials", self.trials, 1)
        if self.max_concurrent is not None:
            _check_integer("max_concurrent", self.max_concurrent, 1)
        if self.sample_seed is not None:
            _check_integer("sample_seed", self.sample_seed, 0)


def run_sweep(
    settings: SweepSettings,
    sweep_dir: str | Path,
    address: str | None = None,
    on_event: Callable[[str], None] = lambda message: None,
) -> SweepResult:
    """Run a new sweep into ``sweep_dir`` (which must not hold anything yet)."""
    space = parse_space(settings.space)  # Checked before Ray starts.
    sweep_dir = Path(sweep_dir)
    # Once Ray Tune has saved its state, an interrupted sweep can be resumed; before, not.
    with runs.new_or_resumed(sweep_dir, resumable=(sweep_dir / TUNE_DIR).is_dir):
        sweep_dir = sweep_dir.resolve()
        fileio.write_json(sweep_dir / SETTINGS_FILE, dataclasses.asdict(settings))
        return _run(settings, space, sweep_dir, address, on_event, resume=False)


def resume_sweep(
    sweep_dir: str | Path,
    address: str | None = None,
    on_event: Callable[[str], None] = lambda message: None,
) -> SweepResult:
    """Carry on an interrupted sweep with Ray Tune's own restore: finished trials stay,
    unfinished and failed ones run again (a checkpointed trial from its last epoch)."""
    sweep_dir = Path(sweep_dir).resolve()
    values = runs.read_json(sweep_dir, SETTINGS_FILE)
    try:
        settings = SweepSettings(**values)
    except TypeError as error:
        raise RunError(f"{sweep_dir / SETTINGS_FILE} is not a sweep's settings ({error})") from None
    space = parse_space(settings.space, source=str(sweep_dir / SETTINGS_FILE))
    if not (sweep_dir / TUNE_DIR).is_dir():
        raise RunError(f"{sweep_dir / TUNE_DIR} is missing; the sweep never started")
    return _run(settings, space, sweep_dir, address, on_event, resume=True)


def _run(
    settings: SweepSettings,
    space: SearchSpace,
    sweep_dir: Path,
    address: str | None,
    on_event: Callable[[str], None],
    resume: bool,
) -> SweepResult:
    import logging

    # Tune's own console output (an experiment box, hints) goes; our callback reports progress.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    started = time.perf_counter()
    _start_ray(address)
    try:
        total_cpus = int(ray.cluster_resources().get("CPU", 1))
        concurrent = settings.max_concurrent or total_cpus
        cpus_per_trial = max(1, total_cpus // concurrent)
        on_event(
            f"ray: {total_cpus} CPUs in {len(ray.nodes())} node(s); up to {concurrent} trials"
            f" at a time, {cpus_per_trial} CPU(s) each"
        )
        trainable = tune.with_resources(
            tune.with_parameters(
                _run_trial,
                space=space,
                trials_dir=str(sweep_dir / TRIALS_DIR),
                data_dir=settings.data_dir,
                threads=cpus_per_trial,
            ),
            {"cpu": cpus_per_trial},
        )
        # Ray Tune logs progress and its own advice; the callback below says what matters.
        logging.getLogger("ray").setLevel(logging.ERROR)
        reporter = _progress_callback(on_event)
        if resume:
            tuner = tune.Tuner.restore(
                str(sweep_dir / TUNE_DIR),
                trainable=trainable,
                resume_unfinished=True,
                restart_errored=True,
            )
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=_param_space(space),
                tune_config=tune.TuneConfig(
                    num_samples=settings.trials,
                    # Tune's default search, with the concurrency limit and a seed of our own.
                    search_alg=BasicVariantGenerator(
                        max_concurrent=concurrent, random_state=settings.sample_seed
                    ),
                    scheduler=ASHAScheduler(
                        time_attr="epoch",
                        metric=METRIC,
                        mode="max",
                        # One past the longest trial: at max_t ASHA stops every trial. (A
                        # trial's last epoch is reported once its run is written, so a stop
                        # there costs nothing.)
                        max_t=space.max_epochs + 1,
                        grace_period=min(GRACE_EPOCHS, space.max_epochs),
                        reduction_factor=REDUCTION_FACTOR,
                    ),
                    reuse_actors=False,  # A fresh process per trial: no state leaks between runs.
                ),
                run_config=tune.RunConfig(
                    name=TUNE_DIR,
                    storage_path=str(sweep_dir),
                    verbose=0,
                    callbacks=[reporter],
                    failure_config=tune.FailureConfig(max_failures=0),
                ),
            )
        if resume:
            # Tuner.restore takes no run config: attach the progress callback to the restored one.
            tuner._local_tuner.get_run_config().callbacks = [reporter]
        tuner.fit()
    finally:
        ray.shutdown()
    outcomes = rank(_collect(sweep_dir, space))
    interrupted = len(outcomes) < settings.trials or any(o.status == "unfinished" for o in outcomes)
    summary = summarize(outcomes, time.perf_counter() - started)
    result = SweepResult(sweep_dir, outcomes, summary, sorted(space.domains), interrupted)
    write_results(result)
    return result


def tune_domain(domain: Domain):
    """A search domain in Ray Tune's terms."""
    from ray import tune

    if domain.kind == "choice":
        return tune.choice(list(domain.values))
    if domain.kind == "uniform":
        return tune.uniform(*domain.values)
    if domain.kind == "loguniform":
        return tune.loguniform(*domain.values)
    low, high = domain.values
    return tune.randint(low, high + 1)  # Ray excludes the upper end; we document it included.


def _param_space(space: SearchSpace) -> dict[str, Any]:
    """The space in Ray Tune's terms."""
    return {**space.fixed, **{name: tune_domain(domain) for name, domain in space.domains.items()}}


def _start_ray(address: str | None) -> None:
    import logging

    import ray

    # Ray's start-up notices are not for a CLI user; trials' output stays in their workers' logs.
    options = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(include_dashboard=False, num_cpus=os.cpu_count(), **options)
    except ConnectionError as error:
        raise MnistlabError(f"cannot join the Ray cluster at {address}: {error}") from None


def _progress_callback(on_event: Callable[[str], None]):
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self, on_event: Callable[[str], None]):
            self.on_event = on_event

        # Tune saves its run config (callbacks included) with the experiment; a console
        # cannot be saved, and a resumed sweep attaches a new callback anyway.
        def __getstate__(self):
            return {}

        def __setstate__(self, state):
            self.on_event = lambda message: None

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.on_event(
                f"{trial.trial_id}  epoch {result.get('epoch')}  "
                f"val_accuracy {result.get(METRIC, float('nan')):.4f}"
            )

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.on_event(f"{trial.trial_id}  done")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.on_event(f"{trial.trial_id}  failed")

    return Progress(on_event)


def _run_trial(
    values: dict, *, space: SearchSpace, trials_dir: str, data_dir: str | None, threads: int
):
    """One trial, inside a Ray worker: train a run directory, reporting every epoch to Tune."""
    # This worker's share of the CPU: set before the backend starts its thread pools.
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[name] = str(threads)
    import ray
    from ray import tune

    from mnistlab import pipeline

    config = space.trial_config(values)
    run = runs.Run(Path(trials_dir) / tune.get_context().get_trial_id())
    node_id = ray.get_runtime_context().get_node_id()
    if run.has_metrics():
        return  # Finished before an interruption stopped Tune from recording it.
    resume = config.checkpoint and run.checkpointed_epochs() > 0
    if run.path.exists() and not resume:
        runs.remove_run_dir(run.path)  # What an interrupted attempt left behind.
    reporter = _epoch_reporter(run, node_id, resume)
    hooks = pipeline.Hooks(fit_callbacks=(reporter,))
    pipeline.train_run(config, data_dir=data_dir, out_dir=run.path, hooks=hooks, resume=resume)
    reporter.report_pending()  # The last epoch, once the run is written: a stop now costs nothing.


def _epoch_reporter(run: runs.Run, node_id: str, resumed: bool):
    """A Keras callback that writes the trial's history after every epoch and reports each
    epoch's metrics to Ray Tune.

    A trial ASHA stops ends inside ``tune.report``, so an epoch is reported only once its files
    are saved: at the start of the next epoch (the epoch log and the checkpoint come later in
    Keras's callback order) and, for the last one, by ``report_pending`` after the run is
    written.
    """
    import keras
    from ray import tune

    class ReportEpoch(keras.callbacks.Callback):
        fit_seconds = 0.0
        pending: dict | None = None

        def on_train_begin(self, logs=None):
            # Resumed from a checkpoint: the epochs before it, from the epoch log.
            logged = resumed and run.epoch_log_path.is_file()
            self.history = run.read_epoch_log() if logged else {}

        def on_epoch_begin(self, epoch, logs=None):
            self.report_pending()
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.fit_seconds += time.perf_counter() - self.started
            metrics = {name: float(value) for name, value in (logs or {}).items()}
            for name, value in metrics.items():  # epoch counts from 0, across resumes
                self.history[name] = [*self.history.get(name, [])[:epoch], value]
            run.write_history(self.history)
            self.pending = {
                **metrics,
                "epoch": epoch + 1,
                "fit_seconds": self.fit_seconds,
                "node_id": node_id,
            }

        def report_pending(self):
            if self.pending is not None:
                pending, self.pending = self.pending, None
                tune.report(pending)

    return ReportEpoch()


def _collect(sweep_dir: Path, space: SearchSpace) -> list[TrialOutcome]:
    """Each trial's outcome, from Tune's saved experiment state and the run directories."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(sweep_dir / TUNE_DIR))
    outcomes = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        run = runs.Run(sweep_dir / TRIALS_DIR / trial.trial_id)
        run_dir = run.path
        config = space.trial_config(trial.config)
        outcome = TrialOutcome(
            trial_id=trial.trial_id,
            status="unfinished",
            params={name: trial.config.get(name) for name in space.domains},
            planned_epochs=config.epochs,
            epochs=int(last.get("epoch") or 0),
            val_accuracy=last.get(METRIC),
            fit_seconds=float(last.get("fit_seconds") or 0.0),
            node_id=last.get("node_id"),
        )
        if run.has_metrics():
            metrics = run.read_metrics()
            history = run.read_history()
            outcome.status = "finished"
            outcome.test_accuracy = metrics["test"]["accuracy"]
            outcome.epochs = len(history.get(METRIC, [])) or outcome.epochs
            outcome.val_accuracy = history[METRIC][-1] if history.get(METRIC) else None
        elif trial.status == "ERROR":
            outcome.status = "error"
            outcome.error = _first_line(trial)
        elif trial.status == "TERMINATED":
            outcome.status = "stopped"
            # Kept: its config, history and any checkpoint (marked once; --resume collects again).
            if run.config_path.is_file() and run.stopped() is None:
                run.mark_stopped(outcome.epochs, outcome.planned_epochs, by="the sweep")
        if run_dir.is_dir():
            outcome.run_dir = str(run_dir)
        outcomes.append(outcome)
    return outcomes


def _first_line(trial) -> str:
    """The last line of a failed trial's traceback (the exception), shortened."""
    path = getattr(trial, "error_file", None) or ""
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError:
        return "see the trial's error.txt under tune/"
    return (lines[-1] if lines else "unknown error")[:200]
