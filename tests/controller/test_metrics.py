"""The controller's own series over real HTTP: EFS API calls under the reference driver's names,
and the provisioning gauges read from the GID allocator at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from efs_csi.cloud import AccessPoint, PosixUser
from efs_csi_controller.gid import GidAllocator, RangeUse
from efs_csi_controller.metrics import ApiMetrics, ProvisioningCollector
from efs_csi_controller.params import GidRange
from testbed.fake_cloud import FakeCloud
from tests.support.scrape import MetricsServer, scrape, value


@pytest.mark.asyncio
async def test_aws_api_series_use_the_reference_names(
    metrics_server: MetricsServer
) -> None:
    registry, port, _ = metrics_server
    api = ApiMetrics(registry)
    api.observe_call("CreateAccessPoint", 0.2, None, throttled=False)
    api.observe_call("CreateAccessPoint", 0.1, "ThrottlingException", throttled=True)
    api.observe_call("CreateAccessPoint", 0.1, "AccessPointLimitExceeded", throttled=False)
    samples = await scrape(port)
    assert value(samples, "aws_efs_csi_api_request_duration_seconds_count",
                 request="CreateAccessPoint") == 3
    assert value(samples, "aws_efs_csi_api_request_throttles_total",
                 request="CreateAccessPoint") == 1
    assert value(samples, "aws_efs_csi_api_request_errors_total", request="CreateAccessPoint",
                 code="AccessPointLimitExceeded") == 1
    assert value(samples, "aws_efs_csi_api_request_errors_total", request="CreateAccessPoint",
                 code="ThrottlingException") == 0


@pytest.mark.asyncio
async def test_retries_are_counted_per_operation_and_reason(
    metrics_server: MetricsServer
) -> None:
    registry, port, _ = metrics_server
    api = ApiMetrics(registry)
    api.observe_retry("CreateAccessPoint", "throttled")
    api.observe_retry("CreateAccessPoint", "throttled")
    api.observe_retry("DescribeAccessPoints", "transient")
    samples = await scrape(port)
    assert value(samples, "aws_efs_csi_api_request_retries_total", request="CreateAccessPoint",
                 reason="throttled") == 2
    assert value(samples, "aws_efs_csi_api_request_retries_total",
                 request="DescribeAccessPoints", reason="transient") == 1


@dataclass(frozen=True)
class Figures:
    file_system_id: str
    access_points: int
    gids_in_use: int
    range_size: int
    in_flight_creates: int
    gid_ranges: tuple[RangeUse, ...] = ()
    gid_yields: int = 0


@pytest.mark.asyncio
async def test_provisioning_gauges_are_read_at_scrape_time(
    metrics_server: MetricsServer
) -> None:
    registry, port, _ = metrics_server
    state = {"gids": 3}
    registry.register(ProvisioningCollector(lambda: [
        Figures("fs-0123456789abcdef0", access_points=4, gids_in_use=state["gids"],
                range_size=1000, in_flight_creates=1, gid_yields=state["gids"] - 3)]))
    first = await scrape(port)
    state["gids"] = 7
    second = await scrape(port)
    fs = "fs-0123456789abcdef0"
    assert value(first, "efs_csi_gids_in_use", file_system_id=fs) == 3
    assert value(second, "efs_csi_gids_in_use", file_system_id=fs) == 7
    assert value(first, "efs_csi_gid_yields_total", file_system_id=fs) == 0
    assert value(second, "efs_csi_gid_yields_total", file_system_id=fs) == 4
    assert value(second, "efs_csi_gid_range_size", file_system_id=fs) == 1000
    assert value(second, "efs_csi_access_points", file_system_id=fs) == 4
    assert value(second, "efs_csi_access_point_creates_in_flight", file_system_id=fs) == 1
    # No limit given: no limit series (the binary always gives its --access-point-limit).
    assert ("efs_csi_access_point_limit", frozenset({("file_system_id", fs)})) not in second


@pytest.mark.asyncio
async def test_provisioning_gauges_read_the_real_gid_allocator(
    metrics_server: MetricsServer
) -> None:
    registry, port, _ = metrics_server
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


@pytest.mark.asyncio
async def test_access_point_limit_and_each_gid_range_against_the_real_allocator(
    metrics_server: MetricsServer
) -> None:
    """Two StorageClasses on one file system: each range's use is its own, whatever GIDs
    other ranges (or other writers) hold, and the limit sits beside each file system."""
    registry, port, _ = metrics_server
    fs = "fs-0123456789abcdef0"
    allocator = GidAllocator(access_point_limit=12)
    registry.register(ProvisioningCollector(allocator.snapshot, access_point_limit=12))
    cloud = FakeCloud(fs)
    narrow, wide = GidRange(1000, 1009), GidRange(50000, 7000000)
    reservations = [await allocator.reserve(cloud, fs, narrow) for _ in range(9)]
    reservations.append(await allocator.reserve(cloud, fs, wide))
    for number, reservation in enumerate(reservations[:5]):
        assert reservation.gid is not None
        allocator.commit(reservation, AccessPoint(
            f"fsap-{number:017x}", fs, f"/v{number}",
            posix_user=PosixUser(reservation.gid, reservation.gid)))
    samples = await scrape(port)
    assert value(samples, "efs_csi_access_point_limit", file_system_id=fs) == 12
    # 9 of the narrow range taken (5 access points, 4 creates still in flight), 1 of the wide.
    assert value(samples, "efs_csi_gid_range_used", file_system_id=fs,
                 gid_range="1000-1009") == 9
    assert value(samples, "efs_csi_gid_range_capacity", file_system_id=fs,
                 gid_range="1000-1009") == 10
    assert value(samples, "efs_csi_gid_range_used", file_system_id=fs,
                 gid_range="50000-7000000") == 1
    assert value(samples, "efs_csi_gid_range_capacity", file_system_id=fs,
                 gid_range="50000-7000000") == 6950001
    assert value(samples, "efs_csi_access_point_creates_in_flight", file_system_id=fs) == 5
    for reservation in reservations[5:]:
        allocator.release(reservation)
    samples = await scrape(port)
    assert value(samples, "efs_csi_gid_range_used", file_system_id=fs,
                 gid_range="1000-1009") == 5
    assert value(samples, "efs_csi_gid_range_used", file_system_id=fs,
                 gid_range="50000-7000000") == 0
