"""What the model sees is pinned: any change to the image path shows up here.

Each file under tests/data/image_outputs/ (photos, scans, mouse and canvas drawings with thin,
thick and off-centre strokes, low-resolution scans, fonts, inverted and transparent images, a
few non-digits) is read as ``mnistlab predict`` reads it, and its 28x28 must equal the pinned
one. A change that is meant is accepted on purpose with ``bench/pin_image_outputs.py --accept``,
after ``bench/bench_images.py`` shows it costs no accuracy on any kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mnistlab.errors import ImageError
from mnistlab.images import load_image, normalize_digit

FOLDER = Path(__file__).parent / "data" / "image_outputs"
NAMES = sorted(json.loads((FOLDER / "inputs.json").read_text()))
PINNED = np.load(FOLDER / "expected.npz")


def test_every_kind_of_input_is_pinned():
    kinds = {name.split("-")[0].split("_")[0] for name in NAMES}
    assert {"photo", "scan", "mouse", "lowres", "font", "drawing", "inverted", "nondigit"} <= kinds
    assert set(PINNED.files) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_what_the_model_sees_is_unchanged(name):
    try:
        seen = normalize_digit(load_image((FOLDER / name).read_bytes()))
    except ImageError:
        seen = np.zeros((28, 28), np.uint8)
    expected = PINNED[name]
    # One grey level of rounding is allowed between CPUs' float paths; anything more is a
    # change in what the model sees.
    difference = np.abs(seen.astype(int) - expected.astype(int))
    assert difference.max() <= 1, (
        f"{name}: the 28x28 changed at {np.count_nonzero(difference > 1)} pixels;"
        " if meant, re-pin with bench/pin_image_outputs.py --accept"
    )
