"""The CSI Node service: validates each request, calls one use case, shapes the reply.

proto3 has no required fields, so every REQUIRED field of the spec is checked here and a
missing or malformed one is INVALID_ARGUMENT naming it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from efs_csi import csi
from efs_csi.capabilities import is_read_only, validate_capabilities
from efs_csi.contract import TOPOLOGY_ZONE_KEY
from efs_csi.contract.volume_context import VolumeContext, parse_volume_context
from efs_csi.contract.volume_id import parse_volume_id
from efs_csi.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
    missing,
    shown,
)
from efs_csi.logging import get_logger
from efs_csi.rpc.hook import seconds_left
from efs_csi_node.mount_ops import MountOps
from efs_csi_node.mount_options import build_mount_options
from efs_csi_node.publishing import Publisher, PublishRequest
from efs_csi_node.staging import Stager, StageRequest
from efs_csi_node.stats import VolumeStatsSource
from efs_csi_node.zone import NodeZone, depends_on_zone

_log = get_logger("node.service")
RpcType = csi.NodeServiceCapabilityRpcType
# How long staging a volume whose mount target depends on the zone waits for an unknown zone
# (at most: the call's deadline comes first).
ZONE_WAIT_S = 30.0
# Answer this long before the caller's deadline rather than let it pass unanswered.
DEADLINE_MARGIN_S = 0.5


@dataclass(frozen=True)
class NodeServiceConfig:
    """What NodeGetInfo and NodeGetCapabilities report."""

    node_id: str
    max_volumes_per_node: int = 0
    volume_stats: bool = False
    # The TLS-weakening mount options the operator allows (efs_csi_node.tls_policy).
    allowed_insecure_mount_options: frozenset[str] = frozenset()


# Linux's limits (PATH_MAX, NAME_MAX), in bytes.
MAX_PATH_BYTES = 4095
MAX_NAME_BYTES = 255


def _path(value: str, field: str) -> Path:
    """An absolute path without '..' and within Linux's limits, or INVALID_ARGUMENT."""
    if not value:
        raise missing(field)
    if not value.startswith("/") or "\x00" in value:
        raise InvalidArgument(f"{field} must be an absolute path")
    components = value.split("/")
    if ".." in components:
        # A path that climbs out of where kubelet put it could name any directory.
        raise InvalidArgument(f"{field} {shown(value)} must not contain '..'")
    longest = max(len(component.encode()) for component in components)
    if len(value.encode()) > MAX_PATH_BYTES or longest > MAX_NAME_BYTES:
        raise InvalidArgument(f"{field} {shown(value)} is too long (Linux allows "
                              f"{MAX_PATH_BYTES} bytes, {MAX_NAME_BYTES} per component)")
    return Path(value)


def _capability(capability: csi.VolumeCapability | None) -> csi.VolumeCapability:
    if capability is None:
        raise missing("volume_capability")
    validate_capabilities([capability], "volume_capability")
    return capability


class NodeService(csi.NodeBase):
    def __init__(self, config: NodeServiceConfig, *, stager: Stager, publisher: Publisher,
                 stats: VolumeStatsSource, mounts: MountOps, zone: NodeZone) -> None:
        self._config = config
        self._stager = stager
        self._publisher = publisher
        self._stats = stats
        self._mounts = mounts
        self._zone = zone

    async def _resolved(self, value: str, field: str) -> Path:
        """A checked path from the request, as the mount table shows it (symlinks in its
        parent resolved)."""
        return await self._mounts.resolve(_path(value, field))

    async def node_stage_volume(
        self, message: csi.NodeStageVolumeRequest
    ) -> csi.NodeStageVolumeResponse:
        handle = parse_volume_id(message.volume_id)
        _path(message.staging_target_path, "staging_target_path")
        capability = _capability(message.volume_capability)
        context = parse_volume_context(message.volume_context)
        assert capability.mount is not None  # validated above
        built = build_mount_options(handle, context, capability.mount.mount_flags,
                                    read_only=is_read_only(capability),
                                    zone=await self._zone_for(message.volume_id, context),
                                    allowed_insecure=self._config.allowed_insecure_mount_options)
        for note in built.notes:
            _log.warning("mount options adjusted", volume_id=message.volume_id, detail=note)
        # Every mount's final options, at info: what TLS a volume got is never a guess. (Mount
        # options hold no secrets: the credential-source options are dropped above.)
        _log.info("mount options", volume_id=message.volume_id, options=",".join(built.options))
        staging = await self._resolved(message.staging_target_path, "staging_target_path")
        await self._stager.stage(StageRequest(message.volume_id, handle, staging,
                                              tuple(built.options)))
        self._stats.remember_capacity(message.volume_id, context.capacity_bytes)
        return csi.NodeStageVolumeResponse()

    async def node_unstage_volume(
        self, message: csi.NodeUnstageVolumeRequest
    ) -> csi.NodeUnstageVolumeResponse:
        if not message.volume_id:
            raise missing("volume_id")
        staging = await self._resolved(message.staging_target_path, "staging_target_path")
        await self._stager.unstage(message.volume_id, staging)
        self._stats.forget(message.volume_id)
        return csi.NodeUnstageVolumeResponse()

    async def node_publish_volume(
        self, message: csi.NodePublishVolumeRequest
    ) -> csi.NodePublishVolumeResponse:
        parse_volume_id(message.volume_id)
        _path(message.target_path, "target_path")
        if not message.staging_target_path:
            # CSI: with STAGE_UNSTAGE_VOLUME advertised, the CO stages before publishing.
            raise FailedPrecondition("staging_target_path is required: this plugin has the "
                                     "STAGE_UNSTAGE_VOLUME capability, so NodeStageVolume must "
                                     "run first and its path be passed")
        _path(message.staging_target_path, "staging_target_path")
        capability = _capability(message.volume_capability)
        context = parse_volume_context(message.volume_context)
        read_only = message.readonly or is_read_only(capability)
        target = await self._resolved(message.target_path, "target_path")
        staging = await self._resolved(message.staging_target_path, "staging_target_path")
        await self._publisher.publish(PublishRequest(message.volume_id, staging, target,
                                                     read_only))
        self._stats.remember_capacity(message.volume_id, context.capacity_bytes)
        return csi.NodePublishVolumeResponse()

    async def node_unpublish_volume(
        self, message: csi.NodeUnpublishVolumeRequest
    ) -> csi.NodeUnpublishVolumeResponse:
        if not message.volume_id:
            raise missing("volume_id")
        target = await self._resolved(message.target_path, "target_path")
        await self._publisher.unpublish(target)
        return csi.NodeUnpublishVolumeResponse()

    async def node_get_volume_stats(
        self, message: csi.NodeGetVolumeStatsRequest
    ) -> csi.NodeGetVolumeStatsResponse:
        if not message.volume_id:
            raise missing("volume_id")
        if not message.volume_path:
            raise missing("volume_path")
        if not message.volume_path.startswith("/"):
            # Nothing can be mounted at a relative path (csi-sanity expects NOT_FOUND here).
            raise NotFound(f"volume_path {shown(message.volume_path)} does not exist")
        path = await self._resolved(message.volume_path, "volume_path")
        try:
            handle = parse_volume_id(message.volume_id)
        except InvalidArgument as exc:
            raise NotFound(f"volume {shown(message.volume_id)} does not exist: {exc.message}") \
                from None
        figures = await self._stats.stats(message.volume_id, handle.file_system_id, path)
        # proto3 cannot leave ``used`` out of an entry (kubelet reads a missing one as 0), so
        # a unit whose use is not measured yet gets no entry: the usage list may be empty,
        # which the CSI spec allows and kubelet takes as "no figures for this volume yet".
        usage = []
        if figures.total_bytes is not None and figures.used_bytes is not None:
            usage.append(csi.VolumeUsage(unit=csi.VolumeUsageUnit.BYTES,
                                         total=figures.total_bytes,
                                         used=figures.used_bytes,
                                         available=figures.available_bytes or 0))
        if figures.total_inodes is not None and figures.used_inodes is not None:
            usage.append(csi.VolumeUsage(unit=csi.VolumeUsageUnit.INODES,
                                         total=figures.total_inodes,
                                         used=figures.used_inodes,
                                         available=figures.available_inodes or 0))
        return csi.NodeGetVolumeStatsResponse(
            usage=usage,
            volume_condition=csi.VolumeCondition(abnormal=figures.abnormal,
                                                 message=figures.message))

    async def node_expand_volume(
        self, message: csi.NodeExpandVolumeRequest
    ) -> csi.NodeExpandVolumeResponse:
        raise Unimplemented("EFS volumes are elastic; NodeExpandVolume is not supported")

    async def node_get_capabilities(
        self, message: csi.NodeGetCapabilitiesRequest
    ) -> csi.NodeGetCapabilitiesResponse:
        kinds = [RpcType.STAGE_UNSTAGE_VOLUME, RpcType.SINGLE_NODE_MULTI_WRITER,
                 RpcType.VOLUME_CONDITION]
        if self._config.volume_stats:
            kinds.append(RpcType.GET_VOLUME_STATS)
        return csi.NodeGetCapabilitiesResponse(capabilities=[
            csi.NodeServiceCapability(rpc=csi.NodeServiceCapabilityRpc(type=kind))
            for kind in kinds])

    async def _zone_for(self, volume_id: str, context: VolumeContext) -> str | None:
        """The zone, waited for only when it decides the volume's mount target."""
        if self._zone.settled or not depends_on_zone(context):
            return self._zone.current
        try:
            async with asyncio.timeout(_within_deadline(ZONE_WAIT_S)):
                return await self._zone.wait()
        except TimeoutError:
            raise Unavailable(
                f"volume {volume_id} is mounted through the mount target of this node's "
                "availability zone (volume_context mounttargetipmap), which is not known yet: "
                f"{self._zone.cause or 'still being looked up'}; retry") from None

    async def node_get_info(self, message: csi.NodeGetInfoRequest) -> csi.NodeGetInfoResponse:
        zone = await self._zone_for_registration()
        topology = csi.Topology(segments={TOPOLOGY_ZONE_KEY: zone}) if zone else None
        return csi.NodeGetInfoResponse(node_id=self._config.node_id,
                                       max_volumes_per_node=self._config.max_volumes_per_node,
                                       accessible_topology=topology)

    async def _zone_for_registration(self) -> str | None:
        """The zone, or none once the node's registration bound (or the call's deadline) has
        come: kubelet registers a node only when NodeGetInfo answers."""
        wait = _within_deadline(self._zone.registration_wait_s())
        try:
            async with asyncio.timeout(wait):
                return await self._zone.wait()
        except TimeoutError:
            self._zone.answer_without_zone(wait)
            return None


def _within_deadline(wait: float) -> float:
    """``wait``, cut to end ``DEADLINE_MARGIN_S`` before the caller's deadline."""
    left = seconds_left()
    return wait if left is None else max(0.0, min(wait, left - DEADLINE_MARGIN_S))
