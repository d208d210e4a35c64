"""A ``VolumeStatsSource`` from ``statvfs`` alone (used when the usage collector is off).

EFS reports an effectively unbounded file system (8 EiB), so when the PV's requested size is
known it is reported as the total, with what is used counted against it. The used figure is
the whole file system's, not the volume's directory: walking the tree is the collector's job.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from efs_csi.mounting.health import STALE_ERRNOS
from efs_csi.mounting.offloop import OffLoop
from efs_csi_node.stats import StatsRequest, VolumeStats


@dataclass
class StatvfsStats:
    off_loop: OffLoop
    timeout: float
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs

    async def stats(self, request: StatsRequest) -> VolumeStats:
        path = str(request.volume_path)
        try:
            result = await self.off_loop.run(f"statvfs:{path}", lambda: self.statvfs(path),
                                             self.timeout)
        except TimeoutError:
            return _abnormal(f"statvfs did not answer within {self.timeout:g}s")
        except OSError as exc:
            if exc.errno in STALE_ERRNOS:
                return _abnormal(f"volume path is stale: {os.strerror(exc.errno or 0)}")
            raise
        block = result.f_frsize or result.f_bsize
        used = (result.f_blocks - result.f_bfree) * block
        total = result.f_blocks * block
        available = result.f_bavail * block
        if request.capacity_bytes:
            total = request.capacity_bytes
            available = max(total - used, 0)
        return VolumeStats(
            used_bytes=used, total_bytes=total, available_bytes=available,
            used_inodes=result.f_files - result.f_ffree, total_inodes=result.f_files,
            available_inodes=result.f_favail)


def _abnormal(message: str) -> VolumeStats:
    return VolumeStats(None, None, None, None, None, None, abnormal=True, message=message)
