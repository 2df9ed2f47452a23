"""Segmentation by recognition: which candidates, left to right, are the digits of a line.

``segments`` finds the ink's pieces (marks, or marks that belong together) and lists the
candidate digits between nodes (the pieces' edges and seams through them). Every candidate
is normalised to 28x28 once and classified in one batched model call per stage, and scored:
the log-odds that it holds one whole digit (a small scorer, bench/fit_read_scorer.py, that
sees its 28x28, the model's probabilities and its shape and cuts), the log-probability of
its best digit and of "is a digit" for models with that head, and a prior on its width for
that digit. The reading is the path from the first node to the last with the highest total
(dynamic programming), optionally of exactly ``expect`` digits. Log-odds are positive for a
whole digit and negative for a fragment or a merge, so the total favours neither more nor
fewer digits.

Two stages: first the pieces as they are (separated digits are read from their gaps alone);
then only the pieces the first reading is unsure of (touching or overlapping digits, or a
count that differs from ``expect``) are cut along seams and read again, the other
candidates' answers kept.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mnistlab import segments
from mnistlab.candidates import MAX_ASPECT, Candidate, normalise, thin
from mnistlab.candidates import candidates as list_candidates
from mnistlab.errors import ImageError
from mnistlab.predict import pretrained_dir

if TYPE_CHECKING:
    from mnistlab.predict import Predictor

MAX_DIGITS = 24
# Width over height of MNIST's test digits 0-9: 1% are narrower, 5% wider. Beyond these a
# candidate loses ASPECT_PENALTY log-probability per unit: two merged digits are wide for any.
ASPECTS = (
    (0.5, 1.25),
    (0.1, 0.62),
    (0.5, 1.25),
    (0.4, 1.05),
    (0.45, 1.05),
    (0.5, 1.25),
    (0.4, 1.0),
    (0.4, 1.11),
    (0.44, 1.0),
    (0.4, 0.9),
)
ASPECT_PENALTY = 4.0
DIGIT_BONUS = 3.0  # Added per digit read: above 0 favours more digits, below fewer.
# A small network telling candidates that hold one whole digit from fragments and merges
# (bench/fit_read_scorer.py), shipped beside the model.
SCORER_FILE = "reading-scorer.npz"
WHOLE_LOGIT = 2.0  # A mark cut out of nothing is whole with at least this log-odds ...
SURE_LOGIT = 2.0  # ... and read without cutting when at least this sure it is whole ...
SURE_PROBABILITY = 0.9  # ... and of its digit.
MORE_SEAMS = 4  # Spare seams cut along per digit still unsure after the second stage.


@dataclass
class Line:
    """One image's ink, its pieces and candidates, and what the model made of them."""

    strokes: np.ndarray  # ink in [0, 1], over the region ``offset`` (row, column) of the image
    shapes: np.ndarray  # the ink candidates are normalised from (a drawing's, thinned)
    pen: float  # the strokes' width in working pixels
    pieces: list[segments.Piece]
    height: float  # the line's height in working pixels
    offset: tuple[int, int]
    scale: tuple[float, float]  # image pixels per working pixel (x, y)
    candidates: list[Candidate] = field(default_factory=list)
    nodes: int = 0  # the candidates run between nodes 0..nodes-1
    digits: np.ndarray | None = None  # each candidate as MNIST's 28x28
    probabilities: np.ndarray | None = None  # (candidates, 10), once classified
    not_digit: np.ndarray | None = None  # (candidates,) for a model with that head
    logits: np.ndarray | None = None  # (candidates,) the scorer's log-odds of a whole digit
    # Each candidate's 28x28 and answers by its key, kept when other pieces are cut.
    known: dict = field(default_factory=dict, repr=False)


class NoNumber(Exception):
    """The image is readable but holds no number; the message says why."""


def line_of(image) -> Line:
    """Decode, find the ink and its pieces, and normalise each candidate of the first stage.

    Raises:
        ImageError: the data is not a readable image.
        NoNumber: it holds no number.
    """
    loaded, original_size = segments.load(image)
    try:
        gray = segments.grayscale(loaded)
        strokes, mask, clean, offset = segments.find_ink(gray)
        pieces, height, pen = segments.cut_into_pieces(strokes, mask)
    except ImageError as error:
        raise NoNumber(str(error)) from None
    shapes = thin(strokes, mask, height) if clean else strokes
    scale = (original_size[0] / gray.shape[1], original_size[1] / gray.shape[0])
    line = Line(strokes, shapes, pen, pieces, height, offset, scale)
    relist(line)
    if not line.candidates:
        raise NoNumber(f"{segments.NO_NUMBER}: no mark is tall enough to be a digit")
    return line


def cut(line: Line, pieces) -> None:
    """Propose seams through the given pieces and list the candidates again."""
    for index in pieces:
        segments.propose_seams(line.pieces[index], line.strokes, line.height, line.pen)
    relist(line)


def relist(line: Line) -> None:
    """List the candidates again (after seams were added) and normalise the new ones."""
    line.candidates, line.nodes = list_candidates(line.pieces, line.height, line.strokes)
    digits = []
    for candidate in line.candidates:
        known = line.known.get(candidate.key)
        if known is None:
            known = line.known[candidate.key] = [normalise(line.shapes, candidate)]
        digits.append(known[0])
    line.digits = np.stack(digits) if digits else np.zeros((0, 28, 28), np.uint8)


def classify(line: Line, predictor: Predictor) -> None:
    """The model's answers and the scorer's for every candidate, in one call each for those
    not yet classified."""
    entries = [line.known[candidate.key] for candidate in line.candidates]
    new = [index for index, entry in enumerate(entries) if len(entry) == 1]
    if new:
        digits = np.stack([entries[index][0] for index in new])
        probabilities, not_digit = predictor.scores(digits)
        chosen = [line.candidates[index] for index in new]
        logits = whole_logits(line, chosen, digits, probabilities)
        for position, index in enumerate(new):
            entries[index].append(probabilities[position])
            entries[index].append(None if not_digit is None else float(not_digit[position]))
            entries[index].append(float(logits[position]))
    line.probabilities = np.stack([entry[1] for entry in entries])
    has_head = entries[0][2] is not None
    line.not_digit = np.array([entry[2] for entry in entries]) if has_head else None
    line.logits = np.array([entry[3] for entry in entries])


def search(line: Line, predictor: Predictor, expect: int | None) -> list[int] | None:
    """The candidates read as the line's digits (indices into ``line.candidates``), left to
    right; None when the marks cannot be read as ``expect`` digits."""
    classify(line, predictor)
    path = best_path(line.nodes, line.candidates, _scores(line), expect)
    unsure = _unsure(line, path, expect)
    if not unsure:
        return path
    cut(line, unsure)
    classify(line, predictor)
    path = best_path(line.nodes, line.candidates, _scores(line), expect)
    # Third: more seams where the digits read are still unsure.
    margin = segments.CROWD_WIDTH * line.height
    added = False
    for index in _unsure_digits(line, path):
        candidate = line.candidates[index]
        span = (candidate.left - margin, candidate.left + candidate.mask.shape[1] + margin)
        for piece in line.pieces[candidate.key[0] : candidate.key[2] + 1]:
            added |= segments.add_seams(piece, span, MORE_SEAMS)
    if added:
        relist(line)
        classify(line, predictor)
        path = best_path(line.nodes, line.candidates, _scores(line), expect)
    return path


def _unsure(line: Line, path: list[int] | None, expect: int | None):
    """Pieces the first reading is unsure of: every piece if it found no reading or not
    ``expect`` digits; else those of each digit read unsurely, too wide for its label, or
    too wide for any digit."""
    pieces = line.pieces
    if path is None or (expect is not None and len(path) != expect):
        return list(range(len(pieces)))
    unsure = set()
    for index in _unsure_digits(line, path):
        candidate = line.candidates[index]
        unsure.update(range(candidate.key[0], candidate.key[2] + 1))
    for index, piece in enumerate(pieces):
        if piece.mask.shape[1] > MAX_ASPECT * max(piece.mask.shape[0], line.height):
            unsure.add(index)
    return sorted(unsure)


def _unsure_digits(line: Line, path: list[int] | None) -> list[int]:
    """The candidates of ``path`` read unsurely or too wide for their label."""
    unsure = []
    for index in path or []:
        row = line.probabilities[index]
        label = int(row.argmax())
        height, width = line.candidates[index].mask.shape
        if (
            line.logits[index] < SURE_LOGIT
            or row[label] < SURE_PROBABILITY
            or width > ASPECTS[label][1] * max(height, 1)
        ):
            unsure.append(index)
    return unsure


def whole_logits(line: Line, chosen, digits: np.ndarray, probabilities: np.ndarray):
    """The scorer's log-odds that each of the ``chosen`` candidates holds one whole digit (0
    without a scorer); a mark cut out of nothing at least WHOLE_LOGIT unless the scorer is
    very sure it is not."""
    weights = _scorer()
    if weights is None:
        return np.zeros(len(chosen))
    # einsum, not BLAS: a multithreaded BLAS on a busy machine takes 40 ms for this.
    inputs = features(line.height, chosen, digits, probabilities)
    hidden = np.maximum(np.einsum("ij,jk->ik", inputs, weights["w1"]) + weights["b1"], 0)
    logit = np.einsum("ij,jk->ik", hidden, weights["w2"])[:, 0] + weights["b2"][0]
    whole = np.array([c.cut_left == 0 and c.cut_right == 0 for c in chosen])
    return np.where(whole, np.maximum(logit, WHOLE_LOGIT), logit).astype(np.float64)


def _scores(line: Line) -> np.ndarray:
    """Each candidate's score as one digit of the path: the log-probabilities that it is one
    whole digit, of its digit (and that it is a digit), its width's prior."""
    probabilities = line.probabilities
    scores = -np.logaddexp(0, -line.logits) + np.log(np.maximum(probabilities.max(axis=1), 1e-9))
    scores = scores + DIGIT_BONUS
    if line.not_digit is not None:
        scores = scores + np.log(np.maximum(1 - line.not_digit, 1e-9))
    labels = probabilities.argmax(axis=1)
    return scores + np.array(
        [_prior(candidate, label) for candidate, label in zip(line.candidates, labels)]
    )


@functools.cache
def _scorer() -> dict[str, np.ndarray] | None:
    """The segment scorer's weights (bench/fit_read_scorer.py); None if it is not shipped."""
    path = pretrained_dir() / SCORER_FILE
    if not path.is_file():
        return None
    with np.load(path) as weights:
        return {name: weights[name] for name in ("w1", "b1", "w2", "b2")}


def features(
    line_height: float, chosen: list[Candidate], digits: np.ndarray, probabilities: np.ndarray
) -> np.ndarray:
    """What the segment scorer sees of each candidate: its 28x28, the model's ten
    probabilities, and its shape and cuts relative to the line."""
    rows = []
    for candidate in chosen:
        height, width = candidate.mask.shape
        rows.append(
            [
                width / max(height, 1),
                height / line_height,
                width / line_height,
                candidate.cut_left,
                candidate.cut_right,
                candidate.marks,
            ]
        )
    pixels = digits.reshape(len(digits), -1) / 255.0
    return np.concatenate([pixels, probabilities, np.array(rows)], axis=1).astype(np.float32)


def _prior(candidate: Candidate, label: int) -> float:
    """Log-prior of a candidate read as ``label``: its width for that digit."""
    height, width = candidate.mask.shape
    aspect = width / max(height, 1)
    narrow, wide = ASPECTS[label]
    return -ASPECT_PENALTY * (max(0.0, aspect - wide) + max(0.0, narrow - aspect))


def best_path(
    nodes: int, candidates: list[Candidate], scores: np.ndarray, expect: int | None
) -> list[int] | None:
    """Indices of the candidates from node 0 to node ``nodes - 1``, in order, with the best
    total score, exactly ``expect`` of them when given; None when there is no such path."""
    count = nodes - 1
    most = min(count, MAX_DIGITS) if expect is None else expect
    best = np.full((count + 1, most + 1), -np.inf)
    back = np.full((count + 1, most + 1), -1, int)
    best[0, 0] = 0.0
    ending: dict[int, list[int]] = {}
    for index, candidate in enumerate(candidates):
        ending.setdefault(candidate.stop, []).append(index)
    for stop in range(1, count + 1):
        for index in ending.get(stop, []):
            start = candidates[index].start
            total = best[start, :-1] + scores[index]
            better = total > best[stop, 1:]
            best[stop, 1:][better] = total[better]
            back[stop, 1:][better] = index
    digits = expect if expect is not None else int(np.argmax(best[count]))
    if not np.isfinite(best[count, digits]) or digits == 0:
        return None
    path, stop = [], count
    while digits:
        index = back[stop, digits]
        path.append(int(index))
        stop, digits = candidates[index].start, digits - 1
    return path[::-1]
