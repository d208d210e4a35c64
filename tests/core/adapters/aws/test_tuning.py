"""efs_csi.adapters.aws.tuning: the compiled REST-JSON parser gives what botocore's own
gives (on moto's answers over real HTTP, and on answers moto never sends: unknown members,
nulls, timestamps), and the unregistered handlers are gone from the tuned client only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiobotocore.parsers import AioRestJSONParser
from aiobotocore.session import AioSession

from efs_csi.adapters.aws.client import USER_AGENT, client_config
from efs_csi.adapters.aws.tuning import (
    CompiledRestJSONParser,
    TunedParserFactory,
    tune_client,
    tune_session,
)
from testbed.efs_proxy import EfsProxy, FileSystemSetup
from testbed.moto_server import REGION


def without_metadata(reply: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in reply.items() if key != "ResponseMetadata"}


@pytest_asyncio.fixture
async def clients(efs_proxy: EfsProxy, aws_credentials: None) -> AsyncIterator[tuple[Any, Any]]:
    """(tuned, plain): two EFS clients on the proxy, one from a tuned session."""
    config = client_config(REGION, max_pool_connections=4)
    tuned_session, plain_session = AioSession(), AioSession()
    tune_session(tuned_session)
    async with (tuned_session.create_client("efs", config=config,
                                            endpoint_url=efs_proxy.url) as tuned,
                plain_session.create_client("efs", config=config,
                                            endpoint_url=efs_proxy.url) as plain):
        tune_client(tuned)
        yield tuned, plain


@pytest.mark.asyncio
async def test_moto_answers_parse_the_same(clients: tuple[Any, Any],
                                           file_system: FileSystemSetup) -> None:
    tuned, plain = clients
    fs = file_system.file_system_id
    created = await tuned.create_access_point(
        ClientToken="pvc-1", FileSystemId=fs,
        PosixUser={"Uid": 50001, "Gid": 50001, "SecondaryGids": [7, 8]},
        RootDirectory={"Path": "/dyn/a", "CreationInfo": {"OwnerUid": 1, "OwnerGid": 2,
                                                          "Permissions": "0700"}},
        Tags=[{"Key": "efs.csi.aws.com/cluster", "Value": "true"}, {"Key": "a", "Value": ""}])
    assert created["PosixUser"] == {"Uid": 50001, "Gid": 50001, "SecondaryGids": [7, 8]}
    assert {"Key": "a", "Value": ""} in created["Tags"]
    raw: list[tuple[Any, dict[str, Any]]] = []  # (output shape, answer) as the plain client got

    def keep(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
        raw.append((operation_model.output_shape, dict(response_dict)))

    plain.meta.events.register("before-parse.efs", keep)
    for operation, arguments in (
            ("describe_access_points", {"FileSystemId": fs}),
            ("describe_access_points", {"AccessPointId": created["AccessPointId"]}),
            ("describe_file_systems", {"FileSystemId": fs}),  # timestamps, a float
            ("describe_mount_targets", {"FileSystemId": fs})):
        theirs = await getattr(plain, operation)(**arguments)
        shape, response = raw.pop()
        mine = await CompiledRestJSONParser().parse(response, shape)
        assert without_metadata(mine) == without_metadata(theirs), operation
        assert theirs[next(key for key in theirs if key != "ResponseMetadata")]  # not empty
    systems = (await tuned.describe_file_systems(FileSystemId=fs))["FileSystems"]
    assert systems[0]["CreationTime"].year >= 2020  # botocore's timestamp conversion kept
    deleted = await tuned.delete_access_point(AccessPointId=created["AccessPointId"])
    assert without_metadata(deleted) == {}
    with pytest.raises(tuned.exceptions.AccessPointNotFound) as raised:
        await tuned.delete_access_point(AccessPointId=created["AccessPointId"])
    assert raised.value.response["Error"]["Code"] == "AccessPointNotFound"


def answer(body: dict[str, Any]) -> dict[str, Any]:
    return {"status_code": 200, "headers": {"x-amzn-requestid": "r-1"},
            "body": json.dumps(body).encode(), "context": {}}


@pytest.mark.asyncio
async def test_answers_moto_never_sends_parse_the_same() -> None:
    """Members the model does not know, nulls (members, list items, map values), and
    timestamps and floats (botocore's conversions) beside plain members."""
    model = await AioSession().get_service_model("efs")
    access_points = {
        "AccessPoints": [
            {"AccessPointId": "fsap-1", "FileSystemId": "fs-1", "NotInTheModel": {"x": 1},
             "Name": None, "Tags": [{"Key": "k", "Value": "v", "Extra": 3}, None],
             "PosixUser": {"Uid": 1, "Gid": 2, "SecondaryGids": [3, None]},
             "RootDirectory": {"Path": "/a", "CreationInfo": None}},
            None,
        ],
        "NextToken": "t", "Unknown": [1, 2]}
    file_systems = {"FileSystems": [{
        "FileSystemId": "fs-1", "CreationTime": 1700000000.5, "ProvisionedThroughputInMibps": 1.5,
        "SizeInBytes": {"Value": 6144, "Timestamp": 1700000001},
        "Tags": [], "LifeCycleState": "available", "Surprise": "yes"}]}
    for operation, body in (("DescribeAccessPoints", access_points),
                            ("DescribeFileSystems", file_systems)):
        shape = model.operation_model(operation).output_shape
        mine = await CompiledRestJSONParser().parse(answer(body), shape)
        theirs = await AioRestJSONParser().parse(answer(body), shape)
        assert mine == theirs, operation
    parsed = await CompiledRestJSONParser().parse(
        answer(access_points), model.operation_model("DescribeAccessPoints").output_shape)
    assert "NotInTheModel" not in parsed["AccessPoints"][0]
    assert "Extra" not in parsed["AccessPoints"][0]["Tags"][0]
    assert parsed["AccessPoints"][1] is None


def test_factory_makes_compiled_parsers_for_rest_json_only() -> None:
    factory = TunedParserFactory()
    assert isinstance(factory.create_parser("rest-json"), CompiledRestJSONParser)
    assert not isinstance(factory.create_parser("query"), CompiledRestJSONParser)  # STS


@pytest.mark.asyncio
async def test_tuned_client_sends_no_retry_telemetry_others_keep_it(
        clients: tuple[Any, Any], file_system: FileSystemSetup) -> None:
    tuned, plain = clients
    sent: dict[str, dict[str, str]] = {}

    def record(name: str) -> Any:
        def before_send(request: Any, **_: Any) -> None:
            sent[name] = {key.lower(): value.decode() if isinstance(value, bytes) else value
                          for key, value in request.headers.items()}
        return before_send

    tuned.meta.events.register("before-send.efs", record("tuned"))
    plain.meta.events.register("before-send.efs", record("plain"))
    for client in (tuned, plain):
        await client.describe_file_systems(FileSystemId=file_system.file_system_id)
    assert "amz-sdk-invocation-id" in sent["plain"]
    assert "amz-sdk-invocation-id" not in sent["tuned"]
    # The User-Agent was not rebuilt per request, and is what it would have been.
    assert sent["tuned"]["user-agent"] == sent["plain"]["user-agent"]
    assert sent["tuned"]["user-agent"].startswith(USER_AGENT)
    assert "authorization" in sent["tuned"]  # still signed
