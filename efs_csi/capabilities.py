"""Volume-capability checks shared by the controller and the node.

EFS is a shared file system: every access mode that can be served by NFS is accepted, block
access is not, and the only file system types are "" and "efs".
"""

from __future__ import annotations

from collections.abc import Sequence

from efs_csi import csi
from efs_csi.errors import InvalidArgument

AccessMode = csi.VolumeCapabilityAccessModeMode

SUPPORTED_ACCESS_MODES = frozenset({
    AccessMode.SINGLE_NODE_WRITER,
    AccessMode.SINGLE_NODE_READER_ONLY,
    AccessMode.SINGLE_NODE_SINGLE_WRITER,
    AccessMode.SINGLE_NODE_MULTI_WRITER,
    AccessMode.MULTI_NODE_READER_ONLY,
    AccessMode.MULTI_NODE_SINGLE_WRITER,
    AccessMode.MULTI_NODE_MULTI_WRITER,
})
READ_ONLY_ACCESS_MODES = frozenset({
    AccessMode.SINGLE_NODE_READER_ONLY,
    AccessMode.MULTI_NODE_READER_ONLY,
})
SUPPORTED_FS_TYPES = frozenset({"", "efs"})


def capability_problem(capability: csi.VolumeCapability) -> str | None:
    """Why ``capability`` cannot be served, or None when it can."""
    if capability.block is not None:
        return "block access type is not supported; use mount"
    if capability.mount is None:
        return "access_type is required (mount)"
    if capability.mount.fs_type not in SUPPORTED_FS_TYPES:
        return f"fs_type {capability.mount.fs_type!r} is not supported; use '' or 'efs'"
    if capability.access_mode is None:
        return "access_mode is required"
    mode = capability.access_mode.mode
    if mode not in SUPPORTED_ACCESS_MODES:
        name = getattr(mode, "name", None) or str(mode)
        return f"access mode {name} is not supported"
    return None


def validate_capabilities(capabilities: Sequence[csi.VolumeCapability],
                          field: str = "volume_capabilities") -> None:
    """Raise INVALID_ARGUMENT naming the field when any capability is missing or unsupported."""
    if not capabilities:
        raise InvalidArgument(f"{field} is required")
    for index, capability in enumerate(capabilities):
        problem = capability_problem(capability)
        if problem is not None:
            raise InvalidArgument(f"{field}[{index}]: {problem}")


def is_read_only(capability: csi.VolumeCapability) -> bool:
    return (capability.access_mode is not None
            and capability.access_mode.mode in READ_ONLY_ACCESS_MODES)
