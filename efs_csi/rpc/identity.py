"""The CSI Identity service, shared by both binaries."""

from __future__ import annotations

from collections.abc import Sequence

from efs_csi import __version__, csi
from efs_csi.contract import PLUGIN_NAME

PluginCapabilityType = csi.PluginCapabilityServiceType


class Readiness:
    """False until the process has finished starting; Probe reports it."""

    def __init__(self) -> None:
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def set_ready(self) -> None:
        self._ready = True


class IdentityService(csi.IdentityBase):
    def __init__(self, readiness: Readiness, *, controller: bool) -> None:
        self._readiness = readiness
        services: Sequence[PluginCapabilityType] = (
            [PluginCapabilityType.CONTROLLER_SERVICE] if controller else []
        )
        self._capabilities = [
            csi.PluginCapability(service=csi.PluginCapabilityService(type=kind))
            for kind in (*services, PluginCapabilityType.VOLUME_ACCESSIBILITY_CONSTRAINTS)
        ]

    async def get_plugin_info(
        self, message: csi.GetPluginInfoRequest
    ) -> csi.GetPluginInfoResponse:
        return csi.GetPluginInfoResponse(name=PLUGIN_NAME, vendor_version=__version__)

    async def get_plugin_capabilities(
        self, message: csi.GetPluginCapabilitiesRequest
    ) -> csi.GetPluginCapabilitiesResponse:
        return csi.GetPluginCapabilitiesResponse(capabilities=list(self._capabilities))

    async def probe(self, message: csi.ProbeRequest) -> csi.ProbeResponse:
        # ``ready`` is a BoolValue: always set it explicitly, false included.
        return csi.ProbeResponse(ready=self._readiness.ready)
