"""Stage/publish/unpublish/unstage with the local backend: real bind mounts, over gRPC."""

from __future__ import annotations

import errno
import os

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from efs_csi import csi
from efs_csi.mounting.mountinfo import read_mount_table
from testbed.csi_builders import publish_request, stage_request
from testbed.mounts import mounts_under
from tests.support.node import FS_ID, LocalNode

Mode = csi.VolumeCapabilityAccessModeMode


@pytest.mark.asyncio
async def test_full_cycle_two_targets_share_writes(local_node: LocalNode) -> None:
    node, work = local_node, local_node.work
    staging, one, two = work / "staging", work / "pod1" / "vol", work / "pod2" / "vol"
    await node.stub.node_stage_volume(stage_request(FS_ID, staging))
    await node.stub.node_publish_volume(publish_request(FS_ID, staging, one))
    await node.stub.node_publish_volume(publish_request(FS_ID, staging, two))
    assert len(mounts_under(work)) == 3  # 1 staging mount + 2 binds

    (one / "hello").write_text("from pod 1")
    assert (two / "hello").read_text() == "from pod 1"
    assert (node.fs_dir() / "hello").read_text() == "from pod 1"  # it is the file system

    await node.stub.node_unpublish_volume(
        csi.NodeUnpublishVolumeRequest(volume_id=FS_ID, target_path=str(one)))
    await node.stub.node_unpublish_volume(
        csi.NodeUnpublishVolumeRequest(volume_id=FS_ID, target_path=str(two)))
    assert not one.exists() and not two.exists()  # target directories removed
    await node.stub.node_unstage_volume(
        csi.NodeUnstageVolumeRequest(volume_id=FS_ID, staging_target_path=str(staging)))
    assert len(mounts_under(work)) == 0
    assert (node.fs_dir() / "hello").exists()  # data stays on the file system


@pytest.mark.asyncio
async def test_repeated_calls_are_no_ops(local_node: LocalNode) -> None:
    node, work = local_node, local_node.work
    staging, target = work / "staging", work / "pod" / "vol"
    for _ in range(3):
        await node.stub.node_stage_volume(stage_request(FS_ID, staging))
    for _ in range(3):
        await node.stub.node_publish_volume(publish_request(FS_ID, staging, target))
    table = read_mount_table()
    assert table.count_at(staging) == 1 and table.count_at(target) == 1
    for _ in range(3):
        await node.stub.node_unpublish_volume(
            csi.NodeUnpublishVolumeRequest(volume_id=FS_ID, target_path=str(target)))
        await node.stub.node_unstage_volume(
            csi.NodeUnstageVolumeRequest(volume_id=FS_ID, staging_target_path=str(staging)))
    assert len(mounts_under(work)) == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(("readonly", "mode"), [(True, Mode.MULTI_NODE_MULTI_WRITER),
                                                (False, Mode.MULTI_NODE_READER_ONLY)])
async def test_read_only_publish_refuses_writes(local_node: LocalNode, readonly: bool,
                                                mode: Mode) -> None:
    node, work = local_node, local_node.work
    staging, target = work / "staging", work / "pod" / "vol"
    await node.stub.node_stage_volume(stage_request(FS_ID, staging))
    await node.stub.node_publish_volume(
        publish_request(FS_ID, staging, target, readonly=readonly, mode=mode))
    with pytest.raises(OSError) as caught:
        (target / "nope").write_text("x")
    assert caught.value.errno == errno.EROFS
    (staging / "still-writable").write_text("x")  # only the bind is read-only


@pytest.mark.asyncio
async def test_target_mounted_in_another_mode_or_from_elsewhere_is_already_exists(
        local_node: LocalNode) -> None:
    node, work = local_node, local_node.work
    (node.fs_dir() / "other").mkdir()
    staging, other_staging, target = work / "s1", work / "s2", work / "pod" / "vol"
    await node.stub.node_stage_volume(stage_request(FS_ID, staging))
    await node.stub.node_stage_volume(stage_request(f"{FS_ID}:/other", other_staging))
    await node.stub.node_publish_volume(publish_request(FS_ID, staging, target))
    with pytest.raises(GRPCError) as caught:
        await node.stub.node_publish_volume(publish_request(FS_ID, staging, target,
                                                            readonly=True))
    assert caught.value.status == Status.ALREADY_EXISTS
    with pytest.raises(GRPCError) as caught:
        await node.stub.node_publish_volume(
            publish_request(f"{FS_ID}:/other", other_staging, target))
    assert caught.value.status == Status.ALREADY_EXISTS
    with pytest.raises(GRPCError) as caught:  # another volume on a used staging path
        await node.stub.node_stage_volume(stage_request(f"{FS_ID}:/other", staging))
    assert caught.value.status == Status.ALREADY_EXISTS


@pytest.mark.asyncio
async def test_path_in_handle_mounts_that_directory_and_missing_path_fails(
        local_node: LocalNode) -> None:
    node, work = local_node, local_node.work
    (node.fs_dir() / "data" / "sub").mkdir(parents=True)
    (node.fs_dir() / "data" / "sub" / "marker").write_text("m")
    await node.stub.node_stage_volume(stage_request(f"{FS_ID}:/data/sub", work / "s"))
    assert (work / "s" / "marker").read_text() == "m"
    with pytest.raises(GRPCError) as caught:
        await node.stub.node_stage_volume(stage_request(f"{FS_ID}:/absent", work / "s2"))
    assert caught.value.status == Status.INTERNAL and "no such directory" in str(
        caught.value.message)
    assert read_mount_table().at(work / "s2") is None


@pytest.mark.asyncio
async def test_symlink_out_of_the_file_system_is_refused(local_node: LocalNode) -> None:
    node, work = local_node, local_node.work
    os.symlink("/etc", node.fs_dir() / "escape")
    with pytest.raises(GRPCError) as caught:
        await node.stub.node_stage_volume(stage_request(f"{FS_ID}:/escape", work / "s"))
    assert "outside the file system" in str(caught.value.message)


@pytest.mark.asyncio
async def test_publish_before_stage_is_failed_precondition(local_node: LocalNode) -> None:
    work = local_node.work
    with pytest.raises(GRPCError) as caught:
        await local_node.stub.node_publish_volume(
            publish_request(FS_ID, work / "never-staged", work / "t"))
    assert caught.value.status == Status.FAILED_PRECONDITION
    assert not (work / "t").exists()


@pytest.mark.asyncio
async def test_volume_stats_and_capacity_from_context(local_node: LocalNode) -> None:
    node, work = local_node, local_node.work
    staging, target = work / "staging", work / "pod" / "vol"
    await node.stub.node_stage_volume(stage_request(FS_ID, staging,
                                                    context={"capacityBytes": "1073741824"}))
    await node.stub.node_publish_volume(publish_request(FS_ID, staging, target))
    reply = await node.stub.node_get_volume_stats(
        csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(target)))
    by_unit = {usage.unit: usage for usage in reply.usage}
    assert by_unit[csi.VolumeUsageUnit.BYTES].total == 1073741824
    assert by_unit[csi.VolumeUsageUnit.INODES].total > 0
    assert reply.volume_condition is not None and not reply.volume_condition.abnormal
    with pytest.raises(GRPCError) as caught:
        await node.stub.node_get_volume_stats(
            csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(work / "nothing")))
    assert caught.value.status == Status.NOT_FOUND


@pytest.mark.asyncio
async def test_capacity_is_also_learned_from_publish(local_node: LocalNode) -> None:
    """After a plugin restart kubelet repeats NodePublish, not NodeStage: its context counts."""
    node, work = local_node, local_node.work
    staging, target = work / "staging", work / "pod" / "vol"
    await node.stub.node_stage_volume(stage_request(FS_ID, staging))
    await node.stub.node_publish_volume(publish_request(
        FS_ID, staging, target, context={"capacityBytes": "2147483648"}))
    reply = await node.stub.node_get_volume_stats(
        csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(target)))
    by_unit = {usage.unit: usage for usage in reply.usage}
    assert by_unit[csi.VolumeUsageUnit.BYTES].total == 2147483648
