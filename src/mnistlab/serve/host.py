"""Hosting the app: the listening socket, uvicorn, and worker processes.

Worker processes receive the command's ``ServeOptions`` whole, as JSON in an environment
variable (uvicorn starts each from an import string, so nothing else can be handed over). Each
worker listens on a socket of its own on the same port (SO_REUSEPORT), so that the kernel spreads
new connections over the workers: on one shared socket, a worker that is waiting accepts every
connection waiting, and connections opened together (a client's pool, a proxy's) all land on it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import tempfile
import threading

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from mnistlab.errors import MnistlabError
from mnistlab.predict import Predictor
from mnistlab.serve.app import create_app
from mnistlab.serve.options import ServeOptions
from mnistlab.serve.protocol import RefusingHttpProtocol
from mnistlab.serve.traffic import MULTIPROCESS_VARIABLE

OPTIONS_VARIABLE = "MNISTLAB_SERVE_OPTIONS"
# Seconds that requests in flight get to finish after Ctrl-C or SIGTERM; new ones are refused.
GRACEFUL_SECONDS = 10


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


def exposure_warning(host: str) -> str | None:
    """One line for an address other machines can reach; None for a loopback one."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # A host name: it may resolve to anything.
        loopback = False
    if loopback:
        return None
    return (
        f"warning: listening on {host}: other machines can reach this server; put it behind"
        " a reverse proxy with TLS to expose it (docs/serving.md, Operators)"
    )


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
    settings = dict(
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        http=RefusingHttpProtocol,
    )
    metrics_dir = None
    previous = None
    if threading.current_thread() is threading.main_thread():
        # uvicorn stops gracefully on SIGTERM, then raises it again: stop as Ctrl-C does.
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if options.workers == 1:
            app = create_app(options, predictor)
            uvicorn.Server(uvicorn.Config(app, **settings)).run(sockets=[listener])
        else:
            os.environ[OPTIONS_VARIABLE] = options.to_json()
            if not os.environ.get(MULTIPROCESS_VARIABLE):
                # Each worker writes its metrics here; /metrics sums them (prometheus-client).
                metrics_dir = tempfile.mkdtemp(prefix="mnistlab-metrics-")
                os.environ[MULTIPROCESS_VARIABLE] = metrics_dir
            config = uvicorn.Config(
                f"{__name__}:app_from_environment",
                factory=True,
                workers=options.workers,
                **settings,
            )
            anchor = _shared_port(listener)
            try:
                Supervisor(config, sockets=[anchor]).run()
            finally:
                anchor.close()
    except KeyboardInterrupt:  # uvicorn has shut down gracefully, then re-raises Ctrl-C.
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if metrics_dir is not None:
            os.environ.pop(MULTIPROCESS_VARIABLE, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _shared_port(listener: socket.socket) -> socket.socket:
    """``listener``'s address, bound again with SO_REUSEPORT (never listening: it holds the port
    while workers come and go); the workers' sockets join it. ``listen`` binds without it, so a
    second server on a port this one holds is still refused.

    Raises:
        ServeError: the port was taken in between.
    """
    address = listener.getsockname()
    listener.close()  # Bound, never listening: no connection is waiting on it.
    try:
        return _reuse_port_socket(listener.family, address)
    except OSError as error:
        raise ServeError(
            f"cannot listen on port {address[1]} ({error.strerror or error})"
        ) from None


def _reuse_port_socket(family: int, address: tuple) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class Supervisor(Multiprocess):
    """uvicorn's supervisor, which replaces a worker that died (checked every half second).
    Here each worker it starts gets a socket of its own on the shared port, and a dead worker's
    in-flight gauge is dropped from the shared metrics."""

    # uvicorn reads ``self.sockets`` each time it starts a worker: each read binds a new socket.
    # The worker receives a duplicate; this process closes its own once the worker has started,
    # so that a dead worker's socket leaves the port with it rather than hold connections.
    @property
    def sockets(self) -> list[socket.socket]:
        anchor = self._anchor
        own = _reuse_port_socket(anchor.family, anchor.getsockname())
        self._handed.append(own)
        return [own]

    @sockets.setter
    def sockets(self, sockets: list[socket.socket]) -> None:
        self._anchor, self._handed = sockets[0], []

    def _close_handed(self) -> None:
        for sock in self._handed:
            sock.close()
        self._handed.clear()

    def init_processes(self) -> None:
        super().init_processes()
        self._close_handed()

    def restart_all(self) -> None:
        super().restart_all()
        self._close_handed()

    def handle_ttin(self) -> None:
        super().handle_ttin()
        self._close_handed()

    def keep_subprocess_alive(self) -> None:
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        self._close_handed()
        gone = before - {process.pid for process in self.processes}
        if gone and os.environ.get(MULTIPROCESS_VARIABLE):
            from prometheus_client import multiprocess

            for pid in gone:
                multiprocess.mark_process_dead(pid)


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process, built from the options ``run`` handed over."""
    return create_app(ServeOptions.from_json(os.environ[OPTIONS_VARIABLE]))
