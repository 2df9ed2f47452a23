"""The C heap: handing its freed pages back to the operating system.

glibc keeps freed heap pages for reuse, so a process goes on holding the memory of arrays it
has freed: training's batches (about 50 MB after the seed model), a server's photo buffers.
Elsewhere than glibc (musl, macOS) there is nothing to hand back and this does nothing.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # The C library this process already runs on.
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


def release_freed_memory() -> bool:
    """Hand the C heap's free pages back to the operating system; True if that was possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
