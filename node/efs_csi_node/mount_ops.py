"""What staging and publishing both do to mounts and paths (``MountOps``): read the mount table,
clear a stale mount, resolve a path, make and remove directories, each time-limited and off the
event loop.

Paths are compared with the mount table, which shows them with every symlink resolved (a
kubelet root dir reached through a symlink, say), so a path from a request is first made
canonical: its parent resolved, its last component kept (``resolve``; the last component may be
a mount point of a dead server, which a resolution would hang on).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from efs_csi.errors import FailedPrecondition
from efs_csi.logging import get_logger
from efs_csi.mounting.blocking import BlockingCalls
from efs_csi.mounting.health import PathProbe, PathState
from efs_csi.mounting.mount import BindMounts
from efs_csi.mounting.mountinfo import MountTable, read_mount_table

_log = get_logger("node.mount_ops")

#: How many mounts one path may hold on top of each other before removing them gives up (each
#: unmount peels one; a path mounted again and again by a confused caller can hold a stack).
MAX_STACKED_MOUNTS = 8

StaleObserver = Callable[[str], None]  # told "found" / "recovered"


@dataclass
class MountOps:
    """A toolbox over the kernel's mounts: it keeps no state of its own."""

    probe: PathProbe
    binds: BindMounts
    blocking: BlockingCalls
    read_table: Callable[[], MountTable] = read_mount_table
    on_stale: StaleObserver | None = None

    def table(self) -> MountTable:
        # procfs never blocks on a remote server, so this read stays on the loop.
        return self.read_table()

    async def clear_if_stale(self, path: Path) -> bool:
        """Lazily unmount ``path`` when it does not answer; True when it was stale."""
        health = await self.probe.check(path)
        if health.state is not PathState.STALE:
            return False
        _log.warning("stale mount found; unmounting lazily", path=str(path),
                     detail=health.detail)
        if self.on_stale:
            self.on_stale("found")
        # Lazy unmounts peel one mount each; a stale path can hold a stack of them.
        for _ in range(MAX_STACKED_MOUNTS):
            if self.table().at(path) is None:
                break
            await self.binds.lazy_unmount(path)
        self.probe.forget(path)
        if self.on_stale:
            self.on_stale("recovered")
        return True

    async def resolve(self, path: Path) -> Path:
        """``path`` with its parent's symlinks resolved, as the mount table would show it."""
        def canonical() -> Path:
            return Path(os.path.realpath(path.parent)) / path.name

        return await self.blocking.run(f"resolve:{path.parent}", canonical, self.probe.timeout)

    async def make_dir(self, path: Path) -> None:
        def make() -> None:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise FailedPrecondition(f"{path} exists and is not a directory") from None
            except NotADirectoryError:
                raise FailedPrecondition(f"{path}: a parent of it is not a directory") from None

        await self.blocking.run(f"mkdir:{path}", make, self.probe.timeout)

    async def remove_dir(self, path: Path) -> None:
        """Remove ``path`` if it is an empty directory; anything else there is left alone
        (a user's files are never deleted), with a note in the log."""
        def remove() -> None:
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise
                _log.warning("left in place: not an empty directory", path=str(path),
                             detail=exc.strerror)

        await self.blocking.run(f"rmdir:{path}", remove, self.probe.timeout)
