"""CSI request pieces shared by tests, benchmarks and the demo, and the nearest-rank percentile."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from efs_csi import csi

Mode = csi.VolumeCapabilityAccessModeMode


def mount_capability(mode: Mode = Mode.MULTI_NODE_MULTI_WRITER,
                     flags: Sequence[str] | None = None) -> csi.VolumeCapability:
    """A mount-type capability (EFS serves no block volumes)."""
    return csi.VolumeCapability(
        mount=csi.VolumeCapabilityMountVolume(mount_flags=list(flags or [])),
        access_mode=csi.VolumeCapabilityAccessMode(mode=mode))


def create_request(name: str, file_system_id: str, **parameters: str) -> csi.CreateVolumeRequest:
    """CreateVolume of a 1 GiB access-point volume on ``file_system_id`` (directoryPerms 700),
    with ``parameters`` added."""
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[mount_capability()],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": file_system_id,
                    "directoryPerms": "700", **parameters})


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (the smallest value with ``fraction`` of values at or below)."""
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def stage_request(volume_id: str, staging: Path, *, mode: csi.VolumeCapabilityAccessModeMode
                  = csi.VolumeCapabilityAccessModeMode.MULTI_NODE_MULTI_WRITER,
                  flags: list[str] | None = None,
                  context: dict[str, str] | None = None) -> csi.NodeStageVolumeRequest:
    return csi.NodeStageVolumeRequest(
        volume_id=volume_id, staging_target_path=str(staging),
        volume_capability=mount_capability(mode, flags), volume_context=context or {})


def publish_request(volume_id: str, staging: Path, target: Path, *, readonly: bool = False,
                    mode: csi.VolumeCapabilityAccessModeMode =
                    csi.VolumeCapabilityAccessModeMode.MULTI_NODE_MULTI_WRITER,
                    context: dict[str, str] | None = None) -> csi.NodePublishVolumeRequest:
    return csi.NodePublishVolumeRequest(
        volume_id=volume_id, staging_target_path=str(staging), target_path=str(target),
        volume_capability=mount_capability(mode), readonly=readonly, volume_context=context or {})
