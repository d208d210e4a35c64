import pytest
from grpclib.testing import ChannelFor

from efs_csi import __version__, csi
from efs_csi.contract import PLUGIN_NAME
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi.rpc.identity import IdentityService, Readiness

Cap = csi.PluginCapabilityServiceType


async def call_all(service: IdentityService) -> tuple[csi.GetPluginInfoResponse,
                                                       list[Cap], csi.ProbeResponse]:
    async with ChannelFor([instrument(service, CallsInFlight())]) as channel:
        stub = csi.IdentityStub(channel)
        info = await stub.get_plugin_info(csi.GetPluginInfoRequest())
        caps = await stub.get_plugin_capabilities(csi.GetPluginCapabilitiesRequest())
        probe = await stub.probe(csi.ProbeRequest())
    kinds = [c.service.type for c in caps.capabilities if c.service is not None]
    return info, kinds, probe


@pytest.mark.asyncio
async def test_controller_identity() -> None:
    readiness = Readiness()
    info, kinds, probe = await call_all(IdentityService(readiness, controller=True))
    assert (info.name, info.vendor_version) == (PLUGIN_NAME, __version__)
    assert kinds == [Cap.CONTROLLER_SERVICE, Cap.VOLUME_ACCESSIBILITY_CONSTRAINTS]
    # Not ready yet, and the false is sent explicitly (a BoolValue, not an absent field).
    assert probe.ready is False


@pytest.mark.asyncio
async def test_node_identity_turns_ready() -> None:
    readiness = Readiness()
    readiness.set_ready()
    _, kinds, probe = await call_all(IdentityService(readiness, controller=False))
    assert kinds == [Cap.VOLUME_ACCESSIBILITY_CONSTRAINTS]
    assert probe.ready is True
