"""The AWS error table, row by row: pure, and over real HTTP through the proxy."""

from __future__ import annotations

import socket

import pytest

from efs_csi import errors
from efs_csi.adapters.aws.cloud import AwsCloud
from efs_csi.adapters.aws.errors import ERROR_TABLE, THROTTLE_CODES, error_for, is_throttle
from efs_csi.cloud import AccessPointAlreadyExistsError, AccessPointRequest, CreationInfo, PosixUser
from testbed.efs_proxy import EfsProxy, FileSystemSetup
from testbed.fake_cloud import RecordingObserver

EXPECTED: dict[str, type[errors.CsiError]] = {
    "AccessDenied": errors.PermissionDenied,
    "AccessDeniedException": errors.PermissionDenied,
    "UnauthorizedOperation": errors.PermissionDenied,
    "AccessDeniedForSomeNewReason": errors.PermissionDenied,  # prefix rule
    "FileSystemNotFound": errors.NotFound,
    "AccessPointNotFound": errors.NotFound,
    "MountTargetNotFound": errors.NotFound,
    "AccessPointAlreadyExists": AccessPointAlreadyExistsError,
    "IdempotentParameterMismatch": errors.AlreadyExists,
    "ThrottlingException": errors.Unavailable,
    "Throttling": errors.Unavailable,
    "ThrottlingSomethingNew": errors.Unavailable,  # prefix rule
    "RequestLimitExceeded": errors.Unavailable,  # EC2 throttling, not a quota
    "AccessPointLimitExceeded": errors.AccessPointLimitReached,
    "FileSystemLimitExceeded": errors.ResourceExhausted,
    "NetworkInterfaceLimitExceeded": errors.ResourceExhausted,  # suffix rule
    "IncorrectFileSystemLifeCycleState": errors.FailedPrecondition,
    "BadRequest": errors.InvalidArgument,
    "ValidationException": errors.InvalidArgument,
    "InternalServerError": errors.Unavailable,
    "SomethingNobodyExpected": errors.Internal,
}


@pytest.mark.parametrize(("code", "kind"), sorted(EXPECTED.items()))
def test_error_for_code(code: str, kind: type[errors.CsiError]) -> None:
    error = error_for("CreateAccessPoint", code, "boom")
    assert type(error) is kind
    assert "CreateAccessPoint" in error.message
    assert code in error.message


@pytest.mark.parametrize("code", sorted(ERROR_TABLE))
def test_every_table_row_is_covered(code: str) -> None:
    expected = EXPECTED.get(code, ERROR_TABLE[code])
    assert isinstance(error_for("DescribeAccessPoints", code, ""), expected)


@pytest.mark.parametrize(("code", "throttle"), [
    *((code, True) for code in sorted(THROTTLE_CODES)),
    ("ThrottlingSomethingNew", True),  # the prefix rule: a code AWS may add
    ("AccessPointLimitExceeded", False), ("InternalServerError", False), (None, False)])
def test_one_vocabulary_of_throttle_codes(code: str | None, throttle: bool) -> None:
    """The retry policy, the texts and the metrics (through the observer) all ask this."""
    assert is_throttle(code) is throttle
    if code is not None:
        assert ("throttled" in error_for("X", code, "").message) is throttle


def test_throttled_message_says_throttled() -> None:
    assert "throttled" in error_for("CreateAccessPoint", "ThrottlingException", "x").message


def test_unknown_5xx_is_unavailable_and_unknown_4xx_internal() -> None:
    assert isinstance(error_for("X", "Weird", "", http_status=503), errors.Unavailable)
    internal = error_for("X", "Weird", "", http_status=400)
    assert isinstance(internal, errors.Internal)
    assert "Weird" in internal.message


def test_already_exists_carries_the_existing_id() -> None:
    error = error_for("CreateAccessPoint", "AccessPointAlreadyExists", "",
                      details={"AccessPointId": "fsap-0123456789abcdef0"})
    assert isinstance(error, AccessPointAlreadyExistsError)
    assert error.access_point_id == "fsap-0123456789abcdef0"


HTTP_ROWS = [
    (403, "AccessDeniedException", errors.PermissionDenied),
    (404, "FileSystemNotFound", errors.NotFound),
    (409, "AccessPointAlreadyExists", errors.AlreadyExists),
    (400, "ThrottlingException", errors.Unavailable),
    (403, "AccessPointLimitExceeded", errors.ResourceExhausted),
    (409, "IncorrectFileSystemLifeCycleState", errors.FailedPrecondition),
    (400, "BadRequest", errors.InvalidArgument),
    (500, "InternalServerError", errors.Unavailable),
    (400, "NotARealCode", errors.Internal),
]


@pytest.mark.parametrize(("status", "code", "kind"), HTTP_ROWS)
@pytest.mark.asyncio
async def test_error_over_http(efs_proxy: EfsProxy, file_system: FileSystemSetup,
                               aws_credentials: None, observer: RecordingObserver,
                               status: int, code: str, kind: type[errors.CsiError]) -> None:
    efs_proxy.inject(fail_with=(status, code), operations=["CreateAccessPoint"])
    request = AccessPointRequest(file_system.file_system_id, "t", "/a", PosixUser(1, 1),
                                 CreationInfo(1, 1, "0700"))
    async with AwsCloud.create("us-east-1", endpoint_url=efs_proxy.url, max_attempts=1,
                               adaptive_retry=False, observer=observer) as cloud:
        with pytest.raises(kind, match=code):
            await cloud.create_access_point(request)
    assert observer.calls[-1][0] == "CreateAccessPoint"
    assert observer.calls[-1][2] == code


@pytest.mark.asyncio
async def test_unreachable_endpoint_is_unavailable(aws_credentials: None,
                                                   observer: RecordingObserver) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AwsCloud.create("us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                               max_attempts=1, observer=observer) as cloud:
        with pytest.raises(errors.Unavailable, match="cannot reach"):
            await cloud.describe_file_system("fs-0123456789abcdef0")
    assert observer.calls == [("DescribeFileSystems", observer.calls[0][1],
                               "EndpointConnectionError")]


@pytest.mark.asyncio
async def test_use_before_open_is_internal() -> None:
    cloud = AwsCloud.create("us-east-1")
    with pytest.raises(errors.Internal, match="open"):
        await cloud.describe_access_point("fsap-0123456789abcdef0")
