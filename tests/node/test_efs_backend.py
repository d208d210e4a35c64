"""The efs backend and the unmount escalation, against fake ``mount``/``umount`` executables
on PATH that record their arguments (efs-utils and NFS cannot run here)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from efs_csi.commands import CommandFailed, CommandRunner, CommandTimedOut
from efs_csi.mount import EfsMounter, MountCommands

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
