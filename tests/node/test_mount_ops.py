"""Stale mounts are detected, lazily unmounted and remounted; a hung stat blocks nobody else.

A bind mount cannot go stale the way NFS does, so ``stat`` and ``statvfs`` are faked
(``tests.support.fakes.dead_server``): they answer ESTALE (or never answer) for chosen paths,
exactly what a dead NFS server does to them. The mounts, unmounts and remounts themselves are
real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.mounting.mountinfo import read_mount_table
from efs_csi.rpc.hook import CallsInFlight, instrument
from testbed.csi_builders import publish_request, stage_request
from tests.support.fakes.dead_server import DeadServer
from tests.support.node import FS_ID, RecordingRunner, local_parts

Broken = tuple[csi.NodeStub, DeadServer, Path, RecordingRunner]


@pytest_asyncio.fixture
async def broken_node(mounts_cleaned: Path) -> AsyncIterator[Broken]:
    root = mounts_cleaned / "efs"
    (root / FS_ID).mkdir(parents=True)
    broken = DeadServer(heals=True)  # the lazy unmount and the mount again cure it
    runner = RecordingRunner()
    parts = local_parts(root, dead=broken, runner=runner)
    try:
        async with ChannelFor([instrument(parts.service, CallsInFlight())]) as channel:
            yield csi.NodeStub(channel), broken, mounts_cleaned / "kubelet", runner
    finally:
        broken.release.set()


@pytest.mark.asyncio
@pytest.mark.parametrize("failure", ["stale", "hung"])
async def test_stale_target_is_recovered_on_publish(
        broken_node: Broken, failure: str) -> None:
    stub, broken, work, runner = broken_node
    staging, target = work / "staging", work / "pod" / "vol"
    await stub.node_stage_volume(stage_request(FS_ID, staging))
    await stub.node_publish_volume(publish_request(FS_ID, staging, target))
    first = read_mount_table().at(target)
    getattr(broken, failure).add(str(target))
    await stub.node_publish_volume(publish_request(FS_ID, staging, target))
    table = read_mount_table()
    again = table.at(target)
    assert first is not None and again is not None
    assert again.same_origin(first)
    # unmounted lazily and bound again (mount ids are reused, so count commands instead)
    assert ["umount", "-l", str(target)] in runner.calls
    assert [c for c in runner.calls if c[:2] == ["mount", "--bind"] and c[-1] == str(target)] \
        == [["mount", "--bind", str(staging), str(target)]] * 2
    assert table.count_at(target) == 1
    (target / "works").write_text("yes")


@pytest.mark.asyncio
async def test_stale_staging_is_remounted_before_publish(
        broken_node: Broken) -> None:
    stub, broken, work, runner = broken_node
    staging, target = work / "staging", work / "pod" / "vol"
    await stub.node_stage_volume(stage_request(FS_ID, staging))
    broken.stale.add(str(staging))
    await stub.node_publish_volume(publish_request(FS_ID, staging, target))
    table = read_mount_table()
    assert table.count_at(staging) == 1 and table.count_at(target) == 1
    assert ["umount", "-l", str(staging)] in runner.calls
    assert len([c for c in runner.calls if c[-1] == str(staging) and c[0] == "mount"]) == 2


@pytest.mark.asyncio
async def test_stale_staging_is_remounted_on_stage(
        broken_node: Broken) -> None:
    stub, broken, work, runner = broken_node
    staging = work / "staging"
    await stub.node_stage_volume(stage_request(FS_ID, staging))
    broken.stale.add(str(staging))
    await stub.node_stage_volume(stage_request(FS_ID, staging))
    assert read_mount_table().count_at(staging) == 1
    assert ["umount", "-l", str(staging)] in runner.calls
    assert len([c for c in runner.calls if c[-1] == str(staging) and c[0] == "mount"]) == 2


@pytest.mark.asyncio
async def test_stats_of_a_stale_volume_report_abnormal_condition(
        broken_node: Broken) -> None:
    stub, broken, work, _ = broken_node
    staging = work / "staging"
    await stub.node_stage_volume(stage_request(FS_ID, staging))
    broken.stale.add(str(staging))
    reply = await stub.node_get_volume_stats(
        csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(staging)))
    assert reply.volume_condition is not None and reply.volume_condition.abnormal
    assert "stale" in reply.volume_condition.message.lower()
