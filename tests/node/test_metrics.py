"""The node's own series over real HTTP: mount and unmount durations and failures by cause
(through ``MeasuredMounter``), volume counts read at scrape time, stale mounts and walks."""

from __future__ import annotations

from pathlib import Path

import pytest

from efs_csi.errors import Unavailable
from efs_csi_node.metrics import MeasuredMounter, NodeMetrics, VolumeCounts
from tests.support.fakes.mounts import FlakyMounter
from tests.support.scrape import MetricsServer, scrape, value


@pytest.mark.asyncio
async def test_node_mount_and_volume_series(
    metrics_server: MetricsServer, tmp_path: Path
) -> None:
    registry, port, _ = metrics_server
    counts = VolumeCounts(staged=2, published=5)
    metrics = NodeMetrics(registry)
    metrics.track_volume_counts(lambda: counts)
    inner = FlakyMounter()
    mounter = MeasuredMounter(inner, metrics)
    await mounter.mount("fs-01234567", "/", tmp_path, ["tls"])
    inner.fail_with = TimeoutError()
    with pytest.raises(TimeoutError):
        await mounter.mount("fs-01234567", "/", tmp_path, ["tls"])
    inner.fail_with = Unavailable("mount target unreachable")
    with pytest.raises(Unavailable):
        await mounter.unmount(tmp_path)
    metrics.on_stale("found")
    metrics.on_stale("recovered")
    metrics.observe_walk(1.5, ok=True)
    metrics.set_queue_depth(3)
    samples = await scrape(port)
    assert len(inner.calls) == 3
    assert value(samples, "efs_csi_node_mount_operation_duration_seconds_count",
                 operation="mount") == 2
    assert value(samples, "efs_csi_node_mount_operation_failures_total",
                 operation="mount", cause="timeout") == 1
    assert value(samples, "efs_csi_node_mount_operation_failures_total",
                 operation="unmount", cause="unavailable") == 1
    assert value(samples, "efs_csi_node_staged_volumes") == 2
    assert value(samples, "efs_csi_node_published_volumes") == 5
    assert value(samples, "efs_csi_node_stale_mounts_found_total") == 1
    assert value(samples, "efs_csi_node_stale_mounts_recovered_total") == 1
    assert value(samples, "efs_csi_node_volume_stats_walk_duration_seconds_count",
                 outcome="ok") == 1
    assert value(samples, "efs_csi_node_volume_stats_queue_depth") == 3
