"""GID allocation: distinct under concurrency, near-full ranges, restarts and limits."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efs_csi.cloud import AccessPointRequest, CreationInfo, PosixUser
from efs_csi.errors import ResourceExhausted
from efs_csi_controller.gid import GidAllocator, _Inventory
from efs_csi_controller.params import GidRange
from testbed.fake_cloud import FakeCloud

FS = "fs-12345678"


def existing(cloud: FakeCloud, gid: int, token: str = "") -> None:
    cloud.add_existing(AccessPointRequest(FS, token or f"t{gid}", f"/d{gid}", PosixUser(gid, gid),
                                          CreationInfo(gid, gid, "700")))


def lowest(n: int) -> int:
    """A ``random_index`` that always picks the lowest free GID (deterministic tests)."""
    return 0


@pytest.mark.parametrize(("taken", "gid_range", "n", "expected"), [
    ([], (10, 20), 0, 10),
    ([], (10, 20), 10, 20),
    ([10, 11, 12], (10, 20), 0, 13),
    ([10, 12], (10, 20), 0, 11),
    ([10, 12], (10, 20), 1, 13),
    ([5, 10, 11, 30], (10, 20), 0, 12),
    ([5, 10, 11, 30], (10, 20), 8, 20),
    ([11], (10, 10), 0, 10),
    (list(range(0, 1000)) + list(range(1001, 5000)), (0, 10**6), 0, 1000),
    (list(range(0, 1000)) + list(range(1001, 5000)), (0, 10**6), 1, 5000),
])
def test_nth_free_binary_search(taken: list[int], gid_range: tuple[int, int], n: int,
                                expected: int) -> None:
    assert _Inventory(taken=taken).nth_free(GidRange(*gid_range), n) == expected


@settings(max_examples=200)
@given(st.sets(st.integers(0, 60)), st.integers(0, 30), st.integers(0, 30))
def test_nth_free_numbers_every_free_gid_exactly_once(taken: set[int], start: int,
                                                      width: int) -> None:
    """n -> nth_free(n) is a bijection onto the free GIDs, in order: a uniform n is a
    uniform free GID."""
    gid_range = GidRange(start, start + width)
    inventory = _Inventory(taken=sorted(taken))
    free = [gid for gid in range(gid_range.start, gid_range.end + 1) if gid not in taken]
    assert [inventory.nth_free(gid_range, n) for n in range(len(free))] == free


@pytest.mark.asyncio
async def test_learns_once_with_pagination_and_skips_used_gids() -> None:
    cloud = FakeCloud(FS, page_size=2)
    for gid in (100, 101, 103, 104, 105):
        existing(cloud, gid)
    allocator = GidAllocator(access_point_limit=1000, random_index=lowest)
    gids = [(await allocator.reserve(cloud, FS, GidRange(100, 110))).gid for _ in range(4)]
    assert gids == [102, 106, 107, 108]
    assert cloud.calls["DescribeAccessPoints"] == 3  # 5 access points, pages of 2, once
    [snapshot] = allocator.snapshot()
    assert (snapshot.access_points, snapshot.gids_in_use, snapshot.in_flight_creates,
            snapshot.range_size) == (5, 5, 4, 11)


@pytest.mark.asyncio
async def test_concurrent_reservations_are_distinct_until_exhausted() -> None:
    cloud = FakeCloud(FS)
    existing(cloud, 1000)
    allocator = GidAllocator(access_point_limit=10000)
    results = await asyncio.gather(
        *(allocator.reserve(cloud, FS, GidRange(1000, 1100)) for _ in range(150)),
        return_exceptions=True)
    gids = [r.gid for r in results if not isinstance(r, BaseException)]
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(gids) == 100 and len(set(gids)) == 100
    assert all(isinstance(e, ResourceExhausted) for e in errors) and len(errors) == 50
    message = str(errors[0])
    assert FS in message and "1000-1100" in message and "101 GIDs" in message


@pytest.mark.asyncio
async def test_access_point_limit_bounds_count_not_range() -> None:
    cloud = FakeCloud(FS)
    for gid in (50000, 50001):
        existing(cloud, gid)
    allocator = GidAllocator(access_point_limit=3, random_index=lowest)
    await allocator.known(cloud, FS)  # a wide range is picked from without listing first
    reservation = await allocator.reserve(cloud, FS, GidRange(50000, 7000000))
    assert reservation.gid == 50002
    with pytest.raises(ResourceExhausted) as raised:
        await allocator.reserve(cloud, FS, GidRange(50000, 7000000), fixed_gid=5)
    assert "limit" in raised.value.message and FS in raised.value.message
    assert "50000-7000000" in raised.value.message


@pytest.mark.asyncio
async def test_restart_relearns_used_gids() -> None:
    cloud = FakeCloud(FS)
    first = GidAllocator(access_point_limit=100, random_index=lowest)
    for _ in range(3):
        reservation = await first.reserve(cloud, FS, GidRange(10, 20))
        assert reservation.gid is not None
        created = await cloud.create_access_point(AccessPointRequest(
            FS, f"tok{reservation.gid}", "/x", PosixUser(1, reservation.gid),
            CreationInfo(1, reservation.gid, "700")))
        first.commit(reservation, created)
    restarted = GidAllocator(access_point_limit=100, random_index=lowest)
    assert (await restarted.reserve(cloud, FS, GidRange(10, 20))).gid == 13


@pytest.mark.asyncio
async def test_stale_and_periodic_relearn_keep_reservations() -> None:
    now = [0.0]
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100, max_age=60, clock=lambda: now[0],
                             random_index=lowest)
    held = await allocator.reserve(cloud, FS, GidRange(1, 100))
    existing(cloud, 2)  # made behind our back
    allocator.mark_stale(FS)
    assert (await allocator.reserve(cloud, FS, GidRange(1, 100))).gid == 3
    existing(cloud, 4)
    now[0] = 61.0
    assert (await allocator.reserve(cloud, FS, GidRange(1, 100))).gid == 5
    assert held.gid == 1 and cloud.calls["DescribeAccessPoints"] == 3


@pytest.mark.asyncio
async def test_commit_during_relearn_is_not_lost() -> None:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100, random_index=lowest)
    reservation = await allocator.reserve(cloud, FS, GidRange(1, 100))
    assert reservation.gid == 1
    created = await cloud.create_access_point(AccessPointRequest(
        FS, "late", "/late", PosixUser(1, 1), CreationInfo(1, 1, "700")))
    del cloud.access_points_by_id[created.access_point_id]  # the listing will not show it
    allocator.mark_stale(FS)
    relearn = asyncio.ensure_future(allocator.known(cloud, FS))
    await asyncio.sleep(0)  # the listing is under way
    allocator.commit(reservation, created)
    await relearn
    with pytest.raises(ResourceExhausted):  # GID 1 is still known to be in use
        await allocator.reserve(cloud, FS, GidRange(1, 1))
    assert allocator.lookup(FS, created.access_point_id) == created


class Clock:
    """A hand-moved clock (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_inventory_older_than_max_age_is_listed_again_before_a_create() -> None:
    """Another writer's access point is seen once the inventory is older than max_age: its
    GID is never handed out afterwards, even with a single free GID left beside it."""
    clock, cloud = Clock(), FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100, max_age=5, clock=clock, random_index=lowest)
    assert (await allocator.reserve(cloud, FS, GidRange(1, 3))).gid == 1  # lists (t=0)
    clock.now = 2.0
    existing(cloud, 2)  # another controller, or a person, takes GID 2
    clock.now = 5.5  # the listing is older than max_age when this create starts
    assert (await allocator.reserve(cloud, FS, GidRange(1, 3), as_of=clock())).gid == 3
    assert cloud.calls["DescribeAccessPoints"] == 2


@pytest.mark.asyncio
async def test_in_a_narrow_range_a_burst_shares_one_listing_and_a_lone_create_lists_first(
        ) -> None:
    clock, cloud = Clock(), FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=10**5, max_age=5, clock=clock)
    assert not allocator.is_wide(GidRange(1, 10**6))
    for step in range(50):  # a burst: 50 creates within 2.5 s
        clock.now = step * 0.05
        await allocator.reserve(cloud, FS, GidRange(1, 10**6), as_of=clock())
    assert cloud.calls["DescribeAccessPoints"] == 1
    for lone in range(3):  # lone creates, a minute apart: list, then create (the reference)
        clock.now = 60.0 * (lone + 1)
        await allocator.reserve(cloud, FS, GidRange(1, 10**6), as_of=clock())
    assert cloud.calls["DescribeAccessPoints"] == 4


@pytest.mark.asyncio
async def test_with_max_age_zero_creates_wait_for_a_listing_that_started_after_them() -> None:
    """Creates arriving while a listing runs wait for the next one, and share it."""
    clock, cloud = Clock(), FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=10**5, max_age=0, clock=clock)
    cloud.page_size = 1
    for gid in (7, 8):
        existing(cloud, gid)

    async def create(at: float) -> int | None:
        clock.now = at
        return (await allocator.reserve(cloud, FS, GidRange(1, 10**6), as_of=at)).gid

    first = asyncio.ensure_future(create(1.0))
    await asyncio.sleep(0)  # its listing has started (t=1)
    later = [asyncio.ensure_future(create(1.5)) for _ in range(10)]
    await asyncio.gather(first, *later)
    # Two listings of two pages each: the first create's, and one shared by the ten later.
    assert cloud.calls["DescribeAccessPoints"] == 4


@pytest.mark.asyncio
async def test_gids_are_spread_at_random_over_the_free_ones() -> None:
    """Two controllers that both listed an empty file system, then create without seeing
    each other: with random picks over a wide range they do not meet; lowest-first would
    give every GID twice."""
    cloud = FakeCloud(FS)
    wide = GidRange(50000, 7000000)
    first = GidAllocator(access_point_limit=10000)
    second = GidAllocator(access_point_limit=10000)
    picks = [(await allocator.reserve(cloud, FS, wide)).gid
             for _ in range(200) for allocator in (first, second)]
    assert len(set(picks)) >= len(picks) - 1  # a meeting has p ~ 1e-2; two, ~1e-5
    lowest_first = [GidAllocator(access_point_limit=10000, random_index=lowest)
                    for _ in range(2)]
    same = [(await allocator.reserve(cloud, FS, wide)).gid
            for _ in range(10) for allocator in lowest_first]
    assert len(set(same)) == 10


@pytest.mark.asyncio
async def test_our_create_missing_from_a_lagging_listing_keeps_its_gid() -> None:
    clock, cloud = Clock(), FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100, max_age=5, clock=clock,
                             random_index=lowest, recent_grace=60)
    reservation = await allocator.reserve(cloud, FS, GidRange(1, 2))
    created = await cloud.create_access_point(AccessPointRequest(
        FS, "ours", "/ours", PosixUser(1, 1), CreationInfo(1, 1, "700")))
    allocator.commit(reservation, created)
    del cloud.access_points_by_id[created.access_point_id]  # the listing lags behind
    clock.now = 10.0
    assert (await allocator.reserve(cloud, FS, GidRange(1, 2), as_of=clock())).gid == 2
    assert allocator.lookup(FS, created.access_point_id) == created
    clock.now = 100.0  # past the grace: the listing is believed
    await allocator.known(cloud, FS)
    assert allocator.lookup(FS, created.access_point_id) is None


@pytest.mark.asyncio
async def test_lookup_answers_only_from_a_fresh_listing() -> None:
    clock, cloud = Clock(), FakeCloud(FS)
    existing(cloud, 5, token="t")
    allocator = GidAllocator(access_point_limit=100, max_age=5, clock=clock)
    [known] = await allocator.known(cloud, FS)
    assert allocator.lookup(FS, known.access_point_id) == known
    clock.now = 6.0
    assert allocator.lookup(FS, known.access_point_id) is None  # too old to rely on
