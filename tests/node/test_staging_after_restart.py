"""The real node binary (local backend): a killed-and-restarted plugin picks up its mounts."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from efs_csi import csi
from efs_csi.mounting.mountinfo import read_mount_table
from testbed.csi_builders import publish_request, stage_request
from testbed.processes import StartBinary
from tests.support.node import FS_ID, unpublish_and_unstage


@pytest.mark.asyncio
async def test_restart_picks_up_existing_mounts(binary: StartBinary,
                                                mounts_cleaned: Path) -> None:
    root, work = mounts_cleaned / "efs", mounts_cleaned / "kubelet"
    (root / FS_ID).mkdir(parents=True)
    staging, target = work / "staging", work / "pod" / "vol"
    args = ["--mount-backend", "local", "--local-root", str(root),
            "--availability-zone", "zone-x"]

    first = await binary("node", args)
    channel = first.channel()
    try:
        stub = csi.NodeStub(channel)
        info = await stub.node_get_info(csi.NodeGetInfoRequest())
        assert info.accessible_topology is not None
        assert info.accessible_topology.segments["topology.kubernetes.io/zone"] == "zone-x"
        await stub.node_stage_volume(stage_request(FS_ID, staging))
        await stub.node_publish_volume(publish_request(FS_ID, staging, target))
    finally:
        channel.close()
    await first.stop(signal.SIGKILL)

    second = await binary("node", args)
    channel = second.channel()
    try:
        stub = csi.NodeStub(channel)
        await stub.node_stage_volume(stage_request(FS_ID, staging))
        await stub.node_publish_volume(publish_request(FS_ID, staging, target))
        table = read_mount_table()
        assert table.count_at(staging) == 1 and table.count_at(target) == 1
        (target / "after-restart").write_text("ok")
        await unpublish_and_unstage(stub, FS_ID, staging, target)
    finally:
        channel.close()
    assert read_mount_table().under(work) == []
    assert (root / FS_ID / "after-restart").read_text() == "ok"
