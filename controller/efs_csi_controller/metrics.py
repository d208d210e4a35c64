"""The controller's Prometheus series (the shared ones are in ``efs_csi.metrics``).

- ``ApiMetrics`` is the ``efs_csi.cloud.ApiObserver`` for EFS calls, named like the reference
  driver's ``aws_efs_csi_api_request_*`` series so existing dashboards keep working;
- ``ProvisioningCollector`` reads the GID allocator's per-file-system snapshot at scrape time,
  among it ``efs_csi_gid_yields_total``: access points given up because another writer's held
  their GID (each was deleted and made again with another GID before its create was answered).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# EFS API errors that mean "slow down" rather than "failed".
_THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException",
                             "RequestLimitExceeded", "ThrottledException"})


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
    @property
    def gid_yields(self) -> int: ...


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
        yields = CounterMetricFamily(
            "efs_csi_gid_yields", "Access points given up because another writer's held their "
            "GID (made again with another GID)", labels=["file_system_id"])
        for fs in self._snapshot():
            for attribute, family in families.items():
                family.add_metric([fs.file_system_id], float(getattr(fs, attribute)))
            yields.add_metric([fs.file_system_id], float(fs.gid_yields))
        yield from families.values()
        yield yields
