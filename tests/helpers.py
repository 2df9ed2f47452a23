"""Helpers several test modules share: the command line driven in-process."""

from __future__ import annotations

import pytest

from mnistlab import cli


def run_cli(capsys, *args) -> tuple[int | str | None, str, str]:
    """``mnistlab ARGS`` through ``cli.main``: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(arg) for arg in args])
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_one_line_error(err: str) -> None:
    """Progress lines may come first; the error itself is one line, and the last."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], err
    assert "Traceback" not in err
