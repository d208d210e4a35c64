"""How NodeGetVolumeStats gets its figures: the ``VolumeStatsSource`` protocol.

The node service asks a source; the composition root chooses it (``statvfs`` alone, or the
rate-limited background collector of ``efs_csi_node.volume_stats`` when ``--vol-metrics-opt-in``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


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


class VolumeStatsSource(Protocol):
    async def stats(self, request: StatsRequest) -> VolumeStats:
        """Answer promptly: never wait on a slow file system walk beyond a short bound."""
