"""The real node binary with --http-endpoint and --vol-metrics-opt-in: metrics and health over
real HTTP move as real RPCs stage, publish and measure a real bind-mounted volume."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from efs_csi import csi
from testbed.csi_builders import publish_request, stage_request
from testbed.processes import StartBinary
from tests.support.node import FS_ID, unpublish_and_unstage
from tests.support.scrape import healthz, scrape, value


async def volume_stats_until_measured(stub: csi.NodeStub, target: Path
                                      ) -> csi.NodeGetVolumeStatsResponse:
    """Ask until the background walk has answered (the first call waits up to 2 s for it)."""
    for _ in range(500):
        reply = await stub.node_get_volume_stats(csi.NodeGetVolumeStatsRequest(
            volume_id=FS_ID, volume_path=str(target)))
        if reply.usage and reply.usage[0].used:
            return reply
        await asyncio.sleep(0.02)
    raise AssertionError("volume usage never measured")


@pytest.mark.asyncio
async def test_node_binary_serves_metrics_and_measures_usage(
    binary: StartBinary, mounts_cleaned: Path, unused_tcp_port: int
) -> None:
    root, work = mounts_cleaned / "efs", mounts_cleaned / "kubelet"
    (root / FS_ID).mkdir(parents=True)
    (root / FS_ID / "data").write_bytes(os.urandom(1 << 20))
    staging, target = work / "staging", work / "pod" / "vol"
    port = unused_tcp_port
    node = await binary("node", ["--mount-backend", "local", "--local-root", str(root),
                                 "--availability-zone", "zone-x", "--vol-metrics-opt-in",
                                 "--http-endpoint", f"127.0.0.1:{port}"])
    assert await healthz(port) == 200
    before = await scrape(port)
    channel = node.channel()
    try:
        stub = csi.NodeStub(channel)
        capabilities = await stub.node_get_capabilities(csi.NodeGetCapabilitiesRequest())
        assert csi.NodeServiceCapabilityRpcType.GET_VOLUME_STATS in [
            c.rpc.type for c in capabilities.capabilities if c.rpc]
        await stub.node_stage_volume(stage_request(FS_ID, staging,
                                                   context={"capacityBytes": str(5 << 30)}))
        await stub.node_publish_volume(publish_request(FS_ID, staging, target))
        reply = await volume_stats_until_measured(stub, target)
        during = await scrape(port)
        await unpublish_and_unstage(stub, FS_ID, staging, target)
    finally:
        channel.close()
    after = await scrape(port)
    expected_bytes = int(subprocess.run(["du", "-s", "-B1", str(root / FS_ID)], check=True,
                                        capture_output=True, text=True).stdout.split()[0])
    by_unit = {usage.unit: usage for usage in reply.usage}
    assert by_unit[csi.VolumeUsageUnit.BYTES].used == expected_bytes
    assert by_unit[csi.VolumeUsageUnit.BYTES].total == 5 << 30
    assert reply.volume_condition is not None and not reply.volume_condition.abnormal
    assert value(before, "efs_csi_rpc_requests_total", method="NodeStageVolume",
                 code="OK") == 0
    for method in ("NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume",
                   "NodeUnstageVolume"):
        assert value(after, "efs_csi_rpc_requests_total", method=method, code="OK") == 1
    assert value(after, "efs_csi_rpc_requests_total", method="NodeGetVolumeStats",
                 code="OK") >= 1
    assert value(after, "efs_csi_node_mount_operation_duration_seconds_count",
                 operation="mount") == 1
    assert value(after, "efs_csi_node_volume_stats_walk_duration_seconds_count",
                 outcome="ok") >= 1
    assert value(after, "efs_csi_node_volume_stats_queue_depth") == 0
    assert value(during, "efs_csi_node_staged_volumes") == 1
    assert value(during, "efs_csi_node_published_volumes") == 1
    assert value(after, "efs_csi_node_staged_volumes") == 0
    assert value(after, "efs_csi_node_published_volumes") == 0
