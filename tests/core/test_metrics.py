"""The shared metrics over real HTTP: the endpoint, /healthz, and the RPC series as real calls
are served. (Each binary's own series: tests/controller/test_metrics.py,
tests/node/test_metrics.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from grpclib.client import Channel

from efs_csi import csi
from efs_csi.metrics import MetricsEndpoint, RpcMetrics, new_registry
from efs_csi.rpc.identity import IdentityService
from efs_csi.rpc.server import Endpoint, ServeOptions, serve
from tests.support.scrape import MetricsServer, scrape, value


@pytest.mark.asyncio
async def test_rpc_series_move_as_calls_are_served(
    metrics_server: MetricsServer, tmp_path: Path
) -> None:
    registry, port, readiness = metrics_server
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
    metrics_server: MetricsServer
) -> None:
    _, port, readiness = metrics_server
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 503
        readiness.set_ready()
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
            assert await response.text() == "ok\n"


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
