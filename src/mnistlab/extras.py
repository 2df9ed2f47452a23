"""The optional parts of the install (pyproject.toml's extras) and the one-line error for a
command whose extra is missing. The core install only reads digits (predict, serve) on ONNX
Runtime; training, audits and sweeps need their extra."""

from __future__ import annotations

import importlib.util

from mnistlab.errors import MnistlabError

# The top-level modules each extra provides, as imported (scikit-learn is sklearn).
_TRAIN = ("keras", "jax", "tensorflow", "onnx", "tf2onnx", "sklearn", "matplotlib", "seaborn")
MODULES = {
    "train": _TRAIN,
    "audit": (*_TRAIN, "cleanlab"),
    "sweep": (*_TRAIN, "ray"),
}


class MissingExtra(MnistlabError):
    """An optional dependency is not installed; the message names the extra to install."""


def message(what: str, extra: str) -> str:
    return f'{what} needs the {extra!r} extra: pip install "mnistlab[{extra}]"'


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (found without importing them)."""
    return [name for name in MODULES[extra] if importlib.util.find_spec(name) is None]


def require(extra: str, what: str) -> None:
    """Raise MissingExtra, saying ``what`` needs ``extra``, unless all its modules are here."""
    if missing(extra):
        raise MissingExtra(message(what, extra))


def extra_of(module: str | None) -> str | None:
    """The smallest extra that provides ``module`` (a dotted name), or None for other modules."""
    top = (module or "").partition(".")[0]
    for extra in ("train", "audit", "sweep"):
        if top in MODULES[extra]:
            return extra
    return None
