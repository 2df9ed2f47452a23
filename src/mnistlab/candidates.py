"""Candidate digits: the ink between two nodes of a line, and each one as MNIST's 28x28.

A line's nodes, left to right, are each piece's left edge, then the seams it is cut along;
then the last piece's right edge. A candidate runs from one node to a later one, joining
pieces where they may join (``segments``), its two seams not crossing.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mnistlab import framing, images, raster
from mnistlab.segments import Piece, pen_width

MAX_ASPECT = 1.25  # No candidate digit is wider than this times its height ...
MIN_HEIGHT = 0.4  # ... or shorter than this fraction of the line's height.
MAX_RUN = 16  # Nodes (marks' edges and seams) one candidate digit may span.
CROSSING = 0.5  # Seams bounding one candidate may cross over this much ink per row, in px.


@dataclasses.dataclass
class Candidate:
    """Ink that may be one digit: from node ``start`` to node ``stop`` of the line (the marks'
    edges and the seams, left to right), as a mask inside the box top/left."""

    start: int
    stop: int
    mask: np.ndarray
    top: int
    left: int
    cut_left: float  # strokes crossed by the seam on its left (0: the edge of a mark)
    cut_right: float
    marks: int  # separate pieces it joins
    # (first piece, the number of its seam on the left or -1 for its edge, last piece, of
    # its seam on the right or -1): the same whatever other seams are cut along.
    key: tuple[int, int, int, int] = (0, -1, 0, -1)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """top, left, bottom, right"""
        return self.top, self.left, self.top + self.mask.shape[0], self.left + self.mask.shape[1]


def candidates(pieces: list[Piece], height: float, strokes: np.ndarray) -> tuple[list, int]:
    """The candidate digits, and the number of nodes of the line: each piece's left edge,
    then its seams; then the last piece's right edge.

    A candidate runs from one node to a later one: not too wide, tall enough, joining
    pieces only where they may join, its seams not crossing (within CROSSING of a stroke).
    """
    first = np.cumsum([0] + [len(p.seams) + 1 for p in pieces])  # each piece's left edge
    nodes = int(first[-1]) + 1
    # Each node as a bound: its piece and the columns (per row of the piece) left of it.
    bounds = []
    for piece in pieces:
        rows, width = piece.mask.shape
        bounds.append((piece, np.zeros(rows, int)))
        bounds.extend((piece, seam.columns) for seam in piece.seams)
    found = []
    for start in range(nodes - 1):
        piece_index = int(np.searchsorted(first, start, side="right")) - 1
        stops = list(range(start + 1, min(start + MAX_RUN, nodes - 1) + 1))
        edge = int(first[piece_index + 1])
        if start == first[piece_index] and edge not in stops:
            stops.append(edge)  # A whole piece is a candidate however many seams it has.
        skip_to = 0
        for stop in stops:
            if stop < skip_to:
                continue
            last = int(np.searchsorted(first, stop, side="left")) - 1  # piece ending the run
            if last > piece_index and not pieces[last].joins:
                break
            candidate = _region(pieces, bounds, first, start, stop, piece_index, last, strokes)
            if candidate is None:
                continue
            top, left, bottom, right = candidate.box
            if stop == edge and start == first[piece_index]:
                pass  # A whole piece: a digit however wide.
            elif right - left > MAX_ASPECT * max(bottom - top, height) and stop > start + 1:
                if start != first[piece_index] or stop > edge:
                    break
                skip_to = edge  # On to the whole piece.
                continue
            if bottom - top >= MIN_HEIGHT * height:
                found.append(candidate)
    return found, nodes


def _region(pieces, bounds, first, start, stop, piece_index, last, strokes):
    """The candidate from node ``start`` (in piece ``piece_index``) to node ``stop`` (a seam
    in piece ``last``, or its right edge); None when it is empty or its seams cross."""
    seam_left = (
        pieces[piece_index].seams[start - first[piece_index] - 1]
        if (start > first[piece_index])
        else None
    )
    ends_inside = stop < first[last + 1]
    seam_right = pieces[last].seams[stop - first[last] - 1] if ends_inside else None
    parts = []
    for index in range(piece_index, last + 1):
        piece = pieces[index]
        rows, width = piece.mask.shape
        low = bounds[start][1] if index == piece_index else np.zeros(rows, int)
        high = bounds[stop][1] if index == last and ends_inside else np.full(rows, width)
        if (high < low).any():  # Two seams of one piece that cross: a little, or not at all.
            ink = strokes[piece.top : piece.bottom, piece.left : piece.right] * piece.mask
            if _ink_between(ink, high, low) > CROSSING * rows:
                return None
        columns = np.arange(width)[None, :]
        part = piece.mask & (columns >= low[:, None]) & (columns < high[:, None])
        if part.any():
            parts.append((part, piece.top, piece.left))
    if not parts:
        return None
    top = min(t for _, t, _ in parts)
    left = min(x for _, _, x in parts)
    bottom = max(t + part.shape[0] for part, t, _ in parts)
    right = max(x + part.shape[1] for part, _, x in parts)
    mask = np.zeros((bottom - top, right - left), bool)
    for part, t, x in parts:
        mask[t - top : t - top + part.shape[0], x - left : x - left + part.shape[1]] |= part
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    mask = mask[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    return Candidate(
        start,
        stop,
        mask,
        top + int(rows[0]),
        left + int(columns[0]),
        0.0 if seam_left is None else seam_left.strokes,
        0.0 if seam_right is None else seam_right.strokes,
        last - piece_index + 1,
        (
            piece_index,
            -1 if seam_left is None else seam_left.number,
            last,
            -1 if seam_right is None else seam_right.number,
        ),
    )


def _ink_between(ink: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Ink in columns low..high-1 of each row (where high > low)."""
    before = np.concatenate([np.zeros((ink.shape[0], 1)), np.cumsum(ink, axis=1)], axis=1)
    rows = np.arange(ink.shape[0])
    return float(np.maximum(before[rows, high] - before[rows, low], 0).sum())


def thin(strokes: np.ndarray, mask: np.ndarray, height: float) -> np.ndarray:
    """A clean drawing's strokes thinned to MNIST's pen, once for the whole line.

    ``framing._match_pen_width`` thins each digit at 4x its 20 px box; here every candidate
    is thinned as a digit as tall as the line would be, so one distance transform serves
    them all.
    """
    scale = 4 * framing.DIGIT_BOX_SIDE / max(height, 1.0)  # working px to the 4x box's
    excess = pen_width(mask) * scale - 4 * framing.MNIST_PEN_WIDTH
    if excess <= 0:
        return strokes
    inside = raster.distance_to_paper(np.pad(mask, 1))[1:-1, 1:-1] * scale
    return np.minimum(strokes, np.clip(inside - excess / 2 + 0.5, 0.0, 1.0))


def normalise(strokes: np.ndarray, candidate: Candidate) -> np.ndarray:
    """A candidate's ink as MNIST's 28x28, by the steps ``normalize_digit`` takes (a clean
    drawing's strokes thinned first, by ``thin``)."""
    top, left, bottom, right = candidate.box
    # One pixel of margin: the ink's soft rim lies just outside the firm mask.
    top, left = max(top - 1, 0), max(left - 1, 0)
    bottom, right = min(bottom + 1, strokes.shape[0]), min(right + 1, strokes.shape[1])
    mask = np.zeros((bottom - top, right - left), bool)
    t, x = candidate.top - top, candidate.left - left
    mask[t : t + candidate.mask.shape[0], x : x + candidate.mask.shape[1]] = candidate.mask
    crop = images._crop_to_ink(strokes[top:bottom, left:right] * images._dilate(mask))
    return images._center(images._fit_box(crop))
