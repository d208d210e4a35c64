"""What a failed AWS call means for the driver: the error table, the one vocabulary of throttle
codes, and the translation of every botocore failure into an ``efs_csi.errors`` exception.

Pure but for botocore's exception classes, which it only tests against: the cloud
(``efs_csi.adapters.aws.cloud``) and the assumed roles (``roles``) call it; callers of the
``Cloud`` port never see a ClientError.

A failure is first a ``Failure`` (its kind, its text, the code the observer is told), and
becomes an exception once, when the caller gives up, with everything it must say (how many
attempts, the deadline): no exception is changed after it is built.

Texts reach PVC events that tenants read: ARNs and account numbers in AWS's messages are
withheld (``withheld``), the full text logged under a correlation id the answer carries.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from efs_csi import errors
from efs_csi.adapters.retries import Outcome
from efs_csi.cloud import AccessPointAlreadyExistsError
from efs_csi.logging import get_logger

_log = get_logger("efs_csi.adapters.aws")

#: AWS error code -> domain error. Codes not listed fall back to the rules in ``failure_for``:
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
    "AccessPointLimitExceeded": errors.AccessPointLimitReached,
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

#: The one vocabulary of "slow down" answers: these codes, and any code starting with
#: ``Throttling`` (``is_throttle``). The retry policy, the error texts and the metrics
#: (through the observer's ``throttled``) all ask ``is_throttle``.
THROTTLE_CODES = frozenset({"Throttling", "ThrottlingException", "ThrottledException",
                            "TooManyRequestsException", "RequestLimitExceeded"})
#: Answers worth another attempt besides throttles and 5xx (the AWS SDKs' transient errors).
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException",
                             "PriorRequestNotComplete", "InternalServerError",
                             "ServiceUnavailable", "ServiceUnavailableException"})


def is_throttle(code: str | None) -> bool:
    """Whether an AWS error code means "slow down" (see ``THROTTLE_CODES``)."""
    return code is not None and (code in THROTTLE_CODES or code.startswith("Throttling"))


class AttemptTimedOut(Exception):
    """An attempt got no answer within the time left before the caller's deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:.1f} s")
        self.seconds = seconds


@dataclass(frozen=True)
class Failure:
    """What one failed call means, before it is raised: the domain error's ``kind`` and
    ``message``, the ``code`` the observer is told, and the access point EFS named in an
    AccessPointAlreadyExists. ``exception`` builds the one exception, with a last ``note``."""

    kind: type[errors.CsiError]
    message: str
    code: str
    access_point_id: str | None = None

    def exception(self, note: str = "") -> errors.CsiError:
        text = f"{self.message} ({note})" if note else self.message
        if issubclass(self.kind, AccessPointAlreadyExistsError):
            return self.kind(text, access_point_id=self.access_point_id)
        return self.kind(text)


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


def transport_failure(operation: str, exc: Exception, endpoint: str) -> Failure | None:
    """The failure when ``exc`` is a transport failure (no answer from the EFS API), naming
    the endpoint and the operating system's reason; None otherwise."""
    where = f"the EFS API at {endpoint}" if endpoint else "the EFS API"
    if isinstance(exc, AttemptTimedOut):
        return Failure(errors.Unavailable,
                       f"EFS {operation}: no answer from {where} within the {exc.seconds:.1f} s "
                       "left before the caller's deadline", "NoAnswerInTime")
    if not isinstance(exc, botocore.exceptions.ConnectionError
                      | botocore.exceptions.HTTPClientError):
        return None
    name = type(exc).__name__
    cause = os_cause(exc) or str(exc)
    return Failure(errors.Unavailable, f"EFS {operation}: cannot reach {where}: {cause} ({name})",
                   name)


def transport_error(operation: str, exc: Exception,
                    endpoint: str) -> tuple[errors.CsiError, str] | None:
    """``transport_failure`` raised as it would be: (domain error, code for the observer)."""
    failure = transport_failure(operation, exc, endpoint)
    return None if failure is None else (failure.exception(), failure.code)


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
        if code in TRANSIENT_CODES or status >= 500:
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


def withheld(operation: str, code: str, message: str, **context: str) -> str:
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


def _kind_of(code: str, http_status: int) -> type[errors.CsiError]:
    kind = ERROR_TABLE.get(code)
    if kind is not None:
        return kind
    if code.startswith("AccessDenied"):
        return errors.PermissionDenied
    if is_throttle(code):
        return errors.Unavailable
    if code.endswith("LimitExceeded"):
        return errors.ResourceExhausted
    if http_status >= 500:
        return errors.Unavailable
    return errors.Internal


def failure_for(operation: str, code: str, message: str, http_status: int = 400,
                details: Mapping[str, Any] | None = None, **context: str) -> Failure:
    """What an AWS error ``code`` returned by ``operation`` means; ``context`` (an assumed
    role's ARN, say) is logged, never shown (see ``withheld``)."""
    kind = _kind_of(code, http_status)
    message = withheld(operation, code, message, **context)
    text = f"EFS {operation} failed: {code}: {message}"
    if is_throttle(code):
        text = f"EFS {operation} throttled after retries ({code}): {message}"
    if code == "AccessPointAlreadyExists":
        existing = str((details or {}).get("AccessPointId") or "") or None
        return Failure(AccessPointAlreadyExistsError, text, code, existing)
    return Failure(kind, text, code)


def error_for(operation: str, code: str, message: str, http_status: int = 400,
              details: Mapping[str, Any] | None = None) -> errors.CsiError:
    """The domain error for an AWS error ``code`` returned by ``operation``."""
    return failure_for(operation, code, message, http_status, details).exception()


def translate(operation: str, exc: Exception, **context: str) -> Failure:
    """What any exception a botocore call raised means; ``context`` as in ``failure_for``."""
    if isinstance(exc, botocore.exceptions.ClientError):
        response: dict[str, Any] = exc.response or {}
        error = response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
        return failure_for(operation, code, str(error.get("Message") or ""), status, response,
                           **context)
    name = type(exc).__name__
    if isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        kind: type[errors.CsiError] = errors.Unavailable
        text = f"EFS {operation}: cannot reach the EFS API ({name}): {exc}"
    elif isinstance(exc, botocore.exceptions.NoCredentialsError
                    | botocore.exceptions.PartialCredentialsError):
        kind, text = errors.PermissionDenied, f"EFS {operation}: no usable AWS credentials ({name})"
    elif isinstance(exc, botocore.exceptions.ParamValidationError):
        kind, text = errors.InvalidArgument, f"EFS {operation}: invalid request: {exc}"
    elif isinstance(exc, botocore.exceptions.NoRegionError):
        kind, text = errors.FailedPrecondition, (f"EFS {operation}: no AWS region configured "
                                                 "(--region or AWS_REGION)")
    else:
        kind, text = errors.Internal, f"EFS {operation} failed ({name}): {exc}"
    if context:  # not an AWS answer, but the context is still the log's alone
        text = withheld(operation, name, text, **context)
    return Failure(kind, text, name)
