"""AwsCloud against moto through the EFS proxy, over real HTTP."""

from __future__ import annotations

import asyncio

import pytest

from efs_csi import errors
from efs_csi.adapters.aws.cloud import AwsCloud
from efs_csi.adapters.aws.roles import CloudFactory
from efs_csi.cloud import AccessPointAlreadyExistsError, AccessPointRequest, CreationInfo, PosixUser
from testbed.efs_proxy import EfsProxy, FileSystemSetup
from testbed.fake_cloud import RecordingObserver


def request(file_system_id: str, token: str, gid: int = 50000, path: str = "/dyn/a",
            tags: dict[str, str] | None = None) -> AccessPointRequest:
    return AccessPointRequest(file_system_id=file_system_id, client_token=token, root_path=path,
                              posix_user=PosixUser(gid, gid),
                              creation_info=CreationInfo(gid, gid, "0700"),
                              tags={"efs.csi.aws.com/cluster": "true"} if tags is None else tags)


@pytest.mark.asyncio
async def test_create_describe_delete_round_trip(factory: CloudFactory,
                                                 file_system: FileSystemSetup,
                                                 observer: RecordingObserver) -> None:
    cloud = factory.default
    fs = file_system.file_system_id
    created = await cloud.create_access_point(request(fs, "pvc-1", gid=50001, tags={"a": "b"}))
    assert created.file_system_id == fs
    assert created.root_path == "/dyn/a"
    assert created.posix_user == PosixUser(50001, 50001)
    assert created.creation_info == CreationInfo(50001, 50001, "0700")
    assert created.client_token == "pvc-1"
    assert created.tags == {"a": "b"}
    assert await cloud.describe_access_point(created.access_point_id) == created
    assert [ap async for ap in cloud.access_points(fs)] == [created]
    await cloud.delete_access_point(created.access_point_id)
    with pytest.raises(errors.NotFound, match=created.access_point_id):
        await cloud.describe_access_point(created.access_point_id)
    assert [ap async for ap in cloud.access_points(fs)] == []
    operations = [operation for operation, _, _ in observer.calls]
    assert operations[:2] == ["CreateAccessPoint", "DescribeAccessPoints"]
    assert observer.calls[-1][0] == "DescribeAccessPoints"
    assert observer.calls[-2][2] == "AccessPointNotFound"
    assert all(seconds >= 0 for _, seconds, _ in observer.calls)


@pytest.mark.asyncio
async def test_describe_file_system_and_mount_targets(factory: CloudFactory,
                                                      file_system: FileSystemSetup) -> None:
    cloud = factory.default
    found = await cloud.describe_file_system(file_system.file_system_id)
    assert found.file_system_id == file_system.file_system_id
    assert found.availability_zone_name is None
    targets = await cloud.mount_targets(file_system.file_system_id)
    assert {t.availability_zone_name: t.ip_address for t in targets} == \
        file_system.mount_target_ips
    with pytest.raises(errors.NotFound, match="FileSystemNotFound"):
        await cloud.describe_file_system("fs-0123456789abcdef0")


@pytest.mark.asyncio
async def test_one_zone_file_system_reports_its_zone(factory: CloudFactory,
                                                     efs_proxy: EfsProxy) -> None:
    from testbed.efs_proxy import make_file_system

    setup = make_file_system(efs_proxy.url, one_zone="us-east-1b")
    found = await factory.default.describe_file_system(setup.file_system_id)
    assert found.availability_zone_name == "us-east-1b"
    assert list(setup.mount_target_ips) == ["us-east-1b"]


@pytest.mark.asyncio
async def test_pagination_finds_every_access_point(factory: CloudFactory, efs_proxy: EfsProxy,
                                                   file_system: FileSystemSetup) -> None:
    fs = file_system.file_system_id
    total = 2500
    semaphore = asyncio.Semaphore(32)

    async def make(number: int) -> str:
        async with semaphore:
            created = await factory.default.create_access_point(
                request(fs, f"tok-{number}", gid=60000 + number, tags={}))
            return created.access_point_id

    made = set(await asyncio.gather(*(make(n) for n in range(total))))
    assert len(made) == total
    efs_proxy.reset_counts()
    listed = [ap async for ap in factory.default.access_points(fs)]
    assert {ap.access_point_id for ap in listed} == made
    assert len(listed) == total
    assert efs_proxy.calls["DescribeAccessPoints"] == 3  # pages of 1000


@pytest.mark.asyncio
async def test_page_size_is_passed_to_efs(efs_proxy: EfsProxy, file_system: FileSystemSetup,
                                          aws_credentials: None) -> None:
    fs = file_system.file_system_id
    async with AwsCloud.create("us-east-1", endpoint_url=efs_proxy.url, page_size=2) as cloud:
        for number in range(5):
            await cloud.create_access_point(request(fs, f"t{number}", gid=50000 + number))
        efs_proxy.reset_counts()
        listed = [ap async for ap in cloud.access_points(fs)]
    assert len({ap.access_point_id for ap in listed}) == 5
    assert efs_proxy.calls["DescribeAccessPoints"] == 3


@pytest.mark.asyncio
async def test_same_token_same_parameters_is_idempotent(factory: CloudFactory,
                                                        file_system: FileSystemSetup) -> None:
    fs = file_system.file_system_id
    first = await factory.default.create_access_point(request(fs, "pvc-x"))
    again = await factory.default.create_access_point(request(fs, "pvc-x"))
    assert again == first
    assert len([ap async for ap in factory.default.access_points(fs)]) == 1


@pytest.mark.asyncio
async def test_same_token_other_parameters_is_already_exists(
        factory: CloudFactory, file_system: FileSystemSetup) -> None:
    fs = file_system.file_system_id
    await factory.default.create_access_point(request(fs, "pvc-x", gid=50000))
    with pytest.raises(errors.AlreadyExists, match="IdempotentParameterMismatch"):
        await factory.default.create_access_point(request(fs, "pvc-x", gid=50001))


@pytest.mark.asyncio
async def test_access_point_already_exists_names_the_existing_one(
        factory: CloudFactory, efs_proxy: EfsProxy, file_system: FileSystemSetup) -> None:
    fs = file_system.file_system_id
    efs_proxy.idempotency_window = 0.0
    first = await factory.default.create_access_point(request(fs, "pvc-x"))
    with pytest.raises(AccessPointAlreadyExistsError) as raised:
        await factory.default.create_access_point(request(fs, "pvc-x"))
    assert raised.value.access_point_id == first.access_point_id
    assert isinstance(raised.value, errors.AlreadyExists)


@pytest.mark.asyncio
async def test_token_is_free_again_after_delete(factory: CloudFactory,
                                                file_system: FileSystemSetup) -> None:
    fs = file_system.file_system_id
    first = await factory.default.create_access_point(request(fs, "pvc-x"))
    await factory.default.delete_access_point(first.access_point_id)
    second = await factory.default.create_access_point(request(fs, "pvc-x", gid=50009))
    assert second.access_point_id != first.access_point_id


@pytest.mark.asyncio
async def test_limit_is_resource_exhausted(factory: CloudFactory, efs_proxy: EfsProxy,
                                           file_system: FileSystemSetup) -> None:
    fs = file_system.file_system_id
    efs_proxy.access_point_limit = 2
    await factory.default.create_access_point(request(fs, "a", gid=50000))
    await factory.default.create_access_point(request(fs, "b", gid=50001))
    with pytest.raises(errors.ResourceExhausted, match="AccessPointLimitExceeded"):
        await factory.default.create_access_point(request(fs, "c", gid=50002))
    assert efs_proxy.calls["CreateAccessPoint"] == 3


@pytest.mark.asyncio
async def test_unknown_ids_are_not_found(factory: CloudFactory,
                                         file_system: FileSystemSetup) -> None:
    unknown_fs = "fs-00000000000000000"
    with pytest.raises(errors.NotFound, match="FileSystemNotFound"):
        await factory.default.create_access_point(request(unknown_fs, "t"))
    with pytest.raises(errors.NotFound, match="FileSystemNotFound"):
        _ = [ap async for ap in factory.default.access_points(unknown_fs)]
    with pytest.raises(errors.NotFound, match="AccessPointNotFound"):
        await factory.default.delete_access_point("fsap-0123456789abcdef0")


@pytest.mark.asyncio
async def test_client_side_validation_is_invalid_argument(factory: CloudFactory,
                                                          file_system: FileSystemSetup) -> None:
    with pytest.raises(errors.InvalidArgument, match=r"BadRequest.*ClientToken"):
        await factory.default.create_access_point(
            request(file_system.file_system_id, "x" * 65))
