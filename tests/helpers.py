"""Helpers several test modules share: the command line driven in-process, images drawn for
the tests, digit measures and `mnistlab serve` started as a user starts it."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from prometheus_client.parser import text_string_to_metric_families

from mnistlab import cli

# cnn-best as first shipped: saved with three Keras augmentation layers inside it.
AUGMENTED_MODEL = Path(__file__).parent / "data" / "cnn-best-with-augmentation-layers.keras"


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


# --- Images ----------------------------------------------------------------------------------


def drawing(digit: str, side: int = 280, offset=(0, 0)) -> bytes:
    """A PNG of a digit drawn as a canvas app draws it: round white strokes on black."""
    image = Image.new("L", (side, side), 0)
    pen = ImageDraw.Draw(image)
    scale = side / 280
    shapes = {
        "1": [[(150, 50), (150, 230)]],
        "7": [[(80, 60), (200, 60), (120, 230)]],
        "0": [
            [
                (140, 50),
                (190, 80),
                (205, 140),
                (190, 200),
                (140, 230),
                (90, 200),
                (75, 140),
                (90, 80),
                (140, 50),
            ]
        ],
    }
    for stroke in shapes[digit]:
        points = [((x + offset[0]) * scale, (y + offset[1]) * scale) for x, y in stroke]
        pen.line(points, fill=255, width=int(20 * scale), joint="curve")
        for x, y in points:
            radius = 10 * scale
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


BLANK = png(Image.new("L", (100, 100), 255))


def bomb_png(width=100_000, height=100_000) -> bytes:
    """A valid PNG header claiming 10 gigapixels, with a tiny (invalid) body."""

    def chunk(kind, data):
        return (
            len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
        )

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


def correlation(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.corrcoef(first.astype(float).ravel(), second.astype(float).ravel())[0, 1])


def stroke_width(digit: np.ndarray) -> float:
    """Mean width in px of the half-bright ink: twice its area over its boundary length.

    On MNIST's test digits this is 2.05 to 4.1 px for 90% of them (median 2.66).
    """
    mask = np.pad(digit >= 128, 1)
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return 2 * mask.sum() / (mask.sum() - inner.sum())


# --- The server ------------------------------------------------------------------------------


def assert_error(response, status, fragment):
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and "\n" not in body["error"], body
    assert fragment in body["error"], body["error"]


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """`mnistlab serve --port 0 ...` as a user starts it; returns the process and its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from mnistlab.cli import main; main()",
            "serve",
            "--port",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if "http://" not in line:
        process.kill()
        raise AssertionError(f"no URL printed: {line!r} {process.stderr.read()}")
    url = line.split()[2]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "api/ready", timeout=5):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not become ready")


def stop_server(process: subprocess.Popen) -> tuple[int, str, str]:
    """Ctrl-C the server (unless it has stopped already); its exit code and output."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return process.returncode, out, err


def save_screenshot(page, name: str) -> None:
    """Keep a screenshot for the docs when MNISTLAB_SCREENSHOT_DIR is set (e.g. to docs)."""
    folder = os.environ.get("MNISTLAB_SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / name))


def samples(text: str, name: str) -> dict[tuple, float]:
    """The samples called ``name`` in a /metrics answer, by their labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found
