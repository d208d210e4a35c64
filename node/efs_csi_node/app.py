"""Composition root of efs-csi-node: builds the mounter and the services from its configuration,
and serves them.

``build_node`` is the one place the node's parts are put together; ``run_node`` gives it the
real mounter, and tests give it their own (the local backend, or fakes where a real part cannot
reach, such as an in-memory mount table), so they exercise the same assembly.

The long-lived process loads only what serving needs, so a node starts fast and stays small:
Probe answers ready as soon as the socket listens; instance metadata is asked after that (for the
zone, ``efs_csi_node.topology``), the Node's zone label and the startup taint are handled by a
short-lived helper process (``efs_csi_node.startup_helper``: the Kubernetes client never enters
this process), and the metrics endpoint and the EFS API client import their libraries when they
start (``bench/startup.py`` and ``bench/node_registration.py`` measure it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from efs_csi.cloud import AccessPoint
from efs_csi.errors import FailedPrecondition
from efs_csi.metrics import new_registry
from efs_csi.mounting.blocking import BlockingCalls
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.health import PathProbe
from efs_csi.mounting.local import LocalMounter
from efs_csi.mounting.mount import BindMounts, EfsMounter, MountCommands, Mounter
from efs_csi.mounting.mountinfo import MountTable, read_mount_table
from efs_csi.rpc.server import BackgroundTask
from efs_csi.serving import serve_binary
from efs_csi_node.config import NodeConfig
from efs_csi_node.efs_utils.startup import efs_utils_background, prepare_efs_utils
from efs_csi_node.locks import KeyLocksInFlight, MountSlots
from efs_csi_node.metrics import MeasuredMounter, NodeMetrics, VolumeCounts
from efs_csi_node.mount_health import MountHealth
from efs_csi_node.mount_ops import MountOps
from efs_csi_node.publishing import Publisher
from efs_csi_node.service import NodeService, NodeServiceConfig
from efs_csi_node.staging import Stager
from efs_csi_node.startup_helper import StartupHelper, StartupWork
from efs_csi_node.stats import UsageSource, VolumeStatsSource
from efs_csi_node.topology import zone_from_imds
from efs_csi_node.volume_stats import VolumeStatsCollector
from efs_csi_node.zone import NodeZone

if TYPE_CHECKING:
    from efs_csi.adapters.aws import AwsCloud

# How long a stat of a staging or target path may take before the mount counts as stale.
# Short on purpose: a healthy mount answers in milliseconds, and kubelet's own call timeout
# must leave room for the lazy unmount and the remount that follow.
STAT_TIMEOUT = 5.0


@dataclass
class NodeParts:
    service: NodeService
    stager: Stager
    publisher: Publisher
    ops: MountOps
    stats: VolumeStatsSource
    blocking: BlockingCalls
    locks: KeyLocksInFlight


def build_node(config: NodeServiceConfig, mounter: Mounter, commands: MountCommands, *,
               zone: NodeZone, max_inflight_mounts: int = 0,
               stat_timeout: float = STAT_TIMEOUT, blocking: BlockingCalls | None = None,
               probe: PathProbe | None = None,
               usage: UsageSource | None = None,
               read_table: Callable[[], MountTable] = read_mount_table) -> NodeParts:
    """``usage``: where the figures of NodeGetVolumeStats come from (default: ``statvfs``)."""
    blocking = blocking or BlockingCalls()
    probe = probe or PathProbe(blocking, stat_timeout)
    ops = MountOps(probe, BindMounts(commands), blocking, read_table=read_table)
    locks = KeyLocksInFlight()
    slots = MountSlots(max_inflight_mounts)
    stats = VolumeStatsSource(probe, read_table, locks, usage)
    stager = Stager(mounter, ops, locks, slots, stop_reading=stats.stop_reading)
    publisher = Publisher(ops, locks, slots, stager.restage_if_stale, stager.staged,
                          stop_reading=stats.stop_reading)
    service = NodeService(config, stager=stager, publisher=publisher, stats=stats, mounts=ops,
                          zone=zone)
    return NodeParts(service, stager, publisher, ops, stats, blocking, locks)


@dataclass
class LazyCloud:
    """The EFS API, opened on first use: only the local backend with access points needs it,
    and only an installation with the local backend's extra (efs-csi-node[local]) has the SDK."""

    region: str | None
    _cloud: AwsCloud | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def describe_access_point(self, access_point_id: str) -> AccessPoint:
        async with self._lock:
            if self._cloud is None:
                try:  # deferred: the efs backend never needs the SDK
                    from efs_csi.adapters.aws import AwsCloud
                except ImportError:
                    raise FailedPrecondition(
                        f"access point {access_point_id}: the local backend looks access points "
                        "up through the EFS API, whose client is not installed (install "
                        "efs-csi-node[local])") from None
                cloud = AwsCloud.create(self.region)
                await cloud.open()
                self._cloud = cloud
        return await self._cloud.describe_access_point(access_point_id)

    async def close(self) -> None:
        if self._cloud is not None:
            await self._cloud.close()
        self._cloud = None


def volume_counts(parts: NodeParts) -> VolumeCounts:
    """Staged and published volumes as the mount table shows them (read at scrape time):
    a publication is a mount of the same origin as a staging mount, elsewhere."""
    table = parts.ops.table()
    staged = [entry for entry in table.entries
              if parts.stager.staged.at(Path(entry.mount_point)) is not None]
    published = sum(1 for entry in table.entries
                    if parts.stager.staged.at(Path(entry.mount_point)) is None
                    and any(entry.same_origin(staging) for staging in staged))
    return VolumeCounts(staged=len(staged), published=published)


@dataclass
class StartUpTasks:
    zone: NodeZone
    tasks: list[BackgroundTask]  # run once serving begins
    helper_failures: Mapping[str, int]
    helper_pending: Callable[[], bool] = lambda: False


def start_up_tasks(config: NodeConfig) -> StartUpTasks:
    """The zone, and the background tasks that learn it once the node serves (instance
    metadata, asked here; the Node's label, read by the start-up helper, which also removes the
    startup taint): Probe never waits on either."""
    zone = (NodeZone.known(config.availability_zone) if config.availability_zone
            else NodeZone(label_source=config.kube is not None))
    work = StartUpTasks(zone, [], {})
    if not zone.settled:
        async def zone_from_instance_metadata() -> None:
            zone.from_imds(await zone_from_imds(config.imds))

        work.tasks.append(zone_from_instance_metadata)
    if config.kube is not None:
        helper = StartupHelper(StartupWork(node_name=config.node_id,
                                           remove_taint=config.remove_not_ready_taint,
                                           kube=config.kube, log_format=config.log_format,
                                           log_level=config.log_level), zone)
        work.helper_failures = helper.failures
        work.helper_pending = helper.pending
        if helper.pending():
            work.tasks.append(helper.run)
    return work


async def run_node(*, config: NodeConfig) -> None:
    registry = new_registry()
    node_metrics = NodeMetrics(registry)
    commands = MountCommands(CommandRunner(), config.mount_timeout, config.unmount_timeout)
    blocking = BlockingCalls()
    cloud = LazyCloud(config.region)
    mounter: Mounter
    background: list[BackgroundTask] = []
    if config.mount_backend == "local":
        assert config.local_root is not None  # __main__ refuses local without a root
        mounter = LocalMounter(config.local_root, commands, blocking,
                               cloud.describe_access_point)
    else:
        mounter = EfsMounter(commands, config.efs_utils.state_dir)
        # Before listening: a bad efs-utils setting stops the node with the flag's name.
        await prepare_efs_utils(config.efs_utils)
        background += efs_utils_background(on_watchdog_exit=node_metrics.watchdog_exited)
    # efs-utils' state file per mount holds its tunnel's pid (--efs-utils-state-dir; the chart
    # mounts the host's /var/run/efs there). The local backend has none: its series stay at 0.
    node_metrics.track_tunnels(config.efs_utils.state_dir)
    mounter = MeasuredMounter(mounter, node_metrics)
    usage: UsageSource | None = None
    if config.volume_stats is not None:
        collector = VolumeStatsCollector(config.volume_stats, blocking=blocking,
                                         observer=node_metrics)
        usage = collector
        background.append(collector.run)  # owns the walks; closes them at stop
        node_metrics.track_walks(collector.refresh_period_s, collector.longest_walk_s)
    start_up = start_up_tasks(config)
    background += start_up.tasks
    zone = start_up.zone
    node_metrics.track_zone(zone, start_up.helper_failures, start_up.helper_pending)
    parts = build_node(
        NodeServiceConfig(node_id=config.node_id,
                          max_volumes_per_node=config.volume_attach_limit,
                          volume_stats=config.volume_stats is not None,
                          allowed_insecure_mount_options=config.allowed_insecure_mount_options),
        mounter, commands, zone=zone, max_inflight_mounts=config.max_inflight_mount_calls,
        stat_timeout=min(STAT_TIMEOUT, config.mount_timeout), blocking=blocking, usage=usage)
    parts.ops.on_stale = node_metrics.on_stale
    node_metrics.track_volume_counts(lambda: volume_counts(parts))
    health = MountHealth(parts.stager.staged, parts.ops.probe, parts.ops.table, parts.locks,
                         period=config.mount_health_period)
    node_metrics.track_mount_health(health.snapshot)
    if config.mount_health_period > 0:
        background.append(health.run)
    try:
        await serve_binary(parts.service, config.serving, controller=False, registry=registry,
                           background=background, health_notes=lambda: [zone.health_note()])
    finally:
        await cloud.close()
