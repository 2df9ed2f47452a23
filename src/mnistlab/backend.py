"""Which Keras backend a process trains on, chosen per model before Keras is imported.

Measured on a 2-core AVX-512 CPU (bench/bench_train.py, bench/bench_conv.py): XLA fuses the
seed MLP's small layers, so JAX trains it fastest and imports in a fraction of TensorFlow's time;
oneDNN's convolutions make TensorFlow the faster one for cnn and cnn-best, while XLA runs
cnn-fast's strided convolutions faster (bench/conv_backends.py).
``KERAS_BACKEND`` set by the user always wins. Imports nothing heavy itself.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from mnistlab.data import cache_dir

MODEL_BACKENDS = {
    "seed-mlp": "jax",
    "cnn": "tensorflow",
    "cnn-best": "tensorflow",
    "cnn-fast": "jax",  # XLA trained it 3.2x faster than TensorFlow on a 2-core AVX2 CPU.
}
DEFAULT_BACKEND = "tensorflow"


def jax_cache_dir() -> Path:
    """JAX's persistent compilation cache: compiled steps survive between runs (about 1 s saved
    per seed-mlp run). JAX reads entries whole and treats an unreadable one as a miss."""
    return cache_dir() / "jax"


def choose(model: str | None) -> str:
    """Set ``KERAS_BACKEND`` for ``model`` unless the user set it; return the backend name.

    Must run before the first ``import keras`` (Keras reads the variable once); after that it
    only reports the backend already in use.
    """
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend()
    name = os.environ.get("KERAS_BACKEND") or MODEL_BACKENDS.get(model or "", DEFAULT_BACKEND)
    if name == "jax" and importlib.util.find_spec("jax") is None:
        name = DEFAULT_BACKEND  # A TensorFlow-only install still trains every model.
    os.environ["KERAS_BACKEND"] = name
    if name == "jax":
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(jax_cache_dir()))
        # Cache every compiled function: the seed model's steps each compile in well under
        # JAX's default threshold of 1 s, yet together they are most of its start-up.
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    return name


# Libraries Keras imports only to offer features mnistlab does not use, each skipped when
# missing: scikit-learn (wrappers), matplotlib's pyplot (keras.visualization), pandas (fit on
# DataFrames) and IPython: over a second of `import keras` on JAX. (Keras imports requests
# too, but TensorFlow needs it.)
OPTIONAL_FOR_KERAS = ("sklearn", "matplotlib", "pandas", "IPython")


@contextlib.contextmanager
def optional_imports_deferred() -> Iterator[None]:
    """While inside, importing any of ``OPTIONAL_FOR_KERAS`` fails as if it were not installed;
    after, each imports normally.

    Wrapped around ``import keras``, this takes them off the start-up path: Keras builds those
    features without them, and mnistlab imports scikit-learn, matplotlib and pandas only where
    it evaluates and draws (in the figure workers, when they run).
    """
    deferred = [name for name in OPTIONAL_FOR_KERAS if name not in sys.modules]
    for name in deferred:
        sys.modules[name] = None  # type: ignore[assignment]  # Python's "not importable" marker.
    try:
        yield
    finally:
        for name in deferred:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


@contextlib.contextmanager
def tensorflow_left_alone() -> Iterator[None]:
    """While inside, Keras does not import TensorFlow just to ask whether it is installed.

    ``keras.utils.set_random_seed`` and ``model.save`` ask (via a lazy module's ``available``),
    which imports TensorFlow (1.7 s) even on JAX, only to seed it or to test objects against
    TensorFlow types. When TensorFlow is not imported, no object can be one and nothing uses its
    seed, so answering "not available" changes no result.
    """
    from keras.src.utils import module_utils  # Keras's own lazy handle on TensorFlow.

    lazy = module_utils.tensorflow
    if "tensorflow" in sys.modules or lazy._available is not None:
        yield
        return
    lazy._available = False
    try:
        yield
    finally:
        lazy._available = None
