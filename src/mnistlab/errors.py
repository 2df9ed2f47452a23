"""The one family of errors mnistlab raises for problems a user can fix.

The CLI prints such an error as one line and exits non-zero; anything else is a bug.
"""


class MnistlabError(Exception):
    """Base class: a problem with the user's input, data or environment."""


class ConfigError(MnistlabError, ValueError):
    """A configuration value is out of range or of the wrong kind."""


class DataError(MnistlabError):
    """A dataset file is missing, corrupt, truncated or cannot be fetched."""


class RunError(MnistlabError):
    """A run directory is missing, incomplete or unreadable."""


class CheckpointMismatch(RunError):
    """A run's checkpoint holds weights of another network than its config now builds."""


class ImageError(MnistlabError):
    """A user's image cannot be read or holds no digit."""


class UnsupportedImage(ImageError):
    """The data is in no image format mnistlab reads (the message lists those it reads)."""
