import json
import os
import stat

import pytest

from mnistlab import runs
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
    runs.write_json(tmp_path / "metrics.json", {"a": 1})
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


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "does not exist"),
    (lambda d: d.mkdir(), "missing"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text("{oops")), "not readable JSON"),
    (lambda d: (d.mkdir(), (d / "config.json").write_text('{"epochs": -1}')), "epochs"),
])
def test_unreadable_run_directories(tmp_path, setup, message):
    run_dir = tmp_path / "run"
    setup(run_dir)
    with pytest.raises(RunError, match=message):
        runs.read_config(run_dir)


def test_damaged_model_file(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(RunError, match="cannot be loaded"):
        runs.load_model(tmp_path)
