"""The Controller service's own part, over grpclib's in-memory channel: the shape of each request
checked before any AWS call, the capabilities, ValidateVolumeCapabilities and expansion, and
the status a call ends with (the use cases behind it: test_provisioning_*.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.service import ControllerService
from testbed.fake_cloud import FakeCloud
from tests.support.controller import (
    FS,
    PARAMS,
    Harness,
    capability,
    code_of,
    create_request,
    provisioner,
)


@pytest.mark.asyncio
@pytest.mark.parametrize(("request_", "named"), [
    (create_request(name=""), "name is required"),
    (create_request(directoryPerms="999"), "directoryPerms"),
    (create_request(subPathPattern="${.PVC.uid}"), "subPathPattern"),
    (create_request(basePath="/a/b/c/d"), "components"),
    (create_request(enableTagging="false"), "enableTagging"),  # conflicts with --tags
    (csi.CreateVolumeRequest(name="x", parameters=PARAMS), "volume_capabilities"),
    (csi.CreateVolumeRequest(name="x", parameters=PARAMS,
                             volume_capabilities=[capability(block=True)]), "block"),
    (csi.CreateVolumeRequest(name="x", parameters=PARAMS, volume_capabilities=[capability()],
                             capacity_range=csi.CapacityRange(required_bytes=10,
                                                              limit_bytes=5)), "limit_bytes"),
])
async def test_bad_requests_fail_before_any_aws_call(harness: Harness,
                                                     request_: csi.CreateVolumeRequest,
                                                     named: str) -> None:
    status, message = await code_of(harness.stub.create_volume(request_))
    assert status == Status.INVALID_ARGUMENT and named in message
    assert sum(harness.cloud.calls.values()) == 0


@pytest.mark.asyncio
async def test_capabilities_expand_validate_and_unimplemented(harness: Harness) -> None:
    caps = await harness.stub.controller_get_capabilities(csi.ControllerGetCapabilitiesRequest())
    kinds = {c.rpc.type for c in caps.capabilities if c.rpc}
    assert kinds == {csi.ControllerServiceCapabilityRpcType.CREATE_DELETE_VOLUME,
                     csi.ControllerServiceCapabilityRpcType.EXPAND_VOLUME}
    created = await harness.stub.create_volume(create_request())
    assert created.volume is not None
    volume_id = created.volume.volume_id
    expanded = await harness.stub.controller_expand_volume(csi.ControllerExpandVolumeRequest(
        volume_id=volume_id, capacity_range=csi.CapacityRange(required_bytes=10 << 30)))
    assert (expanded.capacity_bytes, expanded.node_expansion_required) == (10 << 30, False)
    valid = await harness.stub.validate_volume_capabilities(
        csi.ValidateVolumeCapabilitiesRequest(volume_id=volume_id,
                                              volume_capabilities=[capability()]))
    assert valid.confirmed is not None
    block = await harness.stub.validate_volume_capabilities(
        csi.ValidateVolumeCapabilitiesRequest(volume_id=volume_id,
                                              volume_capabilities=[capability(block=True)]))
    assert block.confirmed is None and "block" in block.message
    status, _ = await code_of(harness.stub.validate_volume_capabilities(
        csi.ValidateVolumeCapabilitiesRequest(volume_id=f"{FS}::fsap-0123456789abcdef",
                                              volume_capabilities=[capability()])))
    assert status == Status.NOT_FOUND
    status, _ = await code_of(harness.stub.list_volumes(csi.ListVolumesRequest()))
    assert status == Status.UNIMPLEMENTED


@dataclass
class Codes:
    seen: list[tuple[str, Status]]

    def observe(self, method: str, code: Status, seconds: float) -> None:
        self.seen.append((method, code))


@pytest.mark.asyncio
async def test_a_passed_deadline_is_counted_as_deadline_exceeded_not_cancelled() -> None:
    """grpclib cancels the handler at the client's deadline; what the log line and the
    metrics say must be what the client got: DEADLINE_EXCEEDED. A client that goes away
    before its deadline is CANCELLED."""
    cloud = FakeCloud(FS)
    cloud.gate = asyncio.Event()  # EFS never answers the create
    codes = Codes([])
    service = ControllerService(provisioner(cloud, GidAllocator(access_point_limit=100)))
    async with ChannelFor([instrument(service, CallsInFlight(), codes)]) as channel:
        stub = csi.ControllerStub(channel)
        with pytest.raises((GRPCError, TimeoutError)):
            await stub.create_volume(create_request(), timeout=0.3)
        call = asyncio.ensure_future(stub.create_volume(create_request(name="pv-2"),
                                                        timeout=30))
        while cloud.calls["CreateAccessPoint"] < 2:  # noqa: ASYNC110 - the call is in flight
            await asyncio.sleep(0.01)
        call.cancel()  # the client goes away long before its deadline
        with pytest.raises(asyncio.CancelledError):
            await call
        while len(codes.seen) < 2:  # noqa: ASYNC110 - the server side finishes
            await asyncio.sleep(0.01)
    assert codes.seen == [("CreateVolume", Status.DEADLINE_EXCEEDED),
                          ("CreateVolume", Status.CANCELLED)]
