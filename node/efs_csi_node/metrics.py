"""The node's Prometheus series (the shared ones are in ``efs_csi.metrics``).

``NodeMetrics`` covers mounts, volume counts, stale mounts and each staged volume's mount
health, the usage walks, efs-utils' watchdog and efs-proxy tunnels, and the search for the
node's zone; it is also the ``efs_csi_node.volume_stats.WalkObserver``. ``MeasuredMounter``
times every mount and unmount of the ``Mounter`` it wraps.

Labels stay bounded: by operation and failure cause, and per volume only in
``efs_csi_node_volume_stale``, whose series are the node's staged volumes (at most its volume
attach limit; an unstaged volume's series goes with it). Nothing from a request's secrets or
mount options is a label.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from efs_csi.errors import CsiError
from efs_csi.mounting.mount import Mounter
from efs_csi_node.zone import NodeZone

# Mounts and walks over NFS take from milliseconds to minutes.
_SLOW_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
# ... and a walk of a large volume hours, past the default refresh period (4 h).
_WALK_BUCKETS = (*_SLOW_BUCKETS, 7200, 14400, 28800)
# Failure series made at start, at 0: a counter that appears already at N (a burst of failures
# between two scrapes) hides those N from rate() and increase(), and from the alerts on them.
# These are the causes mounts and unmounts fail with (``failure_cause``); a rarer one is
# counted from its second scrape on.
_OPERATIONS = ("mount", "unmount")
_USUAL_CAUSES = ("timeout", "internal", "unavailable", "failed_precondition",
                 "invalid_argument", "not_found", "permission_denied", "deadline_exceeded")


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

    def __init__(self, zone: NodeZone, helper_failures: Mapping[str, int],
                 helper_pending: Callable[[], bool]) -> None:
        self._zone = zone
        self._helper_failures = helper_failures
        self._helper_pending = helper_pending

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
        yield GaugeMetricFamily(
            "efs_csi_node_startup_helper_pending",
            "1 while the start-up helper still has work to finish (the zone label, the startup "
            "taint's removal); 0 once done or when none was needed",
            value=1 if self._helper_pending() else 0)


class VolumeHealthFigures(Protocol):
    """One staged volume's mount health (``efs_csi_node.mount_health.VolumeHealth``)."""

    @property
    def volume_id(self) -> str: ...
    @property
    def file_system_id(self) -> str: ...
    @property
    def stale(self) -> bool: ...


class _MountHealthCollector(Collector):
    def __init__(self, snapshot: Callable[[], Iterable[VolumeHealthFigures]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "efs_csi_node_volume_stale",
            "1 when the last check found the volume's staging mount stale (no answer, ESTALE, "
            "ENOTCONN, EIO), else 0; one series per staged volume",
            labels=["volume_id", "file_system_id"])
        for volume in self._snapshot():
            family.add_metric([volume.volume_id, volume.file_system_id],
                              1 if volume.stale else 0)
        yield family


class _WalkCollector(Collector):
    def __init__(self, refresh_period_s: float, longest_walk_s: Callable[[], float]) -> None:
        self._refresh_period_s = refresh_period_s
        self._longest_walk_s = longest_walk_s

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "efs_csi_node_volume_stats_refresh_period_seconds",
            "Age after which a volume's usage figure is refreshed (--vol-metrics-refresh-period)",
            value=self._refresh_period_s)
        yield GaugeMetricFamily(
            "efs_csi_node_volume_stats_longest_walk_seconds",
            "How long the longest usage walk now running has run (0: none runs)",
            value=self._longest_walk_s())


def _pid_alive(pid: int) -> bool:
    """A process with this pid exists and is not a zombie (a killed efs-proxy not yet reaped
    by its parent keeps its pid, but no tunnel)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): existence is all there is to know
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, someone else's
            return True
        return True
    # "pid (comm) S ...": the state follows the last ")" (comm may hold one itself).
    state = stat[stat.rindex(b")") + 2:][:1]
    return state not in (b"Z", b"X")


class TunnelCollector(Collector):
    """efs-proxy (or stunnel) tunnels of efs-utils' mounts, from its state files at scrape time.

    mount.efs writes one JSON state file per mount (``fs-<id>.<mount point>.<port>`` in its
    state directory) holding the tunnel's ``pid``; efs-utils' watchdog starts a dead tunnel
    again and writes the new pid there. So a tunnel is running when its pid is (and is not a
    zombie), and a pid that changed between two scrapes is a restart (restarts in quicker
    succession than scrapes count once). The watchdog's start-up drops the ``pid`` of a dead
    tunnel before it starts a new one: the last pid seen is kept through that, so the new one
    still counts. Files of unmounted volumes (``unmount_time``, awaiting the watchdog's
    clean-up) and ones being written or rewritten (``~fs-``) are left out (efs-utils v3.2.0:
    ``efs_utils_common/proxy.py`` writes them, ``watchdog`` rewrites them). Local files, read
    on the event loop: the state directory is the node's own (/var/run/efs), never NFS.
    """

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = state_dir
        self._pids: dict[str, int] = {}
        self._restarts = 0

    def _tunnels(self) -> dict[str, int | None]:
        found: dict[str, int | None] = {}
        try:
            with os.scandir(self._state_dir) as entries:
                names = [entry.name for entry in entries
                         if entry.name.startswith("fs-") and entry.is_file()]
        except OSError:  # no directory: no efs-utils mount yet (or the local backend)
            return found
        for name in names:
            try:
                state = json.loads((self._state_dir / name).read_text())
            except (OSError, ValueError):  # removed or rewritten meanwhile
                continue
            if not isinstance(state, dict) or "unmount_time" in state:
                continue
            pid = state.get("pid")
            found[name] = pid if isinstance(pid, int) and pid > 0 else None
        return found

    def collect(self) -> Iterator[Metric]:
        tunnels = self._tunnels()
        for name, pid in tunnels.items():
            before = self._pids.get(name)
            if pid is not None and before is not None and pid != before:
                self._restarts += 1
        self._pids = {name: pid if pid is not None else self._pids[name]
                      for name, pid in tunnels.items()
                      if pid is not None or name in self._pids}
        running = sum(1 for pid in tunnels.values() if pid is not None and _pid_alive(pid))
        states = GaugeMetricFamily(
            "efs_csi_node_efs_proxy_tunnels",
            "efs-utils' TLS tunnels (efs-proxy, or stunnel) of mounted volumes, by state",
            labels=["state"])
        states.add_metric(["running"], running)
        states.add_metric(["not_running"], len(tunnels) - running)
        yield states
        yield CounterMetricFamily(
            "efs_csi_node_efs_proxy_restarts",
            "efs-proxy (or stunnel) tunnels started again by efs-utils' watchdog, seen as a new "
            "pid in a mount's state file", value=self._restarts)


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
        for operation in _OPERATIONS:
            self._operation_duration.labels(operation)
            for cause in _USUAL_CAUSES:
                self._operation_failures.labels(operation, cause)
        self._stale_found = Counter(
            "efs_csi_node_stale_mounts_found", "Stale mounts detected", registry=registry)
        self._stale_recovered = Counter(
            "efs_csi_node_stale_mounts_recovered", "Stale mounts recovered", registry=registry)
        self._walk_duration = Histogram(
            "efs_csi_node_volume_stats_walk_duration_seconds",
            "Duration of volume usage walks", ["outcome"],
            buckets=_WALK_BUCKETS, registry=registry)
        self._partial_walks = Counter(
            "efs_csi_node_volume_stats_partial_walks",
            "Usage walks that finished with entries they could not read (a lower bound)",
            registry=registry)
        self._unreadable = Counter(
            "efs_csi_node_volume_stats_unreadable_entries",
            "Entries usage walks could not read (permission denied), summed over walks",
            registry=registry)
        self._queue_depth = Gauge(
            "efs_csi_node_volume_stats_queue_depth",
            "Usage walks waiting for a slot or running", registry=registry)
        self._watchdog_restarts = Counter(
            "efs_csi_node_efs_utils_watchdog_restarts",
            "Times efs-utils' watchdog exited (or could not start) and was started again",
            registry=registry)

    def track_volume_counts(self, counts: Callable[[], VolumeCounts]) -> None:
        """Export staged/published counts, read from ``counts`` at scrape time."""
        self._registry.register(_VolumeCountCollector(counts))

    def track_zone(self, zone: NodeZone, helper_failures: Mapping[str, int],
                   helper_pending: Callable[[], bool] = lambda: False) -> None:
        """Export how the search for the zone goes (``efs_csi_node.zone``), and whether the
        start-up helper still has work to do."""
        self._registry.register(_StartupCollector(zone, helper_failures, helper_pending))

    def track_mount_health(self, snapshot: Callable[[], Iterable[VolumeHealthFigures]]) -> None:
        """Export each staged volume's mount health (``efs_csi_node.mount_health``)."""
        self._registry.register(_MountHealthCollector(snapshot))

    def track_walks(self, refresh_period_s: float, longest_walk_s: Callable[[], float]) -> None:
        """Export the usage walks' refresh period and the longest one running."""
        self._registry.register(_WalkCollector(refresh_period_s, longest_walk_s))

    def track_tunnels(self, state_dir: Path) -> None:
        """Export efs-utils' tunnels, from the state files in ``state_dir``."""
        self._registry.register(TunnelCollector(state_dir))

    def watchdog_exited(self, returncode: int | None, delay: float) -> None:
        """``efs_csi_node.efs_utils.watchdog.supervise_watchdog``'s ``on_exit``: a restart."""
        self._watchdog_restarts.inc()

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

    def observe_walk(self, seconds: float, ok: bool, unreadable: int = 0) -> None:
        self._walk_duration.labels("ok" if ok else "failed").observe(seconds)
        if unreadable:
            self._partial_walks.inc()
            self._unreadable.inc(unreadable)

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
