"""The node's own series over real HTTP: mount and unmount durations and failures by cause
(through ``MeasuredMounter``), volume counts read at scrape time, stale mounts and walks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from efs_csi.errors import Unavailable
from efs_csi_node.metrics import MeasuredMounter, NodeMetrics, VolumeCounts
from efs_csi_node.zone import NodeZone
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


@pytest.mark.asyncio
async def test_walk_series_for_slow_and_partial_walks(metrics_server: MetricsServer) -> None:
    registry, port, _ = metrics_server
    metrics = NodeMetrics(registry)
    longest = {"s": 0.0}
    metrics.track_walks(14400.0, lambda: longest["s"])
    metrics.observe_walk(2.0, ok=True, unreadable=3)
    metrics.observe_walk(1.0, ok=True)
    metrics.observe_walk(9000.0, ok=True)  # hours: past the default refresh period's bucket
    longest["s"] = 20000.0
    samples = await scrape(port)
    assert value(samples, "efs_csi_node_volume_stats_refresh_period_seconds") == 14400
    assert value(samples, "efs_csi_node_volume_stats_longest_walk_seconds") == 20000
    assert value(samples, "efs_csi_node_volume_stats_partial_walks_total") == 1
    assert value(samples, "efs_csi_node_volume_stats_unreadable_entries_total") == 3
    bucket = "efs_csi_node_volume_stats_walk_duration_seconds_bucket"
    assert value(samples, bucket, outcome="ok", le="3600.0") == 2
    assert value(samples, bucket, outcome="ok", le="14400.0") == 3


@pytest.mark.asyncio
async def test_start_up_and_watchdog_series(metrics_server: MetricsServer) -> None:
    registry, port, _ = metrics_server
    metrics = NodeMetrics(registry)
    pending = {"now": True}
    zone = NodeZone(label_source=True)
    metrics.track_zone(zone, {"kubernetes_api": 2}, lambda: pending["now"])
    samples = await scrape(port)
    assert value(samples, "efs_csi_node_startup_helper_pending") == 1
    assert value(samples, "efs_csi_node_zone_settled") == 0
    assert value(samples, "efs_csi_node_startup_helper_failures_total",
                 reason="kubernetes_api") == 2
    assert value(samples, "efs_csi_node_efs_utils_watchdog_restarts_total") == 0  # from start
    metrics.watchdog_exited(1, 2.0)
    metrics.watchdog_exited(None, 4.0)  # could not start: a restart too
    pending["now"] = False
    zone.from_label("us-east-1a")
    zone.from_imds(None)
    samples = await scrape(port)
    assert value(samples, "efs_csi_node_startup_helper_pending") == 0
    assert value(samples, "efs_csi_node_zone_settled") == 1
    assert value(samples, "efs_csi_node_efs_utils_watchdog_restarts_total") == 2


@pytest.mark.asyncio
async def test_tunnels_and_their_restarts_from_efs_utils_state_files(
        metrics_server: MetricsServer, tmp_path: Path) -> None:
    """State files as mount.efs writes them (a JSON object with the tunnel's pid); the
    watchdog writing a new pid is a restart. Our own pid stands in for a live tunnel."""
    registry, port, _ = metrics_server
    NodeMetrics(registry).track_tunnels(tmp_path / "efs")
    samples = await scrape(port)  # no state directory yet: no tunnels
    assert value(samples, "efs_csi_node_efs_proxy_tunnels", state="running") == 0
    assert value(samples, "efs_csi_node_efs_proxy_restarts_total") == 0
    state_dir = tmp_path / "efs"
    state_dir.mkdir()
    dead_pid = 2**22 + 1  # above pid_max's ceiling: never a process
    alive = state_dir / "fs-0123abcd.var.lib.kubelet.staging.20049"
    alive.write_text(json.dumps({"pid": os.getpid(), "cmd": ["efs-proxy"]}))
    dead = state_dir / "fs-0123abcd.var.lib.kubelet.other.20050"
    dead.write_text(json.dumps({"pid": dead_pid}))
    (state_dir / "fs-0123abcd.var.lib.kubelet.gone.20051").write_text(
        json.dumps({"pid": dead_pid, "unmount_time": 1}))  # unmounted: not a tunnel
    (state_dir / "~fs-0123abcd.var.lib.kubelet.other.20050").write_text("{")  # being rewritten
    (state_dir / "fs-0123abcd.var.lib.kubelet.staging.20049+").mkdir()  # a mount's state dir
    samples = await scrape(port)
    assert value(samples, "efs_csi_node_efs_proxy_tunnels", state="running") == 1
    assert value(samples, "efs_csi_node_efs_proxy_tunnels", state="not_running") == 1
    dead.write_text(json.dumps({"pid": os.getppid()}))  # the watchdog started it again
    samples = await scrape(port)
    assert value(samples, "efs_csi_node_efs_proxy_tunnels", state="running") == 2
    assert value(samples, "efs_csi_node_efs_proxy_restarts_total") == 1
    samples = await scrape(port)  # the same pid again: no new restart
    assert value(samples, "efs_csi_node_efs_proxy_restarts_total") == 1
    # A new watchdog's start-up drops a dead tunnel's pid, then starts one and writes its pid.
    alive.write_text(json.dumps({"cmd": ["efs-proxy"]}))
    samples = await scrape(port)
    assert value(samples, "efs_csi_node_efs_proxy_tunnels", state="not_running") == 1
    assert value(samples, "efs_csi_node_efs_proxy_restarts_total") == 1
    alive.write_text(json.dumps({"pid": os.getpid(), "cmd": ["efs-proxy"]}))
    samples = await scrape(port)
    assert value(samples, "efs_csi_node_efs_proxy_tunnels", state="running") == 2
    assert value(samples, "efs_csi_node_efs_proxy_restarts_total") == 1  # its pid came back


@pytest.mark.slow
@pytest.mark.asyncio
async def test_a_killed_tunnel_not_yet_reaped_is_not_running(
        metrics_server: MetricsServer, tmp_path: Path) -> None:
    """A killed efs-proxy keeps its pid as a zombie until its parent reaps it: not a tunnel."""
    registry, port, _ = metrics_server
    NodeMetrics(registry).track_tunnels(tmp_path)
    zombie = subprocess.Popen(["true"])
    try:
        await asyncio.to_thread(os.waitid, os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)
        (tmp_path / "fs-0123abcd.var.lib.kubelet.staging.20049").write_text(
            json.dumps({"pid": zombie.pid, "cmd": ["efs-proxy"]}))
        samples = await scrape(port)
        assert value(samples, "efs_csi_node_efs_proxy_tunnels", state="running") == 0
        assert value(samples, "efs_csi_node_efs_proxy_tunnels", state="not_running") == 1
    finally:
        zombie.wait()


@pytest.mark.asyncio
async def test_usual_failure_series_exist_at_zero_before_any_failure(
        metrics_server: MetricsServer) -> None:
    """A burst of failures between two scrapes must show as an increase, not as a series that
    appears already at N (which rate() and increase() cannot count)."""
    registry, port, _ = metrics_server
    NodeMetrics(registry)
    samples = await scrape(port)
    for operation in ("mount", "unmount"):
        key = ("efs_csi_node_mount_operation_failures_total",
               frozenset({("operation", operation), ("cause", "internal")}))
        assert samples[key] == 0
        assert samples[("efs_csi_node_mount_operation_duration_seconds_count",
                        frozenset({("operation", operation)}))] == 0
