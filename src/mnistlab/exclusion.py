"""Training images left out of a run (`train --exclude label_issues.csv`): the list read from a
CSV, recorded in the config by count and hash, and the copy a run keeps of it."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path

from mnistlab import runs
from mnistlab.config import Config
from mnistlab.errors import RunError


def with_exclusion(config: Config, exclude: str | Path) -> Config:
    """``config`` training without the training images listed in the CSV ``exclude`` (e.g. an
    audit's label_issues.csv); the config records the file, the count and a hash of the indices."""
    indices = read_excluded_train_indices(Path(exclude))
    return config.replace(
        exclude=str(Path(exclude).resolve()),
        excluded_count=len(indices),
        excluded_sha256=indices_sha256(indices),
    )


def indices_sha256(indices: Sequence[int]) -> str:
    """A short hash of sorted indices, to tell exclusion lists apart in config.json and compare."""
    text = ",".join(str(index) for index in sorted(indices))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def excluded_train_indices(config: Config, run_dir: Path | None = None) -> list[int]:
    """The training indices a run leaves out: the copy kept in the run directory when there is
    one (the source CSV may have changed since), else the config's file; checked against the
    config's hash."""
    if config.exclude is None:
        return []
    run = runs.Run(run_dir) if run_dir is not None else None
    if run is not None and run.has_excluded():
        indices = run.read_excluded()
    else:
        indices = read_excluded_train_indices(Path(config.exclude))
    if config.excluded_sha256 is not None and indices_sha256(indices) != config.excluded_sha256:
        raise RunError(
            f"the excluded indices from {config.exclude} hash to {indices_sha256(indices)},"
            f" not {config.excluded_sha256} as the config records; the file has changed"
        )
    return list(indices)


def read_excluded_train_indices(path: Path) -> list[int]:
    """The training-set indices listed in a CSV with ``split`` and ``index`` columns (such as an
    audit's label_issues.csv), sorted and without repeats; rows of other splits are ignored."""
    path = Path(path)
    try:
        rows = list(csv.DictReader(path.read_text().splitlines()))
    except FileNotFoundError:
        raise RunError(f"exclusion file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise RunError(f"exclusion file {path} cannot be read ({error})") from None
    if rows and not {"split", "index"} <= set(rows[0]):
        raise RunError(
            f"exclusion file {path} needs 'split' and 'index' columns (like an audit's"
            f" label_issues.csv); received: {', '.join(rows[0])}"
        )
    try:
        indices = {int(row["index"]) for row in rows if row["split"] == "train"}
    except (TypeError, ValueError) as error:
        raise RunError(
            f"exclusion file {path} has an index that is not an integer ({error})"
        ) from None
    if any(index < 0 for index in indices):
        raise RunError(f"exclusion file {path} has a negative index")
    return sorted(indices)
