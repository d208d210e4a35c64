"""The volume handle: the contract between the controller and the node.

Forms (an optional ``efs:`` prefix is accepted on input, never produced):
    fs-<hex>                      the file system root
    fs-<hex>:<path>               a subdirectory of the file system
    fs-<hex>::fsap-<hex>          an access point
    fs-<hex>:<path>:fsap-<hex>    a subdirectory below an access point's root

Empty fields are accepted as absent, as the reference driver accepts them: ``fs-<hex>:`` and
``fs-<hex>::`` are the file system root, ``fs-<hex>:<path>:`` a subdirectory. A handle is
always produced in its shortest form.

IDs are validated strictly: they end up in mount arguments, so anything that is not exactly
``fs-[0-9a-f]{8,40}`` / ``fsap-[0-9a-f]{8,40}`` is rejected rather than escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from efs_csi.errors import InvalidArgument, shown

FILE_SYSTEM_ID = re.compile(r"fs-[0-9a-f]{8,40}")
ACCESS_POINT_ID = re.compile(r"fsap-[0-9a-f]{8,40}")
_PREFIX = "efs:"
_MAX_PATH = 4096


@dataclass(frozen=True)
class VolumeHandle:
    file_system_id: str
    path: str = ""
    access_point_id: str = ""

    def __str__(self) -> str:
        if self.access_point_id:
            return f"{self.file_system_id}:{self.path}:{self.access_point_id}"
        if self.path:
            return f"{self.file_system_id}:{self.path}"
        return self.file_system_id


def is_file_system_id(value: str) -> bool:
    return FILE_SYSTEM_ID.fullmatch(value) is not None


def is_access_point_id(value: str) -> bool:
    return ACCESS_POINT_ID.fullmatch(value) is not None


def _check_path(path: str, volume_id: str) -> None:
    if not path:
        return
    if not path.startswith("/"):
        raise InvalidArgument(f"volume_id {shown(volume_id)}: path {shown(path)} must be absolute")
    if len(path) > _MAX_PATH or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
        raise InvalidArgument(f"volume_id {shown(volume_id)}: path contains control characters "
                              "or is too long")
    if ".." in path.split("/"):
        raise InvalidArgument(f"volume_id {shown(volume_id)}: path must not contain '..'")


def parse_volume_id(volume_id: str) -> VolumeHandle:
    """Parse a volume handle, raising InvalidArgument that names the problem."""
    if not volume_id:
        raise InvalidArgument("volume_id is required")
    body = volume_id.removeprefix(_PREFIX)
    parts = body.split(":")
    if len(parts) > 3:
        raise InvalidArgument(f"volume_id {shown(volume_id)}: expected "
                              "fs-id[:path[:fsap-id]], got too many ':' separators")
    file_system_id = parts[0]
    path = parts[1] if len(parts) > 1 else ""
    access_point_id = parts[2] if len(parts) > 2 else ""
    if not is_file_system_id(file_system_id):
        raise InvalidArgument(f"volume_id {shown(volume_id)}: file system id must match "
                              f"{FILE_SYSTEM_ID.pattern}")
    if access_point_id and not is_access_point_id(access_point_id):
        raise InvalidArgument(f"volume_id {shown(volume_id)}: access point id must match "
                              f"{ACCESS_POINT_ID.pattern}")
    _check_path(path, volume_id)
    return VolumeHandle(file_system_id, path, access_point_id)
