"""Atomic file writes: write a temporary file beside the target, then rename it into place.

A reader never sees a half-written file, and a failure (or Ctrl-C) leaves no partial file.
Every file mnistlab writes goes through here: JSON, text, CSV, PNG and NumPy's .npy.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mnistlab.errors import RunError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(handle)
    try:
        yield Path(temp)
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions.
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, content: bytes) -> None:
    with atomic_path(path) as temp:
        temp.write_bytes(content)


def write_json(path: Path, content: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(content, indent=2) + "\n").encode())


def write_text(path: Path, content: str) -> None:
    atomic_write_bytes(Path(path), content.encode())


def write_png(path: Path, png: bytes) -> None:
    atomic_write_bytes(Path(path), png)


def write_csv(path: Path, headers: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    atomic_write_bytes(Path(path), buffer.getvalue().encode())


def write_npy(path: Path, array) -> None:
    import numpy as np

    with atomic_path(Path(path)) as temp:
        np.save(temp, array, allow_pickle=False)


def read_npy(path: Path):
    import numpy as np

    try:
        return np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as error:
        raise RunError(f"{path} cannot be read ({error})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
