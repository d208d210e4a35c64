"""The zone's sources: instance metadata over real HTTP on loopback (a fake IMDS, testbed/imds.py)
asked by the node's own minimal client, and the Node's zone label."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from efs_csi import csi
from efs_csi.kube import NodeInfo
from efs_csi_node.topology import ImdsSettings, parse_answer, zone_from_imds, zone_label
from testbed.imds import TOKEN, FakeImds, running_imds
from testbed.processes import StartBinary


def settings_for(imds: FakeImds, timeout: float = 5.0) -> ImdsSettings:
    return ImdsSettings.from_environment(
        {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url + "/"}, timeout=timeout)


@pytest_asyncio.fixture
async def imds() -> AsyncIterator[FakeImds]:
    async with running_imds() as fake:
        yield fake


@pytest.mark.asyncio
async def test_imdsv2_token_then_zone(imds: FakeImds) -> None:
    assert await zone_from_imds(settings_for(imds)) == "us-east-1b"
    assert imds.requests[0][:2] == ("PUT", "/latest/api/token")
    assert imds.requests[0][2] is not None  # a TTL was asked for
    assert imds.requests[1] == ("GET", "/latest/meta-data/placement/availability-zone", TOKEN)


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [403, 404, 405])
async def test_imdsv1_only_service_is_asked_without_token(imds: FakeImds, status: int) -> None:
    imds.token_status = status
    assert await zone_from_imds(settings_for(imds)) == "us-east-1b"
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
    assert await zone_from_imds(settings_for(imds)) is None


@pytest.mark.asyncio
async def test_a_hanging_imds_is_cut_off_by_the_timeout(imds: FakeImds) -> None:
    imds.hang = True
    assert await zone_from_imds(settings_for(imds, timeout=0.2)) is None
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


@pytest.mark.parametrize(("labels", "expected"), [
    ({"topology.kubernetes.io/zone": "eu-west-1a"}, "eu-west-1a"),
    ({"failure-domain.beta.kubernetes.io/zone": "eu-west-1c"}, "eu-west-1c"),
    ({"topology.kubernetes.io/zone": "eu-west-1a",
      "failure-domain.beta.kubernetes.io/zone": "old"}, "eu-west-1a"),
    ({"topology.kubernetes.io/zone": ""}, None),
    ({"other": "x"}, None),
])
def test_the_zone_label(labels: dict[str, str], expected: str | None) -> None:
    assert zone_label(NodeInfo(name="n1", resource_version="1", labels=labels)) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nus-east-1a", (200, "us-east-1a")),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nus-east-1a", (200, "us-e")),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nus-\r\n7\r\neast-1b\r\n"
     b"0\r\n\r\n", (200, "us-east-1b")),
    (b"HTTP/1.0 404 Not Found\r\n\r\nnope", (404, "nope")),
])
def test_answers_are_parsed_as_http(raw: bytes, expected: tuple[int, str]) -> None:
    assert parse_answer(raw) == expected


@pytest.mark.asyncio
async def test_something_that_is_not_http_gives_no_zone() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH\r\n")
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await zone_from_imds(ImdsSettings(endpoint=f"http://127.0.0.1:{port}")) is None
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
@pytest.mark.parametrize("endpoint", ["https://127.0.0.1:1", "127.0.0.1", "http://127.0.0.1:x"])
async def test_an_endpoint_that_is_not_http_gives_no_zone(endpoint: str) -> None:
    assert await zone_from_imds(ImdsSettings(endpoint=endpoint)) is None


@pytest.mark.asyncio
@pytest.mark.slow  # the real node binary and its start-up helper process
async def test_the_node_binary_is_ready_before_instance_metadata_answers(
        imds: FakeImds, binary: StartBinary, tmp_path: Path) -> None:
    """Probe answers ready while the node still waits on instance metadata; NodeGetInfo waits
    for its answer."""
    imds.hang = True
    node = await binary("node", ["--mount-backend", "local", "--local-root", str(tmp_path)],
                        env=imds.environment())
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
