"""The sequence reader: a small convolutional-recurrent network (``read_training``) reads the
line image (``lines``) into per-frame probabilities of the ten digits and the CTC blank, one
frame per STRIDE columns; the best path through them is the number.

Each digit read keeps its evidence: the frames its label was read at (the CTC alignment) mark
its place on the line; the columns between it and its neighbours' places, cut where the line
has least ink, are its part of the line. A digit whose blobs of ink are its own (no blob lies
much in two parts) is those blobs, even where they reach past the cut; one whose ink meets a
neighbour's is its part's ink. Its 28x28 is that ink normalised as ``predict`` normalises a
digit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from mnistlab import framing, images, lines, raster
from mnistlab.errors import RunError
from mnistlab.predict import pretrained_dir
from mnistlab.segments import pen_width

READER_FILE = "reader.onnx"
BLANK = 10
DIGITS = np.arange(BLANK)
# A forced count (``expect``) is refused when its best path is this much less likely (natural
# log) than the free reading: the marks cannot be read as that many digits.
FORCED_MARGIN = 12.0
# A blob of ink with more than this share of it in a second digit's part of the line is
# two digits' ink, met; less is one digit's stroke reaching past the cut (a 7's bar).
SHARED = 0.2


@dataclass
class Read:
    """One digit read: its label, the probabilities of the ten digits at its surest frame,
    and its part of the line image (columns ``start``..``stop``)."""

    label: int
    probabilities: np.ndarray
    start: int
    stop: int


@functools.cache
def session():
    """The reader's ONNX Runtime session, loaded once.

    Raises:
        RunError: the reader's model is missing from the install.
    """
    path = pretrained_dir() / READER_FILE
    if not path.is_file():
        raise RunError(f"{path} is missing: the number reader is not installed")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One thread: a line is little work, and a second pool's threads, spinning after each
    # call, would compete with the classifier's on a small machine.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def frames(pixels: np.ndarray) -> np.ndarray:
    """(T, 11) probabilities of the line image (HEIGHT, width)."""
    reader = session()
    name = reader.get_inputs()[0].name
    return reader.run(None, {name: pixels[None, :, :, None].astype(np.float32)})[0][0]


def best_path(probabilities: np.ndarray, expect: int | None = None):
    """The most likely frame labels (T,) and their log-probability, with exactly ``expect``
    digits when given (None when the frames are too few for them)."""
    logs = np.log(np.maximum(probabilities, 1e-12))
    if expect is None:
        path = logs.argmax(axis=1)
        return path, float(logs.max(axis=1).sum())
    count = len(logs)
    if 2 * expect - 1 > count:
        return None, -np.inf
    best = _first_frame(logs[0], expect)
    back = np.zeros((count, expect + 1, BLANK + 1, 2), np.int16)
    for t in range(1, count):
        best = _next_frame(best, logs[t], back[t])
    end = int(best[expect].argmax())
    score = float(best[expect, end])
    if not np.isfinite(score):
        return None, score
    path = np.empty(count, int)
    k, symbol = expect, end
    for t in range(count - 1, -1, -1):
        path[t] = symbol
        if t:
            k, symbol = (int(v) for v in back[t, k, symbol])
    return path, score


def count_confidence(probabilities: np.ndarray, count: int) -> float:
    """How sure the frames are of ``count`` (1 or more) digits: the likeliest path with that
    many against the likeliest with one fewer and one more, as probabilities. A digit dropped
    or read twice where the ink is crowded leaves every digit read sure of its label; this is
    where it shows."""
    scores = _count_scores(np.log(np.maximum(probabilities, 1e-12)), count + 1)
    rivals = scores[[count - 1, count + 1]] - scores[count]
    return float(1.0 / (1.0 + np.exp(rivals[np.isfinite(rivals)]).sum()))


def _count_scores(logs: np.ndarray, most: int) -> np.ndarray:
    """The log-probability of the likeliest path with k digits, k = 0..most: ``best_path``'s
    recursion taken a count at a time rather than a frame at a time. Within one count a path
    only stays in a run (or a gap) or enters one, so its best score at each frame is a prefix
    sum plus a running maximum over where it entered: a few array operations per count instead
    of a dozen per frame."""
    digits, gaps = np.cumsum(logs[:, :BLANK], axis=0), np.cumsum(logs[:, BLANK])
    before_digits = np.vstack([np.zeros((1, BLANK)), digits[:-1]])  # sums up to frame t - 1
    before_gaps = np.concatenate([[0.0], gaps[:-1]])
    gap, run = gaps, np.full_like(digits, -np.inf)  # count 0: all gap, no digit
    frames = np.arange(len(logs))
    scores = [gaps[-1]]
    for count in range(1, most + 1):
        # Entering digit d at frame t: from a gap or another digit's run at frame t - 1 (at
        # the first frame, for the first digit only).
        likeliest = run.argmax(axis=1)
        best = run[frames, likeliest]
        runner_up = run.copy()
        runner_up[frames, likeliest] = -np.inf
        other = np.where(
            DIGITS == likeliest[:, None], runner_up.max(axis=1)[:, None], best[:, None]
        )
        enter = np.maximum(gap[:, None], other)
        enter = np.vstack([np.full((1, BLANK), 0.0 if count == 1 else -np.inf), enter[:-1]])
        run = digits + np.maximum.accumulate(enter - before_digits, axis=0)
        # A gap after a digit of this count: entered from its run at frame t - 1.
        leave = np.concatenate([[-np.inf], run.max(axis=1)[:-1]])
        gap = gaps + np.maximum.accumulate(leave - before_gaps)
        scores.append(max(gap[-1], run[-1].max()))
    return np.array(scores)


def _first_frame(logs: np.ndarray, most: int) -> np.ndarray:
    """best[k, s]: the likeliest path so far with k digits read (0..most), ending in symbol s."""
    best = np.full((most + 1, BLANK + 1), -np.inf)
    best[0, BLANK] = logs[BLANK]
    best[1, :BLANK] = logs[:BLANK]
    return best


def _next_frame(best: np.ndarray, logs: np.ndarray, back: np.ndarray | None = None) -> np.ndarray:
    """The paths one frame on; where each came from, (count, symbol) before it, into ``back``
    when given."""
    most = len(best) - 1
    new = np.empty_like(best)
    # To blank: from any symbol, as many digits.
    came = best.argmax(axis=1)
    top = best.max(axis=1)
    new[:, BLANK] = top + logs[BLANK]
    # To digit d: its own run goes on (as many digits), or a new digit starts after a blank
    # or another digit (one more): after the likeliest symbol, or the next if that is d.
    rows = np.arange(most)
    first = came[:-1, None]
    runner_up = best[:-1].copy()
    runner_up[rows, came[:-1]] = -np.inf
    start = np.where(first == DIGITS, runner_up.max(axis=1)[:, None], top[:-1, None])
    stay = best[1:, :BLANK]
    new[0, :BLANK] = -np.inf
    np.add(np.maximum(stay, start), logs[:BLANK], out=new[1:, :BLANK])
    if back is not None:
        back[:, BLANK, 0], back[:, BLANK, 1] = np.arange(most + 1), came
        other = np.where(first == DIGITS, runner_up.argmax(axis=1)[:, None], first)
        keep = stay >= start
        back[1:, :BLANK, 0] = np.where(keep, rows[:, None] + 1, rows[:, None])
        back[1:, :BLANK, 1] = np.where(keep, DIGITS, other)
    return new


def decode(probabilities: np.ndarray, path: np.ndarray, ink: np.ndarray) -> list[Read]:
    """The digits of a frame path, each with its part of the line image, whose ``ink`` (the
    line image's column sums) decides where neighbours part."""
    runs = []
    for t, symbol in enumerate(path):
        if symbol == BLANK:
            continue
        if t and path[t - 1] == symbol and runs:
            runs[-1][1] = t
        else:
            runs.append([t, t, int(symbol)])
    places = [lines.STRIDE * (first + last + 1) / 2 for first, last, _ in runs]
    bounds = [0]
    for left, right in zip(places, places[1:]):
        low, high = int(left), max(int(right), int(left) + 1)
        between = ink[low:high]
        quiet = np.flatnonzero(between <= between.min() + 1e-3)
        bounds.append(low + int(quiet[len(quiet) // 2]))
    bounds.append(len(ink))
    reads = []
    for (first, last, label), start, stop in zip(runs, bounds, bounds[1:]):
        window = probabilities[first : last + 1, :BLANK]
        sure = window[int(window[:, label].argmax())]
        reads.append(Read(label, sure / max(float(sure.sum()), 1e-12), start, stop))
    return reads


@dataclass
class Owners:
    """The line's blobs of ink and the digits they belong to: ``labels`` numbers each pixel's
    blob over the line's box (0 for paper; the box's corner is ``origin``), ``owner`` gives
    each label's digit (-1 for paper and for a blob two digits share), and ``boxes`` each
    digit's own blobs' box (top, left, bottom, right in working px), None for a digit whose
    ink meets a neighbour's."""

    origin: tuple[int, int]
    labels: np.ndarray
    owner: np.ndarray
    boxes: list

    def normalise(self, shapes: np.ndarray, index: int) -> np.ndarray:
        """Digit ``index``'s own blobs, and no other ink, as ``normalise`` makes a box's."""
        top, left, bottom, right = self.boxes[index]
        row, column = self.origin
        # One pixel of margin, as normalise takes, inside the line's box.
        above, before = max(top - 1, row), max(left - 1, column)
        below = min(bottom + 1, row + self.labels.shape[0])
        after = min(right + 1, column + self.labels.shape[1])
        mine = self.owner[self.labels[above - row : below - row, before - column : after - column]]
        return normalise(
            shapes[above:below, before:after],
            mine == index,
            (top - above, left - before, bottom - above, right - before),
        )


def own_marks(ink: lines.Ink, line: lines.LineImage, reads: list[Read]) -> Owners:
    """Which digit owns each blob of the line's ink: the one whose part of the line holds most
    of it, unless a second part holds more than SHARED of it (the digits' ink meets).

    Blobs are counted by their runs of ink along the rows, each run split at the parts' cuts,
    so the cost grows with the runs, not the pixels."""
    top, left, bottom, right = line.box
    labels, count, runs = raster.label_runs(ink.mask[top:bottom, left:right])
    if not count:
        return Owners((top, left), labels, np.array([-1]), [None] * len(reads))
    blob, row, start, stop = runs
    # Pixel column c (in the box) lies in the part after every cut it is past.
    cuts = [(read.start - line.pad) / line.factor for read in reads[1:]]
    edges = np.concatenate([[0], np.floor(np.array(cuts) - 0.5) + 1, [right - left]])
    inside = np.minimum(stop[:, None], edges[1:]) - np.maximum(start[:, None], edges[:-1])
    parts = len(reads)
    shares = np.bincount(
        (blob[:, None] * parts + np.arange(parts)).ravel(),
        np.maximum(inside, 0).ravel(),
        count * parts,
    ).reshape(count, parts)
    totals = shares.sum(axis=1)
    owner = shares.argmax(axis=1)
    mixed = totals - shares.max(axis=1) > SHARED * totals
    # A part is met by another digit's ink where a mixed blob lies in it.
    met = (shares[mixed] > SHARED * totals[mixed, None]).any(axis=0)
    owner[mixed] = -1
    boxes = []
    for index in range(parts):
        mine = owner[blob] == index  # its blobs' runs
        if met[index] or not mine.any():
            boxes.append(None)
            continue
        boxes.append(
            (
                top + int(row[mine].min()),
                left + int(start[mine].min()),
                top + int(row[mine].max()) + 1,
                left + int(stop[mine].max()),
            )
        )
    return Owners((top, left), labels, np.concatenate([[-1], owner]), boxes)


def thin(strokes: np.ndarray, mask: np.ndarray, height: float) -> np.ndarray:
    """A clean drawing's strokes thinned to MNIST's pen, once for the whole line, as
    ``framing._match_pen_width`` thins one digit (at 4x its 20 px box)."""
    scale = 4 * framing.DIGIT_BOX_SIDE / max(height, 1.0)  # working px to the 4x box's
    excess = pen_width(mask) * scale - 4 * framing.MNIST_PEN_WIDTH
    if excess <= 0:
        return strokes
    peel = excess / 2 + 0.5  # 4x-box px; ink deeper than this keeps its strokes' value
    inside = raster.distance_to_paper(np.pad(mask, 1), limit=peel / scale)[1:-1, 1:-1] * scale
    return np.minimum(strokes, np.clip(inside - excess / 2 + 0.5, 0.0, 1.0))


def digit_box(ink: lines.Ink, line: lines.LineImage, read: Read):
    """A digit's box (top, left, bottom, right in working px), its part of the line's ink
    tightened; None when that part holds no firm ink."""
    top, left, bottom, right = line.box
    low = left + max(0.0, (read.start - line.pad) / line.factor)
    high = left + (read.stop - line.pad) / line.factor
    low, high = max(int(np.floor(low)), left), min(int(np.ceil(high)), right)
    if high <= low:
        return None
    part = ink.mask[top:bottom, low:high]
    if not part.any():
        return None
    rows = np.flatnonzero(part.any(axis=1))
    columns = np.flatnonzero(part.any(axis=0))
    return (
        top + int(rows[0]),
        low + int(columns[0]),
        top + int(rows[-1]) + 1,
        low + int(columns[-1]) + 1,
    )


def normalise(shapes: np.ndarray, mask: np.ndarray, box) -> np.ndarray:
    """The ink in ``box`` as MNIST's 28x28, by the steps ``normalize_digit`` takes."""
    top, left, bottom, right = box
    # One pixel of margin: the ink's soft rim lies just outside the firm mask.
    above, before = max(top - 1, 0), max(left - 1, 0)
    below, after = min(bottom + 1, mask.shape[0]), min(right + 1, mask.shape[1])
    inside = np.zeros((below - above, after - before), bool)
    inside[top - above : bottom - above, left - before : right - before] = mask[
        top:bottom, left:right
    ]
    region = shapes[above:below, before:after] * images._dilate(inside)
    if not region.any():  # thinned away: the firm ink itself
        region = inside.astype(np.float64)
    if not region.any():
        region = np.ones((bottom - top, right - left))
    return images._center(images._fit_box(images._crop_to_ink(region)))
