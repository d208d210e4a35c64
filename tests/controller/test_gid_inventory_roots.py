"""The allocator's inventory keeps its index of roots in step with what it knows
(``GidAllocator.known_overlapping`` answers as a scan of ``known_now`` with the pairwise rule
would) through listings, creates, forgets, roots that change and access points that go; and a
listing keeps the object it already knows for an access point it shows unchanged."""

from __future__ import annotations

import random

import pytest

from efs_csi.cloud import AccessPoint, AccessPointRequest, CreationInfo, PosixUser
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.params import GidRange
from efs_csi_controller.shared_roots import normalise, overlap
from testbed.fake_cloud import FakeCloud

FS = "fs-12345678"
ROOTS = ["/", "/a", "/a/b", "/a/b/c", "/ab", "/a-b", "/b", "/b/a", "//a/", "/a/bc"]


def scanned(allocator: GidAllocator, root: str) -> list[str]:
    return sorted(ap.access_point_id for ap in allocator.known_now(FS)
                  if overlap(normalise(ap.root_path), normalise(root)))


def indexed(allocator: GidAllocator, root: str) -> list[str]:
    return sorted(ap.access_point_id for ap in allocator.known_overlapping(FS, root))


def add(cloud: FakeCloud, number: int, root: str) -> AccessPoint:
    return cloud.add_existing(AccessPointRequest(FS, f"t{number}", root,
                                                 PosixUser(number, number),
                                                 CreationInfo(number, number, "700")))


@pytest.mark.asyncio
async def test_the_index_of_roots_follows_listings_creates_and_forgets() -> None:
    rng = random.Random(22)
    cloud = FakeCloud(FS, page_size=3)
    allocator = GidAllocator(access_point_limit=1000, max_age=0.0)
    assert allocator.known_overlapping(FS, "/a") == []
    made: list[AccessPoint] = []
    for step in range(60):
        action = rng.choice(["exists", "exists", "goes", "moves", "list", "forget", "remember"])
        if action == "exists":
            made.append(add(cloud, 1000 + step, rng.choice(ROOTS)))
        elif action == "goes" and cloud.access_points_by_id:
            await cloud.delete_access_point(rng.choice(sorted(cloud.access_points_by_id)))
        elif action == "moves" and cloud.access_points_by_id:
            cloud.with_root(rng.choice(sorted(cloud.access_points_by_id)), rng.choice(ROOTS))
        elif action == "list":
            allocator.mark_stale(FS)
            await allocator.known(cloud, FS)
        elif action == "forget" and allocator.known_now(FS):
            allocator.forget(FS, rng.choice(allocator.known_now(FS)).access_point_id)
        elif action == "remember" and made:
            allocator.remember(rng.choice(made))
        for root in ROOTS:
            assert indexed(allocator, root) == scanned(allocator, root), (step, action, root)
    assert any(indexed(allocator, root) for root in ROOTS)  # the walk left something to find


@pytest.mark.asyncio
async def test_a_create_then_its_listing_are_found_by_root() -> None:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=1000, max_age=0.0)
    add(cloud, 7, "/tenant/a")
    await allocator.known(cloud, FS)
    reservation = await allocator.reserve(cloud, FS, GidRange(50000, 50010))
    assert reservation.gid is not None
    created = await cloud.create_access_point(AccessPointRequest(
        FS, "mine", "/tenant/a/pvc", PosixUser(reservation.gid, reservation.gid),
        CreationInfo(reservation.gid, reservation.gid, "700")))
    allocator.commit(reservation, created)
    assert indexed(allocator, "/tenant") == sorted([created.access_point_id,
                                                   *(ap.access_point_id
                                                     for ap in allocator.known_now(FS)
                                                     if ap.client_token == "t7")])
    allocator.mark_stale(FS)
    await allocator.known(cloud, FS)
    assert indexed(allocator, "/tenant/a/pvc/x") == scanned(allocator, "/tenant/a/pvc/x")
    assert len(indexed(allocator, "/tenant/a/pvc/x")) == 2


@pytest.mark.asyncio
async def test_a_listing_keeps_the_known_object_of_an_unchanged_access_point() -> None:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=1000, max_age=0.0)
    same, moved = add(cloud, 1, "/same"), add(cloud, 2, "/moves")
    await allocator.known(cloud, FS)
    first = {ap.access_point_id: ap for ap in allocator.known_now(FS)}
    assert first[same.access_point_id] == same  # what is kept equals what EFS answered
    # The inventory keeps compact records (efs_csi_controller.compact): the object kept.
    first_kept = dict(allocator._inventory(FS).access_points)
    cloud.with_root(moved.access_point_id, "/moved")
    allocator.mark_stale(FS)
    await allocator.known(cloud, FS)
    second = {ap.access_point_id: ap for ap in allocator.known_now(FS)}
    assert second[same.access_point_id] == first[same.access_point_id]
    assert (allocator._inventory(FS).access_points[same.access_point_id]
            is first_kept[same.access_point_id])
    assert second[moved.access_point_id].root_path == "/moved"
    assert indexed(allocator, "/moves") == [] and indexed(allocator, "/moved") == [
        moved.access_point_id]
