"""Give the memory a large listing's parse left free back to the system (glibc's
``malloc_trim``).

Listing a file system of 10,000 access points parses ten pages of replies; the parse's larger
blocks (each page's body, its dicts' tables) come from the C allocator, and what is freed
between the blocks kept alive stays in glibc's heap, counted in the controller's RSS, until
``malloc_trim`` returns the free pages in it. Called only after a listing that changed many
known access points (``efs_csi_controller.gid.LARGE_LISTING``): it walks the heap, so not after
every listing. Another C library (musl, in a slim image) has no ``malloc_trim``: nothing is
done there.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


def trim_heap() -> bool:
    """Return the C heap's free pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
