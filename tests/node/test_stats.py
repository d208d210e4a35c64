"""NodeGetVolumeStats's one path (``efs_csi_node.stats.VolumeStatsSource``): one probe of the
mount answers its condition; a missing or unmounted path is NOT_FOUND; only a healthy mount's
figures are asked for, with the capacity the source keeps per volume. (The collector behind it:
tests/node/test_volume_stats.py; through gRPC and real mounts: tests/node/test_mount_ops.py,
tests/node/test_local_backend.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from efs_csi.errors import NotFound
from efs_csi.mounting.blocking import BlockingCalls
from efs_csi.mounting.health import PathProbe
from efs_csi.mounting.mountinfo import MountEntry, MountTable
from efs_csi_node.locks import KeyLocksInFlight
from efs_csi_node.stats import FileSystemUsage, StatsRequest, VolumeStats, VolumeStatsSource
from tests.support.fakes.dead_server import DeadServer

FS = "fs-0000000a"


class RecordingUsage(FileSystemUsage):
    """The real ``statvfs`` figures, remembering what it was asked for."""

    def __init__(self) -> None:
        self.asked: list[StatsRequest] = []

    async def figures(self, request: StatsRequest, fs: os.statvfs_result) -> VolumeStats:
        self.asked.append(request)
        return await super().figures(request, fs)


def mounted_at(*paths: Path) -> MountTable:
    """The mount table (a stand-in for the kernel's) with a mount at each of ``paths``."""
    return MountTable(MountEntry(100 + index, 1, "0:99", "/", str(path), frozenset({"rw"}),
                                 "nfs4", "127.0.0.1:/") for index, path in enumerate(paths))


def source(volume: Path, *, dead: DeadServer | None = None, timeout: float = 0.5,
           mounted: bool = True) -> tuple[VolumeStatsSource, RecordingUsage]:
    dead = dead or DeadServer()
    usage = RecordingUsage()
    table = mounted_at(volume) if mounted else mounted_at()
    probe = PathProbe(BlockingCalls(), timeout, dead.stat, dead.statvfs)
    return VolumeStatsSource(probe, lambda: table, KeyLocksInFlight(), usage), usage


@pytest.mark.asyncio
async def test_a_healthy_mount_gets_its_figures_with_the_capacity_kept_per_volume(
        tmp_path: Path) -> None:
    stats, usage = source(tmp_path)
    fs = os.statvfs(tmp_path)
    plain = await stats.stats("vol", FS, tmp_path)
    assert not plain.abnormal and plain.total_bytes == fs.f_blocks * fs.f_frsize
    stats.remember_capacity("vol", 5 << 30)
    stats.remember_capacity("vol", None)  # a context without capacityBytes changes nothing
    sized = await stats.stats("vol", FS, tmp_path)
    assert sized.total_bytes == 5 << 30
    stats.forget("vol")  # unstaged
    assert (await stats.stats("vol", FS, tmp_path)).total_bytes == fs.f_blocks * fs.f_frsize
    assert [request.capacity_bytes for request in usage.asked] == [None, 5 << 30, None]
    assert {(request.volume_id, request.file_system_id) for request in usage.asked} == {
        ("vol", FS)}


@pytest.mark.asyncio
async def test_a_stale_mount_is_abnormal_without_figures_and_nothing_more_is_asked(
        tmp_path: Path) -> None:
    dead = DeadServer()
    dead.stale.add(str(tmp_path))
    stats, usage = source(tmp_path, dead=dead)
    answer = await stats.stats("vol", FS, tmp_path)
    assert answer.abnormal and answer.message == "volume mount is unhealthy: stale file handle"
    assert answer.used_bytes is None and answer.total_bytes is None
    assert usage.asked == []


@pytest.mark.asyncio
async def test_a_hung_mount_is_abnormal_and_is_not_probed_again_while_hung(
        tmp_path: Path) -> None:
    dead = DeadServer()
    dead.hung.add(str(tmp_path))
    entered: list[str] = []
    statvfs = dead.statvfs

    def counted(path: str) -> os.statvfs_result:
        entered.append(path)
        return statvfs(path)

    dead.statvfs = counted  # type: ignore[method-assign]
    stats, usage = source(tmp_path, dead=dead, timeout=0.05)
    try:
        first = await stats.stats("vol", FS, tmp_path)
        assert first.abnormal and "not answering" in first.message
        second = await stats.stats("vol", FS, tmp_path)  # refused, not probed again
        assert second.abnormal and "not answering" in second.message
        assert entered == [str(tmp_path)] and usage.asked == []
    finally:
        dead.release.set()


@pytest.mark.asyncio
async def test_a_missing_path_and_a_path_nothing_is_mounted_at_are_not_found(
        tmp_path: Path) -> None:
    stats, _ = source(tmp_path / "missing")
    with pytest.raises(NotFound, match="does not exist"):
        await stats.stats("vol", FS, tmp_path / "missing")
    unmounted, usage = source(tmp_path, mounted=False)
    with pytest.raises(NotFound, match=f"volume vol is not mounted at volume_path {tmp_path}"):
        await unmounted.stats("vol", FS, tmp_path)
    assert usage.asked == []
