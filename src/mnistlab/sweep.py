"""Hyper-parameter sweeps on Ray Tune, where every trial is a run directory.

A space file is a JSON object of ``Config`` fields. Each value is fixed, or a search domain
written as a one-key object: ``{"choice": [...]}``, ``{"uniform": [low, high]}``,
``{"loguniform": [low, high]}`` or ``{"randint": [low, high]}`` (both ends included).

Ray Tune samples the trials and runs them in parallel, here or on a cluster; ASHA stops the
trials whose validation accuracy trails the others' at the same epoch. Each trial calls
``pipeline.train_run``, so a finished trial is a normal run directory, scored once on the test
set; the test score is shown, never used to choose. A trial stopped early keeps its directory:
its config, its history up to the epoch it reached (written after every epoch), its checkpoint
if it had one, and a status saying it was stopped; it has no model and no test evaluation.

    SWEEP_DIR/
        sweep.json          the space and settings, read back by --resume
        tune/               Ray Tune's experiment state (what --resume restores)
        trials/<trial-id>/  one run directory per trial, finished or stopped early
        results.json  sweep.html  best_config.json

Parsing and ranking are pure functions. Ray is imported only inside the functions that run a
sweep, so ``import mnistlab`` never needs it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistlab import fileio, run_tables, runs
from mnistlab.config import Config
from mnistlab.errors import ConfigError, MnistlabError, RunError

DOMAIN_KINDS = ("choice", "uniform", "loguniform", "randint")
# The metric ASHA and the ranking use: accuracy on the held-out validation split.
METRIC = "val_accuracy"
SETTINGS_FILE = "sweep.json"
TUNE_DIR = "tune"
TRIALS_DIR = "trials"
RESULTS_FILE = "results.json"
HTML_FILE = "sweep.html"
BEST_CONFIG_FILE = "best_config.json"
# ASHA keeps the best third of the trials at each rung (epochs 1, 3, 9, ...).
REDUCTION_FACTOR = 3
GRACE_EPOCHS = 1


# ---------------------------------------------------------------------------------------------
# The search space (pure)


@dataclass(frozen=True)
class Domain:
    """One searched field: ``choice`` holds the options, the others ``(low, high)``."""

    kind: str
    values: tuple  # Each must make a valid Config: every option, or both ends of a range.

    def to_tune(self):
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.values))
        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        low, high = self.values
        return tune.randint(low, high + 1)  # Ray excludes the upper end; we document it included.

    def describe(self) -> str:
        return f"{self.kind} {list(self.values)}"


@dataclass(frozen=True)
class SearchSpace:
    """Fixed Config values and searched domains, checked against Config."""

    fixed: dict[str, Any]
    domains: dict[str, Domain]
    max_epochs: int  # The longest a trial can train: ASHA's horizon.

    def param_space(self) -> dict[str, Any]:
        """The space in Ray Tune's terms."""
        return {**self.fixed, **{name: domain.to_tune() for name, domain in self.domains.items()}}

    def trial_config(self, values: dict[str, Any]) -> Config:
        """A trial's Config: the model's own defaults, then the space's values."""
        values = dict(values)
        model = values.pop("model", "seed-mlp")
        config = Config.for_model(model, **values)
        if not config.validation_split:
            raise ConfigError(
                "validation_split 0 leaves no validation accuracy to rank trials by; a sweep"
                " needs a split above 0"
            )
        return config


def parse_space(values: Any, source: str = "space file") -> SearchSpace:
    """Check a space file's JSON and split it into fixed values and search domains.

    Every fixed value, every option of a choice and both ends of a range must make a valid
    Config; otherwise a one-line ConfigError names the field and what was received.
    """
    if not isinstance(values, dict) or not values:
        raise ConfigError(
            f"{source}: expected a JSON object of Config fields; received: {json.dumps(values)[:80]}"
        )
    known = [f.name for f in dataclasses.fields(Config)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"{source}: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(known)}"
        )
    fixed, domains = {}, {}
    for name, value in values.items():
        if isinstance(value, dict):
            domains[name] = _parse_domain(name, value, source)
        else:
            fixed[name] = value
    space = SearchSpace(fixed, domains, max_epochs=0)
    # Config checks each field on its own: the fixed values, then each domain's candidates.
    probes = [(None, None)] + [(name, c) for name, d in domains.items() for c in d.values]
    for name, candidate in probes:
        values = dict(fixed) if name is None else {**fixed, name: candidate}
        try:
            space.trial_config(values)
        except (ConfigError, TypeError) as error:
            where = "" if name is None else f" with {name}={candidate!r}"
            raise ConfigError(f"{source}{where}: {error}") from None
    if "epochs" in domains:
        max_epochs = max(domains["epochs"].values)
    else:  # Fixed, or each model's own default.
        models = domains["model"].values if "model" in domains else [fixed.get("model", "seed-mlp")]
        max_epochs = max(space.trial_config({**fixed, "model": m}).epochs for m in models)
    return dataclasses.replace(space, max_epochs=max_epochs)


def read_space(path: str | Path) -> tuple[dict, SearchSpace]:
    """The space file's JSON and its parsed SearchSpace."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"space file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"space file {path} is not readable JSON: {error}") from None
    return values, parse_space(values, source=f"space file {path}")


def _parse_domain(name: str, value: dict, source: str) -> Domain:
    expected = ", ".join(f'{{"{kind}": [...]}}' for kind in DOMAIN_KINDS)
    if len(value) != 1 or next(iter(value)) not in DOMAIN_KINDS:
        raise ConfigError(
            f"{source}: {name} is not a search domain; expected one of {expected};"
            f" received: {json.dumps(value)}"
        )
    kind, arguments = next(iter(value.items()))
    if kind == "choice":
        if not isinstance(arguments, list) or not arguments:
            raise ConfigError(
                f"{source}: {name}: choice needs a non-empty list; received: {json.dumps(arguments)}"
            )
        return Domain(kind, tuple(arguments))
    numeric = (int,) if kind == "randint" else (int, float)
    if (
        not isinstance(arguments, list)
        or len(arguments) != 2
        or not all(isinstance(v, numeric) and not isinstance(v, bool) for v in arguments)
        or not arguments[0] < arguments[1]
    ):
        kind_of = "integers" if kind == "randint" else "numbers"
        raise ConfigError(
            f"{source}: {name}: {kind} needs [low, high], two {kind_of} with low < high;"
            f" received: {json.dumps(arguments)}"
        )
    if kind == "loguniform" and arguments[0] <= 0:
        raise ConfigError(
            f"{source}: {name}: loguniform needs low > 0; received: {json.dumps(arguments)}"
        )
    return Domain(kind, tuple(arguments))


# ---------------------------------------------------------------------------------------------
# Results (pure)


@dataclass
class TrialOutcome:
    """What one trial did, as the ranked table shows it."""

    trial_id: str
    status: str  # "finished", "stopped" (by ASHA), "error", "unfinished" (interrupted)
    params: dict[str, Any]  # the searched fields' values
    planned_epochs: int
    epochs: int = 0  # epochs reported to Tune
    val_accuracy: float | None = None  # at the last reported epoch
    test_accuracy: float | None = None  # finished trials only
    fit_seconds: float = 0.0  # time spent in epochs, summed
    node_id: str | None = None
    run_dir: str | None = None
    error: str | None = None

    @property
    def skipped_seconds(self) -> float:
        """Training time early stopping saved: the epochs left, at this trial's pace."""
        if self.status != "stopped" or not self.epochs:
            return 0.0
        return (self.planned_epochs - self.epochs) * self.fit_seconds / self.epochs


STATUS_ORDER = {"finished": 0, "stopped": 1, "unfinished": 2, "error": 3}


def rank(outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
    """Finished trials by validation accuracy, then stopped ones (longest-lived first), then
    the rest; ties in trial order. The test accuracy plays no part."""

    def key(outcome: TrialOutcome):
        accuracy = outcome.val_accuracy if outcome.val_accuracy is not None else -math.inf
        epochs = 0 if outcome.status == "finished" else -outcome.epochs
        return (STATUS_ORDER[outcome.status], epochs, -accuracy, outcome.trial_id)

    return sorted(outcomes, key=key)


def summarize(outcomes: list[TrialOutcome], wall_seconds: float | None) -> dict[str, Any]:
    """Counts and times over all trials; ``outcomes`` ranked, best first."""
    best = outcomes[0] if outcomes and outcomes[0].status == "finished" else None
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUS_ORDER}
    fit_seconds = sum(o.fit_seconds for o in outcomes)
    skipped = sum(o.skipped_seconds for o in outcomes)
    return {
        "trials": len(outcomes),
        **counts,
        "best_trial": best.trial_id if best else None,
        "best_val_accuracy": best.val_accuracy if best else None,
        "best_test_accuracy": best.test_accuracy if best else None,
        "epochs_trained": sum(o.epochs for o in outcomes),
        "epochs_skipped_by_early_stopping": sum(
            o.planned_epochs - o.epochs for o in outcomes if o.status == "stopped"
        ),
        "fit_seconds": fit_seconds,
        "fit_seconds_saved_by_early_stopping": skipped,
        "wall_seconds": wall_seconds,
        "nodes": sorted({o.node_id for o in outcomes if o.node_id}),
    }


def table(outcomes: list[TrialOutcome], searched: list[str]) -> tuple[list[str], list[list]]:
    """Headers and rows of the ranked table (terminal and sweep.html)."""
    headers = ["trial", "status", "trained", *searched]
    headers += ["val acc", "test acc", "fit s", "node", "run directory"]
    rows = []
    for outcome in outcomes:
        status = outcome.status
        if status == "error" and outcome.error:
            status = f"error: {outcome.error}"
        rows.append(
            [outcome.trial_id, status, f"{outcome.epochs}/{outcome.planned_epochs}",
             *(outcome.params.get(name) for name in searched),
             outcome.val_accuracy, outcome.test_accuracy, outcome.fit_seconds,
             (outcome.node_id or "")[:8], outcome.run_dir or ""]
        )
    return headers, rows


# ---------------------------------------------------------------------------------------------
# Running a sweep (Ray)


@dataclass
class SweepSettings:
    """Everything a sweep needs besides Ray; saved as sweep.json so --resume can rebuild it."""

    space: dict[str, Any]
    trials: int = 8
    max_concurrent: int | None = None  # None: one trial per CPU of the cluster
    data_dir: str | None = None
    sample_seed: int | None = None  # Seeds the drawing of the trials' values; None: fresh.

    def __post_init__(self) -> None:
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ConfigError(f"trials must be an integer >= 1; received: {self.trials!r}")
        if self.max_concurrent is not None and (
            isinstance(self.max_concurrent, bool)
            or not isinstance(self.max_concurrent, int)
            or self.max_concurrent < 1
        ):
            raise ConfigError(
                f"max_concurrent must be an integer >= 1; received: {self.max_concurrent!r}"
            )
        if self.sample_seed is not None and (
            isinstance(self.sample_seed, bool)
            or not isinstance(self.sample_seed, int)
            or self.sample_seed < 0
        ):
            raise ConfigError(
                f"sample_seed must be an integer >= 0; received: {self.sample_seed!r}"
            )


@dataclass
class SweepResult:
    sweep_dir: Path
    outcomes: list[TrialOutcome]  # ranked, best first
    summary: dict[str, Any]
    searched: list[str]
    interrupted: bool = False
    best_config: Config | None = field(default=None)


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
                param_space=space.param_space(),
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
    _write_results(result)
    return result


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


def _run_trial(values: dict, *, space: SearchSpace, trials_dir: str, data_dir: str | None, threads: int):
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
                **metrics, "epoch": epoch + 1, "fit_seconds": self.fit_seconds, "node_id": node_id
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


def _write_results(result: SweepResult) -> None:
    headers, rows = table(result.outcomes, result.searched)
    fileio.write_json(
        result.sweep_dir / RESULTS_FILE,
        {
            "metric": METRIC,
            "summary": result.summary,
            "trials": [dataclasses.asdict(o) for o in result.outcomes],
        },
    )
    # The page links each run by a path relative to itself, so the sweep directory can move.
    relative = [[*row[:-1], os.path.relpath(row[-1], result.sweep_dir) if row[-1] else ""] for row in rows]
    fileio.write_text(result.sweep_dir / HTML_FILE, run_tables.render_sweep(headers, relative, result.summary))
    best = result.outcomes[0] if result.outcomes else None
    if best is not None and best.status == "finished":
        result.best_config = runs.read_config(Path(best.run_dir))
        fileio.write_json(result.sweep_dir / BEST_CONFIG_FILE, result.best_config.to_dict())
