import json
import os
import stat

import pytest

from mnistlab import audits, fileio, runs
from mnistlab.errors import RunError
from mnistlab.fileio import atomic_path


def test_failed_write_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temp:
            temp.write_text("half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_written_files_are_complete_and_readable_by_others(tmp_path):
    fileio.write_json(tmp_path / "metrics.json", {"a": 1})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"a": 1}
    mode = stat.S_IMODE(os.stat(tmp_path / "metrics.json").st_mode)
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_prepare_run_dir_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "old.txt").write_text("keep me")
    with pytest.raises(RunError, match="not empty"):
        runs.prepare_run_dir(tmp_path)
    assert runs.prepare_run_dir(tmp_path / "new").is_dir()


def test_new_run_dir_never_reuses_a_name(tmp_path):
    first = runs.new_run_dir(tmp_path, "seed-mlp")
    first.mkdir()
    second = runs.new_run_dir(tmp_path, "seed-mlp")
    assert second != first and second.name.endswith("seed-mlp-2")


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "missing"),
        (lambda d: (d.mkdir(), (d / "config.json").write_text("{oops")), "not readable JSON"),
        (lambda d: (d.mkdir(), (d / "config.json").write_text('{"epochs": -1}')), "epochs"),
    ],
)
def test_unreadable_run_directories(tmp_path, setup, message):
    run_dir = tmp_path / "run"
    setup(run_dir)
    with pytest.raises(RunError, match=message):
        runs.read_config(run_dir)


def test_damaged_model_file(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(RunError, match="cannot be loaded"):
        runs.load_model(tmp_path)


def test_a_run_owns_its_files_and_reads_back_what_it_wrote(tmp_path):
    from mnistlab.config import Config

    run = runs.Run(tmp_path / "run")
    assert run.config_path == tmp_path / "run" / "config.json"
    assert run.onnx_path.name == "model.onnx" and run.model_path.name == "model.keras"
    assert run.figure_path("reliability").name == "reliability.png"
    config = Config(epochs=3, seed=7)
    run.write_config(config)
    run.write_history({"loss": [0.5, 0.25]})
    run.write_metrics({"test": {"accuracy": 0.9}})
    run.write_figures({"samples": b"\x89PNG fake"})
    assert run.read_config() == config
    assert run.read_config_values() == config.to_dict()
    assert run.read_history() == {"loss": [0.5, 0.25]}
    assert run.has_metrics() and run.read_metrics() == {"test": {"accuracy": 0.9}}
    assert run.figure_path("samples").read_bytes() == b"\x89PNG fake"
    with pytest.raises(RunError, match="mnistlab evaluate"):
        run.read_figures()  # the others are missing
    assert run.ensemble_members() is None and run.model_label(config) == "seed-mlp"
    assert run.checkpointed_epochs() == 0 and not run.has_onnx()
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]


def test_an_audit_directory_owns_its_files(tmp_path):
    audit = audits.Audit(tmp_path / "audit")
    assert audit.summary_path.name == "summary.json" and not audit.is_finished()
    audit.write_summary({"dataset": "mnist"})
    assert audit.is_finished() and audits.find_audit("mnist", tmp_path) == audit.path
    fileio.write_npy(audit.fold_path(1), [1.0])
    assert audit.finished_folds(3) == [1]
    audit.remove_folds(3)
    assert audit.finished_folds(3) == []
    audit.label_issues_path.write_text("rank,split,index\n1,test,4\n2,train,9\n")
    assert audit.read_flagged_test_indices() == {4}


class Failure(Exception):
    pass


def test_new_or_resumed_removes_a_failed_new_directory(tmp_path):
    with pytest.raises(Failure):
        with runs.new_or_resumed(tmp_path / "new") as path:
            (path / "config.json").write_text("{}")
            raise Failure()
    assert not (tmp_path / "new").exists()
    with runs.new_or_resumed(tmp_path / "done") as path:
        (path / "config.json").write_text("{}")
    assert (tmp_path / "done" / "config.json").is_file()
    with pytest.raises(RunError, match="not empty"):
        with runs.new_or_resumed(tmp_path / "done"):
            pass
    assert (tmp_path / "done" / "config.json").is_file()


def test_new_or_resumed_keeps_what_can_be_resumed_and_every_resumed_directory(tmp_path):
    kept = []
    with pytest.raises(Failure):
        with runs.new_or_resumed(
            tmp_path / "run", resumable=lambda: True, on_kept=kept.append
        ) as path:
            raise Failure()
    assert path.is_dir() and len(kept) == 1 and isinstance(kept[0], Failure)

    with pytest.raises(Failure):
        with runs.new_or_resumed(path, resume=True, on_kept=kept.append):
            raise Failure()
    assert path.is_dir() and len(kept) == 1  # nothing resumable was found: no note
