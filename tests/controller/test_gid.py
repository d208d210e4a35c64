"""GID allocation: distinct under concurrency, near-full ranges, restarts and limits."""

from __future__ import annotations

import asyncio

import pytest

from controller.gid import GidAllocator, _Inventory
from controller.params import GidRange
from efs_csi.cloud import AccessPointRequest, CreationInfo, PosixUser
from efs_csi.errors import ResourceExhausted
from tests.controller.fakes import FakeCloud

FS = "fs-12345678"


def existing(cloud: FakeCloud, gid: int, token: str = "") -> None:
    cloud.add_existing(AccessPointRequest(FS, token or f"t{gid}", f"/d{gid}", PosixUser(gid, gid),
                                          CreationInfo(gid, gid, "700")))


@pytest.mark.parametrize(("taken", "low", "high", "expected"), [
    ([], 10, 20, 10),
    ([10, 11, 12], 10, 20, 13),
    ([10, 12], 10, 20, 11),
    ([5, 10, 11, 30], 10, 20, 12),
    (list(range(10, 21)), 10, 20, None),
    ([11], 10, 10, 10),
    (list(range(0, 1000)) + list(range(1001, 5000)), 0, 10**6, 1000),
])
def test_first_free_binary_search(taken: list[int], low: int, high: int,
                                  expected: int | None) -> None:
    inventory = _Inventory(taken=taken)
    assert inventory.first_free(low, high) == expected


@pytest.mark.asyncio
async def test_learns_once_with_pagination_and_skips_used_gids() -> None:
    cloud = FakeCloud(FS, page_size=2)
    for gid in (100, 101, 103, 104, 105):
        existing(cloud, gid)
    allocator = GidAllocator(access_point_limit=1000)
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
async def test_released_gid_is_reused_only_after_the_cursor_wraps() -> None:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100)
    first = await allocator.reserve(cloud, FS, GidRange(1, 3))
    allocator.release(first)
    assert (await allocator.reserve(cloud, FS, GidRange(1, 3))).gid == 2
    assert (await allocator.reserve(cloud, FS, GidRange(1, 3))).gid == 3
    assert (await allocator.reserve(cloud, FS, GidRange(1, 3))).gid == 1


@pytest.mark.asyncio
async def test_access_point_limit_bounds_count_not_range() -> None:
    cloud = FakeCloud(FS)
    for gid in (50000, 50001):
        existing(cloud, gid)
    allocator = GidAllocator(access_point_limit=3)
    reservation = await allocator.reserve(cloud, FS, GidRange(50000, 7000000))
    assert reservation.gid == 50002
    with pytest.raises(ResourceExhausted) as raised:
        await allocator.reserve(cloud, FS, GidRange(50000, 7000000), fixed_gid=5)
    assert "limit" in raised.value.message and FS in raised.value.message
    assert "50000-7000000" in raised.value.message


@pytest.mark.asyncio
async def test_restart_relearns_used_gids() -> None:
    cloud = FakeCloud(FS)
    first = GidAllocator(access_point_limit=100)
    for _ in range(3):
        reservation = await first.reserve(cloud, FS, GidRange(10, 20))
        assert reservation.gid is not None
        created = await cloud.create_access_point(AccessPointRequest(
            FS, f"tok{reservation.gid}", "/x", PosixUser(1, reservation.gid),
            CreationInfo(1, reservation.gid, "700")))
        first.commit(reservation, created)
    restarted = GidAllocator(access_point_limit=100)
    assert (await restarted.reserve(cloud, FS, GidRange(10, 20))).gid == 13


@pytest.mark.asyncio
async def test_stale_and_periodic_relearn_keep_reservations() -> None:
    now = [0.0]
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100, relearn_after=60, clock=lambda: now[0])
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
    allocator = GidAllocator(access_point_limit=100)
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
