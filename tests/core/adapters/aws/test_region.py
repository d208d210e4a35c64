"""Region resolution: the configured region, then instance metadata (a fake IMDS over HTTP).

Where the configured region comes from (flag, AWS_REGION, AWS_DEFAULT_REGION) is the
controller's command line: tests/controller/test_main.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from efs_csi import errors
from efs_csi.adapters.aws.client import resolve_region


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
async def test_the_configured_region_wins(imds: str) -> None:
    assert await resolve_region("ap-south-1", metadata_url=imds) == "ap-south-1"


@pytest.mark.asyncio
async def test_instance_metadata_last(imds: str) -> None:
    assert await resolve_region(None, metadata_url=imds) == "eu-west-3"


@pytest.mark.asyncio
async def test_no_region_anywhere_is_failed_precondition(imds: str) -> None:
    with pytest.raises(errors.FailedPrecondition, match="--region"):
        await resolve_region(None, metadata_disabled=True, metadata_url=imds)
