"""Does a mounted path still answer? The stale-mount detector (``PathProbe``), and the one table
of what an error from a mounted path says about its mount (``condition_of``).

A ``stat`` (or, for its figures, a ``statvfs``) runs off the event loop with a time limit
(``efs_csi.mounting.blocking``): a path whose NFS server is gone answers ENOTCONN/ESTALE/EIO/
EHOSTDOWN, or not at all, and is then STALE.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar

from efs_csi.mounting.blocking import BlockingCalls

T = TypeVar("T")

# errnos that mean "the mount is there but its server is gone or the handle is dead", and how
# a volume condition names them.
STALE_REASONS = {
    errno.ENOTCONN: "transport endpoint not connected",
    errno.ESTALE: "stale file handle",
    errno.EIO: "I/O error",
    errno.EHOSTDOWN: "host is down",
}


class PathState(Enum):
    OK = "ok"
    MISSING = "missing"
    STALE = "stale"  # ENOTCONN/ESTALE/EIO/EHOSTDOWN, or no answer within the timeout


@dataclass(frozen=True)
class Health:
    state: PathState
    detail: str = ""

    @property
    def condition(self) -> str:
        """The volume condition's message for a STALE path."""
        return f"volume mount is unhealthy: {self.detail}"


OK = Health(PathState.OK)


def condition_of(error: OSError) -> Health | None:
    """What an error from a call on a mounted path says about the mount: MISSING, STALE with
    the reason, or None when it says nothing about the mount (the caller lets it through)."""
    if isinstance(error, FileNotFoundError):
        return Health(PathState.MISSING)
    if isinstance(error, NotADirectoryError):
        return Health(PathState.MISSING, "a parent is not a directory")
    reason = STALE_REASONS.get(error.errno or 0)
    return Health(PathState.STALE, reason) if reason else None


@dataclass
class PathProbe:
    """Checks whether a path answers: the stale-mount detector.

    ``stat`` and ``statvfs`` are injectable only so tests can simulate what a real dead NFS
    server does (ESTALE, or a call that never returns), which a bind mount cannot reproduce.
    """

    blocking: BlockingCalls
    timeout: float
    stat: Callable[[str], object] = os.stat
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs

    async def check(self, path: Path) -> Health:
        health, _ = await self._probe("stat", path, self.stat)
        return health

    async def measure(self, path: Path) -> tuple[Health, os.statvfs_result | None]:
        """The path's health and, when it answers, its file system's figures (one
        ``statvfs``: the probe and the figures in one call)."""
        return await self._probe("statvfs", path, self.statvfs)

    def forget(self, path: Path) -> None:
        """Let ``path`` be probed again although an earlier probe of it still hangs (it was
        lazily unmounted; that thread is abandoned)."""
        self.blocking.forget(f"stat:{path}")
        self.blocking.forget(f"statvfs:{path}")

    async def _probe(self, call: str, path: Path,
                     function: Callable[[str], T]) -> tuple[Health, T | None]:
        try:
            result = await self.blocking.run(f"{call}:{path}", lambda: function(str(path)),
                                             self.timeout)
        except TimeoutError:  # before OSError, of which it is a subclass
            return Health(PathState.STALE, f"not answering ({call} did not answer within "
                                           f"{self.timeout:g}s)"), None
        except OSError as exc:
            health = condition_of(exc)
            if health is None:
                raise
            return health, None
        return OK, result
