"""The calls in flight (efs_csi.rpc.hook.CallsInFlight), as the hook keeps them: counted while
they run, so shutdown can wait for them, and refused while the server drains (the drain itself,
on a real process with SIGTERM: tests/integration/test_server_lifecycle.py)."""

from __future__ import annotations

import asyncio

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.rpc.hook import CallsInFlight, instrument


class Gated(csi.ControllerBase):
    """DeleteVolume waits until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.calls = 0

    async def delete_volume(self, message: csi.DeleteVolumeRequest) -> csi.DeleteVolumeResponse:
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        return csi.DeleteVolumeResponse()


@pytest.mark.asyncio
async def test_a_running_call_is_counted_until_it_answers() -> None:
    service, calls = Gated(), CallsInFlight()
    async with ChannelFor([instrument(service, calls)]) as channel:
        stub = csi.ControllerStub(channel)
        assert calls.count == 0
        await calls.wait_idle()  # idle at once
        call = asyncio.ensure_future(stub.delete_volume(csi.DeleteVolumeRequest(volume_id="v")))
        await service.entered.wait()
        assert calls.count == 1
        idle = asyncio.ensure_future(calls.wait_idle())
        await asyncio.sleep(0)
        assert not idle.done()  # shutdown would wait for the call
        service.gate.set()
        await call
        await asyncio.wait_for(idle, 5)
    assert calls.count == 0


@pytest.mark.asyncio
async def test_while_draining_a_new_call_is_unavailable_and_never_runs() -> None:
    service, calls = Gated(), CallsInFlight()
    service.gate.set()
    calls.draining = True
    async with ChannelFor([instrument(service, calls)]) as channel:
        with pytest.raises(GRPCError) as caught:
            await csi.ControllerStub(channel).delete_volume(csi.DeleteVolumeRequest(volume_id="v"))
    assert caught.value.status == Status.UNAVAILABLE
    assert "shutting down" in (caught.value.message or "")
    assert service.calls == 0 and calls.count == 0
