"""raster.py gives scipy.ndimage's results bit for bit, and the commands that read images in a
fresh process (predict, read) do not import scipy at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from mnistlab import raster

EIGHT = np.ones((3, 3), dtype=bool)
IMAGE_OUTPUTS = Path(__file__).parent / "data" / "image_outputs"
SHAPES = [(1, 1), (1, 7), (7, 1), (2, 2), (2, 9), (3, 3), (3, 40), (17, 23), (64, 48), (150, 211)]


def masks(rng: np.random.Generator, shape: tuple[int, int]) -> list[np.ndarray]:
    """Sparse and dense noise, smooth blobs (ink-like), and the edge cases."""
    return [
        rng.random(shape) < 0.05,
        rng.random(shape) < 0.5,
        rng.random(shape) < 0.95,
        ndimage.uniform_filter(rng.random(shape), 5) > 0.55,
        np.zeros(shape, dtype=bool),
        np.ones(shape, dtype=bool),
        np.indices(shape).sum(axis=0) % 2 == 0,  # a checkerboard: joined only diagonally
    ]


def rings(side: int) -> np.ndarray:
    """Nested rings, each joined to the next: one blob whose runs meet far from where a
    row-by-row scan numbers them (many merges)."""
    mask = np.zeros((side, side), dtype=bool)
    top, left, bottom, right = 0, 0, side - 1, side - 1
    while top <= bottom and left <= right:
        mask[top, left : right + 1] = True
        mask[top : bottom + 1, right] = True
        if top + 2 <= bottom:
            mask[bottom, left : right + 1] = True
        if left + 2 <= right:
            mask[top + 2 : bottom + 1, left] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
        if top <= bottom:
            mask[top - 1, left] = True  # the link into the next, inner turn
    return mask


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_box_blur_is_scipys_uniform_filter_bit_for_bit(shape, dtype):
    rng = np.random.default_rng(list(shape))
    for scale in (1.0, 1e-3, 255.0):
        image = (rng.random(shape) * scale).astype(dtype)
        expected = ndimage.uniform_filter(image, size=3, mode="nearest")
        blurred = raster.box_blur3(image)
        assert blurred.dtype == expected.dtype
        np.testing.assert_array_equal(blurred, expected)


@pytest.mark.parametrize("shape", SHAPES)
def test_blobs_are_scipys_labels_and_boxes(shape):
    rng = np.random.default_rng(list(shape))
    for mask in [*masks(rng, shape), rings(max(shape))]:
        expected, count = ndimage.label(mask, structure=EIGHT)
        labels, found = raster.label8(mask)
        assert found == count
        assert labels.dtype == expected.dtype
        np.testing.assert_array_equal(labels, expected)
        labels, found, boxes = raster.blob_boxes(mask)
        np.testing.assert_array_equal(labels, expected)
        slices = raster.box_slices(boxes)
        assert slices == ndimage.find_objects(expected)
        assert all(type(s.start) is int for box in slices for s in box)  # JSON-ready


@pytest.mark.parametrize("shape", SHAPES)
def test_distance_to_paper_is_scipys_exact_distance(shape):
    rng = np.random.default_rng(list(shape))
    for mask in [*masks(rng, shape), rings(max(shape))]:
        mask = np.pad(mask, 1)  # paper in every row and column, as framing.py pads it
        expected = ndimage.distance_transform_edt(mask)
        distance = raster.distance_to_paper(mask)
        assert distance.dtype == expected.dtype
        np.testing.assert_array_equal(distance, expected)


@pytest.mark.parametrize("limit", [0.5, 1.0, 2.3, 4.0])
def test_a_limited_distance_is_exact_below_its_limit(limit):
    rng = np.random.default_rng(7)
    beyond = 0
    for mask in [*masks(rng, (60, 90)), rings(60)]:
        mask = np.pad(mask, 1)
        expected = ndimage.distance_transform_edt(mask)
        distance = raster.distance_to_paper(mask, limit=limit)
        near = expected < limit
        np.testing.assert_array_equal(distance[near], expected[near])
        assert (distance[~near] >= limit).all()
        beyond += np.count_nonzero(expected > limit + 1)
    assert beyond > 100  # the limit cut the work short on many pixels


def test_predict_and_read_in_a_fresh_process_import_no_scipy():
    # Every pinned kind of input (broad brushes, photos with specks, a sheet on a table, ...)
    # goes through predict, and one image through read; scipy's import alone costs more than
    # reading an image, so any scipy import on these paths is a regression.
    images = sorted(
        str(path) for path in IMAGE_OUTPUTS.iterdir() if path.suffix not in {".json", ".npz"}
    )
    script = (
        "import sys\n"
        "from mnistlab.cli import main\n"
        "for args in (['predict', *sys.argv[1:]], ['read', sys.argv[1]]):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exit_:\n"
        "        assert not exit_.code, exit_.code\n"
        "print('SCIPY', *sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *images], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(images) + 2  # each image answered, then read
    assert result.stdout.rsplit("SCIPY", 1)[1].split() == []
