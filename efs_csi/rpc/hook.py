"""The per-RPC hook every CSI call goes through.

``instrument`` wraps a betterproto2 service so that each call:
- receives its request, and binds the method name and the call's deadline (``current_deadline``)
  into context variables the use cases can read;
- answers UNAVAILABLE while the server drains for shutdown (``CallsInFlight.draining``);
- maps any exception through ``efs_csi.errors.to_grpc_error`` (the one mapping);
- writes one canonical log line: method, duration, status code, plus the request's volume id
  when it has one, never its secrets;
- reports (method, code, seconds) to an optional observer (Prometheus lives behind it).

Unknown methods and services are answered by ``unimplemented_fallback`` (see its docstring).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import betterproto2
import grpclib.const
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.metadata import Deadline
from grpclib.server import Stream

from efs_csi.csi import GetPluginInfoRequest
from efs_csi.errors import to_grpc_error
from efs_csi.logging import get_logger, redacted_fields

current_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "current_deadline", default=None
)
current_method: contextvars.ContextVar[str] = contextvars.ContextVar("current_method", default="")

_log = get_logger("efs_csi.rpc")

# grpclib cancels a handler both when its deadline passes and when the client resets the
# stream; a client resets it at its own deadline, which may reach us a little before ours
# (our deadline is counted from when the request arrived). Within this margin of the
# deadline a cancellation counts as the deadline passing.
_DEADLINE_MARGIN = 0.25

# Request fields worth a place on the canonical line: they identify the object acted upon.
_IDENTIFYING_FIELDS = ("name", "volume_id", "target_path", "staging_target_path")
_LOGGED_CHARS = 512


class RpcObserver(Protocol):
    def observe(self, method: str, code: Status, seconds: float) -> None: ...


class ServiceBase(Protocol):
    def __mapping__(self) -> dict[str, grpclib.const.Handler]: ...


@dataclass
class CallsInFlight:
    """The CSI calls in flight, counted so shutdown can wait for them; new ones are refused
    while draining.

    One of three guards named for what they hold: ``CallsInFlight`` (this process's calls),
    ``efs_csi_controller.inflight.KeysInFlight`` (the volumes the controller is working on; a
    second call on one is refused) and ``efs_csi_node.locks.KeyLocksInFlight`` (a lock per
    volume or path on the node; a second call waits its turn)."""

    draining: bool = False
    _count: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    def enter(self) -> None:
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    async def wait_idle(self) -> None:
        await self._idle.wait()


def _cancel_code(deadline: Deadline | None) -> Status:
    """What a cancelled call is: DEADLINE_EXCEEDED (what grpclib answers, and what the client
    sees) when its deadline has passed, else CANCELLED (the client went away)."""
    if deadline is not None and deadline.time_remaining() <= _DEADLINE_MARGIN:
        return Status.DEADLINE_EXCEEDED
    return Status.CANCELLED


def seconds_left() -> float | None:
    """Seconds until the current RPC's deadline, or None when the caller set none."""
    deadline = current_deadline.get()
    return None if deadline is None else deadline.time_remaining()


def _method_short_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _handler_attribute(handler: grpclib.const.Handler) -> str:
    # betterproto2 names its stream adapters ``__rpc_<snake_name>``; the typed method is
    # ``<snake_name>`` on the same object.
    func: Any = handler.func
    return str(func.__name__).split("__rpc_", 1)[1]


def _log_fields(request: betterproto2.Message | None) -> dict[str, Any]:
    if request is None:
        return {}
    present = {name: getattr(request, name, "") for name in _IDENTIFYING_FIELDS}
    # Cut short: a log line is no place for a megabyte of hostile input.
    return redacted_fields({k: v[:_LOGGED_CHARS] for k, v in present.items() if v})


def _wrap(
    path: str,
    typed_method: Callable[[Any], Awaitable[Any]],
    in_flight: CallsInFlight,
    observer: RpcObserver | None,
) -> Callable[[Stream[Any, Any]], Awaitable[None]]:
    method = _method_short_name(path)

    async def handle(stream: Stream[Any, Any]) -> None:
        started = time.monotonic()
        code = Status.OK
        request: betterproto2.Message | None = None
        failure: BaseException | None = None
        method_token = current_method.set(method)
        deadline_token = current_deadline.set(stream.deadline)
        in_flight.enter()
        try:
            if in_flight.draining:
                raise GRPCError(Status.UNAVAILABLE, "server is shutting down")
            request = await stream.recv_message()
            response = await typed_method(request)
            await stream.send_message(response)
        except asyncio.CancelledError:
            code = _cancel_code(stream.deadline)
            raise
        except Exception as exc:
            error = to_grpc_error(exc)
            code = error.status
            if not isinstance(exc, GRPCError) and code == Status.INTERNAL:
                failure = exc
            raise error from None
        finally:
            in_flight.leave()
            current_method.reset(method_token)
            current_deadline.reset(deadline_token)
            seconds = time.monotonic() - started
            if observer is not None:
                observer.observe(method, code, seconds)
            fields = _log_fields(request)
            if request is not None and logging.getLogger("efs_csi.rpc").isEnabledFor(logging.DEBUG):
                fields["request"] = redacted_fields(request.to_dict())
            level = "info" if code in (Status.OK, Status.CANCELLED) else "warning"
            if failure is not None:
                _log.error("rpc", method=method, code=code.name, duration_s=round(seconds, 6),
                           exc_info=failure, **fields)
            else:
                getattr(_log, level)("rpc", method=method, code=code.name,
                                     duration_s=round(seconds, 6), **fields)

    return handle


class _Instrumented:
    def __init__(self, mapping: dict[str, grpclib.const.Handler]) -> None:
        self._mapping = mapping

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return self._mapping


def instrument(
    service: ServiceBase, in_flight: CallsInFlight, observer: RpcObserver | None = None
) -> _Instrumented:
    """Wrap every method of a generated service with the per-RPC hook."""
    mapping: dict[str, grpclib.const.Handler] = {}
    for path, handler in service.__mapping__().items():
        typed = getattr(service, _handler_attribute(handler))
        mapping[path] = grpclib.const.Handler(
            _wrap(path, typed, in_flight, observer),
            handler.cardinality,
            handler.request_type,
            handler.reply_type,
        )
    return _Instrumented(mapping)


async def _unimplemented(stream: Stream[Any, Any]) -> None:
    raise GRPCError(Status.UNIMPLEMENTED, "method not implemented by this plugin")


class _UnimplementedFallback(dict[str, grpclib.const.Handler]):
    """A method table that answers every unknown path with a proper UNIMPLEMENTED.

    grpclib 0.4.9 rejects unknown methods from ``request_handler`` through its private
    ``_abort``, which sends no ``content-type`` header; grpc-go clients (kubelet, csi-sanity)
    then report ``Unknown: missing content-type`` instead of ``Unimplemented``. Resolving the
    unknown path to a real handler lets grpclib's normal stream machinery send a well-formed
    trailers-only response instead.
    """

    _fallback = grpclib.const.Handler(
        _unimplemented, grpclib.const.Cardinality.UNARY_UNARY,
        GetPluginInfoRequest, GetPluginInfoRequest,
    )

    def get(self, key: str, default: Any = None) -> grpclib.const.Handler:
        return super().get(key) or self._fallback


def unimplemented_fallback(mapping: Mapping[str, grpclib.const.Handler]) -> dict[
    str, grpclib.const.Handler
]:
    return _UnimplementedFallback(mapping)
