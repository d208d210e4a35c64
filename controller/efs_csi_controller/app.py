"""Composition root of efs-csi-controller: builds the parts from the flags and serves them.

``build_controller`` is the one place the controller's parts are put together; tests call it
with their own cloud (and fakes where a real part cannot reach), so they exercise the same
assembly as the binary.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from efs_csi.adapters.aws import CloudFactory, resolve_region
from efs_csi.adapters.kube import KubernetesAsyncioKube
from efs_csi.cloud import Cloud
from efs_csi.errors import FailedPrecondition
from efs_csi.kube import in_cluster_or_none
from efs_csi.logging import get_logger
from efs_csi.metrics import MetricsEndpoint, RpcMetrics, new_registry
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.local import LocalMounter
from efs_csi.mounting.mount import EfsMounter, MountCommands, Mounter
from efs_csi.mounting.offloop import OffLoop
from efs_csi.rpc.identity import IdentityService, Readiness
from efs_csi.rpc.server import BackgroundTask, ServeOptions, serve
from efs_csi_controller.cross_account import CloudForRole, CloudSelector
from efs_csi_controller.gid import DEFAULT_MAX_AGE, GidAllocator
from efs_csi_controller.metrics import ApiMetrics, ProvisioningCollector
from efs_csi_controller.provisioning import ObjectReader, Provisioner
from efs_csi_controller.root_dir import RootDirectoryRemover
from efs_csi_controller.service import ControllerService
from efs_csi_controller.tags import parse_tags
from efs_csi_controller.unconfigured import MESSAGE as NO_REGION
from efs_csi_controller.unconfigured import NoRegionCloud

_log = get_logger("controller.app")
# Mounting a file system root to delete one directory: generous, it is off the hot path.
ROOT_MOUNT_TIMEOUT = 120.0


@dataclass
class ControllerParts:
    service: ControllerService
    provisioner: Provisioner
    allocator: GidAllocator


def build_controller(default_cloud: Cloud, *, for_role: CloudForRole | None,
                     access_point_limit: int, extra_tags: Mapping[str, str],
                     kube: ObjectReader | None = None,
                     root_dirs: RootDirectoryRemover | None = None,
                     inventory_max_age: float = DEFAULT_MAX_AGE) -> ControllerParts:
    allocator = GidAllocator(access_point_limit=access_point_limit, max_age=inventory_max_age)
    provisioner = Provisioner(clouds=CloudSelector(default_cloud, for_role), allocator=allocator,
                              kube=kube, extra_tags=extra_tags, root_dirs=root_dirs)
    return ControllerParts(ControllerService(provisioner), provisioner, allocator)


def root_directory_remover(args: argparse.Namespace,
                           region: str | None = None) -> RootDirectoryRemover | None:
    if not args.delete_access_point_root_dir:
        return None
    commands = MountCommands(CommandRunner(), ROOT_MOUNT_TIMEOUT, ROOT_MOUNT_TIMEOUT)
    mounter: Mounter
    options: tuple[str, ...]
    if args.mount_backend == "local":
        mounter, options = LocalMounter(Path(args.local_root), commands, OffLoop()), ()
    else:
        # efs-utils would otherwise look the region up in its configuration, then in instance
        # metadata: give it the controller's own, so both always agree.
        mounter = EfsMounter(commands)
        options = ("tls", f"region={region}") if region else ("tls",)
    work_dir = Path(tempfile.gettempdir()) / "efs-csi-controller"
    return RootDirectoryRemover(mounter, work_dir=work_dir, mount_options=options,
                                detach=commands.lazy_unmount)


async def run_controller(args: argparse.Namespace) -> None:
    readiness = Readiness()
    registry = new_registry()
    async with AsyncExitStack() as stack:
        # Opened before serving: Probe can only ever answer ready with a usable AWS client.
        clouds: CloudFactory | NoRegionCloud
        default: Cloud
        region: str | None = None
        try:
            # --region, then AWS_REGION / AWS_DEFAULT_REGION, then instance metadata.
            region = await resolve_region(args.region)
        except FailedPrecondition:
            _log.error("no AWS region; every EFS call will fail", hint=NO_REGION)
            clouds = default = NoRegionCloud()
        else:
            clouds = await stack.enter_async_context(
                CloudFactory(region, adaptive_retry=args.adaptive_retry_mode,
                             observer=ApiMetrics(registry)))
            default = clouds.default
        endpoint = in_cluster_or_none(
            os.environ, without="fileSystemIdConfigRef/SecretRef unavailable")
        kube = KubernetesAsyncioKube(endpoint) if endpoint is not None else None
        if kube is not None:
            stack.push_async_callback(kube.close)
        parts = build_controller(
            default, for_role=clouds.cloud_for,
            access_point_limit=args.access_point_limit, extra_tags=parse_tags(args.tags),
            kube=kube, root_dirs=root_directory_remover(args, region),
            inventory_max_age=args.gid_inventory_max_age)
        # Per-file-system access points, GIDs and in-flight creates, read at scrape time.
        registry.register(ProvisioningCollector(parts.allocator.snapshot))
        background: list[BackgroundTask] = []
        if args.http_endpoint is not None:
            host, port = args.http_endpoint
            background.append(MetricsEndpoint(registry, host, port,
                                              healthy=lambda: readiness.ready).run)

        async def startup() -> None:
            readiness.set_ready()

        await serve(
            [IdentityService(readiness, controller=True), parts.service],
            args.endpoint,
            options=ServeOptions(grace_period=args.shutdown_grace_period,
                                 observer=RpcMetrics(registry)),
            startup=startup,
            background=background,
        )
