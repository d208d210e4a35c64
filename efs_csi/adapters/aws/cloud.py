"""``AwsCloud``: the ``efs_csi.cloud.Cloud`` port over ONE long-lived aiobotocore EFS client
(opened and closed by its owner, ``efs_csi.adapters.aws.roles.CloudFactory``, or by the node).

Retries: botocore's own are off (one attempt per botocore call, ``client``). ``AwsCloud._call``
retries with the per-API state of ``efs_csi.adapters.retries`` (a retry budget per API,
full-jitter backoff, and in adaptive mode a send rate that engages only when throttles
dominate), so a throttled API never slows the others down. A cancelled call stops at once: its
only waits are plain ``asyncio.sleep`` calls in the caller's own task, and it gives back its
place in the send limiter's queue. Given the caller's deadline (``time_left``), no wait and no
attempt runs past it: ``ANSWER_MARGIN`` before it, the call answers with its last failure (for
an endpoint that cannot be reached: UNAVAILABLE naming the endpoint and the operating system's
reason, logged alike), never a bare DEADLINE_EXCEEDED.

Every botocore failure leaves as an ``efs_csi.errors`` exception, translated by
``efs_csi.adapters.aws.errors``; the observer is told every attempt, and whether AWS throttled
it, in that module's one vocabulary.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession

from efs_csi import errors
from efs_csi.adapters.aws.client import client_config, new_client, retry_settings
from efs_csi.adapters.aws.errors import (
    AttemptTimedOut,
    Failure,
    is_throttle,
    outcome_of,
    translate,
    transport_failure,
)
from efs_csi.adapters.aws.tuning import tune_client, tune_session
from efs_csi.adapters.retries import (
    ApiRetryState,
    Outcome,
    RetrySettings,
    RetryStates,
    backoff_delay,
)
from efs_csi.cloud import (
    AccessPoint,
    AccessPointRequest,
    ApiObserver,
    CreationInfo,
    FileSystem,
    MountTarget,
    PosixUser,
)
from efs_csi.logging import get_logger

_log = get_logger("efs_csi.adapters.aws")


#: A call stops this long before its caller's deadline, so that its answer (UNAVAILABLE naming
#: the cause) still reaches the caller, rather than the caller's own DEADLINE_EXCEEDED.
ANSWER_MARGIN = 0.5

#: Seconds until the current caller's deadline, or None when it set none (the controller
#: passes ``efs_csi.rpc.hook.seconds_left``).
TimeLeft = Callable[[], float | None]


def no_deadline() -> float | None:
    return None


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
            tune_session(self._session)  # less work per call: efs_csi.adapters.aws.tuning
            self._client = await new_client(self._stack, self._session, "efs", self._config,
                                            self._endpoint_url)
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
        failure: Failure | None = None  # the latest attempt's, once one has failed
        while True:
            attempt += 1
            await self._turn(operation, state, failure)
            budget = self._attempt_budget()
            if budget is not None and budget <= 0:
                raise self._gave_up(operation, failure or Failure(
                    errors.DeadlineExceeded,
                    f"EFS {operation}: no time left before the caller's deadline", "Deadline"),
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
                answer = (transport_failure(operation, exc, self._endpoint())
                          or translate(operation, exc))
                code = answer.code
                outcome = outcome_of(exc)
                was_limited = state.limiter.engaged
                state.record(outcome, time.monotonic(), started)
                if state.limiter.engaged and not was_limited:
                    _log.warning("EFS API throttled: client-side rate limit engaged",
                                 operation=operation, rate_per_s=state.limiter.rate)
                cost = state.may_retry(outcome, attempt)
                if cost is None:
                    raise self._gave_up(operation, answer, attempt, began) from exc
                quota_taken += cost
                failure, retry_reason = answer, outcome.value
            else:
                state.record(Outcome.SUCCESS, time.monotonic())
                state.succeeded(quota_taken)
                return reply
            finally:
                self._observe(operation, time.monotonic() - started, code)
            delay = backoff_delay(attempt, self._draw(), state.settings)
            if not self._time_for(delay):
                raise self._gave_up(operation, failure, attempt, began, deadline=True)
            if self._observer is not None:  # a retry that will be made
                self._observer.observe_retry(operation, retry_reason)
            await asyncio.sleep(delay)

    def _observe(self, operation: str, seconds: float, code: str | None) -> None:
        if self._observer is not None:
            self._observer.observe_call(operation, seconds, code, throttled=is_throttle(code))

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
                    failure: Failure | None) -> None:
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

    def _gave_up(self, operation: str, failure: Failure, attempts: int, began: float,
                 *, deadline: bool = False) -> errors.CsiError:
        """The exception for ``failure``, saying how many attempts were made and, for an
        outage, logged (the log and the caller's answer, and so the PVC's events, name the same
        cause)."""
        note = ""
        if attempts > 1 or deadline:
            note = (f"after {attempts} attempt{'' if attempts == 1 else 's'} in "
                    f"{time.monotonic() - began:.1f} s")
            if deadline:
                note += ", stopped before the caller's deadline"
        error = failure.exception(note)
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
            token = reply.get("NextToken")
            for item in reply.get("AccessPoints") or []:
                yield access_point_from_api(item)
            # Let this page's parsed reply go before the next is parsed: one page of 1,000
            # parsed access points alive at a time, not two (issue 22: the controller's RSS
            # with 10,000 access points, docs/performance.md).
            reply = item = None
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
