"""NodeStageVolume / NodeUnstageVolume logic, without root: the real node service, stager and
mount state over the in-memory mount table (tests/support/fakes/mounts.py), judged by the
``mount``/``umount`` command lines they run and the table they leave. Real bind mounts of the
same flows: tests/node/test_local_backend.py; after a real restart:
tests/node/test_staging_after_restart.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.rpc.hook import CallsInFlight, instrument
from testbed.csi_builders import stage_request
from tests.support.fakes.dead_server import DeadServer
from tests.support.fakes.mounts import FakeMountTable
from tests.support.node import FS_ID, FakeNode, fake_parts

AP_ID = "fsap-0123456789abcdef0"
HANDLE = f"{FS_ID}::{AP_ID}"


async def stage(node: FakeNode, staging: Path, volume_id: str = HANDLE,
                **options: object) -> None:
    await node.stub.node_stage_volume(stage_request(volume_id, staging, **options))  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_volume_is_mounted_once_with_the_options_built_for_it(fake_node: FakeNode
                                                                      ) -> None:
    staging = fake_node.work / "staging"
    await stage(fake_node, staging)
    await stage(fake_node, staging)  # kubelet repeats itself: success, nothing more
    assert fake_node.table.mounts() == [
        f"mount -t efs -o tls,accesspoint={AP_ID} {FS_ID}:/ {staging}"]
    assert fake_node.parts.stager.staged.at(staging) is not None


@pytest.mark.asyncio
async def test_staged_with_other_options_or_another_volume_is_already_exists(
        fake_node: FakeNode) -> None:
    staging = fake_node.work / "staging"
    await stage(fake_node, staging)
    with pytest.raises(GRPCError) as other_options:
        await stage(fake_node, staging, flags=["noresvport"])
    with pytest.raises(GRPCError) as other_volume:
        await stage(fake_node, staging, volume_id=FS_ID)
    assert other_options.value.status == other_volume.value.status == Status.ALREADY_EXISTS
    assert "options" in (other_options.value.message or "")
    assert HANDLE in (other_volume.value.message or "")
    assert len(fake_node.table.mounts()) == 1


@pytest.mark.asyncio
async def test_a_mount_found_after_a_restart_is_adopted_not_mounted_again(
        fake_node: FakeNode) -> None:
    staging = fake_node.work / "staging"
    await stage(fake_node, staging)
    restarted = fake_parts(fake_node.table)  # a new process: empty memory, the same kernel
    async with ChannelFor([instrument(restarted.service, CallsInFlight())]) as channel:
        await csi.NodeStub(channel).node_stage_volume(stage_request(HANDLE, staging))
    assert len(fake_node.table.mounts()) == 1
    assert restarted.stager.staged.at(staging) is not None


@pytest.mark.asyncio
async def test_a_failed_mount_stages_nothing_and_names_the_tools_message(
        fake_node: FakeNode) -> None:
    staging = fake_node.work / "staging"
    fake_node.table.fail_next = "mount.nfs4: Connection timed out"
    with pytest.raises(GRPCError) as failed:
        await stage(fake_node, staging)
    assert failed.value.status == Status.INTERNAL
    assert "Connection timed out" in (failed.value.message or "")
    assert fake_node.table.entries == []
    assert fake_node.parts.stager.staged.at(staging) is None
    await stage(fake_node, staging)  # the retry mounts
    assert fake_node.table.read_table().at(staging) is not None


@pytest.mark.asyncio
async def test_unstage_peels_stacked_mounts_and_is_idempotent(fake_node: FakeNode) -> None:
    staging = fake_node.work / "staging"
    await stage(fake_node, staging)
    # Two more on top (another tool, an earlier crash): all must go.
    await fake_node.table.run(["mount", "-t", "efs", f"{FS_ID}:/", str(staging)], 1)
    await fake_node.table.run(["mount", "-t", "efs", f"{FS_ID}:/", str(staging)], 1)
    request = csi.NodeUnstageVolumeRequest(volume_id=HANDLE, staging_target_path=str(staging))
    await fake_node.stub.node_unstage_volume(request)
    assert fake_node.table.entries == []
    assert [argv[0] for argv in fake_node.table.commands[-3:]] == ["umount"] * 3
    commands = len(fake_node.table.commands)
    await fake_node.stub.node_unstage_volume(request)  # nothing mounted: success, no umount
    assert len(fake_node.table.commands) == commands
    assert fake_node.parts.stager.staged.at(staging) is None


@pytest.mark.asyncio
async def test_a_stale_staging_mount_is_detached_lazily_then_mounted_again(
        tmp_path: Path) -> None:
    table, dead = FakeMountTable(), DeadServer(heals=True)
    parts = fake_parts(table, dead=dead)
    staging = tmp_path / "staging"
    async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
        stub = csi.NodeStub(channel)
        await stub.node_stage_volume(stage_request(HANDLE, staging))
        dead.stale.add(str(staging))
        await stub.node_stage_volume(stage_request(HANDLE, staging))
    assert [" ".join(argv[:2]) for argv in table.commands] == [
        "mount -t", "umount -l", "mount -t"]
    assert len(table.read_table().entries) == 1
