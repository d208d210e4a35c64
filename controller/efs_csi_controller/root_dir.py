"""--delete-access-point-root-dir: remove an access point's directory, guarded.

The file system root is mounted through the core ``Mounter`` (the same abstraction the node
uses), the directory is removed, and the root unmounted. Deleting data is irreversible, so a
guard that fires leaves the directory in place and says why in the log; DeleteVolume still
deletes the access point (a PV must never be stuck on a directory it should not remove).
Whether the access point is this cluster's at all is decided before, by
``efs_csi_controller.ownership``; the guards here are about the path:
- never ``/`` (the whole file system);
- never the StorageClass ``basePath`` itself (known from the access point's tag);
- never a directory another live access point uses, contains or lives in;
- never across a symlink: the walk goes by file descriptor, each component opened with
  ``O_NOFOLLOW`` relative to its parent's descriptor and the tree removed with
  ``shutil.rmtree(name, dir_fd=...)``, so a component swapped for a symlink after the checks
  cannot redirect the removal anywhere else (the descriptors still name what was checked).

The removal walks a remote tree, so like every file-system call it runs in its own thread
(``efs_csi.mounting.blocking``, never the default executor) and is time-limited: past
``time_limit``, or when the caller gives up, DeleteVolume fails (DEADLINE_EXCEEDED; the
provisioner retries), the file system root is detached lazily (the removal still walks it) and
a retry is refused at once while that removal still runs, so two removals never race over one
tree.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path, PurePosixPath

from efs_csi.cloud import AccessPoint
from efs_csi.errors import DeadlineExceeded
from efs_csi.logging import get_logger
from efs_csi.mounting.blocking import BlockingCalls, StillHung
from efs_csi.mounting.mount import Mounter
from efs_csi_controller.shared_roots import normalise, overlap
from efs_csi_controller.tags import BASE_PATH_TAG, is_base_path_tag_of

_log = get_logger("controller.root_dir")
#: How long removing one access point's directory may take before DeleteVolume gives up.
REMOVAL_TIME_LIMIT = 300.0
Detach = Callable[[Path], Awaitable[None]]
RemoveTree = Callable[[Path, PurePosixPath], str | None]


def refusal(access_point: AccessPoint, live: Sequence[AccessPoint]) -> str | None:
    """Why this access point's directory must not be removed, or None (pure)."""
    root = normalise(access_point.root_path)
    if root == PurePosixPath("/"):
        return "it is the file system root"
    base_path = access_point.tags.get(BASE_PATH_TAG)
    if base_path is not None and is_base_path_tag_of(base_path, str(root)):
        return "it is the StorageClass basePath"
    for other in live:
        if other.access_point_id == access_point.access_point_id:
            continue
        if overlap(root, normalise(other.root_path)):
            return f"access point {other.access_point_id} uses {other.root_path}"
    return None


_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _remove_tree(mount_root: Path, relative: PurePosixPath) -> str | None:
    """Remove ``mount_root/relative`` by file descriptor; returns a refusal, or None.

    Each parent is opened with ``O_NOFOLLOW`` relative to the one before, so a symlink on the
    way is refused (ELOOP/ENOTDIR) and a component swapped after it was opened changes
    nothing: the removal works on the directory the descriptor holds. ``rmtree`` with
    ``dir_fd`` checks the last component the same way and never follows links inside."""
    parts = relative.parts
    if not parts:
        return "it is the file system root"
    if any(part in (".", "..") for part in parts):
        return "its path has . or .. components"
    parent = os.open(mount_root, _DIRECTORY_FLAGS)
    try:
        walked = PurePosixPath()
        for part in parts[:-1]:
            walked /= part
            try:
                child = os.open(part, _DIRECTORY_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                return None  # already gone: nothing to do
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    return f"{walked} is a symlink or not a directory"
                raise
            os.close(parent)
            parent = child
        name = parts[-1]
        try:
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            return f"{relative} is a symlink"
        if not stat.S_ISDIR(mode):
            return "it is not a directory"
        # With dir_fd, rmtree opens ``name`` without following a link and checks that what it
        # opened is what it examined, so a swap between the stat above and here is refused.
        shutil.rmtree(name, dir_fd=parent)
        return None
    finally:
        os.close(parent)


class RootDirectoryRemover:
    def __init__(self, mounter: Mounter, *, work_dir: Path, mount_options: Sequence[str] = (),
                 blocking: BlockingCalls | None = None, time_limit: float = REMOVAL_TIME_LIMIT,
                 detach: Detach | None = None, remove_tree: RemoveTree = _remove_tree) -> None:
        """``detach`` unmounts lazily (``MountCommands.lazy_unmount``); without it a root
        still being walked is unmounted normally, which fails while the walk goes on.
        ``remove_tree`` is injectable only so tests can stand in for a removal that blocks on a
        dead NFS server, which a local file system cannot do."""
        self._mounter = mounter
        self._remove_tree = remove_tree
        self._detach = detach or mounter.unmount
        self._work_dir = work_dir
        self._options = tuple(mount_options)
        self._blocking = blocking or BlockingCalls()
        self._time_limit = time_limit

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
        relative = normalise(access_point.root_path).relative_to("/")
        # One removal per directory at a time, across retries (see the module docstring).
        key = f"rmtree:{access_point.file_system_id}:/{relative}"
        mounted = finished = False
        try:
            await self._mounter.mount(access_point.file_system_id, "/", target, self._options)
            mounted = True
            try:
                reason = await self._blocking.run(
                    key, lambda: self._remove_tree(target, relative), self._time_limit)
            except StillHung:
                raise DeadlineExceeded(
                    f"an earlier removal of {access_point.root_path} (access point "
                    f"{access_point.access_point_id}) is still running; DeleteVolume succeeds "
                    "once it has finished") from None
            except TimeoutError:
                raise DeadlineExceeded(
                    f"removing {access_point.root_path} (access point "
                    f"{access_point.access_point_id}) did not finish within "
                    f"{self._time_limit:g}s; it goes on, and DeleteVolume succeeds once it has "
                    "finished") from None
            finished = True
            return reason
        finally:
            await self._release(target, mounted=mounted, finished=finished)

    async def _release(self, target: Path, *, mounted: bool, finished: bool) -> None:
        """Unmount and remove the temporary mount point; lazily while a removal still walks
        the tree. Never hides the error that brought us here: a failure is logged."""
        try:
            if mounted and finished:
                await self._mounter.unmount(target)
            elif mounted:
                await self._detach(target)
            os.rmdir(target)
        except Exception as exc:  # logged, not raised: the caller's own outcome stands
            _log.error("could not clean up a file system root mount", path=str(target),
                       error=str(exc))
