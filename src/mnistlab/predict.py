"""Read people's digit images with a trained run, through ONNX Runtime when the run has an
ONNX file (fast to start: no training framework is imported), else through Keras.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnistlab import extras, fileio, runs
from mnistlab.data import NUM_CLASSES, to_model_input
from mnistlab.errors import ImageError, RunError
from mnistlab.images import is_solid_blob, load_image, looks_like_several_digits, normalize_digit

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
# Below this probability the best guess is still given, flagged ``uncertain``.
DEFAULT_MIN_CONFIDENCE = 0.5
# Above this "not a digit" score (models with the head, see notdigit.py) the image is refused.
DEFAULT_NOT_DIGIT_THRESHOLD = 0.5
NOT_A_DIGIT = (
    "not a digit: this looks like a mark, a line, letters, a shape, a scribble or several"
    " digits, not one handwritten digit"
)


SOLID_BLOB = "not a digit: a filled shape, not the strokes of a digit"
SEVERAL_DIGITS = (
    "not a digit: several digits side by side; read a number with `mnistlab read`"
    " (on the page: A number)"
)


def split_outputs(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A model's output as (digit probabilities (N, 10), not-a-digit scores (N,) or None).

    A model with the not-a-digit head (notdigit.py) has an eleventh column; others have ten.
    """
    raw = np.asarray(raw)
    if raw.shape[-1] == NUM_CLASSES + 1:
        return raw[:, :NUM_CLASSES], raw[:, NUM_CLASSES]
    return raw, None


def pretrained_dir() -> Path:
    """The run shipped inside the package (see src/mnistlab/pretrained/README.md)."""
    return Path(str(resources.files("mnistlab") / "pretrained"))


class Predictor:
    """A loaded model: class probabilities for MNIST-style uint8 digits of shape (N, 28, 28)."""

    def __init__(
        self,
        run_dir: Path,
        session=None,
        model=None,
        not_digit_threshold: float = DEFAULT_NOT_DIGIT_THRESHOLD,
    ):
        self.run_dir, self._session, self._model = Path(run_dir), session, model
        # The run's own operating point for its not-a-digit head (runs.NOT_DIGIT_FILE).
        self.not_digit_threshold = not_digit_threshold
        # ONNX Runtime sessions may run from many threads at once (a server's); Keras models
        # are not documented to, so their calls take turns.
        self._keras_lock = threading.Lock()

    @property
    def engine(self) -> str:
        return "onnxruntime" if self._session is not None else "keras"

    @classmethod
    def from_run(cls, run_dir: str | Path | None = None, threads: int | None = None) -> Predictor:
        """Load a run's model: ``model.onnx`` with ONNX Runtime if present, else ``model.keras``.

        ``threads`` caps ONNX Runtime's threads per call (default: one per core). A server
        answering many one-image requests at once does better with 1: the requests themselves
        run in parallel, and one image is too little work to split.
        """
        run_dir = Path(run_dir) if run_dir is not None else pretrained_dir()
        if not run_dir.is_dir():
            raise RunError(f"run directory {run_dir} does not exist")
        run = runs.Run(run_dir)
        head = run.read_not_digit()
        not_digit_threshold = head["threshold"] if head else DEFAULT_NOT_DIGIT_THRESHOLD
        onnx_path = run.onnx_path
        if onnx_path.is_file():
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            if threads is not None:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = threads
            try:
                session = onnxruntime.InferenceSession(
                    str(onnx_path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as error:  # ONNX Runtime raises its own exception types.
                raise RunError(f"{onnx_path} cannot be loaded by ONNX Runtime ({error})") from None
            return cls(run_dir, session=session, not_digit_threshold=not_digit_threshold)
        if run.model_path.is_file():  # Else load_model says what is missing.
            what = f"{run_dir} has no {onnx_path.name}: reading its {run.model_path.name}"
            extras.require("train", what)
        return cls(run_dir, model=run.load_model(), not_digit_threshold=not_digit_threshold)

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """float32 (N, 10) for uint8 digits (N, 28, 28), through data.to_model_input."""
        return self.scores(digits)[0]

    def scores(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Digit probabilities (N, 10) and, for a model with the not-a-digit head, the
        probability (N,) that each image holds no single digit (else None)."""
        if self._session is not None:
            name = self._session.get_inputs()[0].name
            return split_outputs(self._session.run(None, {name: to_model_input(digits)})[0])
        from mnistlab.inference import model_outputs  # Keras is loaded already on this path.

        with self._keras_lock:
            return split_outputs(model_outputs(self._model, digits))


@dataclass
class Prediction:
    """The model's reading of one image.

    When a digit is found, ``label`` is the best guess and ``confidence`` its probability;
    ``uncertain`` flags a guess less sure than the threshold. ``rejected`` says why the image
    holds no digit (nothing digit-like in it, or not a digit); then ``label`` is None, while
    ``confidence`` and ``probabilities`` still give what the model made of it, if it saw it.
    ``not_digit`` is the model's probability that the image holds no single digit (None for a
    model without that head).
    """

    file: str | None
    label: int | None = None
    confidence: float | None = None
    probabilities: list[float] = field(default_factory=list)
    uncertain: bool = False
    rejected: str | None = None
    not_digit: float | None = None
    digit: np.ndarray | None = field(default=None, repr=False)  # what the model saw

    def to_dict(self) -> dict:
        """The fields of ``mnistlab predict --json`` (the API adds ``preview_png_base64``)."""
        return {
            "file": self.file,
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "uncertain": self.uncertain,
            "rejected": self.rejected,
            "not_digit": self.not_digit,
        }

    def preview_png(self) -> bytes | None:
        """The 28x28 image the model saw, as PNG bytes; None when it saw none."""
        return digit_png(self.digit)


def digit_png(digit: np.ndarray | None) -> bytes | None:
    """A 28x28 uint8 digit as PNG bytes; None for none."""
    if digit is None:
        return None
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(digit, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class FileError:
    """A file that could not be read as an image. ``message`` does not repeat the path."""

    file: str | None
    message: str


def expand_paths(paths: Iterable[str | Path]) -> Iterator[Path | FileError]:
    """Files as given, and the image files inside folders (recursively, sorted)."""
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                yield FileError(str(path), "folder holds no image files")
            yield from found
        elif path.exists():
            yield path
        else:
            yield FileError(str(path), "no such file or folder")


def read_digit(
    source: bytes | Path | Image.Image, file: str | None = None
) -> Prediction | FileError:
    """Decode one image (bytes, a path, or ``images.open_image``'s) and normalise it as MNIST was.

    This is the one path from an image to what the model sees, shared by ``mnistlab predict``
    and ``mnistlab serve``. Returns a FileError when the data is not a readable image, else a
    Prediction holding the 28x28 ``digit``, or ``rejected`` when no digit-like ink was found.
    """
    try:
        image = load_image(source)
    except ImageError as error:
        # load_image names its source ("image data" or the path; an opened image it does not
        # name); the caller says the file once, so the reason is kept without it.
        label = "image data" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
        return FileError(file, str(error).removeprefix(f"{label}: "))
    prediction = Prediction(file=file)
    try:
        prediction.digit = normalize_digit(image)
    except ImageError as error:  # A readable image with no digit in it: a rejection.
        prediction.rejected = str(error)
        return prediction
    if is_solid_blob(prediction.digit):  # Whatever the model makes of it: no digit is solid.
        prediction.rejected = SOLID_BLOB
    elif looks_like_several_digits(prediction.digit):
        prediction.rejected = SEVERAL_DIGITS
    return prediction


def classify(
    predictions: list[Prediction],
    predictor: Predictor,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    not_digit_threshold: float | None = None,
) -> None:
    """Fill in label, confidence and probabilities, in one model call for all of them.

    A prediction less sure than ``min_confidence`` keeps its label and is flagged
    ``uncertain``; an image the model's not-a-digit head scores above ``not_digit_threshold``
    is rejected (its label stays None); by default the predictor's own threshold.
    """
    if not_digit_threshold is None:
        not_digit_threshold = predictor.not_digit_threshold
    readable = [p for p in predictions if p.digit is not None]
    if not readable:
        return
    probabilities, not_digit = predictor.scores(np.stack([p.digit for p in readable]))
    for position, (prediction, row) in enumerate(zip(readable, probabilities)):
        best = int(row.argmax())
        prediction.confidence = float(row[best])
        prediction.probabilities = [float(value) for value in row]
        prediction.uncertain = prediction.confidence < min_confidence
        if not_digit is not None:
            prediction.not_digit = float(not_digit[position])
            if prediction.rejected is None and prediction.not_digit >= not_digit_threshold:
                prediction.rejected = NOT_A_DIGIT
        if prediction.rejected is None:
            prediction.label = best


def predict_bytes(
    data: bytes,
    predictor: Predictor,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    file: str | None = None,
) -> Prediction:
    """Read, normalise and classify one image given as bytes (an upload, a canvas PNG).

    Raises:
        ImageError: the bytes are not a readable image (empty, not an image, truncated, too big).
    """
    prediction = read_digit(data, file)
    if isinstance(prediction, FileError):
        raise ImageError(prediction.message)
    classify([prediction], predictor, min_confidence)
    return prediction


def predict_files(
    paths: Iterable[str | Path],
    predictor: Predictor,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    batch_size: int = 256,
) -> Iterator[Prediction | FileError]:
    """Read, normalise and classify each image; yield a Prediction or a FileError per file,
    in order. Images are classified in batches so a folder of thousands stays fast."""
    pending: list[Prediction] = []

    def flush() -> Iterator[Prediction]:
        classify(pending, predictor, min_confidence)
        yield from pending
        pending.clear()

    for item in expand_paths(paths):
        if isinstance(item, Path):
            item = read_digit(item, str(item))
        if isinstance(item, FileError):
            yield from flush()
            yield item
            continue
        pending.append(item)
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()


def save_preview(prediction: Prediction, folder: Path, index: int) -> Path | None:
    """Write the 28x28 image the model saw as a PNG; None when there was none."""
    png = prediction.preview_png()
    if png is None:
        return None
    stem = Path(prediction.file or "image").stem
    path = Path(folder) / f"{index:04d}-{stem}.png"
    fileio.write_png(path, png)
    return path


__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "DEFAULT_NOT_DIGIT_THRESHOLD",
    "NOT_A_DIGIT",
    "FileError",
    "Prediction",
    "Predictor",
    "classify",
    "expand_paths",
    "predict_bytes",
    "predict_files",
    "pretrained_dir",
    "read_digit",
    "save_preview",
    "split_outputs",
]
