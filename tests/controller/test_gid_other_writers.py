"""Other writers on one file system: two real controller processes (as two clusters would run
them) and a person's boto3 calls, all on one moto file system behind the EFS proxy.

EFS lets two access points share a GID, so nothing but the controllers' own care keeps GIDs
apart. The controllers here trust what they listed for a minute (``--gid-inventory-max-age
60``), the worst case: they pick GIDs blind to each other's and the person's recent access
points, in ranges narrow enough that blind picks meet, and only settling each GID against the
file system after the create keeps them apart.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from efs_csi import csi
from testbed.csi_builders import mount_capability
from testbed.efs_proxy import EfsProxy, make_file_system
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint
from testbed.processes import RunningBinary, StartBinary


@pytest.fixture
def proxy(moto: MotoEndpoint) -> Iterator[EfsProxy]:
    with EfsProxy(moto.url, seed=11) as running:
        yield running


def outside_writer(url: str) -> Any:
    """A person with the AWS SDK: not our driver, no GID allocator, no checks."""
    return boto3.client("efs", region_name=REGION, endpoint_url=url,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def by_hand(client: Any, fs_id: str, gid: int, token: str) -> None:
    client.create_access_point(
        ClientToken=token, FileSystemId=fs_id, PosixUser={"Uid": gid, "Gid": gid},
        RootDirectory={"Path": f"/by-hand/{token}", "CreationInfo": {
            "OwnerUid": gid, "OwnerGid": gid, "Permissions": "700"}})


def gids_by_token(url: str, fs_id: str) -> dict[str, int]:
    pages = outside_writer(url).get_paginator("describe_access_points").paginate(
        FileSystemId=fs_id)
    return {ap["ClientToken"]: ap["PosixUser"]["Gid"] for page in pages
            for ap in page["AccessPoints"]}


def shared(gids: dict[str, int]) -> int:
    return sum(count - 1 for count in Counter(gids.values()).values() if count > 1)


def create_request(name: str, fs_id: str, first: int, last: int) -> csi.CreateVolumeRequest:
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[mount_capability()],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": fs_id,
                    "directoryPerms": "700", "gidRangeStart": str(first),
                    "gidRangeEnd": str(last)})


async def create(controller: RunningBinary, name: str, fs_id: str, first: int,
                 last: int) -> None:
    channel = controller.channel()
    try:
        await csi.ControllerStub(channel).create_volume(
            create_request(name, fs_id, first, last), timeout=60)
    finally:
        channel.close()


async def two_controllers(binary: StartBinary, proxy: EfsProxy
                          ) -> tuple[RunningBinary, RunningBinary]:
    args = ["--region", REGION, "--gid-inventory-max-age", "60", "--log-level", "warning"]
    return (await binary("controller", args, proxy.environment()),
            await binary("controller", args, proxy.environment()))


@pytest.mark.asyncio
async def test_two_controllers_creating_in_turn_never_share_a_gid(
        binary: StartBinary, proxy: EfsProxy, report: Callable[[str], None]) -> None:
    """A, B, A, B, ... on a range of six GIDs: each controller's view misses the other's
    last create; every GID is used once, then the range is full."""
    fs_id = make_file_system(proxy.url).file_system_id
    first, second = await two_controllers(binary, proxy)
    proxy.reset_counts()
    for index in range(3):
        await create(first, f"a-{index}", fs_id, 1000, 1005)
        await create(second, f"b-{index}", fs_id, 1000, 1005)
    calls, yields = proxy.efs_calls(), proxy.calls["DeleteAccessPoint"]
    gids = gids_by_token(proxy.url, fs_id)
    assert sorted(gids.values()) == list(range(1000, 1006))
    with pytest.raises(GRPCError) as raised:
        await create(first, "a-full", fs_id, 1000, 1005)
    assert raised.value.status == Status.RESOURCE_EXHAUSTED
    assert "1000-1005" in (raised.value.message or "")
    assert "gidRangeStart" in (raised.value.message or "")
    report(f"A/B/A on 6 GIDs: 0 shared; {calls / 6:.2f} EFS calls per create, {yields} "
           "yield(s)")


@pytest.mark.asyncio
async def test_a_person_creating_between_our_creates_never_shares_our_gids(
        binary: StartBinary, proxy: EfsProxy) -> None:
    fs_id = make_file_system(proxy.url).file_system_id
    controller, _ = await two_controllers(binary, proxy)
    await create(controller, "v-0", fs_id, 1000, 1009)
    taken = set(gids_by_token(proxy.url, fs_id).values())
    free = sorted(set(range(1000, 1010)) - taken)
    person = outside_writer(proxy.url)
    for gid in free[1:]:  # all but one of the free GIDs, unknown to the controller
        by_hand(person, fs_id, gid, f"by-hand-{gid}")
    await create(controller, "v-1", fs_id, 1000, 1009)  # no wait: its listing is "fresh"
    gids = gids_by_token(proxy.url, fs_id)
    # v-1's access point, under its name or (made after yielding) the next of its tokens.
    [v1] = [gid for token, gid in gids.items() if not token.startswith(("by-hand", "v-0"))]
    assert v1 == free[0]
    assert shared(gids) == 0 and len(gids) == 10
    with pytest.raises(GRPCError) as raised:
        await create(controller, "v-2", fs_id, 1000, 1009)
    assert raised.value.status == Status.RESOURCE_EXHAUSTED


@pytest.mark.asyncio
async def test_two_controllers_bursting_while_a_person_writes_never_share_a_gid(
        binary: StartBinary, proxy: EfsProxy, moto: MotoEndpoint,
        report: Callable[[str], None]) -> None:
    """Both controllers create 15 volumes at once on a range of 60 GIDs while a person
    creates 15 access points on GIDs of the same range (straight to moto). The proxy holds the
    controllers' CreateAccessPoint calls until the person is done, so the person's access
    points all exist before any of ours: any GID shared with them, or between the
    controllers, is a failure. (A GID a writer that never checks takes after ours was checked
    is the one case no controller can prevent.)"""
    fs_id = make_file_system(proxy.url).file_system_id
    first, second = await two_controllers(binary, proxy)
    await create(first, "a-first", fs_id, 1000, 1059)
    await create(second, "b-first", fs_id, 1000, 1059)
    person = outside_writer(moto.url)
    free = sorted(set(range(1000, 1060)) - set(gids_by_token(proxy.url, fs_id).values()))
    picks = random.Random(5).sample(free, 15)  # free when the person looks
    proxy.hold(["CreateAccessPoint"])
    proxy.reset_counts()

    def person_writes() -> None:
        try:
            for gid in picks:
                by_hand(person, fs_id, gid, f"by-hand-{gid}")
        finally:
            proxy.release()

    await asyncio.gather(
        asyncio.to_thread(person_writes),
        *(create(controller, f"{name}-{index}", fs_id, 1000, 1059)
          for index in range(15) for controller, name in ((first, "a"), (second, "b"))))
    calls, yields = proxy.efs_calls(), proxy.calls["DeleteAccessPoint"]
    gids = gids_by_token(proxy.url, fs_id)
    assert len(gids) == 2 + 30 + 15
    holders: dict[int, list[str]] = {}
    for token, gid in gids.items():
        holders.setdefault(gid, []).append(token)
    assert {gid: tokens for gid, tokens in holders.items() if len(tokens) > 1} == {}
    report(f"two controllers bursting (2 x 15) while a person writes 15, on 60 GIDs: 0 "
           f"shared; {calls / 30:.2f} EFS calls per create, {yields} yield(s)")
