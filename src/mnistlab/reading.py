"""Read a handwritten number (1 to about 20 digits on one line) from one image.

``segments`` finds the ink, cuts it into pieces and lists the runs of pieces that may each be
one digit (candidates), each normalised to 28x28 as MNIST was. Here every candidate is scored
in one batched model call: the log probability of its best digit, of "is a digit" for models
with that head, of "holds one whole digit" by a small scorer (bench/fit_read_scorer.py), and
priors on its width per digit and on the ink its cuts cross. The reading is the split of the
pieces into candidates with the highest total (dynamic programming), optionally forced to
``expect_digits`` digits.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mnistlab import segments
from mnistlab.errors import ImageError
from mnistlab.predict import DEFAULT_MIN_CONFIDENCE, digit_png, pretrained_dir
from mnistlab.predict import DEFAULT_NOT_DIGIT_THRESHOLD as NOT_DIGIT_THRESHOLD

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
CUT_PENALTY = 0.4  # Log-probability lost per stroke a cut between two digits crosses ...
DIGIT_PENALTY = 0.1  # ... and per digit read, so that fragments do not pass for digits.
# A small network telling candidates that hold one whole digit from fragments and merges
# (bench/fit_read_scorer.py), shipped beside the model.
SCORER_FILE = "reading-scorer.npz"
WHOLE_LOGIT = 0.0  # A mark cut out of nothing is whole with at least this logit (p 0.5).


@dataclass
class DigitReading:
    """One digit of a reading: ``box`` is [x, y, width, height] in the image's pixels."""

    label: int
    confidence: float
    uncertain: bool
    box: list[int]
    probabilities: list[float] = field(default_factory=list, repr=False)
    not_digit: float | None = None
    digit: np.ndarray | None = field(default=None, repr=False)  # what the model saw

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "confidence": self.confidence,
            "uncertain": self.uncertain,
            "box": self.box,
        }

    def preview_png(self) -> bytes | None:
        """The 28x28 image the model saw, as PNG bytes."""
        return digit_png(self.digit)


@dataclass
class NumberReading:
    """The number in one image. ``rejected`` says why there is none; then ``text`` is None."""

    file: str | None = None
    text: str | None = None
    confidence: float | None = None  # the product of the digits' confidences
    digits: list[DigitReading] = field(default_factory=list)
    rejected: str | None = None

    def to_dict(self) -> dict:
        """The fields of ``mnistlab read --json``."""
        return {
            "file": self.file,
            "text": self.text,
            "confidence": self.confidence,
            "digits": [digit.to_dict() for digit in self.digits],
            "rejected": self.rejected,
        }


@dataclass
class _Line:
    """One image's ink cut into pieces, and the runs of pieces that may each be a digit."""

    strokes: np.ndarray  # ink in [0, 1], over the region ``offset`` (row, column) of the image
    pieces: list[segments.Piece]
    height: float  # the line's height in working pixels
    offset: tuple[int, int]
    scale: tuple[float, float]  # image pixels per working pixel (x, y)
    candidates: list[tuple[int, int]]
    digits: np.ndarray  # each candidate as MNIST's 28x28


def read_number(
    image: Image.Image | np.ndarray | bytes | str | os.PathLike,
    predictor: Predictor,
    expect_digits: int | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    not_digit_threshold: float | None = None,
    file: str | None = None,
) -> NumberReading:
    """Read the handwritten number in ``image`` (bytes, a path, a PIL image or an array).

    Returns a NumberReading: ``text`` and one DigitReading per digit, left to right, or
    ``rejected`` when the image holds no number (no ink, specks, a line, marks the model
    takes for no digit, or fewer marks than ``expect_digits``).
    Raises:
        ImageError: the data is not a readable image.
        ValueError: ``expect_digits`` is outside 1..MAX_DIGITS.
    """
    if not_digit_threshold is None:  # The run's own operating point, as predict.classify.
        not_digit_threshold = getattr(predictor, "not_digit_threshold", NOT_DIGIT_THRESHOLD)
    if expect_digits is not None and not 1 <= expect_digits <= MAX_DIGITS:
        raise ValueError(f"expect_digits must be 1 to {MAX_DIGITS}; received {expect_digits}")
    try:
        line = _line(image, expect_digits is not None)
    except _NoNumber as error:
        return NumberReading(file, rejected=str(error))
    probabilities, not_digit = predictor.scores(line.digits)
    scores = _scores(line, probabilities, not_digit)
    path = _best_path(len(line.pieces), line.candidates, scores, expect_digits)
    if path is None:
        return NumberReading(
            file,
            rejected=f"{segments.NO_NUMBER}: the marks cannot be read as {expect_digits} digits",
        )
    reading = NumberReading(file)
    for index in path:
        row = probabilities[index]
        label = int(row.argmax())
        top, left, bottom, right = segments.run_box(line.pieces, line.candidates[index])
        (top, left), (scale_x, scale_y) = np.add((top, left), line.offset), line.scale
        bottom, right = bottom + line.offset[0], right + line.offset[1]
        reading.digits.append(
            DigitReading(
                label=label,
                confidence=float(row[label]),
                uncertain=bool(row[label] < min_confidence),
                box=[
                    math.floor(left * scale_x),
                    math.floor(top * scale_y),
                    math.ceil((right - left) * scale_x),
                    math.ceil((bottom - top) * scale_y),
                ],
                probabilities=[float(value) for value in row],
                not_digit=None if not_digit is None else float(not_digit[index]),
                digit=line.digits[index],
            )
        )
    refused = [
        d for d in reading.digits if d.not_digit is not None and d.not_digit >= not_digit_threshold
    ]
    if refused:
        reading.rejected = (
            f"not a number: {len(refused)} of the {len(reading.digits)} marks read do not look"
            " like digits (letters, shapes or scribbles)"
        )
        return reading
    reading.text = "".join(str(digit.label) for digit in reading.digits)
    reading.confidence = float(np.prod([digit.confidence for digit in reading.digits]))
    return reading


class _NoNumber(Exception):
    """The image is readable but holds no number; the message says why."""


def _line(image, eager: bool) -> _Line:
    """Decode, find the ink, cut it into pieces and normalise every candidate digit.

    Raises:
        ImageError: the data is not a readable image.
        _NoNumber: it holds no number.
    """
    loaded, original_size = segments.load(image)
    try:
        gray = segments.grayscale(loaded)
        strokes, mask, clean, offset = segments.find_ink(gray)
        pieces, height = segments.cut_into_pieces(strokes, mask, eager)
    except ImageError as error:
        raise _NoNumber(str(error)) from None
    runs = segments.candidates(pieces, height)
    if not runs:
        raise _NoNumber(f"{segments.NO_NUMBER}: no mark is tall enough to be a digit")
    digits = np.stack([segments.normalise(strokes, pieces, run, clean) for run in runs])
    scale = (original_size[0] / gray.shape[1], original_size[1] / gray.shape[0])
    return _Line(strokes, pieces, height, offset, scale, runs, digits)


def _scores(line: _Line, probabilities: np.ndarray, not_digit: np.ndarray | None) -> np.ndarray:
    """Each candidate's log-score as a digit: the model's, the segment scorer's that it is one
    whole digit, and the shape and cut priors."""
    scores = np.log(np.maximum(probabilities.max(axis=1), 1e-9))
    if not_digit is not None:
        scores = scores + np.log(np.maximum(1 - not_digit, 1e-9))
    weights = _scorer()
    if weights is not None:
        # einsum, not BLAS: a multithreaded BLAS on a busy machine takes 40 ms for this.
        inputs = features(line, probabilities)
        hidden = np.maximum(np.einsum("ij,jk->ik", inputs, weights["w1"]) + weights["b1"], 0)
        logit = np.einsum("ij,jk->ik", hidden, weights["w2"])[:, 0] + weights["b2"][0]
        # Marks not cut out of anything are whole unless the scorer is very sure they are not.
        whole = np.array([_uncut(line.pieces, run) for run in line.candidates])
        scores = scores - np.logaddexp(0, -np.where(whole, np.maximum(logit, WHOLE_LOGIT), logit))
    labels = probabilities.argmax(axis=1)
    return scores + np.array(
        [_prior(line.pieces, run, label) for run, label in zip(line.candidates, labels)]
    )


def _uncut(pieces: list[segments.Piece], run: tuple[int, int]) -> bool:
    """Whether a run of pieces is whole marks: no cut on its left, none on its right."""
    start, stop = run
    return pieces[start].cut == 0 and (stop == len(pieces) or pieces[stop].cut == 0)


@functools.cache
def _scorer() -> dict[str, np.ndarray] | None:
    """The segment scorer's weights (bench/fit_read_scorer.py); None if it is not shipped."""
    path = pretrained_dir() / SCORER_FILE
    if not path.is_file():
        return None
    with np.load(path) as weights:
        return {name: weights[name] for name in ("w1", "b1", "w2", "b2")}


def features(line: _Line, probabilities: np.ndarray) -> np.ndarray:
    """What the segment scorer sees of each candidate: its 28x28, the model's ten
    probabilities, and its shape and cuts relative to the line."""
    pieces, rows = line.pieces, []
    for start, stop in line.candidates:
        top, left, bottom, right = segments.run_box(pieces, (start, stop))
        height, width = bottom - top, right - left
        rows.append(
            [
                width / max(height, 1),
                height / line.height,
                width / line.height,
                pieces[start].cut,
                pieces[stop].cut if stop < len(pieces) else 0.0,
                stop - start,
                float(not pieces[start].joins) if start else 1.0,
            ]
        )
    pixels = line.digits.reshape(len(line.digits), -1) / 255.0
    return np.concatenate([pixels, probabilities, np.array(rows)], axis=1).astype(np.float32)


def _prior(pieces: list[segments.Piece], run: tuple[int, int], label: int) -> float:
    """Log-prior of a candidate read as ``label``: its shape, and the cut on its left."""
    top, left, bottom, right = segments.run_box(pieces, run)
    aspect = (right - left) / max(bottom - top, 1)
    narrow, wide = ASPECTS[label]
    shape = max(0.0, aspect - wide) + max(0.0, narrow - aspect)
    return -ASPECT_PENALTY * shape - CUT_PENALTY * pieces[run[0]].cut - DIGIT_PENALTY


def _best_path(
    count: int, candidates: list[tuple[int, int]], scores: np.ndarray, expect: int | None
) -> list[int] | None:
    """Indices of the candidates covering pieces 0..count-1 in order with the best total score,
    with exactly ``expect`` candidates when given; None when no such cover exists."""
    most = min(count, MAX_DIGITS) if expect is None else expect
    best = np.full((count + 1, most + 1), -np.inf)
    back = np.full((count + 1, most + 1), -1, int)
    best[0, 0] = 0.0
    ending: dict[int, list[int]] = {}
    for index, (start, stop) in enumerate(candidates):
        ending.setdefault(stop, []).append(index)
    for stop in range(1, count + 1):
        for index in ending.get(stop, []):
            start = candidates[index][0]
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
        stop, digits = candidates[index][0], digits - 1
    return path[::-1]


__all__ = ["MAX_DIGITS", "DigitReading", "NumberReading", "read_number"]
