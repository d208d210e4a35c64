"""The per-RPC hook (efs_csi.rpc.hook.instrument), over grpclib's in-memory channel: what a
handler sees of its call (method, deadline), how its outcome reaches the client (the one error
mapping), the canonical log line and the observer, and what a call that ends early counts as.
(Draining and the count of calls: test_calls_in_flight.py. Unknown methods: test_unimplemented.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import structlog
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi, errors
from efs_csi.rpc.hook import CallsInFlight, current_method, instrument, seconds_left

SECRET = "hunter2-never-logged"
Behaviour = Callable[[csi.DeleteVolumeRequest], Awaitable[csi.DeleteVolumeResponse]]


async def answers(request: csi.DeleteVolumeRequest) -> csi.DeleteVolumeResponse:
    return csi.DeleteVolumeResponse()


class Scripted(csi.ControllerBase):
    """A controller whose DeleteVolume does what the test says, noting what it saw."""

    def __init__(self, behaviour: Behaviour = answers) -> None:
        self.behaviour = behaviour
        self.seen: list[tuple[str, float | None]] = []

    async def delete_volume(self, message: csi.DeleteVolumeRequest) -> csi.DeleteVolumeResponse:
        self.seen.append((current_method.get(), seconds_left()))
        return await self.behaviour(message)


@dataclass
class Codes:
    seen: list[tuple[str, Status]] = field(default_factory=list)

    def observe(self, method: str, code: Status, seconds: float) -> None:
        assert seconds >= 0
        self.seen.append((method, code))


def request(volume_id: str = "fs-12345678::fsap-0123456789abcdef0") -> csi.DeleteVolumeRequest:
    return csi.DeleteVolumeRequest(volume_id=volume_id, secrets={"password": SECRET})


async def status_of(call: Awaitable[object]) -> tuple[Status, str]:
    with pytest.raises(GRPCError) as caught:
        await call
    return caught.value.status, caught.value.message or ""


@pytest.mark.asyncio
async def test_a_handler_sees_its_method_and_its_deadline() -> None:
    service = Scripted()
    async with ChannelFor([instrument(service, CallsInFlight())]) as channel:
        stub = csi.ControllerStub(channel)
        await stub.delete_volume(request(), timeout=30)
        await stub.delete_volume(request())
    [(method, left), (_, unbounded)] = service.seen
    assert method == "DeleteVolume"
    assert left is not None and 25 < left <= 30
    assert unbounded is None  # the caller set no deadline
    assert current_method.get() == ""  # reset once the call is over


@pytest.mark.asyncio
@pytest.mark.parametrize(("raised", "status"), [
    (errors.NotFound("volume fs-1 is gone"), Status.NOT_FOUND),
    (errors.Aborted("an operation on volume x is already in progress"), Status.ABORTED),
    (GRPCError(Status.FAILED_PRECONDITION, "as raised"), Status.FAILED_PRECONDITION),
    (FileNotFoundError(2, "No such file or directory", "/var/lib/x"), Status.NOT_FOUND),
])
async def test_a_failure_reaches_the_client_through_the_one_mapping(
        raised: BaseException, status: Status) -> None:
    async def fails(_: csi.DeleteVolumeRequest) -> csi.DeleteVolumeResponse:
        raise raised

    codes = Codes()
    async with ChannelFor([instrument(Scripted(fails), CallsInFlight(), codes)]) as channel:
        got, message = await status_of(csi.ControllerStub(channel).delete_volume(request()))
    assert got == status and message == errors.to_grpc_error(raised).message
    assert codes.seen == [("DeleteVolume", status)]


@pytest.mark.asyncio
async def test_an_unexpected_failure_is_internal_without_its_details_and_logged_whole() -> None:
    async def breaks(_: csi.DeleteVolumeRequest) -> csi.DeleteVolumeResponse:
        raise RuntimeError(f"bug holding {SECRET}")

    with structlog.testing.capture_logs() as logs:
        async with ChannelFor([instrument(Scripted(breaks), CallsInFlight())]) as channel:
            status, message = await status_of(
                csi.ControllerStub(channel).delete_volume(request()))
    assert status == Status.INTERNAL and SECRET not in message and "bug" not in message
    [line] = [entry for entry in logs if entry["event"] == "rpc"]
    assert line["log_level"] == "error" and line["code"] == "INTERNAL"
    assert isinstance(line["exc_info"], RuntimeError)  # the operator's log keeps the cause


@pytest.mark.asyncio
async def test_one_log_line_per_call_names_the_volume_never_the_secrets() -> None:
    async def not_found(_: csi.DeleteVolumeRequest) -> csi.DeleteVolumeResponse:
        raise errors.NotFound("no such volume")

    long_id = "fs-12345678::" + "x" * 5000
    with structlog.testing.capture_logs() as logs:
        async with ChannelFor([instrument(Scripted(), CallsInFlight())]) as channel:
            await csi.ControllerStub(channel).delete_volume(request())
        async with ChannelFor([instrument(Scripted(not_found), CallsInFlight())]) as channel:
            await status_of(csi.ControllerStub(channel).delete_volume(request(long_id)))
    ok, failed = [entry for entry in logs if entry["event"] == "rpc"]
    assert (ok["method"], ok["code"], ok["log_level"]) == ("DeleteVolume", "OK", "info")
    assert ok["volume_id"] == "fs-12345678::fsap-0123456789abcdef0"
    assert ok["duration_s"] >= 0
    assert (failed["code"], failed["log_level"]) == ("NOT_FOUND", "warning")
    assert len(failed["volume_id"]) == 512  # hostile input is cut short
    assert SECRET not in repr(logs)


@pytest.mark.asyncio
async def test_a_call_past_its_deadline_counts_as_deadline_exceeded_one_given_up_as_cancelled(
) -> None:
    """grpclib cancels the handler both at the deadline and when the client goes away; what the
    log line and the metrics say must be what the client got."""
    started = asyncio.Event()

    async def hangs(_: csi.DeleteVolumeRequest) -> csi.DeleteVolumeResponse:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    codes = Codes()
    async with ChannelFor([instrument(Scripted(hangs), CallsInFlight(), codes)]) as channel:
        stub = csi.ControllerStub(channel)
        with pytest.raises((GRPCError, TimeoutError)):
            await stub.delete_volume(request(), timeout=0.3)
        started.clear()
        call = asyncio.ensure_future(stub.delete_volume(request(), timeout=30))
        await started.wait()
        call.cancel()  # the client goes away long before its deadline
        with pytest.raises(asyncio.CancelledError):
            await call
        while len(codes.seen) < 2:  # noqa: ASYNC110 - the server side finishes
            await asyncio.sleep(0.01)
    assert codes.seen == [("DeleteVolume", Status.DEADLINE_EXCEEDED),
                          ("DeleteVolume", Status.CANCELLED)]
