"""Huge input must get an answer, not a dropped connection (found by the property tests).

Error messages used to echo client input without a bound: a ~46 KB volume_id made a
grpc-message trailer of ~92 KB, more than the client's HTTP/2 header-list limit, and the
caller saw the connection dropped (StreamTerminatedError), taking every other call on that
connection with it. ``efs_csi.errors`` now cuts echoed values short and bounds every message.
"""

from __future__ import annotations

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from efs_csi import csi
from testbed.moto_server import MotoEndpoint
from testbed.processes import StartBinary
from tests.reliability.support import capability


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [46_044, 1_000_000])
async def test_huge_volume_id_is_answered_not_dropped(binary: StartBinary, moto: MotoEndpoint,
                                                      size: int) -> None:
    controller = await binary("controller", env=moto.environment())
    channel = controller.channel()
    try:
        request = csi.ValidateVolumeCapabilitiesRequest(
            volume_id="a" * size, volume_capabilities=[capability()])
        with pytest.raises(GRPCError) as raised:
            await csi.ControllerStub(channel).validate_volume_capabilities(request, timeout=30)
        assert raised.value.status is Status.NOT_FOUND
        assert len(raised.value.message or "") < 2048
        # The same connection still serves.
        probe = await csi.IdentityStub(channel).probe(csi.ProbeRequest(), timeout=10)
        assert probe.ready is True
    finally:
        channel.close()
