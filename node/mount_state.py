"""What staging and publishing both need: the mount table, stale-mount clearing, and
directory changes, each time-limited and off the event loop."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from efs_csi.logging import get_logger
from efs_csi.mount import BindMounts
from efs_csi.mountinfo import MountTable, read_mount_table
from efs_csi.offloop import OffLoop, PathProbe, PathState

_log = get_logger("node.mount_state")

StaleObserver = Callable[[str], None]  # told "found" / "recovered"


@dataclass
class MountState:
    probe: PathProbe
    binds: BindMounts
    off_loop: OffLoop
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
        for _ in range(8):
            if self.table().at(path) is None:
                break
            await self.binds.lazy_unmount(path)
        self.off_loop.forget(str(path))
        if self.on_stale:
            self.on_stale("recovered")
        return True

    async def make_dir(self, path: Path) -> None:
        await self.off_loop.run(f"mkdir:{path}", lambda: path.mkdir(parents=True, exist_ok=True),
                                self.probe.timeout)

    async def remove_dir(self, path: Path) -> None:
        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                path.rmdir()

        await self.off_loop.run(f"rmdir:{path}", remove, self.probe.timeout)
