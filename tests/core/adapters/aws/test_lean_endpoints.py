"""The lean endpoints data (efs_csi.adapters.aws.endpoints_data, every client of
efs_csi.adapters.aws.client.new_client): of botocore's own endpoints data a session
of the driver keeps the partitions and the entries of the services its clients use, exactly as
botocore parses them, and every request of those clients goes where, and is signed for what, a
stock botocore session's would; a copy of the user's own is loaded whole."""

from __future__ import annotations

import json
from collections import OrderedDict
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import AioSession
from botocore.loaders import create_loader

from efs_csi.adapters.aws.client import client_config, new_client
from efs_csi.adapters.aws.endpoints_data import (
    BUILTIN_ENDPOINTS,
    ENDPOINT_SERVICES,
    LeanEndpointsFileLoader,
    lean_endpoints,
)


class Sent(Exception):  # not an error: the request a handler stopped
    def __init__(self, url: str, scope: str) -> None:
        super().__init__(url, scope)
        self.url, self.scope = url, scope


def stop_before_sending(request: Any, **_: Any) -> None:
    authorization = request.headers.get("Authorization", b"")
    if isinstance(authorization, bytes):
        authorization = authorization.decode()
    # "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/elasticfilesystem/aws4_request, ..."
    scope = authorization.split("Credential=", 1)[-1].split(",", 1)[0].split("/", 2)[-1]
    raise Sent(request.url, scope)


async def where_sent(session: AioSession, service: str, region: str, *, lean: bool) -> str:
    """Where the first request of a ``service`` client in ``region`` goes and its signing scope
    (or the error botocore raises instead), stopped before it leaves the process."""
    config = client_config(region, max_pool_connections=1)
    async with AsyncExitStack() as stack:
        try:
            if lean:
                client = await new_client(stack, session, service, config, None)
            else:
                client = await stack.enter_async_context(
                    session.create_client(service, config=config))
            client.meta.events.register("before-send", stop_before_sending)
            described = f"{client.meta.partition} {client.meta.region_name}: "
            if service == "efs":
                await client.describe_file_systems()
            else:
                await client.get_caller_identity()
        except Sent as sent:
            return f"{described}{sent.url} signed for {sent.scope}"
        except Exception as exc:  # compared, not hidden
            return f"{type(exc).__name__}: {exc}"
    raise AssertionError("the request was not stopped")


def test_the_builtin_data_keeps_only_the_drivers_services_as_botocore_parses_them() -> None:
    full = create_loader().load_data("endpoints")
    lean = lean_endpoints(Path(BUILTIN_ENDPOINTS + ".json").read_text(encoding="utf-8"))
    expected = OrderedDict(full)
    expected["partitions"] = [
        OrderedDict(partition, services=OrderedDict(
            (name, entry) for name, entry in partition["services"].items()
            if name in ENDPOINT_SERVICES))
        for partition in full["partitions"]]
    assert json.dumps(lean) == json.dumps(expected)  # the same members in the same order
    aws = next(p for p in lean["partitions"] if p["partition"] == "aws")
    assert {"elasticfilesystem", "sts"} <= set(aws["services"])
    assert len(aws["services"]) < 10 < len(full["partitions"][0]["services"])
    assert isinstance(aws["services"]["elasticfilesystem"], OrderedDict)  # as botocore's


# Regions botocore's endpoints data treats apart: other partitions, and the pseudo-regions whose
# credential scope the data alone gives (fips-us-east-1 for EFS, aws-global for STS).
REGIONS = ("us-east-1", "eu-west-1", "us-gov-west-1", "cn-north-1", "fips-us-east-1",
           "aws-global")


@pytest.mark.asyncio
@pytest.mark.parametrize("service", ["efs", "sts"])
async def test_requests_go_and_are_signed_as_with_stock_botocore(
        service: str, aws_credentials: None) -> None:
    lean_session, stock_session = AioSession(), AioSession()
    lean = [await where_sent(lean_session, service, region, lean=True) for region in REGIONS]
    stock = [await where_sent(stock_session, service, region, lean=False) for region in REGIONS]
    assert lean == stock
    assert isinstance(lean_session.get_component("data_loader").file_loader,
                      LeanEndpointsFileLoader)
    assert not isinstance(stock_session.get_component("data_loader").file_loader,
                          LeanEndpointsFileLoader)
    assert any("amazonaws.com" in line and "signed for" in line for line in lean)


def test_a_copy_of_the_users_own_is_loaded_whole(tmp_path: Path) -> None:
    own = {"partitions": [{"partition": "aws", "services": {"elasticfilesystem": {},
                                                           "s3": {"endpoints": {}}}}],
           "version": 3}
    (tmp_path / "endpoints.json").write_text(json.dumps(own))
    assert LeanEndpointsFileLoader().load_file(str(tmp_path / "endpoints")) == own


@pytest.mark.parametrize("text", [
    '{"partitions": {}}', "[1]", '{"partitions": [{"services": {"s3": }}]}',
    '{"partitions": []} trailing', '{"partitions": [{"services": {"sts": {}}}]',
])
def test_a_document_not_shaped_as_the_endpoints_data_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        lean_endpoints(text)
