"""Node fixtures: a local-backend node over an in-memory gRPC channel, with real bind mounts,
and a teardown that always removes every mount left under the test's directory."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.health import PathProbe
from efs_csi.mounting.local import LocalMounter
from efs_csi.mounting.mount import MountCommands
from efs_csi.mounting.mountinfo import read_mount_table
from efs_csi.mounting.offloop import OffLoop
from efs_csi.rpc.hook import InFlight, instrument
from efs_csi_node.app import NodeParts, ZoneHolder, build_node
from efs_csi_node.service import NodeServiceConfig
from tests.support.ci import require_root
from tests.support.csi_builders import mount_capability as capability

FS_ID = "fs-0123456789abcdef0"


def unmount_everything_under(directory: Path) -> None:
    """Lazily unmount every mount below ``directory``, deepest first (a leaked mount would
    break other runs on this machine)."""
    for _ in range(5):
        entries = read_mount_table().under(directory)
        if not entries:
            return
        for entry in sorted(entries, key=lambda e: -len(e.mount_point)):
            subprocess.run(["umount", "-l", entry.mount_point], check=False,
                           capture_output=True)


@pytest.fixture
def mounts_cleaned(tmp_path: Path) -> Iterator[Path]:
    require_root()
    yield tmp_path
    unmount_everything_under(tmp_path)


@dataclass
class LocalNode:
    parts: NodeParts
    stub: csi.NodeStub
    root: Path  # the local backend's root: one directory per file system
    work: Path  # where staging and target paths go

    def fs_dir(self, file_system_id: str = FS_ID) -> Path:
        return self.root / file_system_id


def stage_request(volume_id: str, staging: Path, *, mode: csi.VolumeCapabilityAccessModeMode
                  = csi.VolumeCapabilityAccessModeMode.MULTI_NODE_MULTI_WRITER,
                  flags: list[str] | None = None,
                  context: dict[str, str] | None = None) -> csi.NodeStageVolumeRequest:
    return csi.NodeStageVolumeRequest(
        volume_id=volume_id, staging_target_path=str(staging),
        volume_capability=capability(mode, flags), volume_context=context or {})



def publish_request(volume_id: str, staging: Path, target: Path, *, readonly: bool = False,
                    mode: csi.VolumeCapabilityAccessModeMode =
                    csi.VolumeCapabilityAccessModeMode.MULTI_NODE_MULTI_WRITER,
                    context: dict[str, str] | None = None) -> csi.NodePublishVolumeRequest:
    return csi.NodePublishVolumeRequest(
        volume_id=volume_id, staging_target_path=str(staging), target_path=str(target),
        volume_capability=capability(mode), readonly=readonly, volume_context=context or {})


class RecordingRunner(CommandRunner):
    """The real runner, remembering each command line (to count mounts and unmounts)."""

    calls: list[list[str]]

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "calls", [])

    async def run(self, argv: Sequence[str], time_limit: float) -> str:
        self.calls.append(list(argv))
        return await super().run(argv, time_limit)


def local_parts(root: Path, *, stat: object | None = None, describe: object | None = None,
                zone: str | None = "us-east-1a", stats_enabled: bool = True,
                runner: CommandRunner | None = None) -> NodeParts:
    commands = MountCommands(runner or CommandRunner(), mount_timeout=20, unmount_timeout=10)
    off_loop = OffLoop()
    probe = PathProbe(off_loop, 0.5, stat) if stat is not None else None  # type: ignore[arg-type]
    mounter = LocalMounter(root, commands, off_loop, describe)  # type: ignore[arg-type]
    return build_node(NodeServiceConfig("node-a", 16, volume_stats=stats_enabled), mounter,
                      commands, zone=ZoneHolder(zone), off_loop=off_loop, probe=probe)


@pytest_asyncio.fixture
async def local_node(mounts_cleaned: Path) -> AsyncIterator[LocalNode]:
    root = mounts_cleaned / "efs"
    (root / FS_ID).mkdir(parents=True)
    parts = local_parts(root)
    service = instrument(parts.service, InFlight())
    async with ChannelFor([service]) as channel:
        yield LocalNode(parts, csi.NodeStub(channel), root, mounts_cleaned / "kubelet")
