"""``ServeOptions``: everything ``mnistlab serve`` was asked for, in one frozen value that the
app, the host and each worker process receive whole."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from mnistlab.predict import DEFAULT_MIN_CONFIDENCE

DEFAULT_MAX_UPLOAD_MB = 10.0
# Requests in flight per worker, at most, before more are answered 503: a canvas takes a few
# ms, so 32 queued is a fraction of a second of work, not a pile-up. While clients are being
# turned away the bound is shorter (traffic.Admission).
DEFAULT_MAX_IN_FLIGHT = 32
# Seconds an upload may stall (no bytes arriving) before it is answered 408 and its slot freed.
DEFAULT_READ_TIMEOUT = 15.0


@dataclass(frozen=True)
class ServeOptions:
    """How to serve.

    Args:
        run_dir: the run whose model answers; None: the model shipped with mnistlab.
        host: the address to listen on.
        port: the port to listen on (0: any free port).
        workers: worker processes, each with its own copy of the model.
        max_upload_mb: the largest request body accepted, in MiB.
        cors_origins: web origins allowed to call the API from their pages.
        min_confidence: predictions less sure than this are flagged ``uncertain``.
        max_in_flight: image requests handled at once per worker, at most; more get 503 at
            once, and fewer are let in while clients are being turned away.
        read_timeout: seconds an upload may send nothing before it gets 408.
    """

    run_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    cors_origins: tuple[str, ...] = ()
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    read_timeout: float = DEFAULT_READ_TIMEOUT

    def __post_init__(self) -> None:
        # Normalised here, so that a value read back from JSON equals the one written.
        if self.run_dir is not None:
            object.__setattr__(self, "run_dir", Path(self.run_dir))
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))

    @property
    def upload_limit(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    def to_json(self) -> str:
        """These options as JSON, for a worker process; ``from_json`` reads them back."""
        fields = dataclasses.asdict(self)
        fields["run_dir"] = None if self.run_dir is None else str(self.run_dir)
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        return cls(**json.loads(text))
