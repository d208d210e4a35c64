"""The metrics endpoint over real HTTP: series move as real RPCs, API calls and mounts run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from grpclib.client import Channel
from prometheus_client import CollectorRegistry

from efs_csi import csi
from efs_csi.errors import Unavailable
from efs_csi.metrics import MetricsEndpoint, RpcMetrics, new_registry
from efs_csi.rpc.identity import IdentityService, Readiness
from efs_csi.rpc.server import Endpoint, ServeOptions, serve
from efs_csi_controller.metrics import ApiMetrics, ProvisioningCollector
from efs_csi_node.metrics import MeasuredMounter, NodeMetrics, VolumeCounts
from tests.ops.scrape import scrape, value


@pytest_asyncio.fixture
async def registry_and_port() -> AsyncIterator[tuple[CollectorRegistry, int, Readiness]]:
    registry = new_registry()
    readiness = Readiness()
    endpoint = MetricsEndpoint(registry, "127.0.0.1", 0, healthy=lambda: readiness.ready)
    port = await endpoint.start()
    try:
        yield registry, port, readiness
    finally:
        await endpoint.stop()


@pytest.mark.asyncio
async def test_rpc_series_move_as_calls_are_served(
    registry_and_port: tuple[CollectorRegistry, int, Readiness], tmp_path: Path
) -> None:
    registry, port, readiness = registry_and_port
    socket = tmp_path / "csi.sock"
    stop = asyncio.Event()
    listening = asyncio.Event()

    async def startup() -> None:
        listening.set()

    server = asyncio.create_task(serve(
        [IdentityService(readiness, controller=False)], Endpoint(path=socket),
        options=ServeOptions(grace_period=1, observer=RpcMetrics(registry)), stop=stop,
        startup=startup))
    try:
        await listening.wait()
        before = await scrape(port)
        channel = Channel(path=str(socket))
        try:
            stub = csi.IdentityStub(channel)
            await stub.probe(csi.ProbeRequest())
            await stub.probe(csi.ProbeRequest())
            await stub.get_plugin_info(csi.GetPluginInfoRequest())
        finally:
            channel.close()
        after = await scrape(port)
    finally:
        stop.set()
        await server
    assert value(before, "efs_csi_rpc_requests_total", method="Probe", code="OK") == 0
    assert value(after, "efs_csi_rpc_requests_total", method="Probe", code="OK") == 2
    assert value(after, "efs_csi_rpc_requests_total", method="GetPluginInfo", code="OK") == 1
    assert value(after, "efs_csi_rpc_duration_seconds_count", method="Probe") == 2


@pytest.mark.asyncio
async def test_healthz_follows_readiness(
    registry_and_port: tuple[CollectorRegistry, int, Readiness]
) -> None:
    _, port, readiness = registry_and_port
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 503
        readiness.set_ready()
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
            assert await response.text() == "ok\n"


@pytest.mark.asyncio
async def test_aws_api_series_use_the_reference_names(
    registry_and_port: tuple[CollectorRegistry, int, Readiness]
) -> None:
    registry, port, _ = registry_and_port
    api = ApiMetrics(registry)
    api.observe_call("CreateAccessPoint", 0.2, None)
    api.observe_call("CreateAccessPoint", 0.1, "ThrottlingException")
    api.observe_call("CreateAccessPoint", 0.1, "AccessPointLimitExceeded")
    samples = await scrape(port)
    assert value(samples, "aws_efs_csi_api_request_duration_seconds_count",
                 request="CreateAccessPoint") == 3
    assert value(samples, "aws_efs_csi_api_request_throttles_total",
                 request="CreateAccessPoint") == 1
    assert value(samples, "aws_efs_csi_api_request_errors_total", request="CreateAccessPoint",
                 code="AccessPointLimitExceeded") == 1
    assert value(samples, "aws_efs_csi_api_request_errors_total", request="CreateAccessPoint",
                 code="ThrottlingException") == 0


@dataclass(frozen=True)
class Figures:
    file_system_id: str
    access_points: int
    gids_in_use: int
    range_size: int
    in_flight_creates: int


@pytest.mark.asyncio
async def test_provisioning_gauges_are_read_at_scrape_time(
    registry_and_port: tuple[CollectorRegistry, int, Readiness]
) -> None:
    registry, port, _ = registry_and_port
    state = {"gids": 3}
    registry.register(ProvisioningCollector(lambda: [
        Figures("fs-0123456789abcdef0", access_points=4, gids_in_use=state["gids"],
                range_size=1000, in_flight_creates=1)]))
    first = await scrape(port)
    state["gids"] = 7
    second = await scrape(port)
    fs = "fs-0123456789abcdef0"
    assert value(first, "efs_csi_gids_in_use", file_system_id=fs) == 3
    assert value(second, "efs_csi_gids_in_use", file_system_id=fs) == 7
    assert value(second, "efs_csi_gid_range_size", file_system_id=fs) == 1000
    assert value(second, "efs_csi_access_points", file_system_id=fs) == 4
    assert value(second, "efs_csi_access_point_creates_in_flight", file_system_id=fs) == 1


class FlakyMounter:
    """Fake Mounter: a real mount cannot be made to fail on demand with a chosen cause."""

    def __init__(self) -> None:
        self.fail_with: Exception | None = None
        self.calls: list[str] = []

    async def mount(self, file_system_id: str, path: str, target: Path,
                    options: Sequence[str]) -> None:
        self.calls.append(f"mount {target}")
        if self.fail_with is not None:
            raise self.fail_with

    async def unmount(self, target: Path) -> None:
        self.calls.append(f"unmount {target}")
        if self.fail_with is not None:
            raise self.fail_with


@pytest.mark.asyncio
async def test_node_mount_and_volume_series(
    registry_and_port: tuple[CollectorRegistry, int, Readiness], tmp_path: Path
) -> None:
    registry, port, _ = registry_and_port
    counts = VolumeCounts(staged=2, published=5)
    metrics = NodeMetrics(registry)
    metrics.track_volume_counts(lambda: counts)
    inner = FlakyMounter()
    mounter = MeasuredMounter(inner, metrics)
    await mounter.mount("fs-01234567", "/", tmp_path, ["tls"])
    inner.fail_with = TimeoutError()
    with pytest.raises(TimeoutError):
        await mounter.mount("fs-01234567", "/", tmp_path, ["tls"])
    inner.fail_with = Unavailable("mount target unreachable")
    with pytest.raises(Unavailable):
        await mounter.unmount(tmp_path)
    metrics.on_stale("found")
    metrics.on_stale("recovered")
    metrics.observe_walk(1.5, ok=True)
    metrics.set_queue_depth(3)
    samples = await scrape(port)
    assert len(inner.calls) == 3
    assert value(samples, "efs_csi_node_mount_operation_duration_seconds_count",
                 operation="mount") == 2
    assert value(samples, "efs_csi_node_mount_operation_failures_total",
                 operation="mount", cause="timeout") == 1
    assert value(samples, "efs_csi_node_mount_operation_failures_total",
                 operation="unmount", cause="unavailable") == 1
    assert value(samples, "efs_csi_node_staged_volumes") == 2
    assert value(samples, "efs_csi_node_published_volumes") == 5
    assert value(samples, "efs_csi_node_stale_mounts_found_total") == 1
    assert value(samples, "efs_csi_node_stale_mounts_recovered_total") == 1
    assert value(samples, "efs_csi_node_volume_stats_walk_duration_seconds_count",
                 outcome="ok") == 1
    assert value(samples, "efs_csi_node_volume_stats_queue_depth") == 3


@pytest.mark.asyncio
async def test_run_serves_until_cancelled() -> None:
    registry = new_registry()
    endpoint = MetricsEndpoint(registry, "127.0.0.1", 0)
    task = asyncio.create_task(endpoint.run())
    await endpoint.listening.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not endpoint.listening.is_set()


@pytest.mark.asyncio
async def test_provisioning_gauges_read_the_real_gid_allocator(
    registry_and_port: tuple[CollectorRegistry, int, Readiness]
) -> None:
    from efs_csi.cloud import AccessPoint, PosixUser
    from efs_csi_controller.gid import GidAllocator
    from tests.controller.fakes import FakeCloud

    registry, port, _ = registry_and_port
    fs = "fs-0123456789abcdef0"
    allocator = GidAllocator(access_point_limit=10)
    registry.register(ProvisioningCollector(allocator.snapshot))
    await allocator.known(FakeCloud(fs), fs)
    for index, gid in enumerate((50000, 50001)):
        allocator.remember(AccessPoint(f"fsap-0000000{index}00000000", fs, f"/v{index}",
                                       posix_user=PosixUser(gid, gid)))
    samples = await scrape(port)
    assert value(samples, "efs_csi_access_points", file_system_id=fs) == 2
    assert value(samples, "efs_csi_gids_in_use", file_system_id=fs) == 2
