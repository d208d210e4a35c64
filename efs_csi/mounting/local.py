"""The ``local`` backend: EFS without NFS, for development, kind and tests.

File system ``fs-x`` is the directory ``<root>/fs-x``; mounting is a real bind mount. As on
EFS, an access point's root directory is created on first mount with the owner and
permissions of its CreationInfo (looked up through the EFS API), a path in the handle is
below the access point's root, a missing path fails the mount, and nothing outside the file
system can be reached (symlinks are resolved and checked).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from efs_csi.cloud import AccessPoint
from efs_csi.errors import Internal
from efs_csi.mounting.blocking import BlockingCalls
from efs_csi.mounting.mount import MountCommands

AccessPointLookup = Callable[[str], Awaitable[AccessPoint]]


class LocalMountFailed(Internal):
    pass


def _access_point_id(options: Sequence[str]) -> str | None:
    for option in options:
        key, _, value = option.partition("=")
        if key.lower() == "accesspoint":
            return value
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _in_partial_user_namespace() -> bool:
    """True inside a user namespace that maps only some ids (e.g. ``unshare --map-root-user``).

    There an access point's owner may simply not exist; EFS would still record it, but the
    kernel cannot, so ownership is left to the mapped user instead of failing the mount.
    """
    try:
        mapping = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return mapping[:3] != ["0", "0", "4294967295"]


def _chown(path: Path, uid: int, gid: int) -> None:
    try:
        os.chown(path, uid, gid)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EPERM) or not _in_partial_user_namespace():
            raise


def _make_root(directory: Path, uid: int, gid: int, permissions: str) -> None:
    """Create ``directory`` and any missing parents as EFS does for an access point root.

    Two access points under one missing parent (``/dynamic/pvc-a``, ``/dynamic/pvc-b``) are
    often first mounted at once: a parent that appears between the look and the mkdir was made
    by the other mount, which set its owner and mode, so it is used as it is, not an error.
    """
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    mode = int(permissions, 8)
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:
            if path.is_dir():
                continue
            raise
        _chown(path, uid, gid)
        os.chmod(path, mode)  # not mkdir's mode: the umask must not change it


@dataclass
class LocalMounter:
    root: Path
    commands: MountCommands
    blocking: BlockingCalls
    # None: access points cannot be used (no EFS API configured).
    describe_access_point: AccessPointLookup | None = None

    def file_system_dir(self, file_system_id: str) -> Path:
        return self.root / file_system_id

    async def source_dir(self, file_system_id: str, path: str,
                         options: Sequence[str]) -> Path:
        """The directory a mount of ``file_system_id:path`` shows, created as EFS would."""
        base = self.file_system_dir(file_system_id)
        access_point_id = _access_point_id(options)
        start = base
        if access_point_id:
            start = await self._access_point_root(file_system_id, access_point_id, base)
        source = start / path.lstrip("/")

        def resolve() -> Path:
            if not base.is_dir():
                raise LocalMountFailed(f"file system {file_system_id} does not exist "
                                       f"(no directory {base})")
            resolved = source.resolve()
            if not _inside(resolved, base.resolve()):
                raise LocalMountFailed(f"{file_system_id}:{path} leads outside the file system")
            if not resolved.is_dir():
                raise LocalMountFailed(f"mount {file_system_id}:{path or '/'} failed: "
                                       "no such directory")
            return resolved

        return await self.blocking.run(f"source:{source}", resolve, self.commands.mount_timeout)

    async def _access_point_root(self, file_system_id: str, access_point_id: str,
                                 base: Path) -> Path:
        if self.describe_access_point is None:
            raise LocalMountFailed(f"access point {access_point_id}: no EFS API configured")
        access_point = await self.describe_access_point(access_point_id)
        if access_point.file_system_id != file_system_id:
            raise LocalMountFailed(f"access point {access_point_id} belongs to "
                                   f"{access_point.file_system_id}, not {file_system_id}")
        directory = base / access_point.root_path.lstrip("/")
        info = access_point.creation_info

        def ensure() -> None:
            if not base.is_dir():
                raise LocalMountFailed(f"file system {file_system_id} does not exist")
            if directory.exists():
                return
            if info is None:
                raise LocalMountFailed(f"access point {access_point_id}: root directory "
                                       f"{access_point.root_path} does not exist and the "
                                       "access point has no CreationInfo")
            _make_root(directory, info.owner_uid, info.owner_gid, info.permissions)

        await self.blocking.run(f"ensure:{directory}", ensure, self.commands.mount_timeout)
        return directory

    async def mount(self, file_system_id: str, path: str, target: Path,
                    options: Sequence[str]) -> None:
        source = await self.source_dir(file_system_id, path, options)
        read_only = ["-o", "ro"] if any(option == "ro" for option in options) else []
        await self.commands.mount(["--bind", *read_only, str(source), str(target)])

    async def unmount(self, target: Path) -> None:
        await self.commands.unmount(target)
