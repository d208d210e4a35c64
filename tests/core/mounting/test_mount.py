"""The efs backend and the unmount escalation, against fake ``mount``/``umount`` executables
on PATH that record their arguments (efs-utils and NFS cannot run here); the options a
NodeStage sends are judged by efs-utils' own rules (testbed.efs_rules)."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.mounting.commands import CommandFailed, CommandRunner, CommandTimedOut
from efs_csi.mounting.mount import EfsMounter, MountCommands
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_node.app import build_node
from efs_csi_node.service import NodeServiceConfig
from efs_csi_node.zone import NodeZone
from testbed.csi_builders import stage_request
from testbed.efs_rules import efs_utils_refusal

# Real child processes: stand-in mount and umount executables on PATH.
pytestmark = pytest.mark.slow

FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
case "$*" in
  *hang*) [ "$1" = "-l" ] || sleep 30 ;;
  *broken*) echo "mount.efs: Failed to resolve fs" >&2; exit 32 ;;
  *gone*) echo "umount: $2: not mounted." >&2; exit 32 ;;
esac
exit 0
"""


@pytest.fixture
def fake_bin(tmp_path: Path) -> tuple[MountCommands, Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for name in ("mount", "umount"):
        script = bin_dir / name
        script.write_text(FAKE.format(log=log))
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    runner = CommandRunner(env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    return MountCommands(runner, mount_timeout=1.0, unmount_timeout=0.5), log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.asyncio
async def test_mount_command_line(fake_bin: tuple[MountCommands, Path]) -> None:
    commands, log = fake_bin
    mounter = EfsMounter(commands)
    await mounter.mount("fs-12345678", "/a/b", Path("/stage/x"),
                        ["tls", "accesspoint=fsap-12345678", "iam"])
    await mounter.mount("fs-12345678", "", Path("/stage/y"), [])
    await mounter.unmount(Path("/stage/x"))
    assert calls(log) == [
        "mount -t efs -o tls,accesspoint=fsap-12345678,iam fs-12345678:/a/b /stage/x",
        "mount -t efs fs-12345678:/ /stage/y",
        "umount /stage/x",
    ]


@pytest.mark.asyncio
async def test_mount_failure_carries_the_tools_message(
        fake_bin: tuple[MountCommands, Path]) -> None:
    commands, _ = fake_bin
    with pytest.raises(CommandFailed, match="Failed to resolve fs"):
        await EfsMounter(commands).mount("fs-12345678", "/", Path("/broken"), ["tls"])


@pytest.mark.asyncio
async def test_mount_that_hangs_times_out(fake_bin: tuple[MountCommands, Path]) -> None:
    commands, _ = fake_bin
    with pytest.raises(CommandTimedOut):
        await EfsMounter(commands).mount("fs-12345678", "/", Path("/hang"), ["tls"])


@pytest.mark.asyncio
async def test_unmount_that_hangs_escalates_to_lazy(
        fake_bin: tuple[MountCommands, Path]) -> None:
    commands, log = fake_bin
    await commands.unmount(Path("/hang"))
    assert calls(log) == ["umount /hang", "umount -l /hang"]


@pytest.mark.asyncio
async def test_unmount_of_something_not_mounted_is_success(
        fake_bin: tuple[MountCommands, Path]) -> None:
    commands, log = fake_bin
    await commands.unmount(Path("/gone"))
    assert calls(log) == ["umount /gone"]


# The node's efs backend over gRPC: what reaches `mount -t efs` passes efs-utils' own checks -

FS = "fs-0123456789abcdef0"
AP = "fsap-0123456789abcdef0"


@pytest_asyncio.fixture
async def efs_node(fake_bin: tuple[MountCommands, Path]) -> AsyncIterator[csi.NodeStub]:
    commands, _ = fake_bin
    parts = build_node(NodeServiceConfig("node-a"), EfsMounter(commands), commands,
                       zone=NodeZone.known("us-east-1a"))
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        yield csi.NodeStub(channel)


def mount_options(log: Path) -> list[str]:
    [line] = [line for line in calls(log) if line.startswith("mount -t efs")]
    return line.split(" -o ", 1)[1].split(" ")[0].split(",")


@pytest.mark.asyncio
@pytest.mark.parametrize(("handle", "context", "flags", "expected"), [
    # efs-utils refuses accesspoint= without tls: the reference adds tls anyway, and so do we
    (f"{FS}::{AP}", {"encryptInTransit": "false"}, [], ["tls", f"accesspoint={AP}"]),
    # a flag holding commas is split; awscredsuri is dropped (a PV must not pick the node's
    # credential source)
    (f"{FS}::{AP}", {}, ["iam,awscredsuri=/v2/credentials/x", "noresvport"],
     ["tls", f"accesspoint={AP}", "iam", "noresvport"]),
    # no mount target in this node's zone (us-east-1a): another zone's, as the reference
    (FS, {"mounttargetipmap": '{"us-east-1b": "10.0.2.1"}', "crossaccount": "true"}, [],
     ["tls", "crossaccount", "mounttargetip=10.0.2.1"]),
])
async def test_staged_options_pass_efs_utils_checks(
        efs_node: csi.NodeStub, fake_bin: tuple[MountCommands, Path], tmp_path: Path,
        handle: str, context: dict[str, str], flags: list[str], expected: list[str]) -> None:
    _, log = fake_bin
    await efs_node.node_stage_volume(stage_request(handle, tmp_path / "staging",
                                                   context=context, flags=flags))
    options = mount_options(log)
    assert options == expected
    assert efs_utils_refusal(options) is None
