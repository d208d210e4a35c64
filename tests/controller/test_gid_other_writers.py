"""Other writers on one file system: two real controller processes (as two clusters would run
them) and a person's boto3 calls, all on one moto file system behind the EFS proxy.

EFS lets two access points share a GID, so nothing but the controllers' own care keeps GIDs
apart: each re-lists a file system whose listing is older than --gid-inventory-max-age, and
picks GIDs at random among the free ones.
"""

from __future__ import annotations

import asyncio
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

MAX_AGE = 1.0  # seconds; short so the test need not wait the default 5


@pytest.fixture
def proxy(moto: MotoEndpoint) -> Iterator[EfsProxy]:
    with EfsProxy(moto.url, seed=11) as running:
        yield running


def outside_writer(url: str) -> Any:
    """A person with the AWS SDK: not our driver, no GID allocator."""
    return boto3.client("efs", region_name=REGION, endpoint_url=url,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def gids_by_token(url: str, fs_id: str) -> dict[str, int]:
    pages = outside_writer(url).get_paginator("describe_access_points").paginate(
        FileSystemId=fs_id)
    return {ap["ClientToken"]: ap["PosixUser"]["Gid"] for page in pages
            for ap in page["AccessPoints"]}


def create_request(name: str, fs_id: str, **params: str) -> csi.CreateVolumeRequest:
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[mount_capability()],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": fs_id,
                    "directoryPerms": "700", **params})


async def create(controller: RunningBinary, name: str, fs_id: str, **params: str) -> None:
    channel = controller.channel()
    try:
        await csi.ControllerStub(channel).create_volume(create_request(name, fs_id, **params),
                                                        timeout=60)
    finally:
        channel.close()


async def two_controllers(binary: StartBinary, proxy: EfsProxy
                          ) -> tuple[RunningBinary, RunningBinary]:
    args = ["--region", REGION, "--gid-inventory-max-age", str(MAX_AGE), "--log-level", "warning"]
    return (await binary("controller", args, proxy.environment()),
            await binary("controller", args, proxy.environment()))


@pytest.mark.asyncio
async def test_an_outside_writers_gids_are_never_handed_out(binary: StartBinary,
                                                            proxy: EfsProxy) -> None:
    fs_id = make_file_system(proxy.url).file_system_id
    first, second = await two_controllers(binary, proxy)
    narrow = {"gidRangeStart": "1000", "gidRangeEnd": "1019"}
    await create(first, "a-0", fs_id, **narrow)  # both controllers have listed the file system
    await create(second, "b-0", fs_id, **narrow)
    taken = set(gids_by_token(proxy.url, fs_id).values())
    free = sorted(set(range(1000, 1020)) - taken)
    person = outside_writer(proxy.url)
    for gid in free[2:]:  # a person takes all but two of the free GIDs
        person.create_access_point(
            ClientToken=f"by-hand-{gid}", FileSystemId=fs_id, PosixUser={"Uid": gid, "Gid": gid},
            RootDirectory={"Path": f"/by-hand/{gid}", "CreationInfo": {
                "OwnerUid": gid, "OwnerGid": gid, "Permissions": "700"}})
    await asyncio.sleep(MAX_AGE + 0.2)  # both controllers' listings are now too old to trust
    await create(first, "a-1", fs_id, **narrow)
    await create(second, "b-1", fs_id, **narrow)
    gids = gids_by_token(proxy.url, fs_id)
    assert {gids["a-1"], gids["b-1"]} == set(free[:2])  # exactly the two left free
    assert len(set(gids.values())) == len(gids) == 20
    await asyncio.sleep(MAX_AGE + 0.2)
    with pytest.raises(GRPCError) as raised:  # the range is full, and the first one sees it
        await create(first, "a-2", fs_id, **narrow)
    assert raised.value.status == Status.RESOURCE_EXHAUSTED


@pytest.mark.asyncio
async def test_two_controllers_racing_almost_never_share_a_gid(
        binary: StartBinary, proxy: EfsProxy, report: Callable[[str], None]) -> None:
    """Alternating creates (each controller blind to the other's last second of creates),
    then both bursting at once, over the default GID range."""
    fs_id = make_file_system(proxy.url).file_system_id
    first, second = await two_controllers(binary, proxy)
    person = outside_writer(proxy.url)
    for index in range(20):
        await create(first, f"a-{index}", fs_id)
        await create(second, f"b-{index}", fs_id)
        if index % 5 == 0:
            gid = 50000 + index
            person.create_access_point(
                ClientToken=f"by-hand-{index}", FileSystemId=fs_id,
                PosixUser={"Uid": gid, "Gid": gid}, RootDirectory={"Path": f"/h/{index}"})
    proxy.reset_counts()
    await asyncio.gather(*(create(controller, f"{name}-burst-{index}", fs_id)
                           for index in range(40)
                           for controller, name in ((first, "a"), (second, "b"))))
    burst_calls = proxy.efs_calls() / 80
    gids = gids_by_token(proxy.url, fs_id)
    assert len(gids) == 20 * 2 + 4 + 80
    shared = sum(count - 1 for count in Counter(gids.values()).values() if count > 1)
    report(f"two controllers + a person, default GID range: {shared} shared GID(s) among "
           f"{len(gids)} access points; {burst_calls:.2f} EFS calls per create in an 80-create "
           f"burst (max age {MAX_AGE:g} s)")
    # Random picks over ~7 million GIDs: one meeting has p ~ 1e-3, two ~ 1e-6. Lowest-first
    # allocation shares nearly every GID here.
    assert shared <= 1
