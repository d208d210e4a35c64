"""Domain errors, and the one place that maps any exception to a gRPC status.

Use cases raise these; only ``to_grpc_error`` (called by ``efs_csi.rpc.hook``) turns them into
what the caller sees. An operating-system error (a path too long, a file where a directory
should be, no permission, ...) is answered by its errno (``from_os_error``) with its message
and the path it names. Everything else unexpected becomes INTERNAL with the exception's type
name, never a traceback to the caller.

What the caller sees becomes PVC events that tenants read, so it never names the AWS account:
ARNs that carry an account number (a role, an assumed-role session, a file system's ARN) are
replaced by ``<arn withheld>`` here, whatever raised the error. The AWS adapter withholds them
(and bare account numbers) earlier, logging the full text under a correlation id that it puts
in the message (``efs_csi.adapters.aws.errors``), so an operator can still find it.

The driver's exceptions (what the caller sees in brackets; nothing is changed once built):

* CsiError ............................................ [its ``status``; INTERNAL here]
  + InvalidArgument ................................... [INVALID_ARGUMENT]
  + NotFound .......................................... [NOT_FOUND]
  + AlreadyExists ..................................... [ALREADY_EXISTS]
  |   + AccessPointAlreadyExistsError  (efs_csi.cloud: the client token is taken)
  + Aborted ........................................... [ABORTED: retry later]
  |   + KubeConflict  (efs_csi.kube: a 409 from the Kubernetes API)
  + ResourceExhausted ................................. [RESOURCE_EXHAUSTED]
  |   + AccessPointLimitReached  (the file system holds as many access points as it may)
  + FailedPrecondition ................................ [FAILED_PRECONDITION]
  + PermissionDenied .................................. [PERMISSION_DENIED]
  + Unavailable ....................................... [UNAVAILABLE]
  + DeadlineExceeded .................................. [DEADLINE_EXCEEDED]
  |   + CommandTimedOut  (efs_csi.mounting.commands: mount/umount out of time)
  + Unimplemented ..................................... [UNIMPLEMENTED]
  + Internal .......................................... [INTERNAL]
      + CommandFailed  (efs_csi.mounting.commands: mount/umount exited non-zero)
      + LocalMountFailed  (efs_csi.mounting.local)
* OSError ............................ [by its errno: ``OS_ERRORS``, else INTERNAL]
* TimeoutError ....................... [DEADLINE_EXCEEDED]
  + StillHung  (efs_csi.mounting: a blocking call that outlived its time, still running)
* anything else ...................... [INTERNAL naming its type, never a traceback]

Raised and caught inside one module, never answered: ``AttemptTimedOut`` (the AWS adapter:
an attempt out of time, translated by ``efs_csi.adapters.aws.errors``), ``EndpointUnusable``
(``efs_csi.rpc.server``: a usage error at start-up), and the node's own (``ConfigError``,
``WalkCancelled``, ``StartupHelperFailed``).
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
from typing import ClassVar

from grpclib.const import Status
from grpclib.exceptions import GRPCError


class CsiError(Exception):
    """An error with a gRPC status; ``message`` is shown to the caller as-is."""

    status: ClassVar[Status] = Status.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(CsiError):
    status = Status.INVALID_ARGUMENT


class NotFound(CsiError):
    status = Status.NOT_FOUND


class AlreadyExists(CsiError):
    status = Status.ALREADY_EXISTS


class Aborted(CsiError):
    """Another operation on the same object is in flight; the caller retries."""

    status = Status.ABORTED


class ResourceExhausted(CsiError):
    status = Status.RESOURCE_EXHAUSTED


class AccessPointLimitReached(ResourceExhausted):
    """No slot for another access point on the file system (EFS's quota, or the controller's
    ``--access-point-limit`` by what it knows): freeing one of ours makes room."""


class FailedPrecondition(CsiError):
    status = Status.FAILED_PRECONDITION


class PermissionDenied(CsiError):
    status = Status.PERMISSION_DENIED


class Unavailable(CsiError):
    status = Status.UNAVAILABLE


class DeadlineExceeded(CsiError):
    status = Status.DEADLINE_EXCEEDED


class Unimplemented(CsiError):
    status = Status.UNIMPLEMENTED


class Internal(CsiError):
    status = Status.INTERNAL


# grpc-message travels in an HTTP/2 trailer; a client drops the whole connection when the
# header list is too large, so no message may echo unbounded client input.
MAX_MESSAGE_CHARS = 1024
_SHOWN_CHARS = 120


def shown(value: str) -> str:
    """``repr(value)`` fit for an error message: long client input is cut short."""
    if len(value) <= _SHOWN_CHARS:
        return repr(value)
    return f"{value[:_SHOWN_CHARS]!r}... ({len(value)} characters)"


#: An ARN naming an account: arn:<partition>:<service>:<region>:<12-digit account>:<resource>.
_ACCOUNT_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]*:[a-z0-9-]*:\d{12}:[^\s'\"(),;]*")
#: A bare AWS account number (not part of a longer number).
_ACCOUNT_NUMBER = re.compile(r"(?<![\d.])\d{12}(?![\d.])")
WITHHELD = "<arn withheld>"


def without_account_details(text: str, *, account_numbers: bool = False) -> str:
    """``text`` with account-bearing ARNs withheld and, with ``account_numbers``, bare
    12-digit account numbers too (only for AWS's own texts: a 12-digit capacity in bytes is
    not an account)."""
    text = _ACCOUNT_ARN.sub(WITHHELD, text)
    if account_numbers:
        text = _ACCOUNT_NUMBER.sub("<account withheld>", text)
    return text


def _bounded(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + f"... ({len(message)} characters)"


def missing(field: str) -> InvalidArgument:
    """The error for an absent REQUIRED field (proto3 cannot express required)."""
    return InvalidArgument(f"{field} is required")


#: errno -> domain error, for OSErrors that reach the mapping (a path the caller named, a
#: directory the node made, ...). Not listed: INTERNAL, still with message and path.
OS_ERRORS: dict[int, type[CsiError]] = {
    errno.ENAMETOOLONG: InvalidArgument,
    errno.EINVAL: InvalidArgument,
    errno.ELOOP: InvalidArgument,
    errno.ENOENT: NotFound,
    errno.ENOTDIR: FailedPrecondition,
    errno.EISDIR: FailedPrecondition,
    errno.EEXIST: FailedPrecondition,
    errno.ENOTEMPTY: FailedPrecondition,
    errno.EBUSY: FailedPrecondition,
    errno.EROFS: FailedPrecondition,
    errno.EACCES: PermissionDenied,
    errno.EPERM: PermissionDenied,
    errno.ENOSPC: ResourceExhausted,
    errno.EDQUOT: ResourceExhausted,
    errno.EMFILE: ResourceExhausted,
    errno.ENFILE: ResourceExhausted,
    errno.ENOMEM: ResourceExhausted,
    errno.EIO: Unavailable,
    errno.ESTALE: Unavailable,
    errno.ENOTCONN: Unavailable,
    errno.EHOSTDOWN: Unavailable,
}


def from_os_error(exc: OSError) -> CsiError:
    """The domain error for an OSError: its errno decides the status; the message says what
    happened and names the path(s) involved."""
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else type(exc).__name__)
    names = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    text = f"{reason}: {' -> '.join(shown(name) for name in names)}" if names else reason
    kind = OS_ERRORS.get(exc.errno or 0, Internal)
    return kind(text)


def to_grpc_error(exc: BaseException) -> GRPCError:
    """Map any exception raised by a handler to the GRPCError the caller receives."""
    if isinstance(exc, GRPCError):
        return GRPCError(exc.status, _bounded(without_account_details(exc.message or "")),
                         exc.details)
    if isinstance(exc, CsiError):
        return GRPCError(exc.status, _bounded(without_account_details(exc.message)))
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return GRPCError(Status.DEADLINE_EXCEEDED, "operation timed out")
    if isinstance(exc, OSError):
        return to_grpc_error(from_os_error(exc))
    return GRPCError(Status.INTERNAL, f"internal error ({type(exc).__name__})")
