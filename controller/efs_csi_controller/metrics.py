"""The controller's Prometheus series (the shared ones are in ``efs_csi.metrics``).

- ``ApiMetrics`` is the ``efs_csi.cloud.ApiObserver`` for EFS calls, named like the reference
  driver's ``aws_efs_csi_api_request_*`` series so existing dashboards keep working, with the
  retries per operation beside them (``aws_efs_csi_api_request_retries_total{request,reason}``);
- ``ProvisioningCollector`` reads the GID allocator's per-file-system snapshot at scrape time:
  access points against ``--access-point-limit``, each GID range's use against its size, and
  ``efs_csi_gid_yields_total``: access points given up because another writer's held their GID
  (each was deleted and made again with another GID before its create was answered).

Labels stay bounded: per EFS operation (a dozen), error code, file system, and GID range (one
per StorageClass range in use); never per volume, and nothing from a request's secrets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class ApiMetrics:
    """``efs_csi.cloud.ApiObserver``: EFS API duration, errors by code, throttles, retries."""

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
        self._retries = Counter(
            "aws_efs_csi_api_request_retries",
            "EFS API attempts made again after a failed one, by the failure's kind "
            "(throttled, transient, timeout)", ["request", "reason"], registry=registry)

    def observe_call(self, operation: str, seconds: float, error_code: str | None, *,
                     throttled: bool) -> None:
        """A throttled call counts as a throttle, not an error (the adapter tells which)."""
        self._duration.labels(operation).observe(seconds)
        if error_code is None:
            return
        if throttled:
            self._throttles.labels(operation).inc()
        else:
            self._errors.labels(operation, error_code).inc()

    def observe_retry(self, operation: str, reason: str) -> None:
        self._retries.labels(operation, reason).inc()


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
    @property
    def gid_ranges(self) -> Sequence[RangeFigures]: ...
    @property
    def gid_yields(self) -> int: ...


class RangeFigures(Protocol):
    """One GID range's use on a file system (``efs_csi_controller.gid.RangeUse``)."""

    @property
    def gid_range(self) -> str: ...
    @property
    def used(self) -> int: ...
    @property
    def size(self) -> int: ...


class ProvisioningCollector(Collector):
    """Per-file-system provisioning gauges, read from a snapshot callable at scrape time.

    Reading at scrape time (rather than updating gauges on every change) keeps the allocator
    free of metrics code and the figures exactly what the allocator holds. The access-point
    limit is repeated per file system so that alerts and dashboards divide series that share
    their labels.
    """

    def __init__(self, snapshot: Callable[[], Iterable[FileSystemFigures]], *,
                 access_point_limit: int | None = None) -> None:
        self._snapshot = snapshot
        self._access_point_limit = access_point_limit

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
        limit = GaugeMetricFamily(
            "efs_csi_access_point_limit",
            "Access points allowed per file system (--access-point-limit, the EFS quota)",
            labels=["file_system_id"])
        range_used = GaugeMetricFamily(
            "efs_csi_gid_range_used",
            "GIDs of a StorageClass's range held by access points or reserved, per file system",
            labels=["file_system_id", "gid_range"])
        range_capacity = GaugeMetricFamily(
            "efs_csi_gid_range_capacity", "GIDs in a StorageClass's range (end - start + 1)",
            labels=["file_system_id", "gid_range"])
        yields = CounterMetricFamily(
            "efs_csi_gid_yields", "Access points given up because another writer's held their "
            "GID (made again with another GID)", labels=["file_system_id"])
        for fs in self._snapshot():
            for attribute, family in families.items():
                family.add_metric([fs.file_system_id], float(getattr(fs, attribute)))
            if self._access_point_limit is not None:
                limit.add_metric([fs.file_system_id], float(self._access_point_limit))
            for use in fs.gid_ranges:
                range_used.add_metric([fs.file_system_id, use.gid_range], float(use.used))
                range_capacity.add_metric([fs.file_system_id, use.gid_range], float(use.size))
            yields.add_metric([fs.file_system_id], float(fs.gid_yields))
        yield from families.values()
        if self._access_point_limit is not None:
            yield limit
        yield range_used
        yield range_capacity
        yield yields
