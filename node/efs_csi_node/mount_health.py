"""The staged volumes' mount health, checked in the background (``MountHealth``).

Without it a stale mount (its NFS server gone: ESTALE, ENOTCONN, EIO, or no answer) is noticed
only when kubelet next calls for the volume (a publish, an unstage, NodeGetVolumeStats when usage
is opted in), while the pods using it get I/O errors or hang. Every ``period`` seconds the
staging mount of every staged volume is probed with the stale-mount detector
(``efs_csi.mounting.health``: a stat off the event loop, time-limited, never two hung on one
path), and the result is kept per volume for the ``efs_csi_node_volume_stale`` series and its
alert.

It only looks: recovery stays where it is (NodeStage and NodePublish unmount a stale mount
lazily and mount again, ``efs_csi_node.mount_ops``), because the pods' bind mounts of a dead
mount keep it however the staging path is repaired; the pods must be restarted, which the
alert's runbook says.

A staging path that a stage or an unstage holds (its ``efs_csi_node.locks.path_key``) is not
probed that round, and a probe holds the key while it runs: an unstage never meets a probe of
ours in flight, which would make its unmount fail with "target is busy". The path's previous
result stands until the next round.

A result belongs to the mount it was taken on (its mount id in the kernel's table): once the
volume is mounted again, or unstaged, the old result no longer counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from efs_csi.logging import get_logger
from efs_csi.mounting.health import Health, PathProbe, PathState
from efs_csi.mounting.mountinfo import MountTable
from efs_csi_node.locks import KeyLocksInFlight, path_key
from efs_csi_node.staging import StagedVolumes

_log = get_logger("node.mount_health")

#: The default of ``--mount-health-period``: a stale mount is reported within a minute.
DEFAULT_PERIOD_S = 60.0


@dataclass(frozen=True)
class VolumeHealth:
    """One staged volume's mount, as last checked."""

    volume_id: str
    file_system_id: str
    stale: bool


@dataclass(frozen=True)
class _Checked:
    mount_id: int
    stale: bool


class MountHealth:
    def __init__(self, staged: StagedVolumes, probe: PathProbe,
                 read_table: Callable[[], MountTable], locks: KeyLocksInFlight, *,
                 period: float = DEFAULT_PERIOD_S) -> None:
        self._staged = staged
        self._probe = probe
        self._read_table = read_table
        self._locks = locks
        self._period = period
        self._checked: dict[Path, _Checked] = {}

    async def run(self) -> None:
        """Check every ``period`` seconds until cancelled (a server background task)."""
        while True:
            await self.check()
            await asyncio.sleep(self._period)

    async def check(self) -> None:
        """Probe every staged volume's staging mount once, all at once."""
        table = self._read_table()
        mounted = [(request, entry) for request in self._staged.all()
                   if (entry := table.at(request.staging_path)) is not None]
        results = await asyncio.gather(*(self._check_if_free(request.staging_path)
                                         for request, _ in mounted), return_exceptions=True)
        checked: dict[Path, _Checked] = {}
        for (request, entry), result in zip(mounted, results, strict=True):
            if result is None:  # being staged or unstaged now: the last result stands
                if (last := self._checked.get(request.staging_path)) is not None:
                    checked[request.staging_path] = last
                continue
            if isinstance(result, BaseException):  # a probe error other than staleness
                _log.warning("mount health check failed", volume_id=request.volume_id,
                             path=str(request.staging_path), error=repr(result))
                continue
            stale = result.state is PathState.STALE
            was = self._checked.get(request.staging_path)
            if stale and (was is None or not was.stale or was.mount_id != entry.mount_id):
                _log.warning("staged volume's mount is stale: its pods get I/O errors until "
                             "they are restarted", volume_id=request.volume_id,
                             path=str(request.staging_path), detail=result.detail)
            checked[request.staging_path] = _Checked(entry.mount_id, stale)
        self._checked = checked

    async def _check_if_free(self, path: Path) -> Health | None:
        async with self._locks.hold_if_free([path_key(path)]) as free:
            return await self._probe.check(path) if free else None

    def snapshot(self) -> list[VolumeHealth]:
        """Every staged and mounted volume, stale when its current mount was found so (read at
        scrape time: the table is procfs, which never blocks on a server)."""
        table = self._read_table()
        health = []
        for request in self._staged.all():
            entry = table.at(request.staging_path)
            if entry is None:
                continue
            checked = self._checked.get(request.staging_path)
            stale = checked is not None and checked.mount_id == entry.mount_id and checked.stale
            health.append(VolumeHealth(request.volume_id, request.handle.file_system_id, stale))
        return health
