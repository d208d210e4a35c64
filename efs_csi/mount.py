"""Mounting, shared by the node (volumes) and the controller (a file system root, to delete an
access point's directory). Owned by the node issue: the Mounter protocol, the ``efs`` and
``local`` backends, and reading ``/proc/self/mountinfo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class Mounter(Protocol):
    async def mount(self, file_system_id: str, path: str, target: Path,
                    options: Sequence[str]) -> None:
        """Mount ``file_system_id:path`` at ``target`` (efs-utils, or a bind in ``local``)."""

    async def unmount(self, target: Path) -> None: ...
