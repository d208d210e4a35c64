"""NodePublishVolume / NodeUnpublishVolume logic, without root: the real node service,
publisher and mount state over the in-memory mount table (tests/support/fakes/mounts.py),
judged by the bind mounts they make and the table they leave. Real bind mounts of the same
flows: tests/node/test_local_backend.py and tests/node/test_service_paths.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from efs_csi import csi
from testbed.csi_builders import publish_request, stage_request
from tests.support.node import FS_ID, FakeNode

HANDLE = f"{FS_ID}::fsap-0123456789abcdef0"
Mode = csi.VolumeCapabilityAccessModeMode


async def staged(node: FakeNode, volume_id: str = HANDLE) -> Path:
    staging = node.work / f"staging-{len(node.table.entries)}"
    await node.stub.node_stage_volume(stage_request(volume_id, staging))
    return staging


def binds(node: FakeNode) -> list[str]:
    return [mount for mount in node.table.mounts() if "--bind" in mount]


async def refusal(node: FakeNode, request: csi.NodePublishVolumeRequest) -> tuple[Status, str]:
    """The status and message NodePublishVolume refuses ``request`` with."""
    with pytest.raises(GRPCError) as refused:
        await node.stub.node_publish_volume(request)
    return refused.value.status, refused.value.message or ""


@pytest.mark.asyncio
async def test_publish_binds_the_staged_volume_once(fake_node: FakeNode) -> None:
    staging = await staged(fake_node)
    target = fake_node.work / "pod" / "volume"
    await fake_node.stub.node_publish_volume(publish_request(HANDLE, staging, target))
    await fake_node.stub.node_publish_volume(publish_request(HANDLE, staging, target))
    assert binds(fake_node) == [f"mount --bind {staging} {target}"]
    top = fake_node.table.read_table().at(target)
    assert top is not None and not top.read_only
    assert top.same_origin(fake_node.table.read_table().at(staging))  # type: ignore[arg-type]


@pytest.mark.asyncio
@pytest.mark.parametrize(("readonly", "mode"), [(True, Mode.MULTI_NODE_MULTI_WRITER),
                                                (False, Mode.MULTI_NODE_READER_ONLY)])
async def test_readonly_or_a_reader_only_mode_binds_read_only(
        fake_node: FakeNode, readonly: bool, mode: csi.VolumeCapabilityAccessModeMode) -> None:
    staging = await staged(fake_node)
    target = fake_node.work / "pod"
    await fake_node.stub.node_publish_volume(
        publish_request(HANDLE, staging, target, readonly=readonly, mode=mode))
    assert binds(fake_node) == [f"mount --bind -o ro {staging} {target}"]
    top = fake_node.table.read_table().at(target)
    assert top is not None and top.read_only
    # The same target asked read-write now is another mount: refused, not remounted.
    status, message = await refusal(fake_node, publish_request(HANDLE, staging, target))
    assert status == Status.ALREADY_EXISTS and "read-only" in message


@pytest.mark.asyncio
async def test_a_target_mounted_from_elsewhere_is_already_exists(fake_node: FakeNode) -> None:
    staging = await staged(fake_node)
    elsewhere = await staged(fake_node, FS_ID.replace("0123", "4567"))
    target = fake_node.work / "pod"
    target.mkdir(parents=True)
    await fake_node.table.run(["mount", "--bind", str(elsewhere), str(target)], 1)
    status, message = await refusal(fake_node, publish_request(HANDLE, staging, target))
    assert status == Status.ALREADY_EXISTS and "another source" in message


@pytest.mark.asyncio
async def test_publish_needs_this_volume_staged(fake_node: FakeNode) -> None:
    target = fake_node.work / "pod"
    not_staged = await refusal(fake_node, publish_request(HANDLE, fake_node.work / "none",
                                                          target))
    other_volume = await refusal(fake_node, publish_request(HANDLE, await staged(
        fake_node, FS_ID), target))
    assert not_staged[0] == other_volume[0] == Status.FAILED_PRECONDITION
    assert f"holds volume {FS_ID}" in other_volume[1]
    assert binds(fake_node) == []


@pytest.mark.asyncio
async def test_unpublish_unmounts_removes_the_empty_target_and_is_idempotent(
        fake_node: FakeNode) -> None:
    staging = await staged(fake_node)
    target = fake_node.work / "pod"
    await fake_node.stub.node_publish_volume(publish_request(HANDLE, staging, target))
    request = csi.NodeUnpublishVolumeRequest(volume_id=HANDLE, target_path=str(target))
    await fake_node.stub.node_unpublish_volume(request)
    assert fake_node.table.read_table().at(target) is None
    assert not target.exists()
    await fake_node.stub.node_unpublish_volume(request)  # nothing there: success
    assert fake_node.table.read_table().at(staging) is not None  # the staging mount stays
