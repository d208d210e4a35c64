"""The node's parts assembled for tests by the real ``build_node``: with the local backend and
real bind mounts (``local_parts``, root only), or over the in-memory mount table
(``fake_parts``, no root). The fixtures that use them are in tests/node/conftest.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from efs_csi import csi
from efs_csi.mounting.blocking import BlockingCalls
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.health import PathProbe
from efs_csi.mounting.local import LocalMounter
from efs_csi.mounting.mount import EfsMounter, MountCommands
from efs_csi_node.app import NodeParts, build_node
from efs_csi_node.service import NodeServiceConfig
from efs_csi_node.zone import NodeZone
from tests.support.fakes.dead_server import DeadServer
from tests.support.fakes.mounts import FakeMountTable

FS_ID = "fs-0123456789abcdef0"


@dataclass
class LocalNode:
    parts: NodeParts
    stub: csi.NodeStub
    root: Path  # the local backend's root: one directory per file system
    work: Path  # where staging and target paths go

    def fs_dir(self, file_system_id: str = FS_ID) -> Path:
        return self.root / file_system_id


class RecordingRunner(CommandRunner):
    """The real runner, remembering each command line (to count mounts and unmounts)."""

    calls: list[list[str]]

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "calls", [])

    async def run(self, argv: Sequence[str], time_limit: float) -> str:
        self.calls.append(list(argv))
        return await super().run(argv, time_limit)


def _probe(blocking: BlockingCalls, dead: DeadServer | None) -> PathProbe | None:
    """The stale-mount detector meeting ``dead`` where it says (0.5 s time limit)."""
    return None if dead is None else PathProbe(blocking, 0.5, dead.stat, dead.statvfs)


def local_parts(root: Path, *, dead: DeadServer | None = None, describe: object | None = None,
                zone: str | None = "us-east-1a", stats_enabled: bool = True,
                runner: CommandRunner | None = None) -> NodeParts:
    commands = MountCommands(runner or CommandRunner(), mount_timeout=20, unmount_timeout=10)
    blocking = BlockingCalls()
    probe = _probe(blocking, dead)
    mounter = LocalMounter(root, commands, blocking, describe)  # type: ignore[arg-type]
    return build_node(NodeServiceConfig("node-a", 16, volume_stats=stats_enabled), mounter,
                      commands, zone=NodeZone.known(zone), blocking=blocking, probe=probe)


@dataclass
class FakeNode:
    parts: NodeParts
    stub: csi.NodeStub
    table: FakeMountTable
    work: Path  # where staging and target paths go


def fake_parts(table: FakeMountTable, *, dead: DeadServer | None = None,
               zone: str | NodeZone | None = "us-east-1a") -> NodeParts:
    """The node with the efs backend over ``table``: every part is real but the kernel (a
    ``NodeZone`` not yet resolved: a node whose start-up helper is still looking)."""
    commands = MountCommands(table, mount_timeout=20, unmount_timeout=10)
    blocking = BlockingCalls()
    probe = _probe(blocking, dead)
    return build_node(NodeServiceConfig("node-a", 16), EfsMounter(commands), commands,
                      zone=zone if isinstance(zone, NodeZone) else NodeZone.known(zone),
                      blocking=blocking, probe=probe, read_table=table.read_table)


async def unpublish_and_unstage(stub: csi.NodeStub, volume_id: str, staging: Path,
                                target: Path) -> None:
    """What kubelet does when the pod goes: NodeUnpublishVolume, then NodeUnstageVolume."""
    await stub.node_unpublish_volume(
        csi.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=str(target)))
    await stub.node_unstage_volume(
        csi.NodeUnstageVolumeRequest(volume_id=volume_id, staging_target_path=str(staging)))
