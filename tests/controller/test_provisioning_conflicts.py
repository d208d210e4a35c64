"""A create whose volume name EFS already knows: the same parameters answer the same volume
(confirmed with EFS first), other parameters or another file system are ALREADY_EXISTS naming
why, and a volume deleted behind our back no longer holds its name."""

from __future__ import annotations

import pytest
from grpclib.const import Status
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.cloud import (
    FileSystem,
)
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.service import ControllerService
from tests.support.controller import (
    FS,
    OTHER_FS,
    Harness,
    code_of,
    create_request,
    provisioner,
)


@pytest.mark.asyncio
async def test_repeated_create_confirms_its_access_point_still_exists(harness: Harness) -> None:
    await harness.stub.create_volume(create_request())
    harness.cloud.access_points_by_id.clear()
    again = await harness.stub.create_volume(create_request())
    assert again.volume is not None
    [made] = harness.cloud.access_points_by_id.values()
    assert again.volume.volume_id.endswith(made.access_point_id)


@pytest.mark.asyncio
@pytest.mark.parametrize(("change", "named"), [
    ({"directoryPerms": "755"}, "permissions"),
    ({"basePath": "/other"}, "path"),
    ({"uid": "4242"}, "uid"),
    ({"gidRangeStart": "3000", "gidRangeEnd": "4000"}, "outside"),
])
async def test_same_name_with_incompatible_parameters_is_already_exists(
        harness: Harness, change: dict[str, str], named: str) -> None:
    await harness.stub.create_volume(create_request())
    status, message = await code_of(harness.stub.create_volume(create_request(**change)))
    assert status == Status.ALREADY_EXISTS and named in message, message
    assert harness.cloud.calls["CreateAccessPoint"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("named", [False, True])
async def test_same_name_on_another_file_system_names_where_the_volume_is(
        harness: Harness, named: bool) -> None:
    harness.cloud.name_conflicts = named
    harness.cloud.add_file_system(FileSystem(OTHER_FS))
    first = await harness.stub.create_volume(create_request())
    assert first.volume is not None
    status, message = await code_of(harness.stub.create_volume(
        create_request(fileSystemId=OTHER_FS)))
    assert status == Status.ALREADY_EXISTS
    assert FS in message and OTHER_FS in message and "unique per account" in message
    # A controller that never saw the first file system learns it from EFS's refusal.
    fresh = ControllerService(provisioner(harness.cloud, GidAllocator(access_point_limit=100)))
    async with ChannelFor([instrument(fresh, CallsInFlight())]) as channel:
        status, message = await code_of(csi.ControllerStub(channel).create_volume(
            create_request(fileSystemId=OTHER_FS)))
    assert status == Status.ALREADY_EXISTS and OTHER_FS in message
    # When EFS names the access point, so does the answer; else it says where to look.
    assert (FS in message) if named else ("another file system" in message)
    assert len(harness.cloud.access_points_by_id) == 1


@pytest.mark.asyncio
async def test_a_volume_gone_from_another_file_system_does_not_block_the_name(
        harness: Harness) -> None:
    harness.cloud.add_file_system(FileSystem(OTHER_FS))
    await harness.stub.create_volume(create_request())
    harness.cloud.access_points_by_id.clear()  # deleted by someone else
    reply = await harness.stub.create_volume(create_request(fileSystemId=OTHER_FS))
    assert reply.volume is not None and reply.volume.volume_id.startswith(OTHER_FS)

