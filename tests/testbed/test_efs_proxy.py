"""The EFS proxy's own behaviour, driven by plain boto3 (sync) so it is checked apart from
the adapter under test."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from testbed.efs_proxy import EfsProxy, FileSystemSetup, make_file_system, operation_of
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint


def efs_client(url: str, attempts: int = 1) -> Any:
    return boto3.client("efs", region_name=REGION, endpoint_url=url,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        config=botocore.config.Config(
                            retries={"mode": "standard", "total_max_attempts": attempts}))


def create(client: Any, fs: str, number: int) -> str:
    reply = client.create_access_point(ClientToken=f"t{number}", FileSystemId=fs,
                                       PosixUser={"Uid": number, "Gid": number})
    return str(reply["AccessPointId"])


@pytest.mark.parametrize(("method", "path", "body", "expected"), [
    ("POST", "/2015-02-01/access-points", b"{}", "CreateAccessPoint"),
    ("GET", "/2015-02-01/access-points", b"", "DescribeAccessPoints"),
    ("DELETE", "/2015-02-01/access-points/fsap-1234abcd", b"", "DeleteAccessPoint"),
    ("GET", "/2015-02-01/file-systems", b"", "DescribeFileSystems"),
    ("GET", "/2015-02-01/mount-targets", b"", "DescribeMountTargets"),
    ("POST", "/", b"Action=AssumeRole&Version=2011-06-15", "AssumeRole"),
    ("POST", "/moto-api/reset", b"", "POST /moto-api/reset"),
])
def test_operation_names(method: str, path: str, body: bytes, expected: str) -> None:
    assert operation_of(method, path, body) == expected


def test_usable_from_sync_code_and_stops_cleanly(moto: MotoEndpoint) -> None:
    proxy = EfsProxy(moto.url).start()
    try:
        setup = make_file_system(proxy.url)
        assert set(setup.mount_target_ips) == {"us-east-1a", "us-east-1b"}
        assert proxy.calls["CreateFileSystem"] == 1
        assert proxy.calls["CreateMountTarget"] == 2
        assert proxy.calls["CreateVpc"] == 1
        assert proxy.efs_calls() == 3
        assert proxy.environment()["AWS_ENDPOINT_URL"] == proxy.url
    finally:
        proxy.stop()
    proxy.stop()  # idempotent


def test_default_page_is_100_and_pages_survive_deletes(efs_proxy: EfsProxy,
                                                       file_system: FileSystemSetup) -> None:
    client = efs_client(efs_proxy.url)
    fs = file_system.file_system_id
    made = [create(client, fs, n) for n in range(105)]
    first = client.describe_access_points(FileSystemId=fs)
    assert len(first["AccessPoints"]) == 100
    # deleting an already-listed access point must not make the next page skip one
    client.delete_access_point(AccessPointId=first["AccessPoints"][0]["AccessPointId"])
    second = client.describe_access_points(FileSystemId=fs, NextToken=first["NextToken"])
    assert "NextToken" not in second
    seen = {ap["AccessPointId"] for ap in first["AccessPoints"] + second["AccessPoints"]}
    assert seen == set(made)


def test_a_listings_pages_come_from_what_its_first_page_saw(
        efs_proxy: EfsProxy, file_system: FileSystemSetup) -> None:
    """moto is listed once per listing (it has no pagination); an access point made during a
    listing shows in the next listing; a token the proxy never issued is refused."""
    client = efs_client(efs_proxy.url)
    fs = file_system.file_system_id
    made = {create(client, fs, n) for n in range(5)}
    first = client.describe_access_points(FileSystemId=fs, MaxResults=2)
    late = create(client, fs, 99)
    pages = [first]
    while "NextToken" in pages[-1]:
        pages.append(client.describe_access_points(FileSystemId=fs, MaxResults=2,
                                                   NextToken=pages[-1]["NextToken"]))
    assert {ap["AccessPointId"] for page in pages for ap in page["AccessPoints"]} == made
    again = client.describe_access_points(FileSystemId=fs, MaxResults=100)
    assert late in {ap["AccessPointId"] for ap in again["AccessPoints"]}
    with pytest.raises(botocore.exceptions.ClientError, match="BadRequest"):
        client.describe_access_points(FileSystemId=fs, NextToken="bm90LWEtdG9rZW4=")


def test_faults_only_hit_the_chosen_operation(efs_proxy: EfsProxy,
                                              file_system: FileSystemSetup) -> None:
    client = efs_client(efs_proxy.url)
    efs_proxy.inject(throttle=1.0, operations=["DeleteAccessPoint"])
    created = create(client, file_system.file_system_id, 1)
    with pytest.raises(botocore.exceptions.ClientError, match="ThrottlingException"):
        client.delete_access_point(AccessPointId=created)
    assert efs_proxy.injected == {"DeleteAccessPoint": 1}
    efs_proxy.clear_faults()
    client.delete_access_point(AccessPointId=created)


def test_a_rate_limit_throttles_only_the_calls_beyond_it(efs_proxy: EfsProxy,
                                                         file_system: FileSystemSetup) -> None:
    """A bucket of 2 refilled at 0.01 per second: the third create in a row is throttled
    (and nothing is created for it); other operations pass; ``clear_faults`` lifts it."""
    client = efs_client(efs_proxy.url)
    fs = file_system.file_system_id
    efs_proxy.rate_limit({"CreateAccessPoint": 0.01}, burst=2)
    created = [create(client, fs, 1), create(client, fs, 2)]
    with pytest.raises(botocore.exceptions.ClientError, match="ThrottlingException"):
        create(client, fs, 3)
    assert efs_proxy.injected == {"CreateAccessPoint": 1}
    listed = client.describe_access_points(FileSystemId=fs)["AccessPoints"]
    assert sorted(ap["AccessPointId"] for ap in listed) == sorted(created)
    efs_proxy.clear_faults()
    create(client, fs, 3)


def test_a_deleted_access_point_is_not_found_the_second_time(
        efs_proxy: EfsProxy, file_system: FileSystemSetup) -> None:
    """The first delete finds it in the proxy's index, the second looks it up in moto."""
    client = efs_client(efs_proxy.url)
    created = create(client, file_system.file_system_id, 1)
    efs_proxy.reset_counts()
    client.delete_access_point(AccessPointId=created)
    with pytest.raises(botocore.exceptions.ClientError, match="AccessPointNotFound"):
        client.delete_access_point(AccessPointId=created)
    assert efs_proxy.calls == {"DeleteAccessPoint": 2}


def test_server_errors_use_the_chosen_status(efs_proxy: EfsProxy,
                                             file_system: FileSystemSetup) -> None:
    client = efs_client(efs_proxy.url)
    efs_proxy.inject(server_error=1.0, server_error_status=503)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.describe_file_systems()
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503


def test_limit_counts_access_points_made_before_the_proxy_saw_the_file_system(
        moto: MotoEndpoint) -> None:
    setup = make_file_system(moto.url)  # made straight in moto, bypassing any proxy
    direct = efs_client(moto.url)
    for number in range(3):
        create(direct, setup.file_system_id, number)
    with EfsProxy(moto.url, access_point_limit=4) as proxy:
        client = efs_client(proxy.url)
        create(client, setup.file_system_id, 3)
        with pytest.raises(botocore.exceptions.ClientError, match="AccessPointLimitExceeded"):
            create(client, setup.file_system_id, 4)
        # a token moto already knew is idempotent through the proxy too
        assert create(client, setup.file_system_id, 0) == \
            direct.describe_access_points(FileSystemId=setup.file_system_id)[
                "AccessPoints"][0]["AccessPointId"]


def test_forget_after_resetting_moto(efs_proxy: EfsProxy, moto: MotoEndpoint) -> None:
    first = make_file_system(efs_proxy.url)
    client = efs_client(efs_proxy.url)
    create(client, first.file_system_id, 1)
    moto.reset()
    efs_proxy.forget()
    with pytest.raises(botocore.exceptions.ClientError, match="FileSystemNotFound"):
        create(client, first.file_system_id, 2)
