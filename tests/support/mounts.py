"""Mount points below a directory, for the guards and fixtures that check nothing is left
mounted (the kernel's table through the driver's own parser, via testbed/mounts.py)."""

from __future__ import annotations

from pathlib import Path

from testbed.mounts import mounts_under


def mount_points_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory``, deepest first; a stacked mount point repeats,
    once per mount on it."""
    return sorted(mounts_under(directory.resolve()), key=len, reverse=True)
