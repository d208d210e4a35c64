"""DeleteVolume's use case (``Provisioner.delete``) through the service: idempotent for every
kind of volume id, the file system checked, and one EFS call for an access point this process
knows however old its listing."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.service import ControllerService
from testbed.fake_cloud import FakeCloud
from tests.support.controller import (
    FS,
    Harness,
    code_of,
    create_request,
    provisioner,
)


@pytest.mark.asyncio
async def test_delete_is_idempotent_and_checks_the_file_system(harness: Harness) -> None:
    reply = await harness.stub.create_volume(create_request())
    assert reply.volume is not None
    volume_id = reply.volume.volume_id
    wrong = volume_id.replace(FS, "fs-aaaaaaaa")
    status, message = await code_of(harness.stub.delete_volume(
        csi.DeleteVolumeRequest(volume_id=wrong)))
    assert status == Status.INVALID_ARGUMENT and FS in message
    for target in (volume_id, volume_id, "not-a-handle", FS, f"{FS}::fsap-0123456789abcdef"):
        await harness.stub.delete_volume(csi.DeleteVolumeRequest(volume_id=target))
    assert harness.cloud.access_points_by_id == {}
    status, _ = await code_of(harness.stub.delete_volume(csi.DeleteVolumeRequest()))
    assert status == Status.INVALID_ARGUMENT
    [snapshot] = harness.allocator.snapshot()
    assert snapshot.access_points == 0 and snapshot.gids_in_use == 0


@pytest.mark.asyncio
async def test_deleting_a_known_access_point_costs_one_call_however_old_the_listing() -> None:
    """What a delete needs of an access point (its file system) never changes: one this
    process knows is deleted without describing it first, even after the listing aged."""
    clock = [0.0]
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100, max_age=5.0, clock=lambda: clock[0])
    service = ControllerService(provisioner(cloud, allocator))
    async with ChannelFor([instrument(service, CallsInFlight())]) as channel:
        stub = csi.ControllerStub(channel)
        replies = [await stub.create_volume(create_request(name=f"pv-{n}")) for n in range(3)]
        clock[0] = 60.0  # far beyond the inventory's max age
        cloud.calls.clear()
        for reply in replies:
            assert reply.volume is not None
            await stub.delete_volume(csi.DeleteVolumeRequest(volume_id=reply.volume.volume_id))
        assert cloud.calls == {"DeleteAccessPoint": 3}
        assert cloud.access_points_by_id == {}
        # Deleted behind our back: EFS answers NotFound, and the delete still succeeds.
        gone = await stub.create_volume(create_request(name="pv-gone"))
        assert gone.volume is not None
        cloud.access_points_by_id.clear()
        cloud.calls.clear()
        await stub.delete_volume(csi.DeleteVolumeRequest(volume_id=gone.volume.volume_id))
        assert cloud.calls == {"DeleteAccessPoint": 1}
