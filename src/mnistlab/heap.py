"""The C heap: handing its freed pages back to the operating system, and how many arenas it
keeps.

glibc keeps freed heap pages for reuse, so a process goes on holding the memory of arrays it
has freed: training's batches (about 50 MB after the seed model), a server's photo buffers.
Elsewhere than glibc (musl, macOS) there is nothing to hand back and this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

M_ARENA_MAX = -8  # glibc's mallopt parameter


@functools.cache
def _libc_function(name: str, *argtypes) -> Callable[..., int] | None:
    try:
        function = getattr(ctypes.CDLL(None), name)  # The C library this process runs on.
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    return function


def release_freed_memory() -> bool:
    """Hand the C heap's free pages back to the operating system; True if that was possible."""
    trim = _libc_function("malloc_trim", ctypes.c_size_t)
    if trim is None:
        return False
    trim(0)
    return True


def limit_arenas(count: int) -> bool:
    """Let threads that start from now on share ``count`` malloc arenas; True if that was
    possible.

    glibc gives each new thread an arena of its own, up to eight per core; each keeps the
    fragments its frees leave, so a server whose threads decode large photos holds more
    memory, and more of it varies, than one whose threads share a few.
    """
    mallopt = _libc_function("mallopt", ctypes.c_int, ctypes.c_int)
    return mallopt is not None and mallopt(M_ARENA_MAX, count) == 1
