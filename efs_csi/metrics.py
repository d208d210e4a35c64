"""Prometheus metrics for both binaries, and the HTTP endpoint that serves them.

One ``CollectorRegistry`` per process, built by the composition root and passed to every
metric family here (never prometheus-client's default registry, so tests and processes never
share series). The families plug into the rest of the driver through its own observer seams:

- ``RpcMetrics`` is the ``efs_csi.rpc.RpcObserver`` (latency per method, calls per code);
- ``ApiMetrics`` is the ``efs_csi.cloud.ApiObserver`` for EFS calls, named like the reference
  driver's ``aws_efs_csi_api_request_*`` series so existing dashboards keep working;
- ``ProvisioningCollector`` reads the controller's per-file-system snapshot at scrape time;
- ``NodeMetrics`` and ``MeasuredMounter`` cover mounts, volume counts and usage walks.

``MetricsEndpoint`` serves ``/metrics`` and ``/healthz`` with aiohttp.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web
from grpclib.const import Status
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from efs_csi.errors import CsiError
from efs_csi.logging import get_logger
from efs_csi.mount import Mounter

_log = get_logger("efs_csi.metrics")

# Mounts and walks over NFS take from milliseconds to minutes.
_SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
# EFS API errors that mean "slow down" rather than "failed".
_THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException",
                             "RequestLimitExceeded", "ThrottledException"})


def new_registry() -> CollectorRegistry:
    """The process's registry; pass it to every metric family (no default registry)."""
    return CollectorRegistry(auto_describe=True)


class RpcMetrics:
    """``efs_csi.rpc.RpcObserver``: per-method latency histogram and calls by status code."""

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


class ApiMetrics:
    """``efs_csi.cloud.ApiObserver``: EFS API duration, errors by code, and throttles."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._duration = Histogram(
            "aws_efs_csi_api_request_duration_seconds", "Latency of EFS API calls",
            ["request"], registry=registry)
        self._errors = Counter(
            "aws_efs_csi_api_request_errors", "EFS API calls that failed, by error code",
            ["request", "code"], registry=registry)
        self._throttles = Counter(
            "aws_efs_csi_api_request_throttles", "EFS API calls throttled by AWS",
            ["request"], registry=registry)

    def observe_call(self, operation: str, seconds: float, error_code: str | None) -> None:
        self._duration.labels(operation).observe(seconds)
        if error_code is None:
            return
        if error_code in _THROTTLE_CODES:
            self._throttles.labels(operation).inc()
        else:
            self._errors.labels(operation, error_code).inc()


class FileSystemFigures(Protocol):
    """What the controller knows about one file system at scrape time (the GID allocator's
    ``InventorySnapshot`` has this shape)."""

    @property
    def file_system_id(self) -> str: ...
    @property
    def access_points(self) -> int: ...
    @property
    def gids_in_use(self) -> int: ...
    @property
    def range_size(self) -> int: ...
    @property
    def in_flight_creates(self) -> int: ...


class ProvisioningCollector(Collector):
    """Per-file-system provisioning gauges, read from a snapshot callable at scrape time.

    Reading at scrape time (rather than updating gauges on every change) keeps the allocator
    free of metrics code and the figures exactly what the allocator holds.
    """

    def __init__(self, snapshot: Callable[[], Iterable[FileSystemFigures]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        families = {
            "access_points": GaugeMetricFamily(
                "efs_csi_access_points", "Access points known per file system",
                labels=["file_system_id"]),
            "gids_in_use": GaugeMetricFamily(
                "efs_csi_gids_in_use", "GIDs allocated per file system",
                labels=["file_system_id"]),
            "range_size": GaugeMetricFamily(
                "efs_csi_gid_range_size", "GIDs available to allocate per file system",
                labels=["file_system_id"]),
            "in_flight_creates": GaugeMetricFamily(
                "efs_csi_access_point_creates_in_flight",
                "Access point creations running per file system", labels=["file_system_id"]),
        }
        for fs in self._snapshot():
            for attribute, family in families.items():
                family.add_metric([fs.file_system_id], float(getattr(fs, attribute)))
        yield from families.values()


@dataclass(frozen=True)
class VolumeCounts:
    staged: int
    published: int


class _VolumeCountCollector(Collector):
    def __init__(self, counts: Callable[[], VolumeCounts]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts()
        yield GaugeMetricFamily("efs_csi_node_staged_volumes", "Volumes staged on this node",
                                value=counts.staged)
        yield GaugeMetricFamily("efs_csi_node_published_volumes",
                                "Volume publications on this node", value=counts.published)


def failure_cause(exc: BaseException) -> str:
    """A low-cardinality label for why an operation failed."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, CsiError):
        return exc.status.name.lower()
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"os_errno_{exc.errno}"
    return type(exc).__name__


class NodeMetrics:
    """Node series: mounts, volume counts, stale mounts and the usage walks.

    Also the ``efs_csi_node.volume_stats.WalkObserver`` (structurally): ``observe_walk`` and
    ``set_queue_depth``.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._operation_duration = Histogram(
            "efs_csi_node_mount_operation_duration_seconds",
            "Duration of mount and unmount operations", ["operation"],
            buckets=_SLOW_BUCKETS, registry=registry)
        self._operation_failures = Counter(
            "efs_csi_node_mount_operation_failures", "Failed mount and unmount operations",
            ["operation", "cause"], registry=registry)
        self._stale_found = Counter(
            "efs_csi_node_stale_mounts_found", "Stale mounts detected", registry=registry)
        self._stale_recovered = Counter(
            "efs_csi_node_stale_mounts_recovered", "Stale mounts recovered", registry=registry)
        self._walk_duration = Histogram(
            "efs_csi_node_volume_stats_walk_duration_seconds",
            "Duration of volume usage walks", ["outcome"],
            buckets=_SLOW_BUCKETS, registry=registry)
        self._queue_depth = Gauge(
            "efs_csi_node_volume_stats_queue_depth",
            "Usage walks waiting for a slot or running", registry=registry)

    def track_volume_counts(self, counts: Callable[[], VolumeCounts]) -> None:
        """Export staged/published counts, read from ``counts`` at scrape time."""
        self._registry.register(_VolumeCountCollector(counts))

    def observe_operation(self, operation: str, seconds: float,
                          failure: BaseException | None) -> None:
        self._operation_duration.labels(operation).observe(seconds)
        if failure is not None:
            self._operation_failures.labels(operation, failure_cause(failure)).inc()

    def stale_mount_found(self) -> None:
        self._stale_found.inc()

    def stale_mount_recovered(self) -> None:
        self._stale_recovered.inc()

    def on_stale(self, event: str) -> None:
        """The node's stale-mount observer: told "found" or "recovered"."""
        if event == "found":
            self.stale_mount_found()
        elif event == "recovered":
            self.stale_mount_recovered()

    def observe_walk(self, seconds: float, ok: bool) -> None:
        self._walk_duration.labels("ok" if ok else "failed").observe(seconds)

    def set_queue_depth(self, depth: int) -> None:
        self._queue_depth.set(depth)


class MeasuredMounter:
    """A ``Mounter`` that times every mount/unmount of the one it wraps and counts failures."""

    def __init__(self, inner: Mounter, metrics: NodeMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def mount(self, file_system_id: str, path: str, target: Path,
                    options: Sequence[str]) -> None:
        started = time.monotonic()
        try:
            await self._inner.mount(file_system_id, path, target, options)
        except Exception as exc:
            self._metrics.observe_operation("mount", time.monotonic() - started, exc)
            raise
        self._metrics.observe_operation("mount", time.monotonic() - started, None)

    async def unmount(self, target: Path) -> None:
        started = time.monotonic()
        try:
            await self._inner.unmount(target)
        except Exception as exc:
            self._metrics.observe_operation("unmount", time.monotonic() - started, exc)
            raise
        self._metrics.observe_operation("unmount", time.monotonic() - started, None)


class MetricsEndpoint:
    """aiohttp server for ``/metrics`` (Prometheus text format) and ``/healthz``.

    ``healthy`` decides /healthz: 200 "ok" when it returns True, 503 otherwise. Use ``start``/
    ``stop`` directly, or ``run`` as a server background task (stops when cancelled).
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int,
                 healthy: Callable[[], bool] = lambda: True) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self._healthy = healthy
        self._runner: web.AppRunner | None = None
        self.listening = asyncio.Event()

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        if self._healthy():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready\n")

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
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
