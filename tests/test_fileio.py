"""Atomic writes: the target appears whole or not at all, and no temporary file is left behind."""

from __future__ import annotations

import os
import stat

import pytest

from mnistlab.fileio import atomic_path, atomic_write_bytes


def test_atomic_write_creates_parents_and_leaves_only_the_target(tmp_path):
    target = tmp_path / "a" / "b" / "file.gz"
    atomic_write_bytes(target, b"content")
    assert target.read_bytes() == b"content"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.gz"]


def test_atomic_write_replaces_existing_file(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_temporary_path_is_hidden_beside_target_with_same_suffix(tmp_path):
    target = tmp_path / "train-images-idx3-ubyte.gz"
    with atomic_path(target) as temp:
        assert temp.parent == tmp_path
        assert temp.name.startswith(".") and temp.suffix == ".gz"
        assert temp != target
        assert not target.exists()  # Nothing visible under the final name until the end.
        temp.write_bytes(b"x")
    assert target.read_bytes() == b"x"
    assert not temp.exists()


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "file", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "file").stat().st_mode) == 0o644


@pytest.mark.parametrize("exception", [RuntimeError, KeyboardInterrupt])
def test_failure_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, exception):
    target = tmp_path / "file.gz"
    target.write_bytes(b"old")
    with pytest.raises(exception):
        with atomic_path(target) as temp:
            temp.write_bytes(b"half-written")
            raise exception()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.gz"]


def test_failure_without_old_file_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "file"
    with pytest.raises(OSError):
        with atomic_path(target) as temp:
            temp.write_bytes(b"part")
            raise OSError("disk full")
    assert list((tmp_path / "sub").iterdir()) == []
