"""NodeGetVolumeStats's one path: ``VolumeStatsSource``.

It probes the volume's mount once (one ``statvfs`` through the stale-mount detector,
``efs_csi.mounting.health``): a missing path, or one nothing is mounted at, is NOT_FOUND; a
stale or hung mount is answered with an abnormal condition and no figures; a healthy one gets
its figures from a ``UsageSource``: the file system's own (``FileSystemUsage``, the default), or
the rate-limited background collector of ``efs_csi_node.volume_stats`` (``--vol-metrics-opt-in``).

An answer holds the path's lock (``efs_csi_node.locks.path_key``) from its probe to its
figures (a walk the usage source schedules included; the wait for a first walk is short), so
an unpublish or unstage of the path never meets a probe of ours in flight; and before they
unmount, ``stop_reading`` stops a usage walk still under way there.

It also keeps each volume's requested size (the PV's ``capacityBytes``, from the volume context
of NodeStage and NodePublish: kubelet repeats NodePublish after a plugin restart, so it comes
back), which both usage sources report as the total.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from efs_csi.errors import NotFound
from efs_csi.mounting.health import PathProbe, PathState
from efs_csi.mounting.mountinfo import MountTable
from efs_csi_node.locks import KeyLocksInFlight, path_key


@dataclass(frozen=True)
class StatsRequest:
    volume_id: str
    file_system_id: str
    volume_path: Path
    # The PV's requested size when the node knows it (from the volume context), else None.
    capacity_bytes: int | None = None


@dataclass(frozen=True)
class VolumeStats:
    """A volume's figures; None where a figure is not known (never reported as 0)."""

    used_bytes: int | None
    total_bytes: int | None
    available_bytes: int | None
    used_inodes: int | None
    total_inodes: int | None
    available_inodes: int | None
    # VOLUME_CONDITION: abnormal with a message when the mount is stale or does not answer.
    abnormal: bool = False
    message: str = ""

    @classmethod
    def unhealthy(cls, message: str) -> VolumeStats:
        return cls(None, None, None, None, None, None, abnormal=True, message=message)


class UsageSource(Protocol):
    async def figures(self, request: StatsRequest, fs: os.statvfs_result) -> VolumeStats:
        """The figures of a healthy volume whose file system answered ``fs``. Answer promptly:
        never wait on a slow file system walk beyond a short bound."""

    async def stop_reading(self, path: Path) -> None:
        """Stop reading under ``path`` (it is about to be unmounted); return once stopped."""


class FileSystemUsage:
    """The figures of ``statvfs`` alone (when the usage collector is off).

    EFS reports an effectively unbounded file system (8 EiB), so when the PV's requested size
    is known it is reported as the total, with what is used counted against it. The used figure
    is the whole file system's, not the volume's directory: walking the tree is the collector's
    job.
    """

    async def figures(self, request: StatsRequest, fs: os.statvfs_result) -> VolumeStats:
        block = fs.f_frsize or fs.f_bsize
        used = (fs.f_blocks - fs.f_bfree) * block
        total = fs.f_blocks * block
        available = fs.f_bavail * block
        if request.capacity_bytes:
            total = request.capacity_bytes
            available = max(total - used, 0)
        return VolumeStats(
            used_bytes=used, total_bytes=total, available_bytes=available,
            used_inodes=fs.f_files - fs.f_ffree, total_inodes=fs.f_files,
            available_inodes=fs.f_favail)

    async def stop_reading(self, path: Path) -> None:
        """Nothing reads a volume past its ``statvfs``."""


class VolumeStatsSource:
    def __init__(self, probe: PathProbe, read_table: Callable[[], MountTable],
                 locks: KeyLocksInFlight, usage: UsageSource | None = None) -> None:
        self._probe = probe
        self._read_table = read_table
        self._locks = locks
        self._usage = usage or FileSystemUsage()
        self._capacities: dict[str, int] = {}

    def remember_capacity(self, volume_id: str, capacity_bytes: int | None) -> None:
        if capacity_bytes:
            self._capacities[volume_id] = capacity_bytes

    def forget(self, volume_id: str) -> None:
        self._capacities.pop(volume_id, None)

    async def stop_reading(self, path: Path) -> None:
        await self._usage.stop_reading(path)

    async def stats(self, volume_id: str, file_system_id: str, path: Path) -> VolumeStats:
        async with self._locks.hold([path_key(path)]):
            return await self._stats(volume_id, file_system_id, path)

    async def _stats(self, volume_id: str, file_system_id: str, path: Path) -> VolumeStats:
        health, fs = await self._probe.measure(path)
        if health.state is PathState.MISSING:
            raise NotFound(f"volume_path {path} does not exist")
        if health.state is PathState.STALE:
            return VolumeStats.unhealthy(health.condition)
        # procfs never blocks on a remote server, so this read stays on the loop.
        if self._read_table().at(path) is None:
            raise NotFound(f"volume {volume_id} is not mounted at volume_path {path}")
        assert fs is not None  # a healthy probe has its figures
        return await self._usage.figures(
            StatsRequest(volume_id, file_system_id, path, self._capacities.get(volume_id)), fs)
