"""mnistlab: handwritten-digit classification as real software.

Importing the package is cheap; Keras loads only when a model is built or trained.
"""

from mnistlab.config import Config
from mnistlab.errors import ConfigError, DataError, ImageError, MnistlabError, RunError

__version__ = "0.2.0"
__all__ = [
    "Config",
    "ConfigError",
    "DataError",
    "ImageError",
    "MnistlabError",
    "RunError",
    "__version__",
]
