"""What a run or audit records about where it came from: the library versions it ran on."""

from __future__ import annotations

import platform
from importlib import metadata


def library_versions() -> dict[str, str]:
    """Python's version, the Keras backend, and the version of each library that computed the
    results (those installed)."""
    import keras

    versions = {"python": platform.python_version(), "keras_backend": keras.backend.backend()}
    packages = ["mnistlab", "keras", keras.backend.backend(), "numpy", "scikit-learn"]
    packages += ["matplotlib", "seaborn", "pillow"]
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions
