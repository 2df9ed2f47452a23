"""Sweeps: the space file's checks (pure), the ranking, and real Ray Tune sweeps: on a
two-node Ray cluster started here, and on the local default with Ctrl-C and --resume."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mnistlab import run_tables, runs, sweep, sweep_results, sweep_space
from mnistlab.config import Config
from mnistlab.errors import ConfigError
from tests.conftest import require
from tests.helpers import assert_one_line_error, drawing, run_cli

# A sweep as small as a real one gets: 1,000 training images, one epoch.
TINY_SPACE = {
    "model": "seed-mlp",
    "epochs": 1,
    "train_limit": 1000,
    "test_limit": 300,
    "top_errors": 2,
    "export_onnx": False,  # each trial would import TensorFlow to export
    "learning_rate": {"loguniform": [0.0005, 0.005]},
    "batch_size": {"choice": [64, 256]},
}


# --- The space file ---------------------------------------------------------------------------


def test_parse_space_splits_fixed_values_from_domains():
    space = sweep_space.parse_space(
        {
            "model": "seed-mlp",
            "epochs": {"randint": [2, 5]},
            "learning_rate": {"loguniform": [0.0003, 0.01]},
            "validation_split": {"uniform": [0.1, 0.2]},
            "batch_size": {"choice": [128, 512]},
        }
    )
    assert space.fixed == {"model": "seed-mlp"}
    assert space.domains["batch_size"] == sweep_space.Domain("choice", (128, 512))
    assert space.domains["epochs"] == sweep_space.Domain("randint", (2, 5))
    assert space.max_epochs == 5  # randint includes its upper end
    config = space.trial_config(
        {"model": "seed-mlp", "epochs": 3, "learning_rate": 0.002, "batch_size": 128}
    )
    assert config == Config(epochs=3, learning_rate=0.002, batch_size=128)


def test_trial_config_starts_from_the_models_own_defaults():
    models = ["seed-mlp", "cnn", "cnn-best"]
    space = sweep_space.parse_space({"model": {"choice": models}, "seed": {"randint": [0, 3]}})
    assert space.max_epochs == max(Config.for_model(m).epochs for m in models) == 40
    assert space.trial_config({"model": "cnn", "seed": 2}) == Config.for_model("cnn", seed=2)


def test_dropout_is_searched_like_any_other_field():
    space = sweep_space.parse_space({"model": "cnn-best", "dropout": {"uniform": [0.2, 0.4]}})
    assert space.domains["dropout"] == sweep_space.Domain("uniform", (0.2, 0.4))
    assert space.trial_config({"model": "cnn-best", "dropout": 0.3}).dropout == 0.3


@pytest.mark.parametrize(
    "values, message",
    [
        ({"epochs": 2, "learning_rte": 0.1}, "unknown field(s) learning_rte"),
        ([1, 2], "expected a JSON object"),
        ({}, "expected a JSON object"),
        ({"learning_rate": {"normal": [0, 1]}}, "learning_rate is not a search domain"),
        ({"learning_rate": {"uniform": [0.1, 0.2], "choice": [1]}}, "is not a search domain"),
        ({"batch_size": {"choice": []}}, "choice needs a non-empty list"),
        ({"learning_rate": {"uniform": [0.2, 0.1]}}, "low < high"),
        ({"learning_rate": {"uniform": [0.1]}}, "[low, high]"),
        ({"learning_rate": {"loguniform": [0, 0.1]}}, "loguniform needs low > 0"),
        ({"epochs": {"randint": [1.5, 4]}}, "two integers"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        (
            {"model": {"choice": ["seed-mlp", "resnet"]}},
            "with model='resnet': unknown model 'resnet'",
        ),
        ({"batch_size": {"randint": [0, 64]}}, "with batch_size=0: batch_size must be"),
        ({"learning_rate": {"uniform": [0.5, 20]}}, "learning_rate must be a number in (0, 10]"),
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
        # Trials are ranked by validation accuracy: a run without a validation split has none.
        ({"validation_split": 0}, "validation_split 0 leaves no validation accuracy"),
        (
            {"validation_split": {"uniform": [0, 0.2]}},
            "with validation_split=0: validation_split 0",
        ),
        (
            {"dropout": {"uniform": [0.2, 1.0]}},
            "with dropout=1.0: dropout must be a number in [0, 1)",
        ),
    ],
)
def test_bad_spaces_are_one_line_config_errors(values, message):
    with pytest.raises(ConfigError) as error:
        sweep_space.parse_space(values)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_randint_includes_its_upper_end_in_ray_terms():
    require("ray")
    domain = sweep.tune_domain(sweep_space.Domain("randint", (2, 4)))
    assert (domain.lower, domain.upper) == (2, 5)  # Ray's upper end is excluded


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"epochs": 1, "lerning_rate": 0.1}', "unknown field(s) lerning_rate"),
        ('{"epochs": {"randint": [3, 1]}}', "randint needs [low, high]"),
        ("{not json", "is not readable JSON"),
    ],
)
def test_cli_reports_a_bad_space_file_in_one_line_before_ray_starts(
    capsys, tmp_path, content, message
):
    space_file = tmp_path / "space.json"
    space_file.write_text(content)
    code, _, err = run_cli(capsys, "sweep", space_file, "--out", tmp_path / "sweep")
    assert code == 1
    assert_one_line_error(err)
    assert message in err
    assert not (tmp_path / "sweep").exists()


def test_cli_needs_a_space_file_or_resume(capsys, tmp_path):
    code, _, err = run_cli(capsys, "sweep")
    assert code == 2
    assert_one_line_error(err)
    code, _, err = run_cli(capsys, "sweep", "--resume", tmp_path / "nothing")
    assert code == 1
    assert_one_line_error(err)


# --- Ranking ----------------------------------------------------------------------------------


def outcome(trial_id, status, val, test=None, epochs=3, planned=3, fit=3.0):
    return sweep_results.TrialOutcome(
        trial_id, status, {"learning_rate": 0.001}, planned, epochs, val, test, fit, "node"
    )


def test_ranking_uses_validation_accuracy_never_test_accuracy():
    outcomes = [
        outcome("a", "finished", val=0.95, test=0.99),
        outcome("b", "finished", val=0.97, test=0.90),
        outcome("c", "stopped", val=0.99, epochs=1, planned=9, fit=2.0),
        outcome("d", "error", val=None),
        outcome("e", "stopped", val=0.80, epochs=3, planned=9, fit=6.0),
    ]
    ranked = sweep_results.rank(outcomes)
    assert [o.trial_id for o in ranked] == ["b", "a", "e", "c", "d"]
    summary = sweep_results.summarize(ranked, wall_seconds=10.0)
    assert summary["best_trial"] == "b" and summary["best_test_accuracy"] == 0.90
    assert summary["finished"] == 2 and summary["stopped"] == 2 and summary["error"] == 1
    assert summary["epochs_skipped_by_early_stopping"] == 8 + 6
    # c: 8 epochs left at 2 s each; e: 6 epochs left at 2 s each.
    assert summary["fit_seconds_saved_by_early_stopping"] == pytest.approx(16 + 12)
    headers, rows = sweep_results.table(ranked, ["learning_rate"])
    assert headers[:4] == ["trial", "status", "trained", "learning_rate"]
    assert rows[0][:3] == ["b", "finished", "3/3"]


def test_sweep_page_links_every_trial_with_a_directory():
    finished = outcome("a", "finished", val=0.9, test=0.91)
    stopped = outcome("b", "stopped", val=0.5, epochs=1, planned=3)
    failed = outcome("c", "error", val=None)
    finished.run_dir, stopped.run_dir = "trials/a", "trials/b"
    ranked = sweep_results.rank([stopped, failed, finished])
    headers, rows = sweep_results.table(ranked, ["learning_rate"])
    page = run_tables.render_sweep(headers, rows, sweep_results.summarize(ranked, wall_seconds=1.0))
    # A finished trial's report; a stopped trial's directory (it has no report); no directory,
    # no link.
    assert page.count("<a href=") == 2
    assert '<a href="trials/a/report.html">' in page and '<a href="trials/b/">' in page


# --- A trial stopped early ----------------------------------------------------------------------


def stopped_trial(path: Path) -> runs.Run:
    """A run directory as the sweep leaves a trial ASHA stopped after 1 of its 2 epochs."""
    run = runs.Run(path)
    path.mkdir()
    run.write_config(Config(epochs=2, train_limit=1000))
    run.write_history({"accuracy": [0.5], "val_accuracy": [0.6]})
    run.mark_stopped(1, 2, by="the sweep")
    return run


@pytest.mark.parametrize(
    "command, missing",
    [
        (["report", "{run}"], "it has no test evaluation"),
        (["compare", "{run}", "{other}"], "it has no test evaluation"),
        (["predict", "--run", "{run}", "{image}"], "it has no trained model"),
        (["evaluate", "{run}"], "it has no trained model"),
    ],
)
def test_commands_say_a_stopped_trial_was_stopped(capsys, tmp_path, command, missing):
    if command[0] == "evaluate":
        require("keras")
    run = stopped_trial(tmp_path / "trial")
    other = stopped_trial(tmp_path / "other")
    image = tmp_path / "digit.png"
    image.write_bytes(drawing("7"))
    args = [arg.format(run=run.path, other=other.path, image=image) for arg in command]
    code, _, err = run_cli(capsys, *args)
    assert code == 1
    assert_one_line_error(err)
    assert f"{run.path} was stopped by the sweep after 1 of 2 epochs: {missing}" in err


def test_a_stopped_trial_trained_to_the_end_is_a_finished_run(tmp_path):
    run = stopped_trial(tmp_path / "trial")
    assert run.stopped() == {
        "status": "stopped",
        "by": "the sweep",
        "epochs": 1,
        "planned_epochs": 2,
    }
    run.write_metrics({"test": {"accuracy": 0.9}})  # e.g. after `mnistlab train --resume`
    assert run.stopped() is None
    assert run.read_metrics()["test"]["accuracy"] == 0.9


# --- Real sweeps ------------------------------------------------------------------------------


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, and not one handed out before: the OS can give two sockets
    opened and closed in a row the same port, and a Ray node given one port twice fails."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def mnistlab(*args, **options) -> subprocess.Popen:
    """The CLI as its own process (Ray and signals need one), nice'd like any training."""
    command = ["nice", "-n", "5", sys.executable, "-m", "mnistlab.cli", *map(str, args)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options
    )


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def cluster_processes(temp_dir: str) -> list:
    """The processes of the cluster we started: those whose command line names its temp dir
    (gcs_server, raylets, monitors), and their children (workers and agents, which rename
    themselves)."""
    import psutil

    roots = []
    for process in psutil.process_iter(["cmdline"]):
        if process.pid != os.getpid() and temp_dir in " ".join(process.info["cmdline"] or []):
            roots.append(process)
    found = set(roots)
    for process in roots:
        try:
            found.update(process.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    return list(found)


def stop_cluster(temp_dir: str) -> None:
    """Stop the nodes we started and nothing else (not `ray stop`, which stops every Ray on
    the machine): SIGTERM, then SIGKILL for whatever is left."""
    import psutil

    processes = cluster_processes(temp_dir)
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=10)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)


@pytest.mark.mnist
@pytest.mark.slow
def test_sweep_on_a_two_node_ray_cluster_runs_trials_on_both_nodes(tmp_path, mnist_dir):
    require("ray")
    ray = Path(sys.executable).parent / "ray"
    # Short: Ray puts Unix sockets under it, and socket paths are limited to 107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="mnistlab-ray-", dir="/tmp")
    port = free_port()
    # A token of our own for the nodes and the driver: no other Ray can join this cluster.
    environment = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }

    def node_flags(resource: str) -> list[str]:
        # Every port this node listens on is a free one, so two nodes (and other users' Ray)
        # on this machine never collide; one CPU each, so two trials must use both nodes.
        return [
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            f'--resources={{"{resource}": 1}}',
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            "--disable-usage-stats",
        ]

    def start(*flags):
        subprocess.run(
            [str(ray), "start", *flags],
            check=True,
            env=environment,
            capture_output=True,
            timeout=120,
        )

    try:
        start(
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            f"--ray-client-server-port={free_port()}",
            *node_flags("head"),
        )
        start(f"--address=127.0.0.1:{port}", *node_flags("second"))
        space_file = tmp_path / "space.json"
        space_file.write_text(json.dumps(TINY_SPACE))
        code, _, err = finish(
            mnistlab(
                "sweep",
                space_file,
                "--trials",
                2,
                "--address",
                f"127.0.0.1:{port}",
                "--out",
                tmp_path / "sweep",
                "--data-dir",
                mnist_dir,
                env=environment,
            )
        )
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not cluster_processes(temp_dir), "a Ray process outlived the test"
    assert code == 0, err
    assert "2 CPUs in 2 node(s)" in err
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert len(results["trials"]) == 2
    assert len({trial["node_id"] for trial in results["trials"]}) == 2
    assert len(results["summary"]["nodes"]) == 2


@pytest.mark.mnist
@pytest.mark.slow
def test_local_sweep_survives_ctrl_c_and_resumes(tmp_path, mnist_dir):
    """The local default: Ray starts here. Ctrl-C after the first finished trial keeps it;
    --resume runs the rest, and the best config trains as is."""
    require("ray")
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(TINY_SPACE))
    sweep_dir = tmp_path / "sweep"
    # One trial at a time, so there is a finished trial and an unfinished one to interrupt.
    process = mnistlab(
        "sweep",
        space_file,
        "--trials",
        3,
        "--max-concurrent",
        1,
        "--out",
        sweep_dir,
        "--data-dir",
        mnist_dir,
    )
    deadline = time.monotonic() + 400
    while not list(sweep_dir.glob("trials/*/report.html")) and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    code, _, err = finish(process)
    if code == 0:
        pytest.skip("the sweep finished before Ctrl-C reached it")  # a very fast machine
    assert code == 130, err
    assert_one_line_error(err)
    assert "mnistlab sweep --resume" in err
    first = list(sweep_dir.glob("trials/*/metrics.json"))
    assert first, "the finished trial was not kept"
    kept = {path: path.stat().st_mtime_ns for path in first}

    code, _, err = finish(mnistlab("sweep", "--resume", sweep_dir))
    assert code == 0, err
    results = json.loads((sweep_dir / "results.json").read_text())
    assert len(results["trials"]) == 3
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items())  # not re-run
    page = (sweep_dir / "sweep.html").read_text()
    assert page.count("<tr>") >= 3
    assert f'href="trials/{first[0].parent.name}/report.html"' in page
    finished = [t for t in results["trials"] if t["status"] == "finished"]
    best = finished[0]
    assert best["val_accuracy"] == max(t["val_accuracy"] for t in finished)
    best_config = Config.from_json_file(sweep_dir / "best_config.json")
    assert best_config == Config.from_json_file(Path(best["run_dir"]) / "config.json")
    assert best_config.learning_rate == best["params"]["learning_rate"]


@pytest.mark.mnist
@pytest.mark.slow
def test_a_stopped_sweep_trial_keeps_its_directory_with_config_and_history(tmp_path, mnist_dir):
    """Two epochs, so ASHA can stop a trial after the first; a learning rate too small to learn
    anything, drawn after a good one, trails it and is stopped. Stopped trials keep their run
    directories, marked stopped, and --resume leaves them as they are."""
    require("ray")
    space = {
        **{k: v for k, v in TINY_SPACE.items() if k not in ("learning_rate", "batch_size")},
        "epochs": 2,
        "checkpoint": True,
        "learning_rate": {"choice": [0.002, 0.000001]},
    }
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(space))
    sweep_dir = tmp_path / "sweep"
    # One trial at a time, and a seed that draws 0.002 first: ASHA has a good trial to compare
    # the others with when they reach epoch 1.
    code, _, err = finish(
        mnistlab(
            "sweep",
            space_file,
            "--trials",
            4,
            "--max-concurrent",
            1,
            "--sample-seed",
            1,
            "--out",
            sweep_dir,
            "--data-dir",
            mnist_dir,
        )
    )
    assert code == 0, err
    results = json.loads((sweep_dir / "results.json").read_text())
    trials = results["trials"]
    by_status = {
        status: [t for t in trials if t["status"] == status] for status in ("finished", "stopped")
    }
    assert by_status["finished"] and by_status["stopped"], [
        (t["trial_id"], t["status"]) for t in trials
    ]
    assert len(by_status["finished"]) + len(by_status["stopped"]) == 4
    for trial in by_status["stopped"]:
        assert trial["run_dir"] == str(sweep_dir.resolve() / "trials" / trial["trial_id"])
        run = runs.Run(trial["run_dir"])
        assert trial["epochs"] == 1 and trial["test_accuracy"] is None
        assert run.read_config().learning_rate == trial["params"]["learning_rate"] == 0.000001
        # The history of the epoch ASHA judged, and the checkpoint saved after it.
        assert run.read_history()["val_accuracy"] == [pytest.approx(trial["val_accuracy"])]
        assert run.checkpointed_epochs() == 1
        assert run.stopped() == {
            "status": "stopped",
            "by": "the sweep",
            "epochs": 1,
            "planned_epochs": 2,
        }
        assert not run.model_path.exists() and not run.has_metrics()
    for trial in by_status["finished"]:
        assert runs.Run(trial["run_dir"]).has_metrics() and trial["epochs"] == 2
    page = (sweep_dir / "sweep.html").read_text()
    for trial in trials:
        target = "report.html" if trial["status"] == "finished" else ""
        assert f'href="trials/{trial["trial_id"]}/{target}"' in page

    # --resume: nothing is left to run, and a stopped trial is neither rerun nor rewritten.
    kept = {
        path: path.stat().st_mtime_ns
        for path in (sweep_dir / "trials").rglob("*")
        if path.is_file()
    }
    code, _, err = finish(mnistlab("sweep", "--resume", sweep_dir))
    assert code == 0, err
    resumed = json.loads((sweep_dir / "results.json").read_text())["trials"]
    assert sorted((t["trial_id"], t["status"], t["epochs"]) for t in resumed) == sorted(
        (t["trial_id"], t["status"], t["epochs"]) for t in trials
    )
    assert {path: path.stat().st_mtime_ns for path in kept} == kept


def test_cli_names_the_extra_when_ray_is_missing(capsys, tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a)
    )
    space_file = tmp_path / "space.json"
    space_file.write_text(json.dumps(TINY_SPACE))
    code, _, err = run_cli(capsys, "sweep", space_file, "--out", tmp_path / "sweep")
    assert code == 1
    assert_one_line_error(err)
    assert 'pip install "mnistlab[sweep]"' in err
    assert not (tmp_path / "sweep").exists()
