"""CreateVolume against an EFS API that does not honour ClientToken (moto makes a new access
point for a repeated token; EFS never does), over gRPC with an in-memory EFS made to behave so
(a fake: real EFS cannot be made to). A leader that died mid-create leaves an access point
under the volume's token; its successor's retry makes another: the volume keeps exactly one,
the lowest id, whichever controller settles it, and nothing is left behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.provisioning import Provisioner
from efs_csi_controller.service import ControllerService
from testbed.csi_builders import mount_capability
from testbed.fake_cloud import FakeCloud

pytestmark = pytest.mark.asyncio

FS = "fs-12345678"
NAME = "pvc-1f0e5c9a-7b6d-4c3e-9a8b-0123456789ab"


@asynccontextmanager
async def controller(cloud: FakeCloud) -> AsyncIterator[csi.ControllerStub]:
    """A controller process of its own (its own inventory), as a new leader is."""
    provisioner = Provisioner(
        clouds=cloud,
        allocator=GidAllocator(access_point_limit=100, recheck_pauses=(0.01,)),
        kube=None, extra_tags={}, root_dirs=None)
    async with ChannelFor([instrument(ControllerService(provisioner), CallsInFlight())]) as channel:
        yield csi.ControllerStub(channel)


def create_request() -> csi.CreateVolumeRequest:
    return csi.CreateVolumeRequest(
        name=NAME, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[mount_capability()],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": FS, "directoryPerms": "700"})


def volume_access_point(reply: csi.CreateVolumeResponse) -> str:
    assert reply.volume is not None
    return reply.volume.volume_id.split("::", 1)[1]


@pytest.mark.parametrize("dead_leaders_is_lowest", [True, False])
async def test_a_retry_after_a_dead_leaders_create_leaves_one_access_point(
        dead_leaders_is_lowest: bool) -> None:
    cloud = FakeCloud(FS)
    cloud.honours_client_tokens = False
    if not dead_leaders_is_lowest:  # the fake's ids count up: let the successor's come first
        cloud.number_ids_from(0x20000000)
    async with controller(cloud) as dead_leader:
        first = volume_access_point(await dead_leader.create_volume(create_request()))
    if not dead_leaders_is_lowest:
        cloud.number_ids_from(0x10000000)
    async with controller(cloud) as successor:
        reply = await successor.create_volume(create_request())  # csi-provisioner's retry
        remaining = sorted(cloud.access_points_by_id)
        assert len(remaining) == 1, remaining
        assert volume_access_point(reply) == remaining[0]
        assert (remaining[0] == first) is dead_leaders_is_lowest
        again = await successor.create_volume(create_request())  # a retry finds that one
        assert volume_access_point(again) == remaining[0]
        assert sorted(cloud.access_points_by_id) == remaining


async def test_an_api_that_honours_client_tokens_never_duplicates() -> None:
    cloud = FakeCloud(FS)
    async with controller(cloud) as dead_leader:
        first = volume_access_point(await dead_leader.create_volume(create_request()))
    async with controller(cloud) as successor:
        assert volume_access_point(await successor.create_volume(create_request())) == first
    assert list(cloud.access_points_by_id) == [first]
