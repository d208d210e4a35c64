"""Paths as kubelet and the world hand them over: a kubelet root dir behind a symlink, '..',
names too long, files where directories belong, targets that are not mounted, handles with
empty fields, staging paths that hold another volume. Real bind mounts, over gRPC."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from efs_csi import csi
from efs_csi.mounting.mountinfo import read_mount_table
from testbed.csi_builders import publish_request, stage_request
from tests.support.node import FS_ID, LocalNode

OTHER_FS = "fs-0fedcba987654321f"


async def status_of(call: object) -> tuple[Status, str]:
    with pytest.raises(GRPCError) as caught:
        await call  # type: ignore[misc]
    return caught.value.status, caught.value.message or ""


def unpublish(target: Path | str) -> csi.NodeUnpublishVolumeRequest:
    return csi.NodeUnpublishVolumeRequest(volume_id=FS_ID, target_path=str(target))


def unstage(staging: Path | str) -> csi.NodeUnstageVolumeRequest:
    return csi.NodeUnstageVolumeRequest(volume_id=FS_ID, staging_target_path=str(staging))


@pytest.mark.asyncio
async def test_a_kubelet_root_behind_a_symlink_works_end_to_end(local_node: LocalNode) -> None:
    node = local_node
    real = node.work / "var-lib-kubelet"
    real.mkdir(parents=True)
    kubelet = node.work / "kubelet-link"
    kubelet.symlink_to(real)  # e.g. /var/lib/kubelet -> /data/kubelet
    staging, target = kubelet / "plugins" / "globalmount", kubelet / "pods" / "p" / "mount"
    await node.stub.node_stage_volume(stage_request(FS_ID, staging))
    await node.stub.node_stage_volume(stage_request(FS_ID, real / "plugins" / "globalmount"))
    for _ in range(2):  # twice through the link, once by the real path: one mount
        await node.stub.node_publish_volume(publish_request(FS_ID, staging, target))
    await node.stub.node_publish_volume(publish_request(FS_ID, staging, real / "pods/p/mount"))
    table = read_mount_table()
    assert table.count_at(real / "plugins" / "globalmount") == 1
    assert table.count_at(real / "pods" / "p" / "mount") == 1
    (target / "hello").write_text("through the link")
    assert (node.fs_dir() / "hello").read_text() == "through the link"
    stats = await node.stub.node_get_volume_stats(
        csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(target)))
    assert stats.usage
    await node.stub.node_unpublish_volume(unpublish(target))
    await node.stub.node_unstage_volume(unstage(staging))
    assert read_mount_table().under(real) == [] and read_mount_table().under(kubelet) == []
    assert not target.exists() and (node.fs_dir() / "hello").exists()


@pytest.mark.asyncio
async def test_a_dotdot_component_is_invalid_argument(local_node: LocalNode) -> None:
    node, work = local_node, local_node.work
    climbing = f"{work}/pods/p/../../../etc"
    calls = {
        "staging_target_path": node.stub.node_stage_volume(stage_request(FS_ID, Path(climbing))),
        "target_path": node.stub.node_publish_volume(
            publish_request(FS_ID, work / "s", Path(climbing))),
        "volume_path": node.stub.node_get_volume_stats(
            csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=climbing)),
    }
    for field, call in calls.items():
        status, message = await status_of(call)
        assert status == Status.INVALID_ARGUMENT and field in message and "'..'" in message
    for call in (node.stub.node_unpublish_volume(unpublish(climbing)),
                 node.stub.node_unstage_volume(unstage(climbing))):
        status, _ = await status_of(call)
        assert status == Status.INVALID_ARGUMENT
    assert read_mount_table().under(work) == []


@pytest.mark.asyncio
async def test_a_name_too_long_is_invalid_argument_naming_the_field(local_node: LocalNode
                                                                    ) -> None:
    node, work = local_node, local_node.work
    long_name = work / ("n" * 300)
    status, message = await status_of(node.stub.node_stage_volume(
        stage_request(FS_ID, long_name)))
    assert status == Status.INVALID_ARGUMENT and "staging_target_path" in message
    assert "too long" in message
    status, message = await status_of(node.stub.node_publish_volume(
        publish_request(FS_ID, work / "s", Path("/" + "d/" * 2100 + "t"))))
    assert status == Status.INVALID_ARGUMENT and "target_path" in message


@pytest.mark.asyncio
async def test_a_file_where_a_directory_belongs_is_a_clear_error(local_node: LocalNode) -> None:
    node, work = local_node, local_node.work
    staging = work / "staging"
    await node.stub.node_stage_volume(stage_request(FS_ID, staging))
    target = work / "pod" / "vol"
    target.parent.mkdir(parents=True)
    target.write_text("a user's file")
    status, message = await status_of(node.stub.node_publish_volume(
        publish_request(FS_ID, staging, target)))
    assert status == Status.FAILED_PRECONDITION
    assert str(target) in message and "not a directory" in message
    status, message = await status_of(node.stub.node_stage_volume(
        stage_request(FS_ID, target / "below-a-file")))
    assert status == Status.FAILED_PRECONDITION and "not a directory" in message
    assert target.read_text() == "a user's file"
    assert read_mount_table().count_at(target) == 0


@pytest.mark.asyncio
async def test_unpublishing_what_is_not_mounted_is_ok_and_deletes_nothing(
        local_node: LocalNode) -> None:
    node, work = local_node, local_node.work
    with_files = work / "pod1" / "vol"
    with_files.mkdir(parents=True)
    (with_files / "precious").write_text("keep me")
    a_file = work / "pod2" / "vol"
    a_file.parent.mkdir(parents=True)
    a_file.write_text("keep me too")
    empty = work / "pod3" / "vol"
    empty.mkdir(parents=True)
    for target in (with_files, a_file, empty, work / "never-made"):
        await node.stub.node_unpublish_volume(unpublish(target))
    assert (with_files / "precious").read_text() == "keep me"
    assert a_file.read_text() == "keep me too"
    assert not empty.exists()  # an empty directory is what a publish leaves: removed


@pytest.mark.asyncio
async def test_publish_without_a_staging_path_is_failed_precondition(local_node: LocalNode
                                                                     ) -> None:
    request = publish_request(FS_ID, local_node.work / "s", local_node.work / "t")
    request.staging_target_path = ""
    status, message = await status_of(local_node.stub.node_publish_volume(request))
    assert status == Status.FAILED_PRECONDITION and "staging_target_path" in message
    assert "STAGE_UNSTAGE_VOLUME" in message


@pytest.mark.asyncio
async def test_publishing_volume_b_from_volume_as_staging_path_is_refused(
        local_node: LocalNode) -> None:
    node, work = local_node, local_node.work
    (node.root / OTHER_FS).mkdir()
    staging_a = work / "staging-a"
    await node.stub.node_stage_volume(stage_request(FS_ID, staging_a))
    target = work / "pod" / "vol"
    status, message = await status_of(node.stub.node_publish_volume(
        publish_request(OTHER_FS, staging_a, target)))
    assert status == Status.FAILED_PRECONDITION
    assert FS_ID in message and OTHER_FS in message
    assert read_mount_table().count_at(target) == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("handle", [f"{FS_ID}:", f"{FS_ID}::"])
async def test_handles_with_empty_fields_stage_and_publish(local_node: LocalNode,
                                                           handle: str) -> None:
    node, work = local_node, local_node.work
    staging, target = work / "staging", work / "pod" / "vol"
    await node.stub.node_stage_volume(stage_request(handle, staging))
    await node.stub.node_publish_volume(publish_request(handle, staging, target))
    (target / "x").write_text("root of the file system")
    assert (node.fs_dir() / "x").exists()
    await node.stub.node_unpublish_volume(
        csi.NodeUnpublishVolumeRequest(volume_id=handle, target_path=str(target)))
    await node.stub.node_unstage_volume(
        csi.NodeUnstageVolumeRequest(volume_id=handle, staging_target_path=str(staging)))
    assert read_mount_table().under(work) == []
