"""A node whose zone is still being resolved (by its start-up helper, after serving began):
NodeGetInfo waits for it within the call's deadline, through the real gRPC hook."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

import efs_csi_node.service
from efs_csi import csi
from efs_csi.contract import TOPOLOGY_ZONE_KEY
from efs_csi.rpc.hook import InFlight, instrument
from efs_csi_node.zone import NodeZone
from tests.support.fakes.mounts import FakeMountTable
from tests.support.node import fake_parts

pytestmark = pytest.mark.asyncio


async def test_node_get_info_answers_once_the_zone_is_resolved() -> None:
    zone = NodeZone()
    parts = fake_parts(FakeMountTable(), zone=zone)
    async with ChannelFor([instrument(parts.service, InFlight())]) as channel:
        call = asyncio.create_task(csi.NodeStub(channel).node_get_info(
            csi.NodeGetInfoRequest(), timeout=10))
        await asyncio.sleep(0.05)
        assert not call.done()  # no topology guessed while the zone is unknown
        zone.resolve("zone-late")
        reply = await asyncio.wait_for(call, 10)
    assert reply.accessible_topology is not None
    assert reply.accessible_topology.segments == {TOPOLOGY_ZONE_KEY: "zone-late"}


async def test_a_zone_resolved_as_none_means_no_topology() -> None:
    zone = NodeZone()
    zone.resolve(None)
    zone.resolve("too-late")  # the first answer counts
    parts = fake_parts(FakeMountTable(), zone=zone)
    async with ChannelFor([instrument(parts.service, InFlight())]) as channel:
        reply = await csi.NodeStub(channel).node_get_info(csi.NodeGetInfoRequest(), timeout=5)
    assert reply.node_id == "node-a" and reply.accessible_topology is None


async def test_the_call_deadline_bounds_the_wait() -> None:
    parts = fake_parts(FakeMountTable(), zone=NodeZone())
    in_flight = InFlight()
    async with ChannelFor([instrument(parts.service, in_flight)]) as channel:
        with pytest.raises(TimeoutError):  # the client's side of DEADLINE_EXCEEDED
            await csi.NodeStub(channel).node_get_info(csi.NodeGetInfoRequest(), timeout=0.2)
        await asyncio.wait_for(in_flight.wait_idle(), 5)  # the server stopped waiting too


async def test_without_a_deadline_the_wait_ends_unavailable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efs_csi_node.service, "ZONE_WAIT_S", 0.05)
    parts = fake_parts(FakeMountTable(), zone=NodeZone())
    async with ChannelFor([instrument(parts.service, InFlight())]) as channel:
        with pytest.raises(GRPCError) as caught:
            await csi.NodeStub(channel).node_get_info(csi.NodeGetInfoRequest())
    assert caught.value.status == Status.UNAVAILABLE
    assert "availability zone" in (caught.value.message or "")
