"""The GID inventory as compact records (``efs_csi_controller.compact``): nothing an access
point carries is lost, what repeats is shared, and a listing updates the records in place
(gone, GID changed, new, a client token under a new id) with the GID bookkeeping in step."""

from __future__ import annotations

from dataclasses import replace

import pytest

from efs_csi.cloud import AccessPoint, AccessPointRequest, CreationInfo, PosixUser
from efs_csi_controller.compact import Compactor
from efs_csi_controller.gid import GidAllocator
from efs_csi_controller.params import GidRange
from efs_csi_controller.tags import CAPACITY_TAG, CLUSTER_TAG, PV_NAME_TAG
from testbed.fake_cloud import FakeCloud

FS = "fs-12345678"

DRIVER_MADE = AccessPoint("fsap-1", FS, "/dynamic/pvc-1", PosixUser(50001, 50001),
                          CreationInfo(50001, 50001, "700"), "pvc-1",
                          {CLUSTER_TAG: "c1", CAPACITY_TAG: "1073741824", PV_NAME_TAG: "pvc-1",
                           "team": "a"})


@pytest.mark.parametrize("access_point", [
    DRIVER_MADE,
    AccessPoint("fsap-2", FS, "/"),  # no POSIX user, no creation info, no tags
    AccessPoint("fsap-3", FS, "/x", PosixUser(1000, 50002, (7, 8)),
                CreationInfo(1000, 50002, "0755"), life_cycle_state="deleting"),
    AccessPoint("fsap-4", FS, "/y", PosixUser(50004, 50004), CreationInfo(0, 0, "755"),
                "by-hand", {PV_NAME_TAG: "another-pv"}),
    AccessPoint("fsap-5", FS, "/z", None, CreationInfo(3, 4, "700")),
])
def test_an_access_point_expands_back_to_what_was_compacted(access_point: AccessPoint) -> None:
    known = Compactor().compact(access_point)
    assert known.expand(access_point.access_point_id, FS) == access_point


def test_what_repeats_is_shared_between_access_points() -> None:
    compactor = Compactor()
    first = compactor.compact(DRIVER_MADE)
    second = compactor.compact(replace(
        DRIVER_MADE, access_point_id="fsap-9", client_token="pvc-9", root_path="/dynamic/pvc-9",
        posix_user=PosixUser(50009, 50009), creation_info=CreationInfo(50009, 50009, "700"),
        tags={**DRIVER_MADE.tags, PV_NAME_TAG: "pvc-9"}))
    assert first.shape is second.shape  # uid = GID, directory owned by it, "700", available
    assert first.tags[1] is second.tags[1]  # the cluster id: one string for both
    pv_name = first.tags[first.tags.index(PV_NAME_TAG) + 1]
    assert pv_name is first.client_token  # the PV name is the token: one string


def test_the_shared_shapes_start_over_past_their_bound() -> None:
    compactor = Compactor(max_shared=2)
    made = [compactor.compact(replace(DRIVER_MADE, creation_info=CreationInfo(
        50001, 50001, permissions))) for permissions in ("700", "750", "755", "700")]
    assert made[3].shape == made[0].shape and made[3].shape is not made[0].shape
    assert [known.expand("fsap-1", FS).creation_info for known in made] == [
        CreationInfo(50001, 50001, permissions) for permissions in ("700", "750", "755", "700")]


def add(cloud: FakeCloud, token: str, gid: int, root: str = "") -> AccessPoint:
    return cloud.add_existing(AccessPointRequest(FS, token, root or f"/{token}",
                                                 PosixUser(gid, gid),
                                                 CreationInfo(gid, gid, "700")))


@pytest.mark.asyncio
async def test_a_listing_updates_the_inventory_in_place() -> None:
    cloud = FakeCloud(FS, page_size=2)
    allocator = GidAllocator(access_point_limit=100, max_age=0.0)
    stays, goes, regids = add(cloud, "stays", 10), add(cloud, "goes", 11), add(cloud, "regid", 12)
    moves = add(cloud, "moves", 13)
    await allocator.known(cloud, FS)
    inventory = allocator._inventory(FS)
    records, kept = inventory.access_points, dict(inventory.access_points)
    assert inventory.taken == [10, 11, 12, 13]

    await cloud.delete_access_point(goes.access_point_id)  # gone
    cloud.access_points_by_id[regids.access_point_id] = replace(
        regids, posix_user=PosixUser(20, 20))  # its GID changed
    new = add(cloud, "new", 14)  # new
    await cloud.delete_access_point(moves.access_point_id)  # its token under a new id
    moved = add(cloud, "moves", 15, "/moves")
    allocator.mark_stale(FS)
    assert sorted(await allocator.known(cloud, FS), key=lambda ap: ap.access_point_id) == sorted(
        cloud.access_points_by_id.values(), key=lambda ap: ap.access_point_id)

    assert inventory.access_points is records  # the same dict, updated
    assert records[stays.access_point_id] is kept[stays.access_point_id]  # untouched
    assert goes.access_point_id not in records and moves.access_point_id not in records
    assert inventory.taken == [10, 14, 15, 20] and set(inventory.gid_refs) == {10, 14, 15, 20}
    assert allocator.find_known(FS, "moves") == moved
    assert allocator.find_known(FS, "goes") is None
    assert allocator.find_known(FS, "new") == new
    assert [ap.access_point_id for ap in allocator.known_overlapping(FS, "/moves")] == [
        moved.access_point_id]
    # The GIDs the listing freed are free to pick again, the new ones are not.
    narrow = GidRange(10, 15)
    assert inventory.in_range(narrow) == 3
    assert [inventory.nth_free(narrow, n) for n in range(3)] == [11, 12, 13]


@pytest.mark.asyncio
async def test_a_token_two_access_points_carry_is_found_under_either() -> None:
    """An API that does not honour ClientToken (moto) makes a second access point under a
    token: the settlement names the other, and the token stays known while one remains."""
    cloud = FakeCloud(FS)
    cloud.honours_client_tokens = False
    allocator = GidAllocator(access_point_limit=100, settle_delay=0.01, settle_quiet=0.01)
    first, second = add(cloud, "pv-1", 10), add(cloud, "pv-1", 11)
    await allocator.known(cloud, FS)
    settlement = await allocator.settle(cloud, second)
    assert settlement.kept and settlement.duplicates == (first,)
    allocator.forget(FS, second.access_point_id)
    assert allocator.find_known(FS, "pv-1") == first
    allocator.forget(FS, first.access_point_id)
    assert allocator.find_known(FS, "pv-1") is None
    assert allocator._inventory(FS).shared_tokens == {}


@pytest.mark.asyncio
async def test_the_listing_that_settled_is_let_go_once_no_create_waits() -> None:
    cloud = FakeCloud(FS)
    allocator = GidAllocator(access_point_limit=100, settle_delay=0.01, settle_quiet=0.01)
    ours = add(cloud, "pv-1", 10)
    allocator.remember(ours)
    assert (await allocator.settle(cloud, ours)).kept
    assert allocator._inventory(FS).listing is None
    await allocator.known(cloud, FS)  # a listing no create waits for is not kept either
    assert allocator._inventory(FS).listing is None
