"""The EFS API through aiobotocore: the one place that knows botocore.

``AwsCloud`` implements ``efs_csi.cloud.Cloud`` over ONE long-lived EFS client (opened and
closed by the composition root). ``CloudFactory`` owns the process's AWS session, hands out
the default cloud and, for cross-account volumes, one cloud per (role ARN, external id) whose
credentials come from STS AssumeRole and are refreshed by botocore shortly before they expire.

Every botocore failure leaves this module as an ``efs_csi.errors`` exception, translated by
``ERROR_TABLE`` below (see ``error_for``); callers never see a ClientError.

Retries: botocore's own are off (one attempt per botocore call). ``AwsCloud._call`` retries
with the per-API state of ``efs_csi.adapters.retries`` (a retry budget per API, full-jitter
backoff, and in adaptive mode a send rate that engages only when throttles dominate), so a
throttled API never slows the others down. A cancelled call stops at once: its only waits are
plain ``asyncio.sleep`` calls in the caller's own task, and it gives back its place in the
send limiter's queue. Given the caller's deadline (``time_left``), no wait and no attempt runs
past it: ``ANSWER_MARGIN`` before it, the call answers with its last failure (for an endpoint
that cannot be reached: UNAVAILABLE naming the endpoint and the operating system's reason,
logged alike), never a bare DEADLINE_EXCEEDED.

Cost per call: the client sends a fixed User-Agent (botocore otherwise rebuilds its string
twice per request) and skips botocore's parameter validation (the provisioner checks what it
sends; EFS answers BadRequest, i.e. INVALID_ARGUMENT, to anything else).

Endpoints: an explicit ``endpoint_url`` wins; otherwise botocore itself honours
``AWS_ENDPOINT_URL_EFS`` / ``AWS_ENDPOINT_URL_STS`` and ``AWS_ENDPOINT_URL`` (that is how the
tests and the demo point the driver at a local EFS API).
"""

from __future__ import annotations

import asyncio
import errno
import os
import platform
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import aiobotocore
import botocore
import botocore.exceptions
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession
from aiobotocore.utils import AioInstanceMetadataRegionFetcher

from efs_csi import errors
from efs_csi._version import __version__
from efs_csi.adapters.botocore_tuning import tune_client, tune_session
from efs_csi.adapters.retries import (
    ApiRetryState,
    Outcome,
    RetrySettings,
    RetryStates,
    backoff_delay,
)
from efs_csi.cloud import (
    AccessPoint,
    AccessPointAlreadyExistsError,
    AccessPointRequest,
    ApiObserver,
    CreationInfo,
    FileSystem,
    MountTarget,
    PosixUser,
)
from efs_csi.logging import get_logger

#: AWS error code -> domain error. Codes not listed fall back to the rules in ``error_for``:
#: ``AccessDenied*`` -> PermissionDenied, ``Throttling*`` -> Unavailable,
#: ``*LimitExceeded`` -> ResourceExhausted, HTTP 5xx -> Unavailable, anything else -> Internal
#: (with the code in the message, so an operator can look it up).
#:
#: Throttling only reaches this table after ``AwsCloud._call`` has spent its retries, so it is
#: reported as UNAVAILABLE (the provisioner retries later). ``RequestLimitExceeded`` is EC2's
#: throttling code, hence listed explicitly before the ``*LimitExceeded`` rule applies.
ERROR_TABLE: Mapping[str, type[errors.CsiError]] = {
    # who you are / what you may do
    "AccessDenied": errors.PermissionDenied,
    "AccessDeniedException": errors.PermissionDenied,
    "UnauthorizedOperation": errors.PermissionDenied,
    "UnrecognizedClientException": errors.PermissionDenied,
    "InvalidClientTokenId": errors.PermissionDenied,
    "ExpiredToken": errors.PermissionDenied,
    "ExpiredTokenException": errors.PermissionDenied,
    # the object is not there
    "FileSystemNotFound": errors.NotFound,
    "AccessPointNotFound": errors.NotFound,
    "MountTargetNotFound": errors.NotFound,
    # the client token is taken
    "AccessPointAlreadyExists": errors.AlreadyExists,
    "IdempotentParameterMismatch": errors.AlreadyExists,
    # slow down (after retries)
    "Throttling": errors.Unavailable,
    "ThrottlingException": errors.Unavailable,
    "ThrottledException": errors.Unavailable,
    "TooManyRequestsException": errors.Unavailable,
    "RequestLimitExceeded": errors.Unavailable,
    # quotas
    "AccessPointLimitExceeded": errors.ResourceExhausted,
    "FileSystemLimitExceeded": errors.ResourceExhausted,
    # wrong state of the file system / mount target
    "IncorrectFileSystemLifeCycleState": errors.FailedPrecondition,
    "IncorrectMountTargetState": errors.FailedPrecondition,
    # the request itself is wrong
    "BadRequest": errors.InvalidArgument,
    "ValidationException": errors.InvalidArgument,
    "InvalidParameterValue": errors.InvalidArgument,
    # AWS is unwell (after retries)
    "InternalServerError": errors.Unavailable,
    "ServiceUnavailable": errors.Unavailable,
    "ServiceUnavailableException": errors.Unavailable,
}

_log = get_logger("efs_csi.adapters.aws")

_THROTTLING = frozenset(code for code, kind in ERROR_TABLE.items() if kind is errors.Unavailable
                        and ("Throttl" in code or "TooMany" in code or "RequestLimit" in code))
#: Answers worth another attempt besides throttles and 5xx (the AWS SDKs' transient errors).
_TRANSIENT = frozenset({"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete",
                        "InternalServerError", "ServiceUnavailable",
                        "ServiceUnavailableException"})


#: A call stops this long before its caller's deadline, so that its answer (UNAVAILABLE naming
#: the cause) still reaches the caller, rather than the caller's own DEADLINE_EXCEEDED.
ANSWER_MARGIN = 0.5

#: Seconds until the current caller's deadline, or None when it set none (the controller
#: passes ``efs_csi.rpc.hook.seconds_left``).
TimeLeft = Callable[[], float | None]


def no_deadline() -> float | None:
    return None


class AttemptTimedOut(Exception):
    """An attempt got no answer within the time left before the caller's deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:.1f} s")
        self.seconds = seconds


async def _within(budget: float | None, call: Awaitable[Any]) -> Any:
    """``await call``, cut short after ``budget`` seconds (``AttemptTimedOut``)."""
    if budget is None:
        return await call
    try:
        async with asyncio.timeout(budget) as scope:
            return await call
    except TimeoutError as exc:
        if scope.expired():
            raise AttemptTimedOut(budget) from exc
        raise


def os_cause(exc: BaseException) -> str | None:
    """The operating system's reason behind a transport failure ("Connection refused
    (ECONNREFUSED)"), found in the chain of exceptions botocore and aiohttp wrap it in."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            # os.strerror for a system errno: asyncio's own texts ("Connect call failed ...")
            # say less; a resolver error (negative errno) has only its own text.
            reason = (os.strerror(current.errno) if current.errno > 0
                      else current.strerror or f"error {current.errno}")
            name = errno.errorcode.get(current.errno)
            return f"{reason} ({name})" if name else reason
        kwargs = getattr(current, "kwargs", None)
        inner = kwargs.get("error") if isinstance(kwargs, dict) else None
        pending += [inner if isinstance(inner, BaseException) else None,
                    getattr(current, "os_error", None), current.__cause__, current.__context__]
    return None


def transport_error(operation: str, exc: Exception,
                    endpoint: str) -> tuple[errors.CsiError, str] | None:
    """(domain error, code for the observer) when ``exc`` is a transport failure (no answer
    from the EFS API), naming the endpoint and the operating system's reason; None otherwise."""
    where = f"the EFS API at {endpoint}" if endpoint else "the EFS API"
    if isinstance(exc, AttemptTimedOut):
        return errors.Unavailable(
            f"EFS {operation}: no answer from {where} within the {exc.seconds:.1f} s left "
            "before the caller's deadline"), "NoAnswerInTime"
    if not isinstance(exc, botocore.exceptions.ConnectionError
                      | botocore.exceptions.HTTPClientError):
        return None
    name = type(exc).__name__
    cause = os_cause(exc) or str(exc)
    return errors.Unavailable(f"EFS {operation}: cannot reach {where}: {cause} ({name})"), name


def is_throttle(code: str) -> bool:
    return code in _THROTTLING or code.startswith("Throttling")


def outcome_of(exc: Exception) -> Outcome:
    """How the retry policy sees a failed attempt (pure)."""
    if isinstance(exc, AttemptTimedOut):
        return Outcome.TIMEOUT
    if isinstance(exc, botocore.exceptions.ClientError):
        response: dict[str, Any] = exc.response or {}
        code = str(response.get("Error", {}).get("Code") or "")
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
        if is_throttle(code):
            return Outcome.THROTTLED
        if code in _TRANSIENT or status >= 500:
            return Outcome.TRANSIENT
        return Outcome.FATAL
    if isinstance(exc, botocore.exceptions.ReadTimeoutError
                  | botocore.exceptions.ConnectTimeoutError):
        return Outcome.TIMEOUT
    if isinstance(exc, botocore.exceptions.ConnectionError
                  | botocore.exceptions.HTTPClientError):
        return Outcome.TRANSIENT
    return Outcome.FATAL


def correlation_id() -> str:
    """A short random id tying an answer to the CO to the log line with its details."""
    return uuid.uuid4().hex[:12]


def _withheld(operation: str, code: str, message: str, **context: str) -> str:
    """AWS's ``message`` fit for the CO, which shows it in PVC events that tenants read: ARNs
    and account numbers (who the controller is: its role, an assumed-role session, the
    account) are withheld. When something was, or ``context`` holds such details, the full
    text goes to the log under a correlation id, which the answer carries."""
    shown = errors.without_account_details(message, account_numbers=True)
    if shown == message and not context:
        return message
    reference = correlation_id()
    _log.warning("AWS error details withheld from the CO", operation=operation, code=code,
                 aws_message=message, correlation_id=reference, **context)
    return f"{shown} (correlation id {reference}: the controller's log has the details)"


def error_for(operation: str, code: str, message: str, http_status: int = 400,
              details: Mapping[str, Any] | None = None) -> errors.CsiError:
    """The domain error for an AWS error ``code`` returned by ``operation``."""
    kind = ERROR_TABLE.get(code)
    if kind is None:
        if code.startswith("AccessDenied"):
            kind = errors.PermissionDenied
        elif code.startswith("Throttling"):
            kind = errors.Unavailable
        elif code.endswith("LimitExceeded"):
            kind = errors.ResourceExhausted
        elif http_status >= 500:
            kind = errors.Unavailable
        else:
            kind = errors.Internal
    throttled = is_throttle(code)
    message = _withheld(operation, code, message)
    text = f"EFS {operation} failed: {code}: {message}"
    if throttled:
        text = f"EFS {operation} throttled after retries ({code}): {message}"
    if code == "AccessPointAlreadyExists":
        existing = str((details or {}).get("AccessPointId") or "") or None
        return AccessPointAlreadyExistsError(text, access_point_id=existing)
    return kind(text)


def _translate(operation: str, exc: Exception) -> tuple[errors.CsiError, str]:
    """(domain error, code for the observer) for any exception a botocore call raised."""
    if isinstance(exc, botocore.exceptions.ClientError):
        response: dict[str, Any] = exc.response or {}
        error = response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
        return error_for(operation, code, str(error.get("Message") or ""), status, response), code
    name = type(exc).__name__
    if isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        return errors.Unavailable(
            f"EFS {operation}: cannot reach the EFS API ({name}): {exc}"), name
    if isinstance(exc, botocore.exceptions.NoCredentialsError
                  | botocore.exceptions.PartialCredentialsError):
        return errors.PermissionDenied(f"EFS {operation}: no usable AWS credentials ({name})"), name
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return errors.InvalidArgument(f"EFS {operation}: invalid request: {exc}"), name
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return errors.FailedPrecondition(f"EFS {operation}: no AWS region configured "
                                         "(--region or AWS_REGION)"), name
    return errors.Internal(f"EFS {operation} failed ({name}): {exc}"), name


async def resolve_region(configured: str | None, *, metadata_disabled: bool = False,
                         metadata_url: str | None = None) -> str:
    """The region: ``configured`` (the flag or the environment, as the binary read them), else
    the instance metadata service's (the zone minus its letter) unless ``metadata_disabled``;
    FailedPrecondition if none."""
    if configured:
        return configured
    # The variable botocore's fetcher reads; it never sees the process environment.
    env = {"AWS_EC2_METADATA_DISABLED": "true" if metadata_disabled else "false"}
    options: dict[str, Any] = {"timeout": 2, "num_attempts": 2, "env": env}
    if metadata_url:
        options["base_url"] = metadata_url
    region = await AioInstanceMetadataRegionFetcher(**options).retrieve_region()
    if not region:
        raise errors.FailedPrecondition(
            "no AWS region: pass --region or set AWS_REGION (instance metadata did not answer)")
    return str(region)


#: Sent on every request instead of the string botocore rebuilds twice per request.
USER_AGENT = (f"efs-csi/{__version__} aiobotocore/{aiobotocore.__version__} "
              f"botocore/{botocore.__version__} Python/{platform.python_version()}")


def client_config(region: str | None, *, max_pool_connections: int) -> AioConfig:
    """One attempt per botocore call (``AwsCloud`` retries per API), a fixed User-Agent, no
    client-side parameter validation (see the module docstring)."""
    return AioConfig(
        region_name=region,
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max_pool_connections,
        connect_timeout=5,
        read_timeout=30,
        user_agent=USER_AGENT,
        parameter_validation=False,
    )


def retry_settings(*, adaptive_retry: bool, max_attempts: int) -> RetrySettings:
    """``--adaptive-retry-mode``: adaptive adds the per-API client-side rate limiter, which
    keeps retries from storming, so its backoff starts short (0.25 s); standard mode keeps the
    AWS SDKs' one second, its only spread against a rate limit."""
    return RetrySettings(max_attempts=max_attempts, adaptive=adaptive_retry,
                         base_delay=0.25 if adaptive_retry else 1.0)


class AwsCloud:
    """``efs_csi.cloud.Cloud`` over one aiobotocore EFS client; use as ``async with`` or
    ``open()``/``close()``."""

    def __init__(self, session: AioSession, config: AioConfig, *,
                 endpoint_url: str | None = None, observer: ApiObserver | None = None,
                 page_size: int = 1000, retries: RetrySettings | None = None,
                 draw: Callable[[], float] = random.random,
                 time_left: TimeLeft = no_deadline) -> None:
        self._session = session
        self._config = config
        self._endpoint_url = endpoint_url
        self._observer = observer
        self._page_size = page_size
        self._retries = RetryStates(retries or RetrySettings())
        self._draw = draw
        self._time_left = time_left
        self._stack = AsyncExitStack()
        self._client: Any = None

    @classmethod
    def create(cls, region: str | None, *, adaptive_retry: bool = True, max_attempts: int = 10,
               endpoint_url: str | None = None, observer: ApiObserver | None = None,
               page_size: int = 1000, max_pool_connections: int = 64,
               time_left: TimeLeft = no_deadline) -> AwsCloud:
        """A cloud with the default credentials chain (not opened yet)."""
        config = client_config(region, max_pool_connections=max_pool_connections)
        return cls(AioSession(), config, endpoint_url=endpoint_url, observer=observer,
                   page_size=page_size,
                   retries=retry_settings(adaptive_retry=adaptive_retry,
                                          max_attempts=max_attempts),
                   time_left=time_left)

    async def open(self) -> None:
        if self._client is None:
            tune_session(self._session)  # less work per call: efs_csi.adapters.botocore_tuning
            self._client = await self._stack.enter_async_context(
                self._session.create_client("efs", config=self._config,
                                            endpoint_url=self._endpoint_url))
            tune_client(self._client)

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()

    async def __aenter__(self) -> AwsCloud:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def retry_state(self, operation: str) -> ApiRetryState:
        """The retry state of one EFS API (``DescribeAccessPoints``, ...) of this client."""
        return self._retries[operation]

    def _endpoint(self) -> str:
        return str(getattr(getattr(self._client, "meta", None), "endpoint_url", "") or "")

    async def _call(self, operation: str, method: str, **arguments: Any) -> Any:
        """Run one API call with this API's retries, translated; every attempt is reported to
        the observer. Nothing waits past the caller's deadline (``time_left``): a call that
        cannot make its next attempt in time answers with its last failure at once."""
        if self._client is None:
            raise errors.Internal("AWS client used before open() or after close()")
        send = getattr(self._client, method)
        state = self._retries[operation]
        began = time.monotonic()
        quota_taken = 0
        attempt = 0
        failure: errors.CsiError | None = None  # the latest attempt's, once one has failed
        while True:
            attempt += 1
            await self._turn(operation, state, failure)
            budget = self._attempt_budget()
            if budget is not None and budget <= 0:
                raise self._gave_up(operation, failure or errors.DeadlineExceeded(
                    f"EFS {operation}: no time left before the caller's deadline"),
                    attempt - 1, began, deadline=True)
            started = time.monotonic()
            code: str | None = None
            state.sending()
            try:
                reply = await _within(budget, send(**arguments))
            except asyncio.CancelledError:
                code = "Cancelled"
                state.abandoned()
                raise
            except Exception as exc:  # every botocore failure is translated, nothing escapes raw
                domain, code = (transport_error(operation, exc, self._endpoint())
                                or _translate(operation, exc))
                outcome = outcome_of(exc)
                was_limited = state.limiter.engaged
                state.record(outcome, time.monotonic(), started)
                if state.limiter.engaged and not was_limited:
                    _log.warning("EFS API throttled: client-side rate limit engaged",
                                 operation=operation, rate_per_s=state.limiter.rate)
                cost = state.may_retry(outcome, attempt)
                if cost is None:
                    raise self._gave_up(operation, domain, attempt, began) from exc
                quota_taken += cost
                failure, retry_reason = domain, outcome.value
            else:
                state.record(Outcome.SUCCESS, time.monotonic())
                state.succeeded(quota_taken)
                return reply
            finally:
                if self._observer is not None:
                    self._observer.observe_call(operation, time.monotonic() - started, code)
            delay = backoff_delay(attempt, self._draw(), state.settings)
            if not self._time_for(delay):
                raise self._gave_up(operation, failure, attempt, began, deadline=True)
            if self._observer is not None:  # a retry that will be made
                self._observer.observe_retry(operation, retry_reason)
            await asyncio.sleep(delay)

    def _attempt_budget(self) -> float | None:
        """Seconds an attempt may take so that its answer still reaches the caller; None: the
        caller set no deadline."""
        left = self._time_left()
        return None if left is None else left - ANSWER_MARGIN

    def _time_for(self, pause: float) -> bool:
        """Whether the call can wait ``pause`` seconds and still make an attempt in time."""
        budget = self._attempt_budget()
        return budget is None or pause < budget

    async def _turn(self, operation: str, state: ApiRetryState,
                    failure: errors.CsiError | None) -> None:
        """Wait for this attempt's turn under the API's send limiter; the place in its queue is
        given back however the wait ends (sent, given up, out of time, cancelled)."""
        queued_at = time.monotonic()
        ticket = state.take_ticket(queued_at)
        try:
            while True:
                pause = state.wait(ticket, time.monotonic(), queued_at)
                if pause == 0:
                    return
                if pause is None or not self._time_for(pause):
                    limiter = state.limiter
                    why = ("its turn would come after the caller's deadline" if pause is not None
                           else "the calls queued for it exceed the rate EFS allows")
                    text = (f"EFS {operation} throttled: {why} (client-side rate limit "
                            f"{limiter.rate or 0:.1f} calls/s, {limiter.waiting} queued); retry "
                            "later")
                    if failure is not None:
                        text += f"; last answer: {failure.message}"
                    raise errors.Unavailable(text)
                await asyncio.sleep(pause)
        finally:
            state.leave(ticket)

    def _gave_up(self, operation: str, error: errors.CsiError, attempts: int, began: float,
                 *, deadline: bool = False) -> errors.CsiError:
        """``error``, saying how many attempts were made and, for an outage, logged (the log
        and the caller's answer, and so the PVC's events, name the same cause)."""
        if attempts > 1 or deadline:
            note = (f"after {attempts} attempt{'' if attempts == 1 else 's'} in "
                    f"{time.monotonic() - began:.1f} s")
            if deadline:
                note += ", stopped before the caller's deadline"
            error.message = f"{error.message} ({note})"
            error.args = (error.message,)
        if isinstance(error, errors.Unavailable | errors.DeadlineExceeded):
            _log.warning("EFS call failed", operation=operation, endpoint=self._endpoint(),
                         error=error.message)
        return error

    async def describe_file_system(self, file_system_id: str) -> FileSystem:
        reply = await self._call("DescribeFileSystems", "describe_file_systems",
                                 FileSystemId=file_system_id)
        found = reply.get("FileSystems") or []
        if not found:
            raise errors.NotFound(f"file system {file_system_id} not found")
        item = found[0]
        return FileSystem(file_system_id=item["FileSystemId"],
                          availability_zone_name=item.get("AvailabilityZoneName") or None,
                          life_cycle_state=item.get("LifeCycleState", "available"))

    async def access_points(self, file_system_id: str) -> AsyncIterator[AccessPoint]:
        token: str | None = None
        while True:
            args: dict[str, Any] = {"FileSystemId": file_system_id, "MaxResults": self._page_size}
            if token:
                args["NextToken"] = token
            reply = await self._call("DescribeAccessPoints", "describe_access_points", **args)
            for item in reply.get("AccessPoints") or []:
                yield access_point_from_api(item)
            token = reply.get("NextToken")
            if not token:
                return

    async def describe_access_point(self, access_point_id: str) -> AccessPoint:
        reply = await self._call("DescribeAccessPoints", "describe_access_points",
                                 AccessPointId=access_point_id)
        found = reply.get("AccessPoints") or []
        if not found:
            raise errors.NotFound(f"access point {access_point_id} not found")
        return access_point_from_api(found[0])

    async def create_access_point(self, request: AccessPointRequest) -> AccessPoint:
        reply = await self._call("CreateAccessPoint", "create_access_point",
                                 **access_point_arguments(request))
        return access_point_from_api(reply)

    async def delete_access_point(self, access_point_id: str) -> None:
        await self._call("DeleteAccessPoint", "delete_access_point",
                         AccessPointId=access_point_id)

    async def mount_targets(self, file_system_id: str) -> list[MountTarget]:
        targets: list[MountTarget] = []
        marker: str | None = None
        while True:
            args: dict[str, Any] = {"FileSystemId": file_system_id}
            if marker:
                args["Marker"] = marker
            reply = await self._call("DescribeMountTargets", "describe_mount_targets", **args)
            for item in reply.get("MountTargets") or []:
                targets.append(MountTarget(
                    mount_target_id=item["MountTargetId"], file_system_id=item["FileSystemId"],
                    ip_address=item.get("IpAddress", ""),
                    availability_zone_name=item.get("AvailabilityZoneName", ""),
                    life_cycle_state=item.get("LifeCycleState", "available")))
            marker = reply.get("NextMarker")
            if not marker:
                return targets


def access_point_arguments(request: AccessPointRequest) -> dict[str, Any]:
    """CreateAccessPoint parameters for a request (pure)."""
    posix: dict[str, Any] = {"Uid": request.posix_user.uid, "Gid": request.posix_user.gid}
    if request.posix_user.secondary_gids:
        posix["SecondaryGids"] = list(request.posix_user.secondary_gids)
    info = request.creation_info
    args: dict[str, Any] = {
        "ClientToken": request.client_token,
        "FileSystemId": request.file_system_id,
        "PosixUser": posix,
        "RootDirectory": {"Path": request.root_path,
                          "CreationInfo": {"OwnerUid": info.owner_uid, "OwnerGid": info.owner_gid,
                                           "Permissions": info.permissions}},
    }
    if request.tags:
        args["Tags"] = [{"Key": key, "Value": value} for key, value in request.tags.items()]
    return args


def access_point_from_api(item: Mapping[str, Any]) -> AccessPoint:
    """An AccessPoint from a CreateAccessPoint reply or a DescribeAccessPoints entry (pure)."""
    posix = item.get("PosixUser") or None
    root = item.get("RootDirectory") or {}
    info = root.get("CreationInfo") or None
    return AccessPoint(
        access_point_id=item["AccessPointId"],
        file_system_id=item.get("FileSystemId", ""),
        root_path=root.get("Path", "/"),
        posix_user=PosixUser(uid=int(posix["Uid"]), gid=int(posix["Gid"]),
                             secondary_gids=tuple(int(g) for g in posix.get("SecondaryGids") or ()))
        if posix else None,
        creation_info=CreationInfo(owner_uid=int(info["OwnerUid"]),
                                   owner_gid=int(info["OwnerGid"]),
                                   permissions=str(info["Permissions"])) if info else None,
        client_token=item.get("ClientToken") or "",
        tags={tag["Key"]: tag.get("Value", "") for tag in item.get("Tags") or ()},
        life_cycle_state=item.get("LifeCycleState", "available"),
    )


class CloudFactory:
    """The process's AWS session: the default cloud plus one cloud per assumed role.

    Assumed-role credentials are cached per (role ARN, external id); botocore refreshes them
    through STS ``refresh_margin`` seconds before they expire, so a role costs one STS call per
    credential lifetime, not one per request.
    """

    def __init__(self, region: str | None, *, adaptive_retry: bool = True,
                 max_attempts: int = 10, endpoint_url: str | None = None,
                 observer: ApiObserver | None = None, page_size: int = 1000,
                 max_pool_connections: int = 64, role_session_name: str = "efs-csi-controller",
                 role_duration_seconds: int = 3600, refresh_margin_seconds: int = 900,
                 time_left: TimeLeft = no_deadline) -> None:
        self._region = region
        self._time_left = time_left
        self._config = client_config(region, max_pool_connections=max_pool_connections)
        self._retry_settings = retry_settings(adaptive_retry=adaptive_retry,
                                              max_attempts=max_attempts)
        self._endpoint_url = endpoint_url
        self._observer = observer
        self._page_size = page_size
        self._role_session_name = role_session_name
        self._role_duration = role_duration_seconds
        self._refresh_margin = refresh_margin_seconds
        self._session = AioSession()
        self._stack = AsyncExitStack()
        self._default: AwsCloud | None = None
        self._sts: Any = None
        self._assumed: dict[tuple[str, str], AwsCloud] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._sts_lock = asyncio.Lock()

    async def open(self) -> None:
        if self._default is None:
            cloud = AwsCloud(self._session, self._config, endpoint_url=self._endpoint_url,
                             observer=self._observer, page_size=self._page_size,
                             retries=self._retry_settings, time_left=self._time_left)
            await cloud.open()
            self._stack.push_async_callback(cloud.close)
            self._default = cloud

    async def close(self) -> None:
        self._default = None
        self._sts = None
        self._assumed.clear()
        await self._stack.aclose()

    async def __aenter__(self) -> CloudFactory:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def default(self) -> AwsCloud:
        """The cloud of the controller's own credentials."""
        if self._default is None:
            raise errors.Internal("CloudFactory used before open()")
        return self._default

    async def cloud_for(self, role_arn: str | None, external_id: str | None = None) -> AwsCloud:
        """The cloud acting as ``role_arn`` (the default cloud when no role is given)."""
        if not role_arn:
            return self.default
        key = (role_arn, external_id or "")
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._assumed.get(key)
            if cached is not None:
                return cached
            refresh = self._refresher(role_arn, external_id)
            credentials = AioRefreshableCredentials.create_from_metadata(
                metadata=await refresh(), refresh_using=refresh, method="sts-assume-role",
                advisory_timeout=self._refresh_margin,
                mandatory_timeout=max(1, self._refresh_margin * 2 // 3))
            session = AioSession()
            # botocore has no public setter for refreshable credentials on a session.
            session._credentials = credentials
            cloud = AwsCloud(session, self._config, endpoint_url=self._endpoint_url,
                             observer=self._observer, page_size=self._page_size,
                             retries=self._retry_settings, time_left=self._time_left)
            await cloud.open()
            self._stack.push_async_callback(cloud.close)
            self._assumed[key] = cloud
            return cloud

    def _refresher(self, role_arn: str, external_id: str | None
                   ) -> Callable[[], Awaitable[dict[str, str]]]:
        async def assume() -> dict[str, str]:
            sts = await self._sts_client()
            args: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": self._role_session_name,
                                    "DurationSeconds": self._role_duration}
            if external_id:
                args["ExternalId"] = external_id
            started = time.monotonic()
            code: str | None = None
            try:
                reply = await sts.assume_role(**args)
            except Exception as exc:  # translated like every other AWS failure
                domain, code = _translate("AssumeRole", exc)
                # The role's ARN names the other account: the log has it, the CO gets an id.
                domain.message = _withheld("AssumeRole", code, domain.message,
                                           role_arn=role_arn)
                domain.args = (domain.message,)
                raise domain from exc
            finally:
                if self._observer is not None:
                    self._observer.observe_call("AssumeRole", time.monotonic() - started, code)
            creds = reply["Credentials"]
            expiry = creds["Expiration"]
            return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"],
                    "expiry_time": expiry.isoformat() if isinstance(expiry, datetime)
                    else str(expiry)}
        return assume

    async def _sts_client(self) -> Any:
        async with self._sts_lock:
            if self._sts is None:
                # STS is called once per credential lifetime: botocore's own retries do.
                config = self._config.merge(AioConfig(retries={"mode": "standard",
                                                               "total_max_attempts": 3}))
                self._sts = await self._stack.enter_async_context(
                    self._session.create_client("sts", config=config,
                                                endpoint_url=self._endpoint_url))
            return self._sts
