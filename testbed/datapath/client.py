"""kubelet's side of the data path: CSI node calls over the node's socket, at the paths kubelet
uses under its root directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grpclib.client import Channel

from efs_csi import csi
from testbed.csi_builders import publish_request, stage_request

DRIVER = "efs.csi.aws.com"


@dataclass(frozen=True)
class Volume:
    """One volume as kubelet handles it: its handle, context and mount flags, and the two
    paths (the staging path per volume, the target per pod)."""

    name: str
    volume_id: str
    kubelet: Path
    context: dict[str, str] | None = None
    flags: tuple[str, ...] = ()

    @property
    def staging(self) -> Path:
        return (self.kubelet / "plugins" / "kubernetes.io" / "csi" / DRIVER / self.name
                / "globalmount")

    @property
    def target(self) -> Path:
        return (self.kubelet / "pods" / f"pod-{self.name}" / "volumes" / "kubernetes.io~csi"
                / self.name / "mount")


@dataclass(frozen=True)
class NodeClient:
    socket: Path
    timeout: float = 120.0

    async def _node(self, call: str, request: object) -> object:
        channel = Channel(path=str(self.socket))
        try:
            method = getattr(csi.NodeStub(channel), call)
            return await method(request, timeout=self.timeout)
        finally:
            channel.close()

    async def stage(self, volume: Volume) -> None:
        volume.staging.parent.mkdir(parents=True, exist_ok=True)
        await self._node("node_stage_volume", stage_request(
            volume.volume_id, volume.staging, flags=list(volume.flags),
            context=volume.context))

    async def publish(self, volume: Volume) -> None:
        volume.target.parent.mkdir(parents=True, exist_ok=True)
        await self._node("node_publish_volume", publish_request(
            volume.volume_id, volume.staging, volume.target))

    async def unpublish(self, volume: Volume) -> None:
        await self._node("node_unpublish_volume", csi.NodeUnpublishVolumeRequest(
            volume_id=volume.volume_id, target_path=str(volume.target)))

    async def unstage(self, volume: Volume) -> None:
        await self._node("node_unstage_volume", csi.NodeUnstageVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=str(volume.staging)))
