"""Zone resolution against a fake IMDS over real HTTP on loopback, and a fake Kube."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from efs_csi import csi
from efs_csi_node.topology import ImdsSettings, resolve_zone, zone_from_imds
from testbed.processes import StartBinary
from tests.support.fakes.kube import FakeKube

TOKEN = "tok-123"


@dataclass
class FakeImds:
    """An IMDS stand-in: a real aiohttp server on 127.0.0.1 whose answers tests choose.

    A fake because the real service only exists inside EC2.
    """

    zone: str = "us-east-1b"
    token_status: int = 200  # 404/405/403: an IMDSv1-only service
    zone_status: int = 200
    hang: bool = False  # the zone request never answers
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

    def settings(self, timeout: float = 5.0) -> ImdsSettings:
        return ImdsSettings.from_environment(
            {"AWS_EC2_METADATA_SERVICE_ENDPOINT": self.url + "/"}, timeout=timeout)


@pytest_asyncio.fixture
async def imds() -> AsyncIterator[FakeImds]:
    fake = FakeImds()
    app = web.Application()
    app.router.add_put("/latest/api/token", fake.token)
    app.router.add_get("/latest/meta-data/placement/availability-zone", fake.availability_zone)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    fake.release.set()
    await runner.cleanup()


@pytest.mark.asyncio
async def test_imdsv2_token_then_zone(imds: FakeImds) -> None:
    assert await zone_from_imds(imds.settings()) == "us-east-1b"
    assert imds.requests[0][:2] == ("PUT", "/latest/api/token")
    assert imds.requests[0][2] is not None  # a TTL was asked for
    assert imds.requests[1] == ("GET", "/latest/meta-data/placement/availability-zone", TOKEN)


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [403, 404, 405])
async def test_imdsv1_only_service_is_asked_without_token(imds: FakeImds, status: int) -> None:
    imds.token_status = status
    assert await zone_from_imds(imds.settings()) == "us-east-1b"
    assert imds.requests[1][2] is None


@pytest.mark.asyncio
@pytest.mark.parametrize(("token_status", "zone_status", "zone"), [
    (500, 200, "us-east-1b"),  # token refused
    (200, 404, "us-east-1b"),  # no placement data
    (200, 200, "us-east-1b\n[x]"),  # garbage
    (200, 200, ""),
])
async def test_unhelpful_answers_give_no_zone(imds: FakeImds, token_status: int,
                                              zone_status: int, zone: str) -> None:
    imds.token_status, imds.zone_status, imds.zone = token_status, zone_status, zone
    assert await zone_from_imds(imds.settings()) is None


@pytest.mark.asyncio
async def test_a_hanging_imds_is_cut_off_by_the_timeout(imds: FakeImds) -> None:
    imds.hang = True
    assert await zone_from_imds(imds.settings(timeout=0.2)) is None
    assert len(imds.requests) == 2  # it got as far as the zone request


@pytest.mark.asyncio
async def test_nothing_listening_gives_no_zone() -> None:
    settings = ImdsSettings.from_environment(
        {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"})
    assert await zone_from_imds(settings) is None


@pytest.mark.asyncio
async def test_disabled_imds_is_never_asked(imds: FakeImds) -> None:
    settings = ImdsSettings.from_environment({
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url, "AWS_EC2_METADATA_DISABLED": "TRUE"})
    assert settings.disabled
    assert await zone_from_imds(settings) is None
    assert imds.requests == []


def test_settings_default_to_the_link_local_endpoint() -> None:
    settings = ImdsSettings.from_environment({})
    assert settings.endpoint == "http://169.254.169.254"
    assert not settings.disabled
    assert not ImdsSettings.from_environment({"AWS_EC2_METADATA_DISABLED": "false"}).disabled


@pytest.mark.asyncio
async def test_flag_wins_without_asking_anyone(imds: FakeImds) -> None:
    kube = FakeKube(labels={"topology.kubernetes.io/zone": "label-zone"})
    zone = await resolve_zone(configured="flag-zone", node_name="n1",
                              imds=imds.settings(), kube=kube)
    assert zone == "flag-zone"
    assert imds.requests == []
    assert kube.asked == []


@pytest.mark.asyncio
async def test_imds_wins_over_the_label(imds: FakeImds) -> None:
    kube = FakeKube(labels={"topology.kubernetes.io/zone": "label-zone"})
    zone = await resolve_zone(configured=None, node_name="n1", imds=imds.settings(), kube=kube)
    assert zone == "us-east-1b"
    assert kube.asked == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("labels", "expected"), [
    ({"topology.kubernetes.io/zone": "eu-west-1a"}, "eu-west-1a"),
    ({"failure-domain.beta.kubernetes.io/zone": "eu-west-1c"}, "eu-west-1c"),
    ({"other": "x"}, None),
])
async def test_label_is_the_fallback(imds: FakeImds, labels: dict[str, str],
                                     expected: str | None) -> None:
    imds.zone_status = 404
    kube = FakeKube(labels=labels)
    zone = await resolve_zone(configured=None, node_name="n1", imds=imds.settings(), kube=kube)
    assert zone == expected
    assert kube.asked == ["n1"]


@pytest.mark.asyncio
async def test_no_source_means_no_zone(imds: FakeImds) -> None:
    imds.zone_status = 404
    assert await resolve_zone(configured=None, node_name="n1", imds=imds.settings(),
                              kube=None) is None
    assert await resolve_zone(configured=None, node_name="n1", imds=imds.settings(),
                              kube=FakeKube(node_missing=True)) is None


@pytest.mark.asyncio
@pytest.mark.slow  # the real node binary and its start-up helper process
async def test_the_node_binary_is_ready_before_instance_metadata_answers(
        imds: FakeImds, binary: StartBinary, tmp_path: Path) -> None:
    """Probe answers ready while the zone lookup (in the start-up helper) still waits on
    instance metadata; NodeGetInfo waits for its answer."""
    imds.hang = True
    node = await binary("node", ["--mount-backend", "local", "--local-root", str(tmp_path)],
                        env={"AWS_EC2_METADATA_DISABLED": "false",
                             "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
    channel = node.channel()
    try:
        info = asyncio.create_task(csi.NodeStub(channel).node_get_info(
            csi.NodeGetInfoRequest(), timeout=30))
        await asyncio.wait_for(imds.zone_asked.wait(), 30)
        assert not info.done()  # ready already, the zone still unknown
        imds.release.set()
        reply = await asyncio.wait_for(info, 30)
    finally:
        channel.close()
    assert reply.accessible_topology is not None
    assert reply.accessible_topology.segments == {"topology.kubernetes.io/zone": "us-east-1b"}
