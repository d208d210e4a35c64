"""The CSI Controller service: checks the request's shape, calls one use case, answers.

RPCs not listed in ``CAPABILITIES`` keep the generated base class's UNIMPLEMENTED answer.
"""

from __future__ import annotations

from efs_csi import csi
from efs_csi.capabilities import validate_capabilities
from efs_csi.contract import TOPOLOGY_ZONE_KEY
from efs_csi.contract.volume_id import parse_volume_id
from efs_csi.errors import InvalidArgument, missing
from efs_csi_controller.provisioning import CreateRequest, Provisioner

RpcType = csi.ControllerServiceCapabilityRpcType
CAPABILITIES = (RpcType.CREATE_DELETE_VOLUME, RpcType.EXPAND_VOLUME)


def requested_capacity(capacity: csi.CapacityRange | None) -> int:
    """Bytes to report: EFS is elastic, so the request is simply echoed back."""
    if capacity is None:
        return 0
    if capacity.required_bytes < 0 or capacity.limit_bytes < 0:
        raise InvalidArgument("capacity_range: bytes must not be negative")
    if capacity.limit_bytes and capacity.required_bytes > capacity.limit_bytes:
        raise InvalidArgument(f"capacity_range: required_bytes {capacity.required_bytes} "
                              f"exceeds limit_bytes {capacity.limit_bytes}")
    return capacity.required_bytes or capacity.limit_bytes


class ControllerService(csi.ControllerBase):
    def __init__(self, provisioner: Provisioner) -> None:
        self._provisioner = provisioner

    async def create_volume(self, message: csi.CreateVolumeRequest) -> csi.CreateVolumeResponse:
        if not message.name:
            raise missing("name")
        validate_capabilities(message.volume_capabilities)
        if message.volume_content_source is not None:
            raise InvalidArgument("volume_content_source: snapshots and clones are not "
                                  "supported by EFS access points")
        created = await self._provisioner.create(CreateRequest(
            name=message.name, capacity_bytes=requested_capacity(message.capacity_range),
            parameters=dict(message.parameters), secrets=dict(message.secrets)))
        topology = ([csi.Topology(segments={TOPOLOGY_ZONE_KEY: created.zone})]
                    if created.zone else [])
        return csi.CreateVolumeResponse(volume=csi.Volume(
            volume_id=created.volume_id, capacity_bytes=created.capacity_bytes,
            volume_context=created.context, accessible_topology=topology))

    async def delete_volume(self, message: csi.DeleteVolumeRequest) -> csi.DeleteVolumeResponse:
        if not message.volume_id:
            raise missing("volume_id")
        await self._provisioner.delete(message.volume_id, dict(message.secrets))
        return csi.DeleteVolumeResponse()

    async def validate_volume_capabilities(
        self, message: csi.ValidateVolumeCapabilitiesRequest
    ) -> csi.ValidateVolumeCapabilitiesResponse:
        if not message.volume_id:
            raise missing("volume_id")
        if not message.volume_capabilities:
            raise missing("volume_capabilities")
        await self._provisioner.check_exists(message.volume_id, dict(message.secrets))
        try:
            validate_capabilities(message.volume_capabilities)
        except InvalidArgument as exc:
            # Unsupported capabilities are a normal answer here, not an error.
            return csi.ValidateVolumeCapabilitiesResponse(message=exc.message)
        return csi.ValidateVolumeCapabilitiesResponse(
            confirmed=csi.ValidateVolumeCapabilitiesResponseConfirmed(
                volume_context=dict(message.volume_context),
                volume_capabilities=list(message.volume_capabilities),
                parameters=dict(message.parameters)))

    async def controller_get_capabilities(
        self, message: csi.ControllerGetCapabilitiesRequest
    ) -> csi.ControllerGetCapabilitiesResponse:
        return csi.ControllerGetCapabilitiesResponse(capabilities=[
            csi.ControllerServiceCapability(rpc=csi.ControllerServiceCapabilityRpc(type=kind))
            for kind in CAPABILITIES])

    async def controller_expand_volume(
        self, message: csi.ControllerExpandVolumeRequest
    ) -> csi.ControllerExpandVolumeResponse:
        if not message.volume_id:
            raise missing("volume_id")
        if message.capacity_range is None:
            raise missing("capacity_range")
        parse_volume_id(message.volume_id)
        if message.volume_capability is not None:
            validate_capabilities([message.volume_capability], "volume_capability")
        # EFS is elastic: nothing to grow, and nothing for the node to do either.
        return csi.ControllerExpandVolumeResponse(
            capacity_bytes=requested_capacity(message.capacity_range),
            node_expansion_required=False)
