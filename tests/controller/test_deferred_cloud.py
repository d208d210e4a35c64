"""The controller serves before its AWS client exists: EFS-backed calls wait for the clients
(``DeferredClouds``), within their deadline, then go to them (the whole assembly through the
real gRPC hook; the cloud in memory, as the clients arrive when a test says)."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.cloud import Cloud
from efs_csi.rpc.hook import InFlight, instrument, seconds_left
from efs_csi_controller.app import build_controller
from efs_csi_controller.deferred_cloud import DeferredClouds
from tests.controller.test_service import FS, create_request
from tests.support.fakes.cloud import FakeCloud

pytestmark = pytest.mark.asyncio


async def test_a_create_waits_for_the_clients_then_goes_to_them() -> None:
    clouds = DeferredClouds()
    parts = build_controller(clouds.cloud, for_role=clouds.for_role, access_point_limit=100,
                             extra_tags={})
    cloud = FakeCloud(FS)
    async with ChannelFor([instrument(parts.service, InFlight())]) as channel:
        stub = csi.ControllerStub(channel)
        create = asyncio.create_task(stub.create_volume(create_request(), timeout=10))
        await asyncio.sleep(0.05)
        assert not create.done() and not cloud.calls  # waiting, nothing asked yet
        clouds.provide(cloud, None)
        reply = await asyncio.wait_for(create, 10)
        assert reply.volume is not None and reply.volume.volume_id.startswith(f"{FS}::fsap-")
        assert cloud.calls["CreateAccessPoint"] == 1
        # Later calls go straight through.
        await stub.delete_volume(csi.DeleteVolumeRequest(volume_id=reply.volume.volume_id),
                                 timeout=5)
    assert not cloud.access_points_by_id


async def test_a_call_whose_deadline_passes_first_leaves_nothing_waiting() -> None:
    clouds = DeferredClouds()
    parts = build_controller(clouds.cloud, for_role=clouds.for_role, access_point_limit=100,
                             extra_tags={})
    in_flight = InFlight()
    async with ChannelFor([instrument(parts.service, in_flight)]) as channel:
        with pytest.raises(TimeoutError):  # the client's side of DEADLINE_EXCEEDED
            await csi.ControllerStub(channel).create_volume(create_request(), timeout=0.2)
        await asyncio.wait_for(in_flight.wait_idle(), 5)


async def test_with_the_callers_deadline_known_the_wait_is_answered_unavailable() -> None:
    """As the controller runs it (the hook's ``seconds_left``): the answer says why, before
    the caller's deadline, instead of a bare DEADLINE_EXCEEDED."""
    clouds = DeferredClouds(time_left=seconds_left)
    parts = build_controller(clouds.cloud, for_role=clouds.for_role, access_point_limit=100,
                             extra_tags={})
    async with ChannelFor([instrument(parts.service, InFlight())]) as channel:
        with pytest.raises(GRPCError) as raised:
            await csi.ControllerStub(channel).create_volume(create_request(), timeout=1.0)
    assert raised.value.status == Status.UNAVAILABLE
    assert "EFS API client is not ready yet" in (raised.value.message or "")


async def test_roles_go_to_the_provided_factory_once_it_exists() -> None:
    clouds = DeferredClouds()
    by_role = FakeCloud(FS)
    asked: list[tuple[str, str | None]] = []

    async def for_role(arn: str, external_id: str | None) -> Cloud:
        asked.append((arn, external_id))
        return by_role

    pending = asyncio.create_task(clouds.for_role("arn:aws:iam::123456789012:role/r", "x"))
    await asyncio.sleep(0.01)
    assert not pending.done()
    clouds.provide(FakeCloud(FS), for_role)
    assert await asyncio.wait_for(pending, 5) is by_role
    assert asked == [("arn:aws:iam::123456789012:role/r", "x")]
    clouds.withdraw()  # the clients close with the server: calls would wait again
    assert not clouds.provided
