"""The process around a command: native stderr, Ctrl-C, the Keras import, figure workers,
progress displays and the fast exit. Nothing here decides what a command computes."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator

from mnistlab.cli.views import error_console, notice


def start_figure_workers() -> None:
    """For commands that end by drawing a run's figures: start the workers before Keras is
    imported, so their own imports overlap it (see figure_workers)."""
    from mnistlab import figure_workers

    figure_workers.start()


def stop_figure_workers(kill: bool = False) -> None:
    """Stop the figure workers if this command started them; ``kill`` after a failure, so the
    error is not kept waiting on a worker's imports."""
    if "mnistlab.figure_workers" in sys.modules:
        sys.modules["mnistlab.figure_workers"].shutdown(kill=kill)


def import_keras(model: str | None = None) -> None:
    """Choose the backend for training ``model`` (backend.choose), then import Keras with fd 2
    silenced and without the libraries it imports for features mnistlab does not use
    (backend.optional_imports_deferred)."""
    from mnistlab import backend

    backend.choose(model)
    with backend.optional_imports_deferred(), native_stderr_silenced():
        import keras  # noqa: F401


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point fd 2 at /dev/null while inside: TensorFlow and JAX print C++ log lines while they
    load, which are noise to a CLI user (--debug lets them through)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        fd = None  # Not a real file (e.g. a test runner's capture): nothing to silence.
    if fd is None or os.environ.get("MNISTLAB_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def progress(epochs: int | None = None) -> Iterator:
    """Hooks (pipeline.Hooks) that show phases, downloads and, given ``epochs``, training on
    stderr; the download bars are closed on the way out, whatever happens inside.

    Without ``epochs`` neither Keras nor the pipeline is imported (``data fetch``)."""
    from mnistlab.progress import DownloadBars

    downloads = DownloadBars(error_console)
    try:
        if epochs is None:
            from types import SimpleNamespace

            yield SimpleNamespace(on_phase=notice, on_download=downloads)
        else:
            from mnistlab.pipeline import Hooks
            from mnistlab.progress import training_progress

            callbacks = (training_progress(error_console, epochs), interrupt_check())
            yield Hooks(on_phase=notice, on_download=downloads, fit_callbacks=callbacks)
    finally:
        downloads.close()


# Ctrl-C raises KeyboardInterrupt wherever the main thread is. Inside a garbage-collector
# callback (JAX registers one) Python prints the exception and drops it, and a run went on
# training. The flag outlives that: training checks it after every call into the backend.
interrupted = threading.Event()


def _on_interrupt(signum, frame) -> None:
    interrupted.set()
    raise KeyboardInterrupt


def install_interrupt_handler() -> None:
    """Remember every Ctrl-C (see interrupted); a SIGINT that the parent ignores stays ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_interrupt)


def interrupt_check():
    """A Keras callback that stops training with KeyboardInterrupt once Ctrl-C was pressed,
    even if the exception itself was lost."""
    import keras

    class InterruptCheck(keras.callbacks.Callback):
        def _check(self, *args, **kwargs) -> None:
            if interrupted.is_set():
                raise KeyboardInterrupt

        on_train_batch_end = on_test_batch_end = on_epoch_end = _check

    return InterruptCheck()


def exit_now(code: int = 0) -> None:
    """End a successful or interrupted command without interpreter teardown (about 1 s after
    Keras and its backend loaded, and teardown in the middle of a JAX step can crash). Every
    file is already closed and renamed into place, or removed, by then; only the standard
    streams may still hold output, and figure workers may still be waiting for work.
    Only for the real command line, never a library call.
    """
    stop_figure_workers()
    if "logging" in sys.modules:
        import logging

        logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
