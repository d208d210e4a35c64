"""NodeStageVolume / NodeUnstageVolume: one mount of a volume per node, at its staging path.

Staged volumes are remembered (volume, handle, mount options) so a stale staging mount can be
remounted when a pod is published, and so a publish can check which volume a staging path
holds. (The requested size NodeGetVolumeStats reports is kept by its source,
``efs_csi_node.stats``, from the volume context.) After a restart the memory is empty: a mount
found at a staging path is adopted as it is (the mount table is the truth; nothing is mounted
twice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from efs_csi.contract.volume_id import VolumeHandle
from efs_csi.errors import AlreadyExists, FailedPrecondition, Internal
from efs_csi.logging import get_logger
from efs_csi.mounting.mount import Mounter
from efs_csi_node.locks import KeyLocksInFlight, MountSlots, path_key
from efs_csi_node.mount_ops import MAX_STACKED_MOUNTS, MountOps

_log = get_logger("node.staging")

# Stops the node's own reading under a path about to be unmounted (a usage walk), returning once
# it has stopped: an unmount that met it would fail with "target is busy" for as long as the
# walk runs, hours on a large volume.
StopReading = Callable[[Path], Awaitable[None]]


@dataclass(frozen=True)
class StageRequest:
    volume_id: str
    handle: VolumeHandle
    staging_path: Path
    options: tuple[str, ...]


@dataclass
class StagedVolumes:
    _by_path: dict[Path, StageRequest] = field(default_factory=dict)

    def at(self, path: Path) -> StageRequest | None:
        return self._by_path.get(path)

    def add(self, request: StageRequest) -> None:
        self._by_path[request.staging_path] = request

    def remove(self, path: Path) -> None:
        self._by_path.pop(path, None)

    def all(self) -> list[StageRequest]:
        return list(self._by_path.values())


def staging_keys(volume_id: str, path: Path) -> list[str]:
    return [f"volume:{volume_id}", path_key(path)]


@dataclass
class Stager:
    mounter: Mounter
    ops: MountOps
    locks: KeyLocksInFlight
    slots: MountSlots
    stop_reading: StopReading
    staged: StagedVolumes = field(default_factory=StagedVolumes)

    async def stage(self, request: StageRequest) -> None:
        async with self.locks.hold(staging_keys(request.volume_id, request.staging_path)):
            known = self.staged.at(request.staging_path)
            if known is not None and known.volume_id != request.volume_id:
                raise AlreadyExists(f"staging_target_path {request.staging_path} holds "
                                    f"volume {known.volume_id}")
            await self.ops.clear_if_stale(request.staging_path)
            if self.ops.table().at(request.staging_path) is not None:
                if known is not None and known.options != request.options:
                    raise AlreadyExists(f"volume {request.volume_id} is staged with options "
                                        f"{','.join(known.options)!r}, not "
                                        f"{','.join(request.options)!r}")
                self.staged.add(request)  # already staged, or adopted after a restart
                return
            await self._mount(request)

    async def _mount(self, request: StageRequest) -> None:
        await self.ops.make_dir(request.staging_path)
        async with self.slots.slot():
            await self.mounter.mount(request.handle.file_system_id, request.handle.path,
                                     request.staging_path, request.options)
        self.staged.add(request)
        _log.info("staged", volume_id=request.volume_id, path=str(request.staging_path))

    async def restage_if_stale(self, volume_id: str, staging_path: Path) -> None:
        """Remount a staging path that stopped answering (called before publishing)."""
        async with self.locks.hold(staging_keys(volume_id, staging_path)):
            if not await self.ops.clear_if_stale(staging_path):
                return
            known = self.staged.at(staging_path)
            if known is None:
                raise FailedPrecondition(f"staging mount {staging_path} was stale and its "
                                         "volume is unknown; NodeStageVolume must run again")
            await self._mount(known)

    async def unstage(self, volume_id: str, staging_path: Path) -> None:
        async with self.locks.hold(staging_keys(volume_id, staging_path)):
            await self.ops.clear_if_stale(staging_path)
            await self.stop_reading(staging_path)
            for _ in range(MAX_STACKED_MOUNTS):
                if self.ops.table().at(staging_path) is None:
                    self.staged.remove(staging_path)
                    _log.info("unstaged", volume_id=volume_id, path=str(staging_path))
                    return
                async with self.slots.slot():
                    await self.mounter.unmount(staging_path)
            raise Internal(f"{staging_path} is still mounted after {MAX_STACKED_MOUNTS} unmounts")
