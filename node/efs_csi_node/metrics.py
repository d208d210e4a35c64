"""The node's Prometheus series (the shared ones are in ``efs_csi.metrics``).

``NodeMetrics`` covers mounts, volume counts, stale mounts, the usage walks and the search for
the node's zone; it is also the ``efs_csi_node.volume_stats.WalkObserver``. ``MeasuredMounter``
times every mount and unmount of the ``Mounter`` it wraps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from efs_csi.errors import CsiError
from efs_csi.mounting.mount import Mounter
from efs_csi_node.zone import NodeZone

# Mounts and walks over NFS take from milliseconds to minutes.
_SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


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


class _StartupCollector(Collector):
    """The zone search, read at scrape time from the ``NodeZone`` and the helper's failures."""

    def __init__(self, zone: NodeZone, helper_failures: Mapping[str, int]) -> None:
        self._zone = zone
        self._helper_failures = helper_failures

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "efs_csi_node_zone_settled",
            "1 once the availability zone is known or known to be none; 0 while it is sought",
            value=1 if self._zone.settled else 0)
        yield CounterMetricFamily(
            "efs_csi_node_info_without_zone",
            "NodeGetInfo answers given without topology because the zone was still unknown",
            value=self._zone.answered_without_zone)
        failures = CounterMetricFamily(
            "efs_csi_node_startup_helper_failures",
            "Start-up helper failures, by reason (exited, killed, kubernetes_api)",
            labels=["reason"])
        for reason in ("exited", "killed", "kubernetes_api"):
            failures.add_metric([reason], self._helper_failures.get(reason, 0))
        yield failures


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

    def track_zone(self, zone: NodeZone, helper_failures: Mapping[str, int]) -> None:
        """Export how the search for the zone goes (``efs_csi_node.zone``)."""
        self._registry.register(_StartupCollector(zone, helper_failures))

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
