"""Settling a picked GID against the file system after the create (``GidAllocator.settle``
and the rule ``judge`` applies), and picking in wide ranges without a listing first."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from efs_csi.cloud import AccessPoint, AccessPointRequest, CreationInfo, PosixUser
from efs_csi.errors import Unavailable
from efs_csi_controller.compact import Compactor
from efs_csi_controller.gid import GidAllocator, Listing, Verdict, judge
from efs_csi_controller.params import GidRange
from testbed.fake_cloud import FakeCloud

FS = "fs-12345678"
WIDE = GidRange(50000, 7000000)
FAST = (0.01, 0.01, 0.01)  # recheck pauses short enough for a test


def point(access_point_id: str, gid: int, *, settles: bool = True,
          state: str = "available") -> AccessPoint:
    return AccessPoint(access_point_id, FS, f"/{access_point_id}", PosixUser(gid, gid),
                       tags={"settles": "yes"} if settles else {}, life_cycle_state=state)


def settles(access_point: AccessPoint) -> bool:
    return "settles" in access_point.tags


def listing(*access_points: AccessPoint) -> Listing:
    compactor = Compactor()
    return Listing(1, FS, {ap.access_point_id: compactor.compact(ap) for ap in access_points})


OURS = point("fsap-5", 100)


@pytest.mark.parametrize(("others", "verdict"), [
    ((), Verdict.KEEP),
    ((point("fsap-1", 101),), Verdict.KEEP),  # another GID
    ((point("fsap-9", 100, state="deleting"),), Verdict.KEEP),  # a rival on its way out
    ((point("fsap-9", 100, settles=False),), Verdict.YIELD),  # a writer that never checks
    ((point("fsap-1", 100),), Verdict.YIELD),  # a lower id of a controller that checks
    ((point("fsap-9", 100),), Verdict.WAIT),  # a higher id: it should yield to ours
    ((point("fsap-9", 100), point("fsap-1", 100)), Verdict.YIELD),
    ((point("fsap-9", 100), point("fsap-8", 100, settles=False)), Verdict.YIELD),
])
def test_who_yields(others: tuple[AccessPoint, ...], verdict: Verdict) -> None:
    found, rivals = judge(OURS, listing(OURS, *others), settles)
    assert found is verdict
    live = [ap for ap in others if ap.posix_user == OURS.posix_user
            and ap.life_cycle_state == "available"]
    assert list(rivals) == ([] if verdict is Verdict.KEEP else live)


def test_a_listing_that_does_not_show_ours_settles_nothing() -> None:
    assert judge(OURS, listing(point("fsap-1", 100)), settles) == (Verdict.UNSEEN, ())


def make(cloud: FakeCloud, gid: int, token: str, *, tags: dict[str, str] | None = None
         ) -> AccessPoint:
    return cloud.add_existing(AccessPointRequest(FS, token, f"/{token}", PosixUser(gid, gid),
                                                 CreationInfo(gid, gid, "700"), tags=tags or {}))


async def create(allocator: GidAllocator, cloud: FakeCloud, gid_range: GidRange,
                 token: str) -> AccessPoint:
    reservation = await allocator.reserve(cloud, FS, gid_range)
    assert reservation.gid is not None
    created = await cloud.create_access_point(AccessPointRequest(
        FS, token, f"/{token}", PosixUser(reservation.gid, reservation.gid),
        CreationInfo(reservation.gid, reservation.gid, "700"), tags={"settles": "yes"}))
    allocator.commit(reservation, created)
    return created


@pytest.mark.asyncio
async def test_a_lone_create_in_a_wide_range_costs_its_create_and_one_listing() -> None:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=10000)
    assert allocator.is_wide(WIDE)
    for number in range(3):
        cloud.calls.clear()
        created = await create(allocator, cloud, WIDE, f"pv-{number}")
        assert (await allocator.settle(cloud, created, settles)).kept
        assert cloud.calls == {"CreateAccessPoint": 1, "DescribeAccessPoints": 1}


@pytest.mark.asyncio
async def test_a_burst_is_settled_by_a_few_shared_listings() -> None:
    """200 concurrent creates, each finishing a little after the other: one listing settles
    every create that finished before it started; it starts once 100 wait, or when no create
    is left in flight (the delay bound is set out of reach: no timing in the count)."""
    cloud = FakeCloud(FS, page_size=1000)
    allocator = GidAllocator(access_point_limit=10000, settle_delay=60.0, settle_batch=100)

    async def one(number: int) -> bool:
        reservation = await allocator.reserve(cloud, FS, WIDE)
        assert reservation.gid is not None
        await asyncio.sleep(0.001 * number)  # the create's round trip
        created = await cloud.create_access_point(AccessPointRequest(
            FS, f"pv-{number}", f"/{number}", PosixUser(reservation.gid, reservation.gid),
            CreationInfo(reservation.gid, reservation.gid, "700")))
        allocator.commit(reservation, created)
        return (await allocator.settle(cloud, created, settles)).kept

    assert all(await asyncio.gather(*(one(number) for number in range(200))))
    assert cloud.calls["DescribeAccessPoints"] == 2


@pytest.mark.asyncio
async def test_a_listing_running_when_the_create_finished_does_not_settle_it() -> None:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=10000)
    created = await create(allocator, cloud, WIDE, "pv-1")
    running = asyncio.ensure_future(allocator.known(cloud, FS))  # a listing under way ...
    await asyncio.sleep(0)
    rival = make(cloud, created.posix_user.gid if created.posix_user else 0, "by-hand")
    settling = asyncio.ensure_future(allocator.settle(cloud, created, settles))
    await running  # ... began before the rival existed, so it cannot settle ours
    settlement = await settling
    assert not settlement.kept and settlement.rivals == (rival,)
    assert cloud.calls["DescribeAccessPoints"] == 2  # the one under way, and its own


@pytest.mark.asyncio
async def test_ours_yields_at_once_to_a_writer_that_does_not_check() -> None:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=10000, recheck_pauses=FAST)
    created = await create(allocator, cloud, WIDE, "pv-1")
    assert created.posix_user is not None
    person = make(cloud, created.posix_user.gid, "by-hand")
    settlement = await allocator.settle(cloud, created, settles)
    assert not settlement.kept and settlement.rivals == (person,)
    assert cloud.calls["DescribeAccessPoints"] == 1
    [figures] = allocator.snapshot()
    assert figures.gid_yields == 1


@pytest.mark.asyncio
async def test_the_lowest_id_waits_for_a_checking_rival_to_yield_then_keeps() -> None:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=10000, recheck_pauses=(0.05, 0.05, 0.05))
    created = await create(allocator, cloud, WIDE, "pv-1")
    assert created.posix_user is not None
    rival = make(cloud, created.posix_user.gid, "other-cluster", tags={"settles": "yes"})
    assert rival.access_point_id > created.access_point_id

    async def rival_yields() -> None:
        await asyncio.sleep(0.07)  # its own controller sees ours and gives its GID up
        await cloud.delete_access_point(rival.access_point_id)

    yielding = asyncio.ensure_future(rival_yields())
    settlement = await allocator.settle(cloud, created, settles)
    await yielding
    assert settlement.kept
    assert cloud.calls["DescribeAccessPoints"] >= 2


@pytest.mark.asyncio
async def test_the_lowest_id_yields_after_all_when_the_rival_stays() -> None:
    """The rival was answered before ours existed: its controller never looks again."""
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=10000, recheck_pauses=FAST)
    created = await create(allocator, cloud, WIDE, "pv-1")
    assert created.posix_user is not None
    rival = make(cloud, created.posix_user.gid, "answered-long-ago", tags={"settles": "yes"})
    settlement = await allocator.settle(cloud, created, settles)
    assert not settlement.kept and settlement.rivals == (rival,)
    assert cloud.calls["DescribeAccessPoints"] == 1 + len(FAST)


@pytest.mark.asyncio
async def test_listings_that_keep_missing_the_new_access_point_are_unavailable() -> None:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=10000, recheck_pauses=FAST)
    created = await create(allocator, cloud, WIDE, "pv-1")
    del cloud.access_points_by_id[created.access_point_id]  # the listing lags behind
    with pytest.raises(Unavailable, match=f"does not list the new access point "
                                          f"{created.access_point_id}"):
        await allocator.settle(cloud, created, settles)


@pytest.mark.asyncio
async def test_a_settling_listing_refreshes_what_the_next_pick_avoids() -> None:
    """A narrow range of two GIDs: a person takes one behind our back; our create that lands
    on it yields, and the listing that showed it leaves exactly the other GID to pick."""
    cloud = FakeCloud(FS)
    narrow = GidRange(10, 11)
    allocator = GidAllocator(access_point_limit=10000, random_index=lambda n: 0)
    await allocator.known(cloud, FS)
    make(cloud, 10, "by-hand")  # after our listing: unknown to us
    created = await create(allocator, cloud, narrow, "pv-1")
    assert created.posix_user == PosixUser(10, 10)
    assert not (await allocator.settle(cloud, created, settles)).kept
    await cloud.delete_access_point(created.access_point_id)
    allocator.forget(FS, created.access_point_id)
    again = await create(allocator, cloud, narrow, "pv-1-again")
    assert again.posix_user == PosixUser(11, 11)
    assert (await allocator.settle(cloud, again, settles)).kept


def test_listing_indexes_by_gid_once() -> None:
    shown = listing(point("fsap-1", 7), point("fsap-2", 7), replace(point("fsap-3", 8)))
    assert [ap.access_point_id for ap in shown.with_gid(7)] == ["fsap-1", "fsap-2"]
    assert shown.with_gid(9) == []


@pytest.mark.asyncio
async def test_creates_wait_longer_to_share_a_listing_that_takes_long() -> None:
    """A listing that took 10 s (many pages) stretches the wait for the next settling listing
    to about as long, so listing never takes much more than half a burst's time."""
    now = [0.0]

    class SlowListing(FakeCloud):
        async def access_points(self, file_system_id: str):  # type: ignore[no-untyped-def]
            async for access_point in super().access_points(file_system_id):
                yield access_point
            now[0] += 10.0  # the listing took 10 s

    cloud = SlowListing(FS)
    allocator = GidAllocator(access_point_limit=10000, clock=lambda: now[0], settle_delay=1.0,
                             settle_quiet=0.5)
    await allocator.known(cloud, FS)
    inventory = allocator._inventory(FS)
    inventory.in_flight = 1  # another create of ours is still out
    inventory.settling.append((inventory.listings_started, now[0]))
    inventory.last_finished = now[0]
    now[0] += 2.0  # past the plain delay and quiet period ...
    assert not allocator._settling_due(inventory)  # ... not past the stretched ones
    now[0] += 8.0
    assert allocator._settling_due(inventory)
