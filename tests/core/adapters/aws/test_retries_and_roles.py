"""Throttling and 5xx absorbed by the adapter's per-API retries (one API's throttling never
slows another; throttling that follows the request rate makes adaptive mode back off; a
cancelled call stops retrying at once); STS AssumeRole cached per role; endpoints taken from
the SDK's own environment variables."""

from __future__ import annotations

import asyncio

import pytest
from aiobotocore.session import AioSession
from structlog.testing import capture_logs

from efs_csi import errors
from efs_csi.adapters.aws.client import USER_AGENT, client_config
from efs_csi.adapters.aws.cloud import AwsCloud
from efs_csi.adapters.aws.roles import CloudFactory
from efs_csi.adapters.retries import RetrySettings
from efs_csi.cloud import AccessPointRequest, CreationInfo, PosixUser
from testbed.efs_proxy import EfsProxy, FileSystemSetup
from testbed.fake_cloud import RecordingObserver
from testbed.moto_server import REGION

# moto's default account: moto keeps accounts apart, so the assumed role must be in the
# account that owns the file system for the describe calls below to see it.
ROLE = "arn:aws:iam::123456789012:role/efs-csi"


def request(file_system_id: str, number: int) -> AccessPointRequest:
    return AccessPointRequest(file_system_id, f"pvc-{number}", f"/dyn/{number}",
                              PosixUser(50000 + number, 50000 + number),
                              CreationInfo(50000 + number, 50000 + number, "0700"))


@pytest.mark.parametrize(("adaptive", "count"), [(True, 10), (False, 10)])
@pytest.mark.asyncio
async def test_throttling_at_30_percent_still_succeeds(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None,
        adaptive: bool, count: int) -> None:
    fs = file_system.file_system_id
    efs_proxy.inject(throttle=0.3, operations=["CreateAccessPoint", "DescribeAccessPoints"])
    async with AwsCloud.create(REGION, endpoint_url=efs_proxy.url,
                               adaptive_retry=adaptive) as cloud:
        created = await asyncio.gather(*(cloud.create_access_point(request(fs, n))
                                         for n in range(count)))
        listed = [ap async for ap in cloud.access_points(fs)]
    assert len({ap.access_point_id for ap in created}) == count
    assert len(listed) == count
    assert efs_proxy.injected["CreateAccessPoint"] > 0  # the retry path really ran
    assert efs_proxy.calls["CreateAccessPoint"] == count + efs_proxy.injected["CreateAccessPoint"]


@pytest.mark.asyncio
async def test_5xx_is_retried_then_mapped(efs_proxy: EfsProxy, file_system: FileSystemSetup,
                                          aws_credentials: None) -> None:
    fs = file_system.file_system_id
    efs_proxy.inject(server_error=1.0, server_error_status=503)
    async with AwsCloud.create(REGION, endpoint_url=efs_proxy.url, max_attempts=2,
                               adaptive_retry=False) as cloud:
        with pytest.raises(errors.Unavailable, match="InternalServerError"):
            await cloud.create_access_point(request(fs, 1))
    assert efs_proxy.calls["CreateAccessPoint"] == 2  # botocore retried once


@pytest.mark.asyncio
async def test_the_observer_is_told_of_each_retry_and_why(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None) -> None:
    """What aws_efs_csi_api_request_retries_total counts: a retry per failed attempt that is
    made again, none after the last attempt."""
    fs = file_system.file_system_id
    observer = RecordingObserver()
    efs_proxy.inject(server_error=1.0, server_error_status=503)
    async with AwsCloud.create(REGION, endpoint_url=efs_proxy.url, max_attempts=3,
                               adaptive_retry=False, observer=observer) as cloud:
        with pytest.raises(errors.Unavailable):
            await cloud.create_access_point(request(fs, 1))
        assert observer.retries == [("CreateAccessPoint", "transient")] * 2
        efs_proxy.inject(throttle=1.0, operations=["DescribeFileSystems"])
        with pytest.raises(errors.Unavailable):
            await cloud.describe_file_system(fs)
    assert observer.retries[2:] == [("DescribeFileSystems", "throttled")] * 2
    assert len(observer.calls) == 6  # every attempt is reported, the retried ones too
    # Only the throttled ones as throttled (the metrics count them apart from errors).
    assert observer.throttled == ["ThrottlingException"] * 3


@pytest.mark.asyncio
async def test_some_5xx_are_absorbed(efs_proxy: EfsProxy, file_system: FileSystemSetup,
                                     aws_credentials: None) -> None:
    fs = file_system.file_system_id
    efs_proxy.inject(server_error=0.3, latency=(0.0, 0.01))
    async with AwsCloud.create(REGION, endpoint_url=efs_proxy.url) as cloud:
        for number in range(10):
            await cloud.create_access_point(request(fs, number))
    assert efs_proxy.injected.total() > 0


@pytest.mark.asyncio
async def test_throttling_beyond_retries_is_unavailable_and_says_throttled(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None) -> None:
    efs_proxy.inject(throttle=1.0)
    async with AwsCloud.create(REGION, endpoint_url=efs_proxy.url, max_attempts=2,
                               adaptive_retry=False) as cloud:
        with pytest.raises(errors.Unavailable, match="throttled"):
            await cloud.create_access_point(request(file_system.file_system_id, 1))


def test_botocore_makes_one_attempt_with_a_fixed_user_agent() -> None:
    config = client_config(REGION, max_pool_connections=10)
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.user_agent == USER_AGENT
    assert config.parameter_validation is False
    assert config.region_name == REGION


@pytest.mark.parametrize("adaptive", [True, False])
def test_retry_mode_follows_the_flag(adaptive: bool) -> None:
    cloud = AwsCloud.create(REGION, adaptive_retry=adaptive, max_attempts=7)
    settings = cloud.retry_state("CreateAccessPoint").settings
    assert (settings.adaptive, settings.max_attempts) == (adaptive, 7)


@pytest.mark.asyncio
async def test_a_throttled_api_does_not_slow_the_others(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None) -> None:
    """DescribeAccessPoints and DeleteAccessPoint throttled on every call until their retry
    budget is spent and their limiter engaged; CreateAccessPoint keeps its full budget, its
    limiter stays off, and each create still costs exactly one call."""
    fs = file_system.file_system_id
    efs_proxy.inject(throttle=1.0, operations=["DescribeAccessPoints", "DeleteAccessPoint"])
    # Calls that would queue behind the throttled APIs' limiter fail at once.
    settings = RetrySettings(max_attempts=3, base_delay=0.001, adaptive=True,
                             max_queue_delay=0.5)
    async with AwsCloud(AioSession(), client_config(REGION, max_pool_connections=64),
                        endpoint_url=efs_proxy.url, retries=settings) as cloud:
        outcomes = await asyncio.gather(
            *(cloud.describe_access_point(f"fsap-{n:017x}") for n in range(60)),
            *(cloud.delete_access_point(f"fsap-{n:017x}") for n in range(60)),
            return_exceptions=True)
        assert all(isinstance(outcome, errors.Unavailable) for outcome in outcomes)
        describe = cloud.retry_state("DescribeAccessPoints")
        assert describe.limiter.engaged
        efs_proxy.reset_counts()
        created = await asyncio.gather(*(cloud.create_access_point(request(fs, n))
                                         for n in range(20)))
        create = cloud.retry_state("CreateAccessPoint")
        assert not create.limiter.engaged
        assert create.quota.available == settings.quota_capacity
    assert len({ap.access_point_id for ap in created}) == 20
    assert efs_proxy.calls["CreateAccessPoint"] == 20
    assert efs_proxy.injected["CreateAccessPoint"] == 0


@pytest.mark.asyncio
async def test_throttling_that_follows_the_rate_makes_adaptive_mode_back_off(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None) -> None:
    """The proxy lets 20 creates per second through (bursts of 5); 80 concurrent creates all
    succeed and the limiter engages. The first wave meets the limit (75 throttled answers: no
    client knows the limit beforehand); paced by the limiter, the retries meet it rarely after
    that. Without the limiter (standard mode with adaptive mode's short backoff) each retry
    wave met the limit again: about 160 throttled answers, and the retry budget ran out,
    failing about 50 creates."""
    fs = file_system.file_system_id
    efs_proxy.rate_limit({"CreateAccessPoint": 20.0}, burst=5)
    async with AwsCloud.create(REGION, endpoint_url=efs_proxy.url, adaptive_retry=True,
                               max_attempts=10) as cloud:
        created = await asyncio.gather(*(cloud.create_access_point(request(fs, n))
                                         for n in range(80)))
        assert cloud.retry_state("CreateAccessPoint").limiter.engaged
    assert len({ap.access_point_id for ap in created}) == 80
    throttled = efs_proxy.injected["CreateAccessPoint"]
    print(f"\n80 creates at 20/s: {throttled} throttled answers")
    assert 0 < throttled < 120


@pytest.mark.asyncio
async def test_a_cancelled_call_stops_retrying_at_once(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None) -> None:
    efs_proxy.inject(throttle=1.0, operations=["CreateAccessPoint"])
    # A first backoff of up to an hour: only cancellation can end the call in time.
    settings = RetrySettings(max_attempts=10, base_delay=3600.0, max_delay=3600.0,
                             adaptive=False)
    answered = asyncio.Event()

    class FirstAnswer:
        """Told after each attempt, just before the call backs off."""

        def observe_call(self, operation: str, seconds: float, error_code: str | None, *,
                         throttled: bool) -> None:
            answered.set()

        def observe_retry(self, operation: str, reason: str) -> None:
            pass

    async with AwsCloud(AioSession(), client_config(REGION, max_pool_connections=4),
                        endpoint_url=efs_proxy.url, retries=settings, observer=FirstAnswer(),
                        draw=lambda: 1.0) as cloud:
        call = asyncio.ensure_future(cloud.create_access_point(
            request(file_system.file_system_id, 1)))
        await answered.wait()  # the first attempt was throttled: the call is backing off
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert [task for task in asyncio.all_tasks()
                if task is not asyncio.current_task()] == []
    assert efs_proxy.calls["CreateAccessPoint"] == 1


@pytest.mark.asyncio
async def test_assume_role_is_cached_per_role(factory: CloudFactory, efs_proxy: EfsProxy,
                                              file_system: FileSystemSetup) -> None:
    first = await factory.cloud_for(ROLE, "external-1")
    second = await factory.cloud_for(ROLE, "external-1")
    assert first is second
    assert await factory.cloud_for(None) is factory.default
    await first.describe_file_system(file_system.file_system_id)
    await second.describe_file_system(file_system.file_system_id)
    assert efs_proxy.calls["AssumeRole"] == 1
    other = await factory.cloud_for(ROLE, "external-2")
    assert other is not first
    assert efs_proxy.calls["AssumeRole"] == 2


@pytest.mark.asyncio
async def test_concurrent_first_use_of_a_role_assumes_once(
        factory: CloudFactory, efs_proxy: EfsProxy) -> None:
    clouds = await asyncio.gather(*(factory.cloud_for(ROLE) for _ in range(5)))
    assert len({id(cloud) for cloud in clouds}) == 1
    assert efs_proxy.calls["AssumeRole"] == 1


@pytest.mark.asyncio
async def test_credentials_near_expiry_are_refreshed(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None) -> None:
    # A refresh margin longer than the credential lifetime makes every call "near expiry".
    async with CloudFactory(REGION, endpoint_url=efs_proxy.url, role_duration_seconds=900,
                            refresh_margin_seconds=1000) as factory:
        cloud = await factory.cloud_for(ROLE)
        assert efs_proxy.calls["AssumeRole"] == 1
        await cloud.describe_file_system(file_system.file_system_id)
        await cloud.describe_file_system(file_system.file_system_id)
    assert efs_proxy.calls["AssumeRole"] >= 3


@pytest.mark.asyncio
async def test_assume_role_denied_is_permission_denied_naming_the_role_in_the_log_only(
        factory: CloudFactory, efs_proxy: EfsProxy) -> None:
    """The role's ARN names another account: the CO (and so a PVC event) gets a correlation
    id, the log gets the ARN under that id (review finding #15)."""
    efs_proxy.inject(fail_with=(403, "AccessDenied"), operations=["AssumeRole"])
    with capture_logs() as logs, pytest.raises(errors.PermissionDenied) as raised:
        await factory.cloud_for(ROLE)
    message = raised.value.message
    assert ROLE not in message and "AssumeRole" in message and "AccessDenied" in message
    reference = message.split("correlation id ", 1)[1].split(":", 1)[0]
    assert [entry["role_arn"] for entry in logs
            if entry.get("correlation_id") == reference] == [ROLE]


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_EFS", "AWS_ENDPOINT_URL"])
@pytest.mark.asyncio
async def test_endpoint_from_environment(efs_proxy: EfsProxy, file_system: FileSystemSetup,
                                         aws_credentials: None, monkeypatch: pytest.MonkeyPatch,
                                         variable: str) -> None:
    monkeypatch.setenv(variable, efs_proxy.url)
    async with AwsCloud.create(REGION) as cloud:
        found = await cloud.describe_file_system(file_system.file_system_id)
    assert found.file_system_id == file_system.file_system_id
    assert efs_proxy.calls["DescribeFileSystems"] == 1
