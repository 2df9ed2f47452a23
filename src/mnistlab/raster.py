"""The few ``scipy.ndimage`` operations the image code needs, in NumPy, with the same results
bit for bit: a 3x3 box blur, 8-connected blobs with their bounding boxes, and the Euclidean
distance to the paper.

Importing ``scipy.ndimage`` takes longer than all the rest of reading one image, and
``mnistlab predict`` and ``mnistlab read`` start a fresh process for every call; in a warm
process these are slower than SciPy's C, by a fraction of a millisecond per image.
tests/test_raster.py compares each function with SciPy's, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np


def box_blur3(image: np.ndarray) -> np.ndarray:
    """``ndimage.uniform_filter(image, size=3, mode="nearest")`` for a 2-D float array.

    SciPy filters down the columns, then along the rows, each pass in float64 with a running
    sum (the first window's sum, then each step adds entering - leaving) divided by 3, stored
    in the input's dtype; the same operations in the same order give the same bits.
    """
    image = np.asarray(image)
    down = _running_mean3(image).astype(image.dtype)
    # The second pass runs down the columns of the transpose: slicing whole rows is faster.
    along = _running_mean3(np.ascontiguousarray(down.T)).astype(image.dtype)
    return np.ascontiguousarray(along.T)


def _running_mean3(image: np.ndarray) -> np.ndarray:
    """SciPy's running mean of 3 down the columns, "nearest" (the edge row repeats), float64."""
    sums = np.empty(image.shape, dtype=np.float64)
    f8 = np.float64  # Each operand is widened before the operation, as SciPy's line buffer.
    if image.shape[0] >= 3:
        # Row k of the running sum adds row min(k + 1, last) and drops row max(k - 2, 0).
        np.add(np.add(image[0], image[0], dtype=f8), image[1], out=sums[0], dtype=f8)
        np.subtract(image[2], image[0], out=sums[1], dtype=f8)
        np.subtract(image[3:], image[:-3], out=sums[2:-1], dtype=f8)
        np.subtract(image[-1], image[-3], out=sums[-1], dtype=f8)
    else:
        rows = image[np.clip(np.arange(-1, image.shape[0] + 1), 0, image.shape[0] - 1)]
        rows = rows.astype(f8)
        sums[0] = rows[0] + rows[1] + rows[2]
        sums[1:] = rows[3:] - rows[:-3]
    np.cumsum(sums, axis=0, out=sums)  # Sequential, as SciPy's running sum.
    sums /= 3.0
    return sums


def label8(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """``ndimage.label(mask, structure=np.ones((3, 3)))``: int32 labels 1..count, numbered in
    the order a row-by-row scan meets each blob's first pixel, and the count.

    Works on runs of ink along the rows: runs in neighbouring rows that touch, diagonals
    included, are merged (union-find, vectorised), so most of the cost grows with the runs,
    not the pixels.
    """
    labels, count, _ = label_runs(mask)
    return labels, count


def blob_boxes(mask: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """``label8(mask)`` and each blob's bounding box, as ``ndimage.find_objects`` gives it:
    an int array (count, 4) of top, bottom, left, right, bottom and right exclusive, blob
    ``n`` in row ``n - 1``."""
    labels, count, runs = label_runs(mask)
    return labels, count, run_boxes(count, runs)


def run_boxes(count: int, runs) -> np.ndarray:
    """Each blob's box (count, 4: top, bottom, left, right; bottom and right exclusive) from
    ``label_runs``'s runs."""
    boxes = np.zeros((count, 4), dtype=np.intp)
    if count:
        component, row, start, stop = runs
        boxes[:, 0] = boxes[:, 2] = np.iinfo(np.intp).max
        np.minimum.at(boxes[:, 0], component, row)
        np.maximum.at(boxes[:, 1], component, row + 1)
        np.minimum.at(boxes[:, 2], component, start)
        np.maximum.at(boxes[:, 3], component, stop)
    return boxes


def box_slices(boxes: np.ndarray) -> list[tuple[slice, slice]]:
    """``blob_boxes``'s boxes as ``ndimage.find_objects`` returns them: (rows, columns)."""
    return [(slice(top, bottom), slice(left, right)) for top, bottom, left, right in boxes.tolist()]


def label_runs(mask: np.ndarray):
    """Labels, count, and per run (blob index from 0, row, first column, end column)."""
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    stride = width + 2
    # A column of paper on each side of every row: no run crosses from one row to the next.
    padded = np.zeros((height, stride), dtype=bool)
    padded[:, 1:-1] = mask
    change = np.diff(padded.ravel().view(np.int8))
    starts = np.flatnonzero(change == 1) + 1  # Flat index of each run's first pixel ...
    stops = np.flatnonzero(change == -1) + 1  # ... and one past its last, in raster order.
    labels = np.zeros((height, width), dtype=np.int32)
    if starts.size == 0:
        return labels, 0, None
    # Run a (row r) touches run b (row r + 1) when a.start <= b.stop and b.start <= a.stop
    # once b is moved up a row. Runs are sorted, so those a form one range per b; the padding
    # keeps each range inside row r.
    first = np.searchsorted(stops, starts - stride, side="left")
    last = np.searchsorted(starts, stops - stride, side="right")
    counts = np.maximum(last - first, 0)
    total = int(counts.sum())
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    upper = np.repeat(first, counts) + (np.arange(total) - offsets)
    lower = np.repeat(np.arange(starts.size), counts)
    root = _merge(starts.size, upper, lower)
    # Each blob's root is its first run, so numbering the roots in order numbers the blobs
    # by their first pixel in raster order.
    is_root = root == np.arange(starts.size)
    component = (np.cumsum(is_root, dtype=np.int32) - 1)[root]
    labels[mask] = np.repeat(component + 1, stops - starts)
    rows = starts // stride
    runs = (component, rows, starts - rows * stride - 1, stops - rows * stride - 1)
    return labels, int(np.count_nonzero(is_root)), runs


def _merge(size: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Union-find over ``size`` nodes joined by the edges (first, second): each node's root,
    the smallest node of its set. Each round hooks every root that has an edge to a smaller
    root onto the smallest such (parents stay smaller than their children, so no cycles), then
    points every node at its root; ink's runs need a few rounds."""
    parent = np.arange(size)
    while first.size:
        while True:  # Path compression: every node points at its root.
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        a, b = parent[first], parent[second]
        apart = a != b
        if not apart.any():
            break
        first, second, a, b = first[apart], second[apart], a[apart], b[apart]
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))
    return parent


def distance_to_paper(mask: np.ndarray, limit: float | None = None) -> np.ndarray:
    """``ndimage.distance_transform_edt(mask)``: float64 Euclidean distance of each True
    pixel to the nearest False one (0 on False pixels). The mask must hold a False pixel in
    every row and column (pad it by one).

    Exact, as SciPy's is: the square root of the smallest integer dy^2 + dx^2. Its cost grows
    with the widest stroke, so it suits strokes, not large solid areas. With ``limit``, only
    distances under it are exact, and the others are at least ``limit``: thinning a stroke by
    a few pixels needs no more, and costs a few steps rather than the widest stroke's.
    """
    mask = np.asarray(mask, dtype=bool)
    if limit is None:
        vertical = _distance_along_columns(mask)
        # The nearest paper pixel lies at most min(vertical, horizontal) columns away.
        reach = int(np.minimum(vertical, _distance_along_columns(mask.T).T).max(initial=0))
    else:
        # Paper nearer than ``limit`` lies fewer than ``reach`` rows and columns away; a
        # vertical distance capped at ``reach`` keeps every larger one at least ``limit``.
        reach = max(1, math.ceil(limit))
        vertical = _distance_along_columns_capped(mask, reach)
    vertical_squared = vertical * vertical
    squared = vertical_squared.copy()
    for step in range(1, reach + 1):  # Paper via the column ``step`` to the right, then left.
        right, left = squared[:, :-step], squared[:, step:]
        np.minimum(right, vertical_squared[:, step:] + step * step, out=right)
        np.minimum(left, vertical_squared[:, :-step] + step * step, out=left)
    return np.sqrt(squared.astype(np.float64))


def _distance_along_columns_capped(mask: np.ndarray, cap: int) -> np.ndarray:
    """Per pixel, the distance to the nearest False pixel in its column, or ``cap`` if that
    is farther."""
    distance = np.where(mask, cap, 0).astype(np.int32)
    for step in range(1, cap):
        np.minimum(distance[step:], np.where(mask[:-step], cap, step), out=distance[step:])
        np.minimum(distance[:-step], np.where(mask[step:], cap, step), out=distance[:-step])
    return distance


def _distance_along_columns(mask: np.ndarray) -> np.ndarray:
    """Per pixel, the distance to the nearest False pixel in its column."""
    height = mask.shape[0]
    index = np.arange(height, dtype=np.intp)[:, None]
    above = np.maximum.accumulate(np.where(mask, -height, index), axis=0)
    below = np.minimum.accumulate(np.where(mask, 2 * height, index)[::-1], axis=0)[::-1]
    return np.minimum(index - above, below - index)
