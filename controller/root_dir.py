"""--delete-access-point-root-dir: remove an access point's directory, guarded.

The file system root is mounted through the core ``Mounter`` (the same abstraction the node
uses), the directory is removed, and the root unmounted. Deleting data is irreversible, so a
guard that fires leaves the directory in place and says why in the log; DeleteVolume still
deletes the access point (a PV must never be stuck on a directory it should not remove):
- never ``/`` (the whole file system);
- never the StorageClass ``basePath`` itself (known from the access point's tag);
- never a directory another live access point uses, contains or lives in;
- never across a symlink (a component replaced by a link could point anywhere).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from controller.tags import BASE_PATH_TAG, is_base_path_tag_of
from efs_csi.cloud import AccessPoint
from efs_csi.logging import get_logger
from efs_csi.mount import Mounter

_log = get_logger("controller.root_dir")


def _normalise(path: str) -> PurePosixPath:
    return PurePosixPath("/" + "/".join(part for part in path.split("/") if part))


def _related(one: PurePosixPath, other: PurePosixPath) -> bool:
    return one == other or one in other.parents or other in one.parents


def refusal(access_point: AccessPoint, live: Sequence[AccessPoint]) -> str | None:
    """Why this access point's directory must not be removed, or None (pure)."""
    root = _normalise(access_point.root_path)
    if root == PurePosixPath("/"):
        return "it is the file system root"
    base_path = access_point.tags.get(BASE_PATH_TAG)
    if base_path is not None and is_base_path_tag_of(base_path, str(root)):
        return "it is the StorageClass basePath"
    for other in live:
        if other.access_point_id == access_point.access_point_id:
            continue
        if _related(root, _normalise(other.root_path)):
            return f"access point {other.access_point_id} uses {other.root_path}"
    return None


def _remove_tree(mount_root: Path, relative: PurePosixPath) -> str | None:
    """Remove ``mount_root/relative`` unless a component is a symlink; returns a refusal."""
    current = mount_root
    for part in relative.parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            return None  # already gone: nothing to do
        if stat.S_ISLNK(mode):
            return f"{current.relative_to(mount_root)} is a symlink"
    if not stat.S_ISDIR(current.lstat().st_mode):
        return "it is not a directory"
    # rmtree does not follow symlinks found inside the tree.
    shutil.rmtree(current)
    return None


class RootDirectoryRemover:
    def __init__(self, mounter: Mounter, *, work_dir: Path,
                 mount_options: Sequence[str] = ()) -> None:
        self._mounter = mounter
        self._work_dir = work_dir
        self._options = tuple(mount_options)

    async def remove(self, access_point: AccessPoint, live: Sequence[AccessPoint]) -> bool:
        """Remove the directory; False (and a log line) when a guard refused."""
        reason = refusal(access_point, live)
        if reason is None:
            reason = await self._remove_mounted(access_point)
        if reason is not None:
            _log.warning("kept access point directory", access_point_id=access_point.
                         access_point_id, root_path=access_point.root_path, reason=reason)
            return False
        return True

    async def _remove_mounted(self, access_point: AccessPoint) -> str | None:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix=f"{access_point.file_system_id}-",
                                       dir=self._work_dir))
        try:
            await self._mounter.mount(access_point.file_system_id, "/", target, self._options)
            try:
                relative = _normalise(access_point.root_path).relative_to("/")
                return await asyncio.to_thread(_remove_tree, target, relative)
            finally:
                await self._mounter.unmount(target)
        finally:
            os.rmdir(target)
