"""Composition root of efs-csi-node: builds the mounter and the services, and serves them.

``build_node`` is the one place the node's parts are put together; tests call it with their
own mounter (and fakes where a real part cannot reach) so they exercise the same assembly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from efs_csi.cloud import AccessPoint
from efs_csi.commands import CommandRunner
from efs_csi.identity import IdentityService, Readiness
from efs_csi.local_mount import LocalMounter
from efs_csi.mount import BindMounts, EfsMounter, MountCommands, Mounter
from efs_csi.offloop import OffLoop, PathProbe
from efs_csi.server import BackgroundTask, ServeOptions, serve
from node.efs_utils.startup import efs_utils_background, prepare_efs_utils
from node.locks import KeyedLocks, MountSlots
from node.mount_state import MountState
from node.publishing import Publisher
from node.service import NodeConfig, NodeService
from node.staging import Stager
from node.stats import VolumeStatsSource
from node.statvfs_stats import StatvfsStats
from node.topology import ImdsSettings, resolve_zone

# How long a stat of a staging or target path may take before the mount counts as stale.
# Short on purpose: a healthy mount answers in milliseconds, and kubelet's own call timeout
# must leave room for the lazy unmount and the remount that follow.
STAT_TIMEOUT = 5.0


@dataclass
class NodeParts:
    service: NodeService
    stager: Stager
    publisher: Publisher
    state: MountState
    off_loop: OffLoop


@dataclass
class ZoneHolder:
    """The node's zone, known at start (``--availability-zone``) or filled in by startup."""

    zone: str | None = None

    def __call__(self) -> str | None:
        return self.zone


def build_node(config: NodeConfig, mounter: Mounter, commands: MountCommands, *,
               zone: ZoneHolder, max_inflight_mounts: int = 0,
               stat_timeout: float = STAT_TIMEOUT, off_loop: OffLoop | None = None,
               probe: PathProbe | None = None,
               stats: VolumeStatsSource | None = None) -> NodeParts:
    off_loop = off_loop or OffLoop()
    probe = probe or PathProbe(off_loop, stat_timeout)
    state = MountState(probe, BindMounts(commands), off_loop)
    locks = KeyedLocks()
    slots = MountSlots(max_inflight_mounts)
    stager = Stager(mounter, state, locks, slots)
    publisher = Publisher(state, locks, slots, stager.restage_if_stale)
    service = NodeService(config, stager=stager, publisher=publisher,
                          stats=stats or StatvfsStats(off_loop, stat_timeout),
                          probe=probe, zone=zone)
    return NodeParts(service, stager, publisher, state, off_loop)


@dataclass
class LazyCloud:
    """The EFS API, opened on first use: only the local backend with access points needs it."""

    region: str | None
    _cloud: object | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def describe_access_point(self, access_point_id: str) -> AccessPoint:
        from efs_csi.aws import AwsCloud  # deferred: the efs backend never needs the SDK

        async with self._lock:
            if self._cloud is None:
                cloud = AwsCloud.create(self.region)
                await cloud.open()
                self._cloud = cloud
        assert isinstance(self._cloud, AwsCloud)
        return await self._cloud.describe_access_point(access_point_id)

    async def close(self) -> None:
        from efs_csi.aws import AwsCloud

        if isinstance(self._cloud, AwsCloud):
            await self._cloud.close()
        self._cloud = None


async def run_node(args: argparse.Namespace) -> None:
    readiness = Readiness()
    commands = MountCommands(CommandRunner(), args.mount_timeout, args.unmount_timeout)
    off_loop = OffLoop()
    cloud = LazyCloud(args.region)
    mounter: Mounter
    background: list[BackgroundTask] = []
    if args.mount_backend == "local":
        mounter = LocalMounter(Path(args.local_root), commands, off_loop,
                               cloud.describe_access_point)
    else:
        mounter = EfsMounter(commands)
        # Before listening: a bad efs-utils setting stops the node with the flag's name.
        await prepare_efs_utils(args)
        background += efs_utils_background()
    zone = ZoneHolder(args.availability_zone)
    parts = build_node(
        NodeConfig(node_id=args.node_id, max_volumes_per_node=args.volume_attach_limit,
                   volume_stats=args.vol_metrics_opt_in),
        mounter, commands, zone=zone, max_inflight_mounts=args.max_inflight_mount_calls,
        stat_timeout=min(STAT_TIMEOUT, args.mount_timeout), off_loop=off_loop)

    async def startup() -> None:
        # Probe answers not-ready until the zone is known, so NodeGetInfo reports it.
        zone.zone = await resolve_zone(
            configured=args.availability_zone, node_name=args.node_id,
            imds=ImdsSettings.from_environment(os.environ), kube=None)
        readiness.set_ready()

    try:
        await serve(
            [IdentityService(readiness, controller=False), parts.service],
            args.endpoint,
            options=ServeOptions(grace_period=args.shutdown_grace_period),
            startup=startup,
            background=background,
        )
    finally:
        await cloud.close()
