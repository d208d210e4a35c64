"""The controller serves before its AWS client exists: EFS-backed calls wait for the clients
(``WaitingClouds``), within their deadline, then go to them; without a region they are answered
FAILED_PRECONDITION naming the fix (the whole assembly through the real gRPC hook; the cloud in
memory, as the clients arrive when a test says)."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.cloud import Cloud, Clouds
from efs_csi.errors import FailedPrecondition
from efs_csi.rpc.hook import CallsInFlight, instrument, seconds_left
from efs_csi_controller.app import build_controller
from efs_csi_controller.waiting_cloud import NO_REGION, WaitingClouds
from testbed.fake_cloud import FakeCloud
from tests.support.controller import FS, create_request

pytestmark = pytest.mark.asyncio
ROLE = "arn:aws:iam::123456789012:role/r"


class Asked:
    """``Clouds`` in front of ``clouds`` that tells (``asked``) when a request first asks."""

    def __init__(self, clouds: Clouds) -> None:
        self.clouds = clouds
        self.asked = asyncio.Event()

    async def cloud_for(self, role_arn: str | None, external_id: str | None = None) -> Cloud:
        self.asked.set()
        return await self.clouds.cloud_for(role_arn, external_id)


async def test_a_create_waits_for_the_clients_then_goes_to_them() -> None:
    clouds = WaitingClouds()
    asked = Asked(clouds)
    parts = build_controller(asked, access_point_limit=100, extra_tags={})
    cloud = FakeCloud(FS)
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        stub = csi.ControllerStub(channel)
        create = asyncio.create_task(stub.create_volume(create_request(), timeout=10))
        await asyncio.wait_for(asked.asked.wait(), 10)  # it asked, and waits: nothing else
        assert not create.done() and not cloud.calls  # can happen before the clients exist
        clouds.provide(cloud)
        reply = await asyncio.wait_for(create, 10)
        assert reply.volume is not None and reply.volume.volume_id.startswith(f"{FS}::fsap-")
        assert cloud.calls["CreateAccessPoint"] == 1
        # Later calls go straight through.
        await stub.delete_volume(csi.DeleteVolumeRequest(volume_id=reply.volume.volume_id),
                                 timeout=5)
    assert not cloud.access_points_by_id


async def test_a_call_whose_deadline_passes_first_leaves_nothing_waiting() -> None:
    clouds = WaitingClouds()
    parts = build_controller(clouds, access_point_limit=100, extra_tags={})
    in_flight = CallsInFlight()
    async with ChannelFor([instrument(parts.service, in_flight)]) as channel:
        with pytest.raises(TimeoutError):  # the client's side of DEADLINE_EXCEEDED
            await csi.ControllerStub(channel).create_volume(create_request(), timeout=0.2)
        await asyncio.wait_for(in_flight.wait_idle(), 5)


async def test_with_the_callers_deadline_known_the_wait_is_answered_unavailable() -> None:
    """As the controller runs it (the hook's ``seconds_left``): the answer says why, before
    the caller's deadline, instead of a bare DEADLINE_EXCEEDED."""
    clouds = WaitingClouds(time_left=seconds_left)
    parts = build_controller(clouds, access_point_limit=100, extra_tags={})
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        with pytest.raises(GRPCError) as raised:
            await csi.ControllerStub(channel).create_volume(create_request(), timeout=1.0)
    assert raised.value.status == Status.UNAVAILABLE
    assert "EFS API client is not ready yet" in (raised.value.message or "")


async def test_roles_go_to_the_provided_clouds_once_they_exist() -> None:
    clouds = WaitingClouds()
    by_role = FakeCloud(FS)
    pending = asyncio.create_task(clouds.cloud_for(ROLE, "x"))
    await asyncio.sleep(0)  # one turn of the loop: the task runs until it waits
    assert not pending.done() and not by_role.roles_asked
    clouds.provide(by_role)
    assert await asyncio.wait_for(pending, 5) is by_role
    assert by_role.roles_asked == [(ROLE, "x")]
    clouds.withdraw()  # the clients close with the server: calls would wait again
    assert not clouds.provided


async def test_without_clouds_every_request_is_told_why_waiting_or_not() -> None:
    clouds = WaitingClouds()
    waiting = asyncio.create_task(clouds.cloud_for(None))
    await asyncio.sleep(0)  # one turn of the loop: the task runs until it waits
    assert not waiting.done()
    clouds.fail(NO_REGION)
    for request in (waiting, clouds.cloud_for(ROLE)):
        with pytest.raises(FailedPrecondition, match="--region"):
            await asyncio.wait_for(request, 5)
    # Through the service: FAILED_PRECONDITION before any EFS call.
    parts = build_controller(clouds, access_point_limit=100, extra_tags={})
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        with pytest.raises(GRPCError) as raised:
            await csi.ControllerStub(channel).create_volume(create_request(), timeout=5)
    assert raised.value.status == Status.FAILED_PRECONDITION
    assert NO_REGION in (raised.value.message or "")
