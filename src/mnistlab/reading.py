"""Read a handwritten number (1 to about 20 digits on one line) from one image.

``lines`` finds the ink (specks and ruled lines dropped) and scales the line to the sequence
reader's height; ``reader`` reads it with a small convolutional-recurrent network trained with
CTC (``read_training``) and gives each digit read its part of the line. Here the reading
becomes a NumberReading: per digit its label and confidence, its box in the image's pixels and
its ink as the 28x28 ``predict`` would make of it. The run's model reads that 28x28 too: its
probabilities join the reader's for a digit that stands alone (for one whose ink meets a
neighbour's, ``reader.own_marks`` finds, the reader alone decides), and its not-a-digit head
tells marks that are no digits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mnistlab import lines, reader
from mnistlab.predict import DEFAULT_MIN_CONFIDENCE, digit_png
from mnistlab.predict import DEFAULT_NOT_DIGIT_THRESHOLD as NOT_DIGIT_THRESHOLD

if TYPE_CHECKING:
    from mnistlab.predict import Predictor

MAX_DIGITS = 24
TOUCHING_NOT_DIGIT = 0.95  # see read_number


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
    # The product of the digits' confidences and the reader's in their count.
    confidence: float | None = None
    # The best reading may be wrong: its confidence is below the threshold, or a digit's is.
    uncertain: bool = False
    digits: list[DigitReading] = field(default_factory=list)
    rejected: str | None = None

    def to_dict(self) -> dict:
        """The fields of ``mnistlab read --json``."""
        return {
            "file": self.file,
            "text": self.text,
            "confidence": self.confidence,
            "uncertain": self.uncertain,
            "digits": [digit.to_dict() for digit in self.digits],
            "rejected": self.rejected,
        }


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
    takes for no digits, or marks that cannot be ``expect_digits`` digits).
    Raises:
        ImageError: the data is not a readable image.
        ValueError: ``expect_digits`` is outside 1..MAX_DIGITS.
    """
    if not_digit_threshold is None:  # The run's own operating point, as predict.classify.
        not_digit_threshold = getattr(predictor, "not_digit_threshold", NOT_DIGIT_THRESHOLD)
    if expect_digits is not None and not 1 <= expect_digits <= MAX_DIGITS:
        raise ValueError(f"expect_digits must be 1 to {MAX_DIGITS}; received {expect_digits}")
    try:
        ink, line = lines.prepare(image)
    except lines.NoNumber as error:
        return NumberReading(file, rejected=str(error))
    probabilities = reader.frames(line.pixels)
    path, score = reader.best_path(probabilities)
    if expect_digits is not None:
        free = score
        path, score = reader.best_path(probabilities, expect_digits)
        if path is None or score < free - reader.FORCED_MARGIN:
            return NumberReading(
                file,
                rejected=f"{lines.NO_NUMBER}: the marks cannot be read as {expect_digits} digits",
            )
    reads = reader.decode(probabilities, path, line.pixels.sum(axis=0))
    if not reads:
        return NumberReading(file, rejected=f"{lines.NO_NUMBER}: no digit read in the marks")
    # A count the caller gave is not in doubt (a far likelier free reading refuses it above).
    count_sure = 1.0 if expect_digits else reader.count_confidence(probabilities, len(reads))
    shapes = reader.thin(ink.strokes, ink.mask, ink.height) if ink.clean else ink.strokes
    owners = reader.own_marks(ink, line, reads)
    alone = np.array([box is not None for box in owners.boxes])
    boxes, digits = [], []
    for index, (read, box) in enumerate(zip(reads, owners.boxes)):
        if box is not None:  # its own blobs, and no neighbour's ink
            digits.append(owners.normalise(shapes, index))
        else:
            box = reader.digit_box(ink, line, read)
            if box is None:  # No firm ink of its own: the whole line's box.
                box = line.box
            digits.append(reader.normalise(shapes, ink.mask, box))
        boxes.append(box)
    classified, not_digit = predictor.scores(np.stack(digits))
    # A lone digit's probabilities are the reader's and the classifier's joined.
    both = np.log(np.maximum(np.stack([read.probabilities for read in reads]), 1e-9))
    both[alone] += np.log(np.maximum(classified[alone], 1e-9))
    joined = np.exp(both - both.max(axis=1, keepdims=True))
    joined /= joined.sum(axis=1, keepdims=True)
    reading = NumberReading(file)
    labels = joined.argmax(axis=1).tolist()
    for index, (box, digit, probabilities) in enumerate(zip(boxes, digits, joined.tolist())):
        label = labels[index]
        confidence = probabilities[label]
        reading.digits.append(
            DigitReading(
                label=label,
                confidence=confidence,
                uncertain=bool(confidence < min_confidence),
                box=ink.box_in_image(box),
                probabilities=probabilities,
                not_digit=None if not_digit is None else float(not_digit[index]),
                digit=digit,
            )
        )
    # A digit whose neighbour's ink reaches into its box can look like no digit by itself:
    # it is refused only when the head is very sure.
    thresholds = [
        not_digit_threshold if lone else max(not_digit_threshold, TOUCHING_NOT_DIGIT)
        for lone in alone
    ]
    return _verdict(reading, thresholds, min_confidence, count_sure)


def _verdict(
    reading: NumberReading,
    thresholds: list[float],
    min_confidence: float,
    count_sure: float = 1.0,
) -> NumberReading:
    """The reading's text and confidence, or its rejection when half the marks read or more
    are no digits (each digit's not-a-digit score against its threshold). The confidence is
    the digits' times ``count_sure`` (``reader.count_confidence``); a number less sure than
    ``min_confidence`` is flagged ``uncertain``, as a digit is."""
    refused = [
        digit
        for digit, threshold in zip(reading.digits, thresholds)
        if digit.not_digit is not None and digit.not_digit >= threshold
    ]
    if refused and 2 * len(refused) >= len(reading.digits):
        reading.rejected = (
            f"not a number: {len(refused)} of the {len(reading.digits)} marks read do not look"
            " like digits (letters, shapes or scribbles)"
        )
        return reading
    for digit in refused:
        digit.uncertain = True
    reading.text = "".join(str(digit.label) for digit in reading.digits)
    digits_sure = np.prod([digit.confidence for digit in reading.digits])
    reading.confidence = float(digits_sure * count_sure)
    reading.uncertain = reading.confidence < min_confidence or any(
        digit.uncertain for digit in reading.digits
    )
    return reading


__all__ = ["MAX_DIGITS", "DigitReading", "NumberReading", "read_number"]
