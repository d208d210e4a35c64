"""Cancelled and timed-out calls leave nothing running: a real client deadline over gRPC, the
node's efs backend, and a stand-in ``mount`` on PATH that hangs as a mount on an unreachable
server does (efs-utils and NFS cannot run here); it records each start and whether an earlier
mount was still alive when it started."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.mount import EfsMounter, MountCommands
from efs_csi.rpc.hook import CallsInFlight, instrument
from efs_csi_node.app import build_node
from efs_csi_node.service import NodeServiceConfig
from efs_csi_node.zone import NodeZone
from testbed.csi_builders import stage_request

# Real child processes: stand-in mount executables on PATH.
pytestmark = pytest.mark.slow

FS = "fs-0123456789abcdef0"
HANGING_MOUNT = """#!/bin/sh
for pid in $(cat "{dir}/pids" 2>/dev/null); do
  state=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ] && echo "overlap $pid" >> "{dir}/log"
done
echo $$ >> "{dir}/pids"
echo "start $$ $*" >> "{dir}/log"
sleep 60 &
echo $! >> "{dir}/pids"
wait
"""


@dataclass
class Observed:
    calls: list[tuple[str, Status]] = field(default_factory=list)

    def observe(self, method: str, code: Status, seconds: float) -> None:
        self.calls.append((method, code))


@dataclass
class HangingNode:
    stub: csi.NodeStub
    observed: Observed
    record: Path

    def log(self) -> list[str]:
        path = self.record / "log"
        return path.read_text().splitlines() if path.exists() else []

    def pids(self) -> list[int]:
        path = self.record / "pids"
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """Running (a zombie left to a container's PID 1 that reaps nothing counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest_asyncio.fixture
async def hanging_node(tmp_path: Path) -> AsyncIterator[HangingNode]:
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    script = bin_dir / "mount"
    script.write_text(HANGING_MOUNT.format(dir=record))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    runner = CommandRunner(env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    commands = MountCommands(runner, mount_timeout=30, unmount_timeout=5)
    parts = build_node(NodeServiceConfig("node-a"), EfsMounter(commands), commands,
                       zone=NodeZone.known("us-east-1a"))
    observed = Observed()
    async with ChannelFor([instrument(parts.service, CallsInFlight(), observed)]) as channel:
        node = HangingNode(csi.NodeStub(channel), observed, record)
        try:
            yield node
        finally:
            for pid in node.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)


async def stage_with_deadline(node: HangingNode, staging: Path, seconds: float) -> Status:
    try:
        await node.stub.node_stage_volume(stage_request(FS, staging), timeout=seconds)
    except GRPCError as error:
        return error.status
    except TimeoutError:  # grpclib's client gives up at the deadline itself
        return Status.DEADLINE_EXCEEDED
    return Status.OK


@pytest.mark.asyncio
async def test_a_deadline_kills_the_mount_and_a_retry_never_overlaps_it(
        hanging_node: HangingNode, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    assert await stage_with_deadline(hanging_node, staging, 0.5) == Status.DEADLINE_EXCEEDED
    # kubelet retries at once: the retry must wait until the first mount is gone.
    assert await stage_with_deadline(hanging_node, staging, 2.0) == Status.DEADLINE_EXCEEDED
    for _ in range(200):  # the second call's cleanup may still be finishing
        if not any(alive(pid) for pid in hanging_node.pids()):
            break
        await asyncio.sleep(0.05)
    log = hanging_node.log()
    assert [line.split()[0] for line in log] == ["start", "start"], log  # never an overlap
    # Every mount child and the helper each started are gone: the whole group was killed.
    assert hanging_node.pids() and not any(alive(pid) for pid in hanging_node.pids())
    # Answered, logged and counted as what it was: the deadline passing, not a cancellation.
    codes = [code for method, code in hanging_node.observed.calls
             if method == "NodeStageVolume"]
    assert codes == [Status.DEADLINE_EXCEEDED, Status.DEADLINE_EXCEEDED]


@pytest.mark.asyncio
async def test_a_cancelled_run_kills_the_process_group_before_it_returns(tmp_path: Path) -> None:
    record = tmp_path / "record"
    record.mkdir()
    script = tmp_path / "hang"
    script.write_text(HANGING_MOUNT.format(dir=record))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    task = asyncio.ensure_future(CommandRunner().run([str(script)], 30))

    def started() -> int:
        return len((record / "pids").read_text().split()) if (record / "pids").exists() else 0

    while started() < 2:  # noqa: ASYNC110 - the child and its helper are running
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pids = [int(pid) for pid in (record / "pids").read_text().split()]
    assert not alive(pids[0])  # the child is gone by the time run() has let go
    for _ in range(100):  # its helper was signalled with it; the kernel reaps it shortly
        if not alive(pids[1]):
            break
        await asyncio.sleep(0.02)
    assert not alive(pids[1])
