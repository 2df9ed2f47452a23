"""A background process that scores a run's test predictions and draws its figures.

Importing what that needs (scikit-learn, matplotlib, seaborn and pandas) takes about 2.5 s
and drawing a run's seven figures about 2 s, all on one core. ``mnistlab train`` starts the
worker before it imports Keras: the worker imports at low priority on the core that the Keras
import leaves idle, sleeps while the model trains (an import beside training costs the training
as much time as it saves), then draws the figures on both cores, itself and a copy of itself
forked for the call. The main process never imports any of it. Without ``start()`` (a library
caller, a notebook) or where processes cannot be forked, ``run`` calls in-process.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

# Lower than the main process: the worker imports while Keras does, and must not slow it.
WORKER_NICENESS = 10
PRELOADED_MODULES = ("sklearn.metrics", "seaborn", "mnistlab.evaluate", "mnistlab.plots")
# Forking a process that runs these libraries' threads can deadlock the copy.
FRAMEWORKS = ("jax", "tensorflow", "torch")

Call = tuple[Callable[..., Any], tuple]

_pool: ProcessPoolExecutor | None = None


def start() -> None:
    """Fork the worker now, so its imports overlap whatever the caller does next. Does nothing
    once a training framework is imported, or where there is no fork (Windows)."""
    global _pool
    if _pool is not None or any(name in sys.modules for name in FRAMEWORKS):
        return
    if "fork" not in multiprocessing.get_all_start_methods():
        return
    # Forked, not spawned: a spawned worker would start a new interpreter and re-run the
    # caller's main module, more than doubling the CPU time the imports take.
    context = multiprocessing.get_context("fork")
    _pool = ProcessPoolExecutor(1, mp_context=context, initializer=_prepare_worker)
    _pool.submit(int)  # A fork pool starts its process on the first task.


def started() -> bool:
    return _pool is not None


def run(calls: Sequence[Call]) -> list:
    """``[function(*args) for function, args in calls]``, in the worker when it is started.

    The worker shares the calls with a copy of itself: it takes the first, third, ... and the
    copy the second, fourth, ..., so order them slowest first. A worker that died (killed, out
    of memory) costs no result: everything is then computed here. An exception raised by a call
    is raised here, as it would be in-process.
    """
    calls = list(calls)
    if _pool is not None:
        try:
            return _pool.submit(run_on_two_cores, calls).result()
        except BrokenProcessPool:
            shutdown()
    return [function(*args) for function, args in calls]


def run_on_two_cores(calls: list[Call]) -> list:
    """Runs in the worker: every other call in a forked copy of it, the rest here."""
    if len(calls) < 2:
        return [function(*args) for function, args in calls]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(1, mp_context=context) as copy:
        theirs = [copy.submit(function, *args) for function, args in calls[1::2]]
        mine = [function(*args) for function, args in calls[0::2]]
        results = [None] * len(calls)
        results[0::2] = mine
        results[1::2] = [future.result() for future in theirs]
    return results


def shutdown(kill: bool = False) -> None:
    """Stop the worker and wait for it, before a fast exit that would leave it orphaned and
    printing a traceback when its queue closes. ``kill``: do not wait for a worker still
    importing (after an error, the process should end at once)."""
    global _pool
    if _pool is not None:
        pool, _pool = _pool, None
        if kill:
            for process in list(pool._processes.values()):
                process.kill()
        pool.shutdown(wait=True, cancel_futures=True)


def worker_pids() -> list[int]:
    """The worker's process id, when started (for tests and benchmarks)."""
    return [] if _pool is None else list(_pool._processes)


def _prepare_worker() -> None:
    # Ctrl-C reaches the whole process group; the main process handles it and stops the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # pragma: no cover - a platform without nice: run at normal priority
        pass
    import importlib

    for module in PRELOADED_MODULES:
        importlib.import_module(module)
