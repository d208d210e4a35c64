"""A stand-in for a dead NFS server, as the driver's calls on a mounted path meet it.

``DeadServer`` answers ``stat`` and ``statvfs`` as a dead NFS server does on chosen paths, and
really elsewhere. It is a fake for what a real part cannot be made to do: a bind mount cannot go
stale (ESTALE) or hang on cue, and this machine has no kernel NFS client. Give its methods to
``PathProbe`` (``tests.support.node`` does). tests/alerts makes a real mount stale instead, by
killing a FUSE server under a real bind mount, against the real node binary.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadServer:
    """``stale``: paths answered with ESTALE; ``hung``: paths whose calls do not return until
    ``release`` is set (at most 30 s). With ``heals``, a path fails once and then answers, as
    after the lazy unmount and the mount again that cure it; without, it fails until taken out
    of its set."""

    def __init__(self, *, heals: bool = False) -> None:
        self.heals = heals
        self.stale: set[str] = set()
        self.hung: set[str] = set()
        self.release = threading.Event()

    def stat(self, path: str) -> os.stat_result:
        return self._answer(path, os.stat)

    def statvfs(self, path: str) -> os.statvfs_result:
        return self._answer(path, os.statvfs)

    def _answer(self, path: str, call: Callable[[str], T]) -> T:
        if path in self.stale:
            if self.heals:
                self.stale.discard(path)
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE), path)
        if path in self.hung:
            if self.heals:
                self.hung.discard(path)
            self.release.wait(30)
        return call(path)
