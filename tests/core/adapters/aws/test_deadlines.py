"""The adapter's retries within the caller's deadline, over real HTTP: an unreachable endpoint
is answered UNAVAILABLE (naming the endpoint and the operating system's reason) before the
deadline, never by sleeping past it; calls abandoned while an API throttled every call give
back their places, so once it answers again the next call goes out at once.

Each call gets its own deadline the way the controller's calls do (a context variable read by
``time_left``), and runs inside ``asyncio.timeout`` at that deadline: a call that overran it
would end in ``TimeoutError`` instead of the answer the test expects."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import time
from collections.abc import Awaitable
from typing import TypeVar

import pytest
import structlog
from aiobotocore.session import AioSession

from efs_csi import errors
from efs_csi.adapters.aws.client import client_config, retry_settings
from efs_csi.adapters.aws.cloud import AwsCloud
from efs_csi.adapters.aws.errors import transport_error
from efs_csi.cloud import AccessPointRequest, CreationInfo, PosixUser
from testbed.efs_proxy import EfsProxy, FileSystemSetup
from testbed.moto_server import REGION

T = TypeVar("T")
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline",
                                                                          default=None)


def time_left() -> float | None:
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


async def by(seconds: float, call: Awaitable[T]) -> T:
    """``call`` with a deadline ``seconds`` from now, as a CSI call's handler runs it."""
    _deadline.set(time.monotonic() + seconds)
    async with asyncio.timeout(seconds):
        return await call


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request(file_system_id: str, number: int) -> AccessPointRequest:
    return AccessPointRequest(file_system_id, f"pvc-{number}", f"/dyn/{number}",
                              PosixUser(50000 + number, 50000 + number),
                              CreationInfo(50000 + number, 50000 + number, "0700"))


@pytest.mark.parametrize("adaptive", [True, False])
@pytest.mark.asyncio
async def test_an_unreachable_endpoint_is_unavailable_before_the_deadline(
        aws_credentials: None, adaptive: bool) -> None:
    """Ten attempts with backoff would take ~36 s (adaptive) or longer; at a 2 s deadline the
    call answers first, naming the endpoint and the reason, and logs it. (csi-provisioner's
    deadline is 15 s: the rule is the same, only the test would wait 7 s for it.)"""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    cloud = AwsCloud(AioSession(), client_config(REGION, max_pool_connections=4),
                     endpoint_url=endpoint, time_left=time_left, draw=lambda: 1.0,
                     retries=retry_settings(adaptive_retry=adaptive, max_attempts=10))
    async with cloud:
        with structlog.testing.capture_logs() as logs, \
                pytest.raises(errors.Unavailable) as raised:
            await by(2.0, cloud.describe_file_system("fs-12345678"))
    message = raised.value.message
    assert endpoint in message
    assert "Connection refused (ECONNREFUSED)" in message
    assert "stopped before the caller's deadline" in message
    [logged] = [entry for entry in logs if entry["event"] == "EFS call failed"]
    assert logged["error"] == message and logged["endpoint"] == endpoint


@pytest.mark.asyncio
async def test_no_time_left_is_deadline_exceeded_without_an_attempt(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None) -> None:
    _deadline.set(time.monotonic() + 0.1)  # less than the margin an answer needs
    async with AwsCloud.create(REGION, endpoint_url=efs_proxy.url, time_left=time_left) as cloud:
        with pytest.raises(errors.DeadlineExceeded, match="no time left"):
            await cloud.describe_file_system(file_system.file_system_id)
    assert efs_proxy.calls["DescribeFileSystems"] == 0


@pytest.mark.asyncio
async def test_an_attempt_that_would_outlast_the_deadline_is_cut_short(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None) -> None:
    efs_proxy.inject(latency=(5.0, 5.0), operations=["DescribeFileSystems"])
    async with AwsCloud.create(REGION, endpoint_url=efs_proxy.url, time_left=time_left) as cloud:
        with pytest.raises(errors.Unavailable, match="no answer from the EFS API at http"):
            await by(2.0, cloud.describe_file_system(file_system.file_system_id))


@pytest.mark.asyncio
async def test_calls_abandoned_under_throttling_leave_nothing_behind(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None) -> None:
    """100 % throttling of CreateAccessPoint while ten creates retry until their 5 s
    deadlines; then throttling stops: the next two creates go out and succeed at once (one
    CreateAccessPoint each), not behind the places of the ten."""
    fs = file_system.file_system_id
    efs_proxy.inject(throttle=1.0, operations=["CreateAccessPoint"])
    async with AwsCloud.create(REGION, endpoint_url=efs_proxy.url, time_left=time_left) as cloud:
        outcomes = await asyncio.gather(*(by(5.0, cloud.create_access_point(request(fs, n)))
                                          for n in range(10)), return_exceptions=True)
        assert all(isinstance(outcome, errors.Unavailable) for outcome in outcomes), outcomes
        state = cloud.retry_state("CreateAccessPoint")
        assert state.limiter.engaged  # it throttled: the limiter is still on ...
        assert state.limiter.waiting == 0 and state.in_flight == 0  # ... holding no place
        efs_proxy.clear_faults()
        efs_proxy.reset_counts()
        for number in (10, 11):
            created = await by(5.0, cloud.create_access_point(request(fs, number)))
            assert created.posix_user == PosixUser(50000 + number, 50000 + number)
    assert efs_proxy.calls["CreateAccessPoint"] == 2


@pytest.mark.asyncio
async def test_calls_cancelled_while_queued_or_sent_give_everything_back(
        efs_proxy: EfsProxy, file_system: FileSystemSetup, aws_credentials: None) -> None:
    efs_proxy.inject(latency=(2.0, 2.0), operations=["DescribeFileSystems"])
    async with AwsCloud.create(REGION, endpoint_url=efs_proxy.url) as cloud:
        state = cloud.retry_state("DescribeFileSystems")
        state.limiter.engage(time.monotonic(), 0.5)  # one call per two seconds
        queued = [asyncio.ensure_future(cloud.describe_file_system(file_system.file_system_id))
                  for _ in range(5)]
        try:
            for _ in range(3):  # each takes its place at its first step
                await asyncio.sleep(0)
            # A lone call goes out at once; the four behind it queue.
            assert (state.in_flight, state.limiter.waiting) == (1, 4)
        finally:
            for call in queued:
                call.cancel()
            await asyncio.gather(*queued, return_exceptions=True)
        assert (state.in_flight, state.limiter.waiting) == (0, 0)


@pytest.mark.parametrize(("make", "expected"), [
    (lambda: ConnectionRefusedError(111, "Connect call failed"),
     "Connection refused (ECONNREFUSED)"),
    (lambda: socket.gaierror(-2, "Name or service not known"), "Name or service not known"),
])
def test_the_os_reason_is_found_inside_botocores_wrapping(make: object, expected: str) -> None:
    import botocore.exceptions

    inner = make()  # type: ignore[operator]
    wrapped = botocore.exceptions.EndpointConnectionError(
        endpoint_url="http://efs.example:443/x", error=RuntimeError("connector"))
    wrapped.kwargs["error"].__cause__ = inner
    found = transport_error("DescribeFileSystems", wrapped, "http://efs.example:443")
    assert found is not None
    error, code = found
    assert isinstance(error, errors.Unavailable) and code == "EndpointConnectionError"
    assert error.message == ("EFS DescribeFileSystems: cannot reach the EFS API at "
                             f"http://efs.example:443: {expected} (EndpointConnectionError)")
