"""A node whose zone is not known yet (its sources still answering, or failing): which answer
counts, how long NodeGetInfo waits before it answers without topology (through the real gRPC
hook), and which volumes wait for the zone at stage. The real binary with failing start-up
helpers: tests/node/test_registration.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

import efs_csi_node.service
from efs_csi import csi
from efs_csi.contract import TOPOLOGY_ZONE_KEY
from efs_csi.contract.volume_context import VolumeContext
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_node.zone import NodeZone, depends_on_zone
from testbed.csi_builders import stage_request
from tests.support.fakes.mounts import FakeMountTable
from tests.support.node import FS_ID, fake_parts

MAP = '{"zone-a":"10.0.0.1","zone-b":"10.0.0.2"}'


class WatchedZone(NodeZone):
    """The real zone, telling the test when a caller starts waiting for it (so a test knows a
    call is held by the zone, not merely slow)."""

    def __init__(self, *, label_source: bool) -> None:
        super().__init__(label_source=label_source)
        self.waited = asyncio.Event()

    async def wait(self) -> str | None:
        self.waited.set()
        return await super().wait()


# --- which answer counts (pure) --------------------------------------------------------------

@pytest.mark.parametrize(("answers", "expected"), [
    ([("imds", "zone-i")], "zone-i"),
    ([("imds", "zone-i"), ("label", "zone-l")], "zone-i"),
    ([("label", "zone-l"), ("imds", "zone-i")], "zone-i"),  # instance metadata outranks it
    ([("label", "zone-l"), ("imds", None)], "zone-l"),
    ([("imds", None), ("label", "zone-l")], "zone-l"),
    ([("imds", None), ("label", None)], None),
    ([("imds", "zone-i"), ("imds", "zone-late")], "zone-i"),  # the first answer counts
])
def test_instance_metadata_then_the_label(answers: list[tuple[str, str | None]],
                                          expected: str | None) -> None:
    zone = NodeZone(label_source=True)
    for source, answer in answers:
        (zone.from_imds if source == "imds" else zone.from_label)(answer)
    assert zone.settled and zone.current == expected


def test_an_empty_answer_settles_nothing_while_another_source_may_know() -> None:
    zone = NodeZone(label_source=True)
    zone.from_imds(None)
    assert not zone.settled  # the label may still come
    without_label = NodeZone(label_source=False)
    without_label.from_imds(None)
    assert without_label.settled and without_label.current is None  # nobody else to ask
    label_first = NodeZone(label_source=True)
    label_first.from_label("zone-l")
    assert not label_first.settled  # instance metadata first


def test_a_failure_is_the_cause_until_an_answer_settles_it() -> None:
    zone = NodeZone(label_source=True)
    assert zone.health_note() == "availability zone unknown, still sought: no source has " \
                                 "answered yet"
    zone.from_imds(None)
    zone.failed("start-up helper killed by SIGKILL")
    assert zone.cause == "start-up helper killed by SIGKILL"
    assert "killed by SIGKILL" in zone.health_note()
    zone.from_label("zone-l")
    assert zone.settled and zone.cause == "" and zone.health_note() == ""
    zone.failed("too late")  # a settled zone has no cause any more
    assert zone.cause == ""


def test_the_registration_bound_runs_from_the_start() -> None:
    now = [100.0]
    zone = NodeZone(label_source=True, registration_bound_s=10, clock=lambda: now[0])
    assert zone.registration_wait_s() == 10
    now[0] = 106.5
    assert zone.registration_wait_s() == 3.5
    now[0] = 130
    assert zone.registration_wait_s() == 0


@pytest.mark.parametrize(("context", "expected"), [
    (VolumeContext(), False),  # efs-utils finds the mount target by DNS
    (VolumeContext(mount_target_ip="10.0.0.9"), False),
    (VolumeContext(mount_target_ip_map={"zone-a": "10.0.0.1"}), False),  # one choice anyway
    (VolumeContext(mount_target_ip_map={"zone-a": "10.0.0.1", "zone-b": "10.0.0.1"}), False),
    (VolumeContext(mount_target_ip_map={"zone-a": "10.0.0.1", "zone-b": "10.0.0.2"}), True),
    (VolumeContext(mount_target_ip="10.0.0.9", mount_target_ip_map={"zone-a": "10.0.0.1"}),
     True),  # this node in zone-a takes .1, elsewhere .9
])
def test_only_a_mount_target_chosen_by_zone_depends_on_it(context: VolumeContext,
                                                          expected: bool) -> None:
    assert depends_on_zone(context) is expected


# --- NodeGetInfo through gRPC ----------------------------------------------------------------

@pytest.mark.asyncio
async def test_node_get_info_answers_once_the_zone_is_known() -> None:
    zone = WatchedZone(label_source=True)
    parts = fake_parts(FakeMountTable(), zone=zone)
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        call = asyncio.create_task(csi.NodeStub(channel).node_get_info(
            csi.NodeGetInfoRequest(), timeout=20))
        await asyncio.wait_for(zone.waited.wait(), 10)
        assert not call.done()  # within the bound: no topology guessed while it is unknown
        zone.from_imds("zone-late")
        reply = await asyncio.wait_for(call, 10)
    assert reply.accessible_topology is not None
    assert reply.accessible_topology.segments == {TOPOLOGY_ZONE_KEY: "zone-late"}
    assert zone.answered_without_zone == 0


@pytest.mark.asyncio
async def test_a_zone_settled_as_none_means_no_topology_at_once() -> None:
    zone = NodeZone(label_source=False)
    zone.from_imds(None)
    parts = fake_parts(FakeMountTable(), zone=zone)
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        reply = await csi.NodeStub(channel).node_get_info(csi.NodeGetInfoRequest(), timeout=5)
    assert reply.node_id == "node-a" and reply.accessible_topology is None
    assert zone.answered_without_zone == 0  # nothing unknown about it


@pytest.mark.asyncio
async def test_past_the_bound_node_get_info_answers_without_topology() -> None:
    """A helper that never reports (crashing, killed, the API unreachable): the node registers
    anyway, says why, and keeps looking; a zone learned later is used from then on."""
    zone = NodeZone(label_source=True, registration_bound_s=0.3)
    zone.from_imds(None)
    zone.failed("start-up helper exited with status 1")
    parts = fake_parts(FakeMountTable(), zone=zone)
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        stub = csi.NodeStub(channel)
        reply = await stub.node_get_info(csi.NodeGetInfoRequest())  # no deadline at all
        assert reply.node_id == "node-a" and reply.accessible_topology is None
        assert zone.answered_without_zone == 1
        assert "exited with status 1" in zone.health_note()
        again = await asyncio.wait_for(stub.node_get_info(csi.NodeGetInfoRequest()), 0.5)
        assert again.accessible_topology is None  # past the bound: no wait at all
        zone.from_label("zone-l")
        late = await stub.node_get_info(csi.NodeGetInfoRequest())
    assert late.accessible_topology is not None
    assert late.accessible_topology.segments == {TOPOLOGY_ZONE_KEY: "zone-l"}


@pytest.mark.asyncio
async def test_a_short_deadline_is_answered_before_it_passes() -> None:
    zone = NodeZone(label_source=True, registration_bound_s=60)
    parts = fake_parts(FakeMountTable(), zone=zone)
    in_flight = CallsInFlight()
    async with ChannelFor([instrument(parts.service, in_flight)]) as channel:
        reply = await csi.NodeStub(channel).node_get_info(csi.NodeGetInfoRequest(), timeout=1.5)
    assert reply.accessible_topology is None  # no DEADLINE_EXCEEDED: kubelet can register
    assert zone.answered_without_zone == 1


# --- NodeStageVolume: only a volume whose mount target depends on the zone waits -------------

@pytest.mark.asyncio
async def test_a_volume_that_needs_no_zone_stages_while_it_is_unknown(tmp_path: Path) -> None:
    table = FakeMountTable()
    parts = fake_parts(table, zone=NodeZone(label_source=True))
    staging = tmp_path / "staging"
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        stub = csi.NodeStub(channel)
        await asyncio.wait_for(stub.node_stage_volume(
            stage_request(f"{FS_ID}:/data", staging)), 5)
        await asyncio.wait_for(stub.node_stage_volume(stage_request(
            f"{FS_ID}:/other", tmp_path / "other", context={"mounttargetip": "10.0.0.9"})), 5)
    assert table.mounts() == [f"mount -t efs -o tls {FS_ID}:/data {staging}",
                              f"mount -t efs -o tls,mounttargetip=10.0.0.9 {FS_ID}:/other "
                              f"{tmp_path / 'other'}"]


@pytest.mark.asyncio
async def test_a_volume_mounted_by_zone_waits_for_it(tmp_path: Path) -> None:
    table = FakeMountTable()
    zone = WatchedZone(label_source=True)
    parts = fake_parts(table, zone=zone)
    staging = tmp_path / "staging"
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        call = asyncio.create_task(csi.NodeStub(channel).node_stage_volume(
            stage_request(FS_ID, staging, context={"mounttargetipmap": MAP}), timeout=20))
        await asyncio.wait_for(zone.waited.wait(), 10)
        assert not call.done() and table.mounts() == []
        zone.from_imds("zone-b")
        await asyncio.wait_for(call, 10)
    assert table.mounts() == [f"mount -t efs -o tls,mounttargetip=10.0.0.2 {FS_ID}:/ {staging}"]


@pytest.mark.asyncio
async def test_a_volume_mounted_by_zone_is_unavailable_with_the_cause_before_its_deadline(
        tmp_path: Path) -> None:
    zone = NodeZone(label_source=True)
    zone.from_imds(None)
    zone.failed("Kubernetes API: cannot read Node node-a: connection refused")
    table = FakeMountTable()
    parts = fake_parts(table, zone=zone)
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        with pytest.raises(GRPCError) as caught:
            await csi.NodeStub(channel).node_stage_volume(
                stage_request(FS_ID, tmp_path / "staging",
                              context={"mounttargetipmap": MAP}), timeout=1.5)
    assert caught.value.status == Status.UNAVAILABLE
    message = caught.value.message or ""
    assert "mounttargetipmap" in message and "connection refused" in message
    assert table.mounts() == []


@pytest.mark.asyncio
async def test_without_a_deadline_the_wait_for_the_zone_is_bounded(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(efs_csi_node.service, "ZONE_WAIT_S", 0.05)
    parts = fake_parts(FakeMountTable(), zone=NodeZone(label_source=True))
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        with pytest.raises(GRPCError) as caught:
            await csi.NodeStub(channel).node_stage_volume(
                stage_request(FS_ID, tmp_path / "staging", context={"mounttargetipmap": MAP}))
    assert caught.value.status == Status.UNAVAILABLE
    assert "still being looked up" in (caught.value.message or "")
