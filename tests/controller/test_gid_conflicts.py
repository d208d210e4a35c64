"""CreateVolume when another writer holds the GID just picked, over gRPC (in-memory channel,
in-memory EFS whose creates can be raced): ours yields, deletes its access point and answers
with another GID, under the volume's next client token; a retry finds that one; a range that
turns out full is RESOURCE_EXHAUSTED naming it and how to widen it; nothing is left behind."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.cloud import AccessPoint, AccessPointRequest, CreationInfo, PosixUser
from efs_csi.errors import Unavailable
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.plan import MAX_YIELDS, client_token
from efs_csi_controller.provisioning import Provisioner
from efs_csi_controller.service import ControllerService
from testbed.csi_builders import mount_capability
from testbed.fake_cloud import FakeCloud

FS = "fs-12345678"
_PEOPLE = itertools.count()


class RacedCloud(FakeCloud):
    """In-memory EFS where a person creates an access point with the very GID of each of our
    next ``races`` creates just before it lands (a fake: the race on cue)."""

    def __init__(self) -> None:
        super().__init__(FS)
        self.races = 0

    async def create_access_point(self, request: AccessPointRequest) -> AccessPoint:
        if self.races and not request.client_token.startswith("by-hand"):
            self.races -= 1
            gid = request.posix_user.gid
            self.add_existing(AccessPointRequest(
                FS, f"by-hand-{next(_PEOPLE)}", f"/by-hand/{gid}", PosixUser(gid, gid),
                CreationInfo(gid, gid, "700")))
        return await super().create_access_point(request)


@dataclass
class Lab:
    cloud: RacedCloud
    stub: csi.ControllerStub

    def gids(self) -> Counter[int]:
        return Counter(ap.posix_user.gid for ap in self.cloud.access_points_by_id.values()
                       if ap.posix_user is not None)


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[Lab]:
    cloud = RacedCloud()
    allocator = GidAllocator(access_point_limit=100, recheck_pauses=(0.01,))
    provisioner = Provisioner(clouds=cloud, allocator=allocator,
                              kube=None, extra_tags={}, root_dirs=None)
    async with ChannelFor([instrument(ControllerService(provisioner), CallsInFlight())]) as channel:
        yield Lab(cloud, csi.ControllerStub(channel))


def create(name: str, **params: str) -> csi.CreateVolumeRequest:
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[mount_capability()],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": FS, "directoryPerms": "700",
                    **params})


def ours(lab: Lab) -> list[AccessPoint]:
    return [ap for ap in lab.cloud.access_points_by_id.values()
            if not ap.client_token.startswith("by-hand")]


@pytest.mark.asyncio
async def test_a_gid_taken_meanwhile_by_a_person_is_given_up_for_another(lab: Lab) -> None:
    lab.cloud.races = 1
    reply = await lab.stub.create_volume(create("pv-1"))
    assert reply.volume is not None
    [mine] = ours(lab)
    assert reply.volume.volume_id.endswith(mine.access_point_id)
    assert mine.client_token == client_token("pv-1", 1)  # made after one yield
    assert max(lab.gids().values()) == 1  # nobody shares a GID
    assert lab.cloud.calls["CreateAccessPoint"] == 2
    assert lab.cloud.calls["DeleteAccessPoint"] == 1
    # A retry of the same create finds it under its new token.
    again = await lab.stub.create_volume(create("pv-1"))
    assert again == reply and lab.cloud.calls["CreateAccessPoint"] == 2


@pytest.mark.asyncio
async def test_a_range_found_full_after_yielding_is_resource_exhausted(lab: Lab) -> None:
    narrow = {"gidRangeStart": "10", "gidRangeEnd": "11"}
    await lab.stub.create_volume(create("pv-1", **narrow))
    lab.cloud.races = 1  # a person takes the one GID left, just before our create
    with pytest.raises(GRPCError) as raised:
        await lab.stub.create_volume(create("pv-2", **narrow))
    assert raised.value.status == Status.RESOURCE_EXHAUSTED
    message = raised.value.message or ""
    assert "range 10-11" in message and FS in message
    assert "gidRangeStart" in message and "gidRangeEnd" in message
    assert [ap.client_token for ap in ours(lab)] == ["pv-1"]  # ours given up, not left behind
    assert max(lab.gids().values()) == 1


@pytest.mark.asyncio
async def test_a_yield_at_the_access_point_limit_deletes_ours_first() -> None:
    """With the file system one access point short of its limit, a person's access point takes
    the last slot and our GID: the replacement has no slot while ours holds one, so ours goes
    first (before: RESOURCE_EXHAUSTED, and a 10,000-access-point burst failed a create so)."""
    cloud = RacedCloud()
    provisioner = Provisioner(clouds=cloud, allocator=GidAllocator(access_point_limit=3),
                              kube=None, extra_tags={}, root_dirs=None)
    async with ChannelFor([instrument(ControllerService(provisioner), CallsInFlight())]) as channel:
        lab = Lab(cloud, csi.ControllerStub(channel))
        await lab.stub.create_volume(create("pv-1"))
        lab.cloud.races = 1
        reply = await lab.stub.create_volume(create("pv-2"))
    assert reply.volume is not None
    mine = {ap.client_token: ap for ap in ours(lab)}
    assert sorted(mine) == sorted(["pv-1", client_token("pv-2", 1)])
    assert reply.volume.volume_id.endswith(mine[client_token("pv-2", 1)].access_point_id)
    assert len(cloud.access_points_by_id) == 3 and max(lab.gids().values()) == 1
    assert cloud.calls["CreateAccessPoint"] == 3 and cloud.calls["DeleteAccessPoint"] == 1


@pytest.mark.asyncio
async def test_a_create_that_keeps_losing_its_gid_stops_aborted_leaving_nothing(
        lab: Lab) -> None:
    lab.cloud.races = MAX_YIELDS + 1
    with pytest.raises(GRPCError) as raised:
        await lab.stub.create_volume(create("pv-1"))
    assert raised.value.status == Status.ABORTED
    assert "retry" in (raised.value.message or "")
    assert ours(lab) == []
    assert lab.cloud.calls["CreateAccessPoint"] == MAX_YIELDS + 1
    # The next attempt (csi-provisioner retries) succeeds once the races stop.
    reply = await lab.stub.create_volume(create("pv-1"))
    assert reply.volume is not None and max(lab.gids().values()) == 1


@pytest.mark.asyncio
async def test_a_storage_class_gid_is_shared_on_purpose_and_never_settled(lab: Lab) -> None:
    lab.cloud.races = 1
    reply = await lab.stub.create_volume(create("pv-1", gid="4242"))
    assert reply.volume is not None
    assert lab.gids()[4242] == 2
    # One listing, before the create (the shared-root check); none after it to settle.
    assert lab.cloud.calls["DescribeAccessPoints"] == 1
    assert lab.cloud.calls["CreateAccessPoint"] == 1 and lab.cloud.calls["DeleteAccessPoint"] == 0


class GatedDeletes(RacedCloud):
    """``RacedCloud`` whose deletes wait for ``deletes_open`` (a yield held mid-way), or fail
    ``failing_deletes`` times first."""

    def __init__(self) -> None:
        super().__init__()
        self.deletes_open = asyncio.Event()
        self.deletes_open.set()
        self.failing_deletes = 0
        self.deletes_asked = 0

    async def delete_access_point(self, access_point_id: str) -> None:
        self.deletes_asked += 1
        await self.deletes_open.wait()
        if self.failing_deletes:
            self.failing_deletes -= 1
            raise Unavailable("EFS DeleteAccessPoint throttled after retries")
        await super().delete_access_point(access_point_id)


def service_over(cloud: FakeCloud) -> ControllerService:
    return ControllerService(Provisioner(
        clouds=cloud,
        allocator=GidAllocator(access_point_limit=100, recheck_pauses=(0.01,)), kube=None,
        extra_tags={}, root_dirs=None))


@pytest.mark.asyncio
async def test_a_retry_while_the_volume_yields_is_aborted_then_answered_alike() -> None:
    cloud = GatedDeletes()
    cloud.races, cloud.deletes_open = 1, asyncio.Event()
    async with ChannelFor([instrument(service_over(cloud), CallsInFlight())]) as channel:
        stub = csi.ControllerStub(channel)
        first = asyncio.ensure_future(stub.create_volume(create("pv-1")))
        while cloud.deletes_asked == 0:  # noqa: ASYNC110 - the yield is held
            await asyncio.sleep(0.01)
        with pytest.raises(GRPCError) as raised:
            await stub.create_volume(create("pv-1"))
        assert raised.value.status == Status.ABORTED
        cloud.deletes_open.set()
        answer = await first
        assert await stub.create_volume(create("pv-1")) == answer
    assert [ap.client_token for ap in cloud.access_points_by_id.values()
            if not ap.client_token.startswith("by-hand")] == [client_token("pv-1", 1)]


@pytest.mark.asyncio
async def test_two_controllers_creating_one_volume_while_it_yields_agree_on_one() -> None:
    """A leader change mid-create: the old controller is giving the volume's access point up
    while the new one, knowing nothing, gets the provisioner's retry. Both answer with the
    same access point; nothing else of the volume is left."""
    cloud = GatedDeletes()
    cloud.races, cloud.deletes_open = 1, asyncio.Event()
    async with ChannelFor([instrument(service_over(cloud), CallsInFlight())]) as old, \
            ChannelFor([instrument(service_over(cloud), CallsInFlight())]) as new:
        first = asyncio.ensure_future(csi.ControllerStub(old).create_volume(create("pv-1")))
        while cloud.deletes_asked == 0:  # noqa: ASYNC110 - the yield is held
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(csi.ControllerStub(new).create_volume(create("pv-1")))
        # The new one lists both access points and deletes the one given up, held too.
        while cloud.deletes_asked < 2:  # noqa: ASYNC110 - its delete is held
            await asyncio.sleep(0.01)
        cloud.deletes_open.set()
        answers = await asyncio.gather(first, second)
    assert answers[0] == answers[1]
    volume_ids = {answer.volume.volume_id for answer in answers if answer.volume}
    mine = [ap for ap in cloud.access_points_by_id.values()
            if not ap.client_token.startswith("by-hand")]
    assert [f"{FS}::{ap.access_point_id}" for ap in mine] == list(volume_ids)
    assert max(Counter(ap.posix_user.gid for ap in cloud.access_points_by_id.values()
                       if ap.posix_user is not None).values()) == 1


@pytest.mark.asyncio
async def test_an_access_point_left_by_an_interrupted_yield_is_deleted_by_the_retry() -> None:
    cloud = GatedDeletes()
    cloud.races, cloud.failing_deletes = 1, 1  # the yield cannot delete what it gave up
    async with ChannelFor([instrument(service_over(cloud), CallsInFlight())]) as channel:
        stub = csi.ControllerStub(channel)
        with pytest.raises(GRPCError) as raised:
            await stub.create_volume(create("pv-1"))
        assert raised.value.status == Status.UNAVAILABLE
        assert {ap.client_token for ap in cloud.access_points_by_id.values()
                if not ap.client_token.startswith("by-hand")} == {
                    "pv-1", client_token("pv-1", 1)}
        answer = await stub.create_volume(create("pv-1"))
    [mine] = [ap for ap in cloud.access_points_by_id.values()
              if not ap.client_token.startswith("by-hand")]
    assert answer.volume is not None and answer.volume.volume_id.endswith(mine.access_point_id)
    assert mine.client_token == client_token("pv-1", 1)
