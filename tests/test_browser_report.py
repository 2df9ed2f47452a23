"""A run's report.html as a person opens it: the shipped model's run, evaluated again on real
MNIST, in Chromium (the `browser` fixture: tests/conftest.py) at desktop and phone widths.

Set MNISTLAB_SCREENSHOT_DIR=docs to refresh the docs' screenshot of a report (docs/report.png).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mnistlab
from tests.helpers import save_screenshot

SHIPPED = Path(mnistlab.__file__).parent / "pretrained"


@pytest.fixture(scope="module")
def report(tmp_path_factory, mnist_dir):
    run = tmp_path_factory.mktemp("report") / "cnn-best"
    shutil.copytree(SHIPPED, run)
    for command in (["evaluate", run, "--data-dir", mnist_dir], ["report", run]):
        mnistlab_cli = [sys.executable, "-c", "from mnistlab.cli import main; main()"]
        done = subprocess.run([*mnistlab_cli, *map(str, command)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return run


@pytest.mark.parametrize("width, height", [(1280, 900), (375, 667)])
def test_the_report_fits_the_screen_and_shows_every_figure(browser, report, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto((report / "report.html").as_uri())
    # Nothing wider than the screen: no sideways scrolling on a phone.
    assert page.evaluate("document.scrollingElement.scrollWidth") <= width
    # Every figure is embedded and decodes (the report opens offline, alone).
    sizes = page.evaluate("[...document.images].map((image) => image.naturalWidth)")
    assert len(sizes) >= 5 and all(size > 0 for size in sizes)
    # The headline is the run's own test accuracy.
    accuracy = json.loads((report / "metrics.json").read_text())["test"]["accuracy"]
    assert f"{accuracy:.4f}" in page.locator("body").inner_text()
    if width == 1280:
        save_screenshot(page, "report.png")
    page.close()
