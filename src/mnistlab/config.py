"""One typed, frozen configuration for a run; its defaults are the seed notebook's."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnistlab.errors import ConfigError

DATASETS = ("mnist", "fashion-mnist")
# The models mnistlab can build; models.py holds one builder for each name.
MODEL_NAMES = ("seed-mlp", "cnn", "cnn-best", "cnn-fast")
LR_SCHEDULES = ("constant", "cosine")
# MNIST centres each digit's 20x20 box in the 28x28 image: 4 pixels of margin on every side.
MAX_SHIFT_PIXELS = 4

# Each model's own best-practice settings, applied by Config.for_model; flags override them.
# The convolutional models train in bfloat16 (float32 weights) where the CPU computes it natively
# (AVX512-BF16 or AMX): measured on such a 2-core CPU, an epoch of cnn-best took ~50 s instead of
# ~105 s in float32. Elsewhere bfloat16 is emulated and slower than float32 (on a 2-core AVX-512
# Xeon without BF16, cnn-best 3.4x; bench/conv_backends.py), so "auto" (resolved by
# Config.for_model) picks float32 there.
MODEL_DEFAULTS: dict[str, dict] = {
    "seed-mlp": {},
    # Eight epochs on images shifted by up to a pixel, after a warm-up: seeds 0-5 reached
    # 99.50-99.60% in 78-84 s whole on a 2-core AVX-512 CPU, where 15 epochs without them (at
    # 0.002) reached 99.48% in 140 s.
    "cnn": {
        "epochs": 8,
        "batch_size": 128,
        "learning_rate": 0.003,
        "lr_schedule": "cosine",
        "warmup_epochs": 0.25,
        "shift_pixels": 1,
        "mixed_precision": "auto",
        "checkpoint": True,
    },
    "cnn-best": {
        "augment": True,
        "epochs": 40,
        "batch_size": 128,
        "learning_rate": 0.002,
        "lr_schedule": "cosine",
        "mixed_precision": "auto",
        "checkpoint": True,
    },
    # Tuned for time to 99%: two epochs at a high learning rate, reached after a warm-up, on
    # images shifted by up to a pixel. `mnistlab train` (JAX, float32), seeds 0-7: 99.10-99.22%
    # test accuracy in 7.4-11.7 s whole on a 2-core AVX-512 CPU (bench/bench_conv.py).
    "cnn-fast": {
        "epochs": 2,
        "batch_size": 128,
        "learning_rate": 0.01,
        "lr_schedule": "cosine",
        "warmup_epochs": 0.25,
        "shift_pixels": 1,
    },
}

# What every saved model takes and gives, written into each config.json beside the settings
# (a record for whoever loads model.keras or model.onnx without mnistlab; never read back).
MODEL_INPUT = {
    "shape": "(N, 784) float32: each 28x28 image flattened row by row",
    "scale": "0 to 1: pixel value / 255 (mnistlab.data.to_model_input)",
    "polarity": "white ink (1) on a black background (0), as in MNIST",
    "framing": "the digit's longest side 20 px, centred by mass in 28x28, as in MNIST;"
    " mnistlab.images.to_mnist_batch does this for any image file",
    "output": "(N, 10) float32: the probabilities of the digits 0 to 9",
}

# Fields only `mnistlab audit` reads: a training run's config.json has them too, but they
# decide nothing there, so its report and `compare` leave them out.
AUDIT_ONLY = ("folds",)

# `mnistlab audit` trains one model per fold and needs good, not best, out-of-sample
# probabilities, so the convolutional models train fewer epochs there (with the cosine schedule
# fitted to them). Measured on a 2-core AVX2 CPU in float32: a cnn epoch on 56,000 images takes
# ~30 s, so 5 folds of its 15 epochs took over 40 minutes; 4 epochs keep the audit under 20.
AUDIT_EPOCHS: dict[str, int] = {"cnn-fast": 4, "cnn": 4, "cnn-best": 4}
# The audit's default model: cnn-fast (4 epochs, test-time shifts) ranked 13-15 of the 15
# published MNIST test errors in its top 100 where seed-mlp ranked 7, in about 6x the time of a
# default `mnistlab train` (README, "Auditing a dataset"; bench/audit_rankings.py).
AUDIT_MODEL = "cnn-fast"
# Images of each split in the audit's review queue (candidates.csv).
AUDIT_REVIEW = 100


@dataclass(frozen=True)
class Config:
    """Everything that decides what a training run computes.

    Saved as ``config.json`` in every run directory, so a run can be rebuilt from it alone.
    """

    # Model and data.
    model: str = "seed-mlp"
    dataset: str = "mnist"
    # Optimisation: the seed notebook trains 10 epochs of batch 512 with Adam's default rate.
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 0.001
    # "cosine" decays the rate to 1% of its start over all training steps.
    lr_schedule: str = "constant"
    # Epochs (a fraction is fine) over which the rate first rises linearly from 0 to
    # learning_rate, then follows lr_schedule for the rest: a high rate at once can derail training.
    warmup_epochs: float = 0.0
    # Train in bfloat16 with float32 weights; the saved model is float32 either way.
    mixed_precision: bool = False
    # Random rotations (up to 10 degrees), shifts and zooms (up to 10%) of each training image,
    # drawn afresh every epoch; inactive at inference and left out of an exported model.
    augment: bool = False
    # Move each training image by a random whole number of pixels, up to this many each way,
    # drawn afresh every epoch as the batches are taken (in NumPy: cheap, and on any backend).
    shift_pixels: int = 0
    # How many training digits are added a second time as canvas drawings (drawings.py: the
    # digit's skeleton drawn with a round brush of random width, read by normalize_digit as
    # `mnistlab serve` reads a canvas), so the model learns how people's drawings look.
    drawings: int = 0
    # Start from this run directory's trained weights instead of random ones (fine-tuning,
    # e.g. the shipped model on drawings). The run must hold the same model.
    init_from: str | None = None
    # Save a checkpoint after every epoch, so an interrupted run resumes (`train --resume DIR`).
    checkpoint: bool = False
    # Write model.onnx beside model.keras when training ends, so `predict` and `serve` run the
    # model on ONNX Runtime (fast to start); off saves the export's seconds (sweeps, tests).
    export_onnx: bool = True
    # Fraction of the training set held out (chosen by the seed) and scored every epoch; 0
    # trains the final model on every image, with no validation score (sweeps need one).
    validation_split: float = 0.1
    # Above 0, Adam keeps an exponential moving average of the weights with this momentum
    # (0.999: about the last 1,000 steps); validation scores it and the run saves it instead of
    # the last step's weights. 0 saves the last step's weights.
    ema_momentum: float = 0.0
    # The rate of every dropout layer, in place of the model's own (seed-mlp 0.25, cnn 0.3,
    # cnn-best 0.4; cnn-fast has none); None keeps the model's own.
    dropout: float | None = None
    seed: int = 0
    # Evaluation: how many of the most confident mistakes to show.
    top_errors: int = 10
    # Use only the first N training / test images (quick experiments and tests); None = all.
    train_limit: int | None = None
    test_limit: int | None = None
    # Training images left out (`train --exclude label_issues.csv`): the CSV as given, how many
    # of its train rows were dropped and a hash of their sorted indices, so a run can be
    # repeated exactly and `compare` shows the difference.
    exclude: str | None = None
    excluded_count: int = 0
    excluded_sha256: str | None = None
    # Cross-validation folds of `mnistlab audit` (each image scored by a model that never saw it).
    folds: int = 5

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ConfigError(
                f"unknown model {self.model!r}; expected one of {', '.join(MODEL_NAMES)}"
            )
        if self.dataset not in DATASETS:
            raise ConfigError(
                f"unknown dataset {self.dataset!r}; expected one of {', '.join(DATASETS)}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"unknown lr_schedule {self.lr_schedule!r}; expected one of {', '.join(LR_SCHEDULES)}"
            )
        for name in ("mixed_precision", "checkpoint", "augment", "export_onnx"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"{name} must be true or false; received: {getattr(self, name)!r}"
                )
        _check_int("epochs", self.epochs, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        _check_int("top_errors", self.top_errors, minimum=0)
        _check_int("excluded_count", self.excluded_count, minimum=0)
        _check_int("folds", self.folds, minimum=2)
        _check_int("drawings", self.drawings, minimum=0)
        _check_int("shift_pixels", self.shift_pixels, minimum=0)
        if self.shift_pixels > MAX_SHIFT_PIXELS:
            raise ConfigError(
                f"shift_pixels must be at most {MAX_SHIFT_PIXELS} (MNIST's margin around each"
                f" digit); received: {self.shift_pixels}"
            )
        for name in ("exclude", "excluded_sha256", "init_from"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string; received: {getattr(self, name)!r}")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value, minimum=1)
        if not isinstance(self.learning_rate, (int, float)) or not 0 < self.learning_rate <= 10:
            raise ConfigError(
                f"learning_rate must be a number in (0, 10]; received: {self.learning_rate!r}"
            )
        _check_fraction("validation_split", self.validation_split)
        _check_fraction("ema_momentum", self.ema_momentum)
        if self.dropout is not None:
            _check_fraction("dropout", self.dropout)
        if (
            isinstance(self.warmup_epochs, bool)
            or not isinstance(self.warmup_epochs, (int, float))
            or not 0 <= self.warmup_epochs < self.epochs
        ):
            raise ConfigError(
                f"warmup_epochs must be a number from 0 to fewer than the {self.epochs} epochs;"
                f" received: {self.warmup_epochs!r}"
            )

    @classmethod
    def for_model(cls, model: str = "seed-mlp", **changes: Any) -> Config:
        """The config a model trains best with by default (the seed's for seed-mlp)."""
        if model not in MODEL_DEFAULTS:
            raise ConfigError(f"unknown model {model!r}; expected one of {', '.join(MODEL_NAMES)}")
        defaults = dict(MODEL_DEFAULTS[model])
        if defaults.get("mixed_precision") == "auto":
            defaults["mixed_precision"] = cpu_has_native_bfloat16()
        return cls(model=model, **defaults).replace(**changes)

    @classmethod
    def for_audit(cls, model: str = "seed-mlp", **changes: Any) -> Config:
        """The config ``mnistlab audit`` trains each fold with: the model's own, with
        ``AUDIT_EPOCHS`` for the slow ones; flags (``changes``) override both."""
        given = {name: value for name, value in changes.items() if value is not None}
        return cls.for_model(model, **{"epochs": AUDIT_EPOCHS.get(model), **given})

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed; None values mean 'keep'."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """The settings, then ``model_input`` (MODEL_INPUT): config.json as written."""
        return {**dataclasses.asdict(self), "model_input": MODEL_INPUT}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        if not isinstance(values, dict):
            raise ConfigError(f"a config must be a JSON object; received: {type(values).__name__}")
        values = {key: value for key, value in values.items() if key != "model_input"}
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}"
            )
        if "augment" not in values and values.get("model") in MODEL_DEFAULTS:
            # Configs written before `augment` existed: cnn-best always augmented.
            values = {**values, "augment": MODEL_DEFAULTS[values["model"]].get("augment", False)}
        try:
            return cls(**values)
        except TypeError as error:  # e.g. a string where a number belongs, caught by a comparison
            raise ConfigError(f"invalid config: {error}") from None

    @classmethod
    def from_json_file(cls, path: Path) -> Config:
        try:
            values = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(f"config file {path} is not readable JSON: {error}") from None
        return cls.from_dict(values)


def cpu_has_native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has bfloat16 instructions (x86 AVX512-BF16 or AMX-BF16), read from
    Linux's /proc/cpuinfo; False where that cannot be read."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; received: {value!r}")


def _check_fraction(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{name} must be a number in [0, 1); received: {value!r}")
