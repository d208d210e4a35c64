"""Does a mounted path still answer? The stale-mount detector (``PathProbe``).

A ``stat`` runs off the event loop with a time limit (``efs_csi.mounting.offloop``): a path whose
NFS server is gone answers ENOTCONN/ESTALE/EIO, or not at all, and is then STALE.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from efs_csi.mounting.offloop import OffLoop

# errnos that mean "the mount is there but its server is gone or the handle is dead".
STALE_ERRNOS = frozenset({errno.ENOTCONN, errno.ESTALE, errno.EIO, errno.EHOSTDOWN})


class PathState(Enum):
    OK = "ok"
    MISSING = "missing"
    STALE = "stale"  # ENOTCONN/ESTALE/EIO, or no answer within the timeout


@dataclass(frozen=True)
class Health:
    state: PathState
    detail: str = ""


@dataclass
class PathProbe:
    """Checks whether a path answers: the stale-mount detector.

    ``stat`` is injectable only so tests can simulate what a real dead NFS server does
    (ESTALE, or a stat that never returns), which a bind mount cannot reproduce.
    """

    off_loop: OffLoop
    timeout: float
    stat: Callable[[str], object] = os.stat

    async def check(self, path: Path) -> Health:
        try:
            await self.off_loop.run(str(path), lambda: self.stat(str(path)), self.timeout)
        except FileNotFoundError:
            return Health(PathState.MISSING)
        except NotADirectoryError:
            return Health(PathState.MISSING, "a parent is not a directory")
        except TimeoutError:
            return Health(PathState.STALE, f"stat did not answer within {self.timeout:g}s")
        except OSError as exc:
            if exc.errno in STALE_ERRNOS:
                return Health(PathState.STALE, os.strerror(exc.errno or 0))
            raise
        return Health(PathState.OK)
