"""The controller's use cases through the real aiobotocore adapter, against moto over HTTP
behind the EFS proxy (ClientToken idempotency, pagination, limits, injected throttling)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from grpclib.const import Status

from efs_csi import csi
from efs_csi.adapters.aws.roles import CloudFactory
from efs_csi.errors import CsiError, ResourceExhausted
from efs_csi_controller.app import build_controller
from efs_csi_controller.tags import tag_value
from testbed.csi_builders import create_request
from testbed.efs_proxy import EfsProxy, make_file_system
from testbed.efs_rules import tag_violations
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint

Mode = csi.VolumeCapabilityAccessModeMode


@pytest.fixture
def proxy(moto: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[EfsProxy]:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with EfsProxy(moto.url, seed=3) as running:
        yield running


@pytest.mark.asyncio
async def test_near_full_range_concurrent_restart_and_cleanup(proxy: EfsProxy) -> None:
    fs_id = make_file_system(proxy.url).file_system_id
    narrow = {"gidRangeStart": "1000", "gidRangeEnd": "1019"}  # 20 GIDs for 25 volumes
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        first = build_controller(clouds, access_point_limit=1000,
                                 extra_tags={}).service
        results = await asyncio.gather(
            *(first.create_volume(create_request(f"pv-{i}", fs_id, **narrow)) for i in range(25)),
            return_exceptions=True)
        made = {r.volume.volume_id: i for i, r in enumerate(results)
                if isinstance(r, csi.CreateVolumeResponse) and r.volume}
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(made) == 20
        assert len(failed) == 5 and all(isinstance(e, ResourceExhausted) for e in failed)
        access_points = [ap async for ap in clouds.default.access_points(fs_id)]
        assert sorted(ap.posix_user.gid for ap in access_points if ap.posix_user) == list(
            range(1000, 1020))
        # A restarted controller re-learns the GIDs and finds existing volumes by token.
        proxy.reset_counts()
        restarted = build_controller(clouds, access_point_limit=1000,
                                     extra_tags={}).service
        index = next(iter(made.values()))
        again = await restarted.create_volume(create_request(f"pv-{index}", fs_id, **narrow))
        assert again.volume is not None and again.volume.volume_id in made
        assert proxy.calls["CreateAccessPoint"] == 0
        with pytest.raises(CsiError) as raised:
            await restarted.create_volume(create_request("pv-new", fs_id, **narrow))
        assert raised.value.status == Status.RESOURCE_EXHAUSTED
        for volume_id in [*made, *made]:  # twice: deleting is idempotent
            await restarted.delete_volume(csi.DeleteVolumeRequest(volume_id=volume_id))
        assert [ap async for ap in clouds.default.access_points(fs_id)] == []


@pytest.mark.asyncio
async def test_throttled_creates_all_succeed(proxy: EfsProxy) -> None:
    fs_id = make_file_system(proxy.url).file_system_id
    proxy.inject(throttle=0.2)
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        service = build_controller(clouds, access_point_limit=1000,
                                   extra_tags={}).service
        replies = await asyncio.gather(*(service.create_volume(create_request(f"pv-{i}", fs_id))
                                         for i in range(20)))
        assert proxy.injected["CreateAccessPoint"] > 0
        ids = {r.volume.volume_id for r in replies if r.volume}
        assert len(ids) == 20
        proxy.clear_faults()
        gids = {ap.posix_user.gid async for ap in clouds.default.access_points(fs_id)
                if ap.posix_user}
        assert len(gids) == 20


@pytest.mark.asyncio
@pytest.mark.parametrize("base_path", ["/team(a)", "/data,v2", "/50%"])
async def test_base_paths_efs_tags_cannot_hold_still_provision(proxy: EfsProxy,
                                                               base_path: str) -> None:
    """The proxy refuses tags as real EFS does (moto would take anything): each basePath is a
    valid EFS path, and the create succeeds with tags EFS accepts."""
    fs_id = make_file_system(proxy.url).file_system_id
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        service = build_controller(clouds, access_point_limit=1000,
                                   extra_tags={"team": "storage"}).service
        reply = await service.create_volume(create_request("pv-1", fs_id, basePath=base_path))
        assert reply.volume is not None
        [access_point] = [ap async for ap in clouds.default.access_points(fs_id)]
    assert access_point.root_path.startswith(base_path + "/pv-1-")
    assert tag_violations(access_point.tags) == []
    assert access_point.tags["efs.csi.aws.com/base-path"] == tag_value(base_path)


@pytest.mark.asyncio
async def test_same_name_on_another_file_system_is_already_exists(proxy: EfsProxy) -> None:
    """EFS client tokens are account-wide: EFS refuses the second create."""
    first_fs = make_file_system(proxy.url).file_system_id
    second_fs = make_file_system(proxy.url).file_system_id
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        made = build_controller(clouds, access_point_limit=1000,
                                extra_tags={}).service
        await made.create_volume(create_request("pv-1", first_fs))
        fresh = build_controller(clouds, access_point_limit=1000,
                                 extra_tags={}).service  # knows nothing of the first
        with pytest.raises(CsiError) as raised:
            await fresh.create_volume(create_request("pv-1", second_fs))
        assert [ap async for ap in clouds.default.access_points(second_fs)] == []
    assert raised.value.status == Status.ALREADY_EXISTS
    assert second_fs in raised.value.message and "unique per account" in raised.value.message
