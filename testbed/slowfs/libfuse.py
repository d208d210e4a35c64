"""Which libfuse the slowfs server runs on: libfuse 3, by name, whatever else is installed.

mfusepy picks its library by itself when imported: ``FUSE_LIBRARY_PATH`` if set, else the first
of ``find_library("fuse")`` (libfuse 2) and ``find_library("fuse3")``. Many machines carry
libfuse 2 beside libfuse 3 (AppImages need it), and there mfusepy would load libfuse 2, while
the server drives libfuse 3's own loop (``fuse_loop_cfg_*``, ``fuse_loop_mt`` with a config:
libfuse 3 symbols). So the server names libfuse 3 before mfusepy is imported, and says plainly
when it is missing, instead of failing on a missing symbol.
"""

from __future__ import annotations

import ctypes.util
import importlib
import os
import types
from collections.abc import Callable

MISSING = ("slowfs needs libfuse 3 (libfuse3.so.3), which is not installed here "
           "(Debian: apt-get install fuse3; `make fuse` does it); libfuse 2 alone will not do")


class LibfuseMissing(RuntimeError):
    """libfuse 3 is not installed (the message says how to install it)."""


def libfuse3(find: Callable[[str], str | None] = ctypes.util.find_library) -> str | None:
    """The name the loader finds libfuse 3 by (``libfuse3.so.3``), or None."""
    return find("fuse3")


def load_mfusepy(find: Callable[[str], str | None] = ctypes.util.find_library
                 ) -> types.ModuleType:
    """mfusepy, bound to libfuse 3 (``LibfuseMissing`` when it cannot be)."""
    library = libfuse3(find)
    if library is None:
        raise LibfuseMissing(MISSING)
    # Read by mfusepy once, when first imported: this process is the slowfs server's own.
    os.environ["FUSE_LIBRARY_PATH"] = library
    mfusepy = importlib.import_module("mfusepy")
    if mfusepy.fuse_version_major != 3:
        raise LibfuseMissing(f"mfusepy loaded libfuse {mfusepy.fuse_version_major} "
                             f"({mfusepy._libfuse_path}), not libfuse 3: {MISSING}")
    return mfusepy
