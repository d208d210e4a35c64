"""Mounts below a directory, and leaving none behind (a leaked mount breaks later runs on the
machine). Reads the kernel's table through the driver's own parser."""

from __future__ import annotations

import subprocess
from pathlib import Path

from efs_csi.mounting.mountinfo import read_mount_table


def mounts_under(directory: Path) -> list[str]:
    """The mount points at or below ``directory``, one per mount (stacked ones repeat)."""
    return [entry.mount_point for entry in read_mount_table().under(directory)]


def unmount_everything_under(directory: Path) -> list[str]:
    """Lazily unmount every mount below ``directory``, deepest first; returns what was there."""
    found = mounts_under(directory)
    for _ in range(10):
        left = mounts_under(directory)
        if not left:
            break
        for point in sorted(set(left), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return found
