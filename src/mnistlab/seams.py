"""Cut paths between touching or overlapping digits: top-to-bottom seams that cross least ink.

A seam is one column per row: the ink left of it is one part, the rest the other. Within a
row it cuts the pair of pixels on either side of its column; between two rows it may move any
distance sideways, cutting the strokes that run down across the columns it passes (each pair
of inked pixels one above the other). A move through the paper costs nothing, so a seam
follows the gap between two slanted digits that meet at one point.

Ink cost alone cannot tell the point where two digits meet from a thin place in one of them,
so many seams are proposed and the reader's classifier chooses among the pieces they make:
for points spread over the ink, the cheapest seam through each point (the cheapest way down
to it plus the cheapest way on to the bottom, two sweeps of dynamic programming over the
rows), kept when it parts the ink differently from every cheaper one.

A sideways move of any length costs the L1 distance of a monotone coordinate (the prefix sum
of the ink it cuts, plus STEP per column), so the best move into every column of a row is two
running minima, not a loop over moves.
"""

from __future__ import annotations

import dataclasses

import numpy as np

STEP = 0.02  # A seam's cost per column it moves sideways: of equal seams, the straightest.


@dataclasses.dataclass(eq=False)
class Seam:
    """A cut through a piece: its column in each row, the strokes it crosses, the ink left
    of it (its place in the order of a piece's seams) and a number naming it in its piece."""

    columns: np.ndarray
    strokes: float
    left: float
    number: int


def propose(
    ink: np.ndarray,
    pen: float,
    spacing: float,
    band: float,
    most: float,
    distinct: float,
    side: float,
    crowd: tuple[int, float],
) -> tuple[list[Seam], list[Seam]]:
    """Seams through ``ink`` (values in [0, 1]): those to cut along, left to right, and
    spares, cheapest first, to cut along where a reading is unsure.

    Seams are tried through points ``spacing`` px apart and within ``band`` px of columns
    ``spacing`` px apart, cheapest first; each is kept if it cuts at most ``most`` ink,
    leaves ``side`` ink on either side, moves at least ``distinct`` ink from one side to the
    other relative to every seam already kept, and fewer than ``crowd[0]`` kept seams lie
    within ``crowd[1]`` px of it (on average over the rows): every stretch of the ink gets
    its cheapest seams. Spares are the rest, by a third of ``distinct`` and twice the crowd.
    """
    rows, width = ink.shape
    down_cost, down_came, across = _sweep(ink)
    up_cost, up_came, _ = _sweep(ink[::-1])
    through = down_cost + up_cost[::-1] - across  # the cheapest seam through each pixel
    # The cheapest points of each row (the right end of a level stretch): a seam through
    # any other point of the row crosses more ink there, or is one of these.
    padded = np.pad(through, ((0, 0), (1, 1)), constant_values=np.inf)
    lowest = (through <= padded[:, :-2]) & (through < padded[:, 2:]) & (through <= most)
    lowest[np.arange(rows) % max(1, int(spacing)) != 0] = False
    r, c = np.nonzero(lowest)
    cost = through[r, c]
    paths = _trace(down_came, up_came[::-1], r, c)
    # And seams that keep near a column, which the seams through single points miss where
    # two upright digits touch at several places.
    starts = np.arange(0, width, max(1, int(spacing)))
    near_cost, near = _banded(ink, across, starts, max(1, int(band)))
    paths = np.concatenate([paths, near[near_cost <= most]])
    cost = np.concatenate([cost, near_cost[near_cost <= most]])
    if not len(cost):
        return [], []
    # The same seam found from many points: one of each (by a hash of its columns).
    hashes = paths @ np.random.default_rng(0).integers(1, 2**31, rows)
    _, first = np.unique(hashes, return_index=True)
    paths, cost = paths[first], cost[first]
    # Ink left of each seam, row by row.
    before = np.concatenate([np.zeros((rows, 1)), np.cumsum(ink, axis=1)], axis=1)
    left = np.take_along_axis(before, paths.T, axis=1).T  # (seams, rows)
    total = float(ink.sum())
    sides = np.minimum(left.sum(axis=1), total - left.sum(axis=1))
    centres = paths.mean(axis=1)
    order = [int(index) for index in np.argsort(cost, kind="stable") if sides[index] >= side]
    kept = _greedy(order, left, centres, distinct, crowd, [])
    spare = _greedy(order, left, centres, distinct / 3, (2 * crowd[0], crowd[1]), kept)
    spare = [index for index in spare if index not in kept]

    def seam(index: int) -> Seam:
        return Seam(paths[index], float(cost[index]) / pen, float(left[index].sum()), index)

    return sorted((seam(index) for index in kept), key=lambda s: s.left), [
        seam(index) for index in spare
    ]


def _greedy(order, left, centres, distinct, crowd, chosen) -> list[int]:
    """``chosen`` and, in ``order``, each seam that moves ``distinct`` ink from all chosen
    and has fewer than ``crowd[0]`` chosen within ``crowd[1]`` px."""
    chosen = list(chosen)
    for index in order:
        if chosen and np.abs(left[chosen] - left[index]).sum(axis=1).min() < distinct:
            continue
        if np.count_nonzero(np.abs(centres[chosen] - centres[index]) < crowd[1]) >= crowd[0]:
            continue
        chosen.append(index)
    return chosen


def _sweep(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cheapest seam from the top row down to each pixel: its cost, the column it came
    from in the row above, and the cost of the cut within each pixel's row."""
    rows, width = ink.shape
    across = np.zeros((rows, width))
    across[:, 1:] = np.minimum(ink[:, :-1], ink[:, 1:])
    down = np.zeros((rows, width))
    down[1:] = np.minimum(ink[:-1], ink[1:])
    # Where each column lies along its row: the ink cut and the steps taken to reach it.
    position = np.cumsum(down + STEP, axis=1)
    indices = np.arange(width)
    cost = np.empty((rows, width))
    came = np.empty((rows, width), np.int32)
    cost[0], came[0] = across[0], indices
    for row in range(1, rows):
        x, previous = position[row], cost[row - 1]
        forward = previous - x  # from a <= b: min over a of (cost[a] - x[a]) + x[b]
        low = np.minimum.accumulate(forward)
        from_left = np.maximum.accumulate(np.where(forward <= low, indices, 0))
        backward = (previous + x)[::-1]  # from a >= b: min over a of (cost[a] + x[a]) - x[b]
        high = np.minimum.accumulate(backward)
        from_right = width - 1 - np.maximum.accumulate(np.where(backward <= high, indices, 0))
        left, right = low + x, high[::-1] - x
        came[row] = np.where(left <= right, from_left, from_right[::-1])
        cost[row] = np.minimum(left, right) + across[row]
    return cost, came, across


def _trace(down_came: np.ndarray, up_came: np.ndarray, r: np.ndarray, c: np.ndarray):
    """The seams through pixels (r, c): up along ``down_came``, down along ``up_came``
    (the bottom-up sweep's, rows in image order). Returns (seams, rows) columns."""
    rows = down_came.shape[0]
    paths = np.empty((len(r), rows), np.int64)
    every = np.arange(len(r))
    paths[every, r] = c
    at = c.copy()
    for row in range(rows - 1, 0, -1):  # Upwards: rows above each point.
        above = down_came[row, at]
        mask = r >= row
        at = np.where(mask, above, at)
        paths[mask, row - 1] = at[mask]
    at = c.copy()
    for row in range(0, rows - 1):  # Downwards: rows below each point.
        below = up_came[row, at]
        mask = r <= row
        at = np.where(mask, below, at)
        paths[mask, row + 1] = at[mask]
    return paths


def _banded(ink: np.ndarray, across: np.ndarray, starts: np.ndarray, drift: int):
    """For each column in ``starts``, the cheapest seam that stays within ``drift`` columns
    of it: its cost and its columns, (seams, rows)."""
    rows, width = ink.shape
    offsets = np.arange(-drift, drift + 1)
    columns = np.clip(starts[:, None] + offsets[None, :], 0, width - 1)  # (seams, band)
    down = np.zeros((rows, width))
    down[1:] = np.minimum(ink[:-1], ink[1:])
    position = np.cumsum(down + STEP, axis=1)
    seams, band = columns.shape
    indices = np.broadcast_to(np.arange(band), (seams, band))
    came = np.zeros((rows, seams, band), np.int32)
    cost = across[0][columns]
    for row in range(1, rows):
        x = position[row][columns]
        forward = cost - x
        low = np.minimum.accumulate(forward, axis=1)
        from_left = np.maximum.accumulate(np.where(forward <= low, indices, 0), axis=1)
        backward = (cost + x)[:, ::-1]
        high = np.minimum.accumulate(backward, axis=1)
        from_right = (
            band
            - 1
            - np.maximum.accumulate(np.where(backward <= high, indices, 0), axis=1)[:, ::-1]
        )
        left, right = low + x, high[:, ::-1] - x
        came[row] = np.where(left <= right, from_left, from_right)
        cost = np.minimum(left, right) + across[row][columns]
    end = cost.argmin(axis=1)
    every = np.arange(seams)
    paths = np.empty((seams, rows), np.int64)
    at = end
    for row in range(rows - 1, -1, -1):
        paths[:, row] = columns[every, at]
        at = came[row, every, at]
    return cost[every, end], paths
