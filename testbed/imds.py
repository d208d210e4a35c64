"""A stand-in for the EC2 instance metadata service (IMDSv2), for tests and benchmarks.

A fake because the real service only exists inside EC2. A real aiohttp server on loopback
whose answers the caller chooses: the session-token PUT and the availability-zone GET the
node makes, an IMDSv1-only service (the token call refused), wrong answers, or a zone request
that hangs until released. Point the node at it with ``AWS_EC2_METADATA_SERVICE_ENDPOINT``;
nothing may ask the real 169.254.169.254.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

TOKEN = "tok-123"
TOKEN_PATH = "/latest/api/token"
ZONE_PATH = "/latest/meta-data/placement/availability-zone"


@dataclass
class FakeImds:
    zone: str = "us-east-1b"
    token_status: int = 200  # 404/405/403: an IMDSv1-only service
    zone_status: int = 200
    hang: bool = False  # the zone request waits for ``release``
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    zone_asked: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def token(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path,
                              request.headers.get("X-aws-ec2-metadata-token-ttl-seconds")))
        if self.token_status != 200:
            return web.Response(status=self.token_status)
        return web.Response(text=TOKEN)

    async def availability_zone(self, request: web.Request) -> web.Response:
        token = request.headers.get("X-aws-ec2-metadata-token")
        self.requests.append((request.method, request.path, token))
        self.zone_asked.set()
        if self.hang:
            await self.release.wait()
        if self.token_status == 200 and token != TOKEN:
            return web.Response(status=401)
        return web.Response(status=self.zone_status, text=self.zone)

    def environment(self) -> dict[str, str]:
        """What makes a binary ask this service (and only it)."""
        return {"AWS_EC2_METADATA_DISABLED": "false",
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.url}


@contextlib.asynccontextmanager
async def running_imds(fake: FakeImds | None = None, *,
                       host: str = "127.0.0.1") -> AsyncIterator[FakeImds]:
    """Serve ``fake`` (a new one by default) on ``host`` and a free port until the block ends."""
    fake = fake or FakeImds()
    app = web.Application()
    app.router.add_put(TOKEN_PATH, fake.token)
    app.router.add_get(ZONE_PATH, fake.availability_zone)
    runner = web.AppRunner(app, shutdown_timeout=1, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        fake.release.set()
        await runner.cleanup()
