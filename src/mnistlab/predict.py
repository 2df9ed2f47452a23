"""Read people's digit images with a trained run, through ONNX Runtime when the run has an
ONNX file (fast to start: no training framework is imported), else through Keras.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from mnistlab import runs
from mnistlab.data import to_model_input
from mnistlab.errors import ImageError, RunError
from mnistlab.images import load_image, normalize_digit

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
# Below this probability a prediction is reported as rejected rather than as a digit.
DEFAULT_MIN_CONFIDENCE = 0.5


def pretrained_dir() -> Path:
    """The run shipped inside the package (see src/mnistlab/pretrained/README.md)."""
    return Path(str(resources.files("mnistlab") / "pretrained"))


class Predictor:
    """A loaded model: class probabilities for MNIST-style uint8 digits of shape (N, 28, 28)."""

    def __init__(self, run_dir: Path, session=None, model=None):
        self.run_dir, self._session, self._model = Path(run_dir), session, model

    @property
    def engine(self) -> str:
        return "onnxruntime" if self._session is not None else "keras"

    @classmethod
    def from_run(cls, run_dir: str | Path | None = None) -> Predictor:
        """Load a run's model: ``model.onnx`` with ONNX Runtime if present, else ``model.keras``."""
        run_dir = Path(run_dir) if run_dir is not None else pretrained_dir()
        if not run_dir.is_dir():
            raise RunError(f"run directory {run_dir} does not exist")
        onnx_path = run_dir / runs.ONNX_FILE
        if onnx_path.is_file():
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            try:
                session = onnxruntime.InferenceSession(
                    str(onnx_path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as error:  # ONNX Runtime raises its own exception types.
                raise RunError(f"{onnx_path} cannot be loaded by ONNX Runtime ({error})") from None
            return cls(run_dir, session=session)
        return cls(run_dir, model=runs.load_model(run_dir))

    def probabilities(self, digits: np.ndarray) -> np.ndarray:
        """float32 (N, 10) for uint8 digits (N, 28, 28), through data.to_model_input."""
        if self._session is not None:
            name = self._session.get_inputs()[0].name
            return np.asarray(self._session.run(None, {name: to_model_input(digits)})[0])
        from mnistlab.train import predict_probabilities  # Keras is loaded already on this path.

        return predict_probabilities(self._model, digits)


@dataclass
class Prediction:
    """The model's reading of one file. ``rejected`` says why no digit is reported."""

    file: str
    label: int | None = None
    confidence: float | None = None
    probabilities: list[float] = field(default_factory=list)
    rejected: str | None = None
    digit: np.ndarray | None = field(default=None, repr=False)  # what the model saw

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "rejected": self.rejected,
        }


@dataclass
class FileError:
    """A file that could not be read as an image."""

    file: str
    message: str


def expand_paths(paths: Iterable[str | Path]) -> Iterator[Path | FileError]:
    """Files as given, and the image files inside folders (recursively, sorted)."""
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                yield FileError(str(path), "folder holds no image files")
            yield from found
        elif path.exists():
            yield path
        else:
            yield FileError(str(path), "no such file or folder")


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
        readable = [p for p in pending if p.digit is not None]
        if readable:
            probabilities = predictor.probabilities(np.stack([p.digit for p in readable]))
            for prediction, row in zip(readable, probabilities):
                label = int(row.argmax())
                prediction.label, prediction.confidence = label, float(row[label])
                prediction.probabilities = [float(value) for value in row]
                if prediction.confidence < min_confidence:
                    prediction.rejected = (
                        f"confidence {prediction.confidence:.3f} is below {min_confidence}"
                    )
        yield from pending
        pending.clear()

    for item in expand_paths(paths):
        if isinstance(item, FileError):
            yield from flush()
            yield item
            continue
        try:
            image = load_image(item)
        except ImageError as error:
            yield from flush()
            yield FileError(str(item), str(error))
            continue
        prediction = Prediction(file=str(item))
        try:
            prediction.digit = normalize_digit(image)
        except ImageError as error:  # A readable image with no digit in it: a rejection.
            prediction.rejected = str(error)
        pending.append(prediction)
        if len(pending) >= batch_size:
            yield from flush()
    yield from flush()


def save_preview(prediction: Prediction, folder: Path, index: int) -> Path | None:
    """Write the 28x28 image the model saw as a PNG; None when there was none."""
    if prediction.digit is None:
        return None
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(prediction.digit, mode="L").save(buffer, format="PNG")
    stem = Path(prediction.file).stem
    path = Path(folder) / f"{index:04d}-{stem}.png"
    runs.write_png(path, buffer.getvalue())
    return path


__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "FileError",
    "Prediction",
    "Predictor",
    "expand_paths",
    "predict_files",
    "pretrained_dir",
    "save_preview",
]
