"""NodePublishVolume / NodeUnpublishVolume: bind a staged volume into a pod's target path.

A publish is a bind mount of the staging path (read-only for ``readonly`` and reader-only
modes), so 100 pods cost 100 binds and one NFS mount. A target already mounted from the same
staged directory in the same mode is success; from anything else, ALREADY_EXISTS. A staging
path known to hold another volume is refused (FAILED_PRECONDITION). Paths arrive canonical
(``MountOps.resolve``), so one target never gets a second mount under another spelling.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from efs_csi.errors import AlreadyExists, FailedPrecondition, Internal
from efs_csi_node.locks import KeyLocksInFlight, MountSlots, path_key
from efs_csi_node.mount_ops import MAX_STACKED_MOUNTS, MountOps
from efs_csi_node.staging import StagedVolumes, StopReading

Restage = Callable[[str, Path], Awaitable[None]]


@dataclass(frozen=True)
class PublishRequest:
    volume_id: str
    staging_path: Path
    target_path: Path
    read_only: bool


@dataclass
class Publisher:
    ops: MountOps
    locks: KeyLocksInFlight
    slots: MountSlots
    restage_if_stale: Restage
    staged: StagedVolumes
    stop_reading: StopReading

    async def publish(self, request: PublishRequest) -> None:
        if self.ops.table().at(request.staging_path) is None:
            raise FailedPrecondition(f"volume {request.volume_id} is not staged at "
                                     f"staging_target_path {request.staging_path}")
        # What was staged there is known unless this process restarted since (then the CO's
        # word is all there is).
        known = self.staged.at(request.staging_path)
        if known is not None and known.volume_id != request.volume_id:
            raise FailedPrecondition(f"staging_target_path {request.staging_path} holds volume "
                                     f"{known.volume_id}, not {request.volume_id}")
        await self.restage_if_stale(request.volume_id, request.staging_path)
        async with self.locks.hold([path_key(request.target_path)]):
            await self.ops.clear_if_stale(request.target_path)
            table = self.ops.table()
            staged = table.at(request.staging_path)
            if staged is None:
                raise FailedPrecondition(f"volume {request.volume_id} was unstaged meanwhile")
            current = table.at(request.target_path)
            if current is not None:
                expected_read_only = request.read_only or staged.read_only
                if current.same_origin(staged) and current.read_only == expected_read_only:
                    return
                raise AlreadyExists(
                    f"target_path {request.target_path} is already mounted "
                    + ("from another source" if not current.same_origin(staged) else
                       f"{'read-only' if current.read_only else 'read-write'}"))
            await self.ops.make_dir(request.target_path)
            async with self.slots.slot():
                await self.ops.binds.bind(request.staging_path, request.target_path,
                                            read_only=request.read_only)

    async def unpublish(self, target_path: Path) -> None:
        async with self.locks.hold([path_key(target_path)]):
            await self.ops.clear_if_stale(target_path)
            await self.stop_reading(target_path)
            for _ in range(MAX_STACKED_MOUNTS):
                if self.ops.table().at(target_path) is None:
                    await self.ops.remove_dir(target_path)
                    return
                await self.ops.binds.unmount(target_path)
            raise Internal(f"{target_path} is still mounted after {MAX_STACKED_MOUNTS} unmounts")
