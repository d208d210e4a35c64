"""Region resolution: flag, environment, then instance metadata (a fake IMDS over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from efs_csi import errors
from efs_csi.adapters.aws import resolve_region


@pytest_asyncio.fixture
async def imds() -> AsyncIterator[str]:
    """A fake EC2 instance metadata service (IMDSv2 token + placement) on loopback."""

    async def token(_: web.Request) -> web.Response:
        return web.Response(text="imds-token")

    async def zone(request: web.Request) -> web.Response:
        if request.headers.get("x-aws-ec2-metadata-token") != "imds-token":
            return web.Response(status=401)
        return web.Response(text="eu-west-3b")

    app = web.Application()
    app.router.add_put("/latest/api/token", token)
    app.router.add_get("/latest/meta-data/placement/availability-zone/", zone)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_flag_wins() -> None:
    assert await resolve_region("ap-south-1", environment={"AWS_REGION": "x"}) == "ap-south-1"


@pytest.mark.asyncio
async def test_environment_next() -> None:
    assert await resolve_region(None, environment={"AWS_REGION": "us-west-2"}) == "us-west-2"
    assert await resolve_region(None, environment={"AWS_DEFAULT_REGION": "sa-east-1"}) == \
        "sa-east-1"


@pytest.mark.asyncio
async def test_instance_metadata_last(imds: str) -> None:
    assert await resolve_region(None, environment={}, metadata_url=imds) == "eu-west-3"


@pytest.mark.asyncio
async def test_no_region_anywhere_is_failed_precondition() -> None:
    with pytest.raises(errors.FailedPrecondition, match="--region"):
        await resolve_region(None, environment={"AWS_EC2_METADATA_DISABLED": "true"})
