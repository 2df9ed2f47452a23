"""Hosting the app: the listening socket, uvicorn, and worker processes.

Worker processes receive the command's ``ServeOptions`` whole, as JSON in an environment
variable (uvicorn starts each from an import string, so nothing else can be handed over).
"""

from __future__ import annotations

import os
import socket

from fastapi import FastAPI

from mnistlab.errors import MnistlabError
from mnistlab.predict import Predictor
from mnistlab.serve.app import create_app
from mnistlab.serve.options import ServeOptions

OPTIONS_VARIABLE = "MNISTLAB_SERVE_OPTIONS"


class ServeError(MnistlabError):
    """The server cannot start, e.g. its port is taken."""


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (0: any free port), bound here rather than by uvicorn so
    that a busy port is one clear error and the chosen port is known before serving.

    Raises:
        ServeError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ServeError(
            f"cannot listen on {host}:{port} ({error.strerror or error});"
            " pick another --port or --host"
        ) from None
    return listener


def url_of(listener: socket.socket) -> str:
    """The http:// URL of a bound socket."""
    host, port = listener.getsockname()[:2]
    if listener.family == socket.AF_INET6:
        return f"http://[{host}]:{port}/"
    return f"http://{host}:{port}/"


def run(listener: socket.socket, options: ServeOptions, predictor: Predictor | None = None) -> None:
    """Serve on ``listener`` with uvicorn until Ctrl-C (or SIGTERM); returns after a clean stop.

    Args:
        listener: a bound socket, from ``listen``.
        options: how to serve; with several ``workers``, each process loads its own copy of
            ``options.run_dir``'s model.
        predictor: the model, already loaded, for a single process; default: loaded here.
    """
    import uvicorn

    settings = dict(log_level="warning", access_log=False, timeout_graceful_shutdown=3)
    try:
        if options.workers == 1:
            app = create_app(options, predictor)
            uvicorn.Server(uvicorn.Config(app, **settings)).run(sockets=[listener])
        else:
            from uvicorn.supervisors import Multiprocess

            os.environ[OPTIONS_VARIABLE] = options.to_json()
            config = uvicorn.Config(
                f"{__name__}:app_from_environment",
                factory=True,
                workers=options.workers,
                **settings,
            )
            Multiprocess(config, sockets=[listener]).run()
    except KeyboardInterrupt:  # uvicorn has shut down gracefully, then re-raises Ctrl-C.
        pass


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process, built from the options ``run`` handed over."""
    return create_app(ServeOptions.from_json(os.environ[OPTIONS_VARIABLE]))
