"""Prometheus metrics both binaries have, and the HTTP endpoint that serves them.

One ``CollectorRegistry`` per process (``new_registry``), built by the composition root and
passed to every metric family (never prometheus-client's default registry, so tests and
processes never share series). Each binary keeps its own series beside its code
(``efs_csi_controller.metrics``, ``efs_csi_node.metrics``); here are the shared ones:

- ``new_registry`` also exports the process's own figures (``process_resident_memory_bytes``,
  ``process_cpu_seconds_total``, open fds...: prometheus-client's ``ProcessCollector``, read
  from /proc at scrape time), which the chart's dashboard shows for both binaries;
- ``RpcMetrics`` is the ``efs_csi.rpc.hook.RpcObserver`` (latency per method, calls per code);
- ``MetricsEndpoint`` serves ``/metrics`` and ``/healthz`` with aiohttp, imported when the
  endpoint starts (a background task, after the CSI socket serves) and in a worker thread, so
  neither Probe nor a node without metrics pays its ~0.2 s and ~9 MiB.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from grpclib.const import Status
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from efs_csi.logging import get_logger

if TYPE_CHECKING:
    from aiohttp import web

_log = get_logger("efs_csi.metrics")


def new_registry() -> CollectorRegistry:
    """The process's registry, with the process's memory, CPU and fds; pass it to every metric
    family (no default registry)."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    return registry


class RpcMetrics:
    """``efs_csi.rpc.hook.RpcObserver``: per-method latency histogram and calls by status code."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._duration = Histogram(
            "efs_csi_rpc_duration_seconds", "Latency of CSI calls", ["method"],
            registry=registry)
        self._calls = Counter(
            "efs_csi_rpc_requests", "CSI calls answered, by gRPC status code",
            ["method", "code"], registry=registry)

    def observe(self, method: str, code: Status, seconds: float) -> None:
        self._duration.labels(method).observe(seconds)
        self._calls.labels(method, code.name).inc()


class MetricsEndpoint:
    """aiohttp server for ``/metrics`` (Prometheus text format) and ``/healthz``.

    ``healthy`` decides /healthz: 200 "ok" when it returns True, 503 otherwise; ``notes`` are
    lines /healthz adds after that (something degraded but not worth a restart, such as a node
    whose zone is still unknown). Use ``start``/``stop`` directly, or ``run`` as a server
    background task (stops when cancelled).
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int,
                 healthy: Callable[[], bool] = lambda: True,
                 notes: Callable[[], Sequence[str]] = tuple) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._healthy = healthy
        self._notes = notes
        self._runner: web.AppRunner | None = None
        self.listening = asyncio.Event()

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        # Deferred (see the module docstring); the import's work in a thread, off the loop.
        await asyncio.to_thread(importlib.import_module, "aiohttp.web")
        from aiohttp import web as aiohttp_web

        async def metrics(_: web.Request) -> web.Response:
            body = generate_latest(self._registry)
            return aiohttp_web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            notes = "".join(f"{note}\n" for note in self._notes() if note)
            if self._healthy():
                return aiohttp_web.Response(text="ok\n" + notes)
            return aiohttp_web.Response(status=503, text="not ready\n" + notes)

        app = aiohttp_web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get("/healthz", healthz)
        self._runner = aiohttp_web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = aiohttp_web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        # aiohttp exposes no public bound address; the port matters when asked for port 0.
        sockets = getattr(site._server, "sockets", None) or ()
        port = int(sockets[0].getsockname()[1]) if sockets else self._port
        _log.info("metrics endpoint listening", host=self._host, port=port)
        self.listening.set()
        return port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.listening.clear()

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()
