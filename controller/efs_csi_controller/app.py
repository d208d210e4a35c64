"""Composition root of efs-csi-controller: builds the parts from its configuration and serves
them.

``run_controller`` opens the adapters the configuration asks for (the EFS API, the Kubernetes
API, a mounter for root directories) and serves; ``build_controller`` assembles the use cases
from whatever cloud it is given, and is how tests and benchmarks that need the whole assembly
over a real EFS API (moto) get it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from efs_csi.adapters.aws import CloudFactory, resolve_region
from efs_csi.adapters.kube import KubernetesAsyncioKube
from efs_csi.cloud import Cloud
from efs_csi.errors import FailedPrecondition
from efs_csi.logging import get_logger
from efs_csi.metrics import MetricsEndpoint, RpcMetrics, new_registry
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.local import LocalMounter
from efs_csi.mounting.mount import EfsMounter, MountCommands, Mounter
from efs_csi.mounting.offloop import OffLoop
from efs_csi.rpc.identity import IdentityService, Readiness
from efs_csi.rpc.server import BackgroundTask, ServeOptions, serve
from efs_csi_controller.config import ControllerConfig, RootDirectories
from efs_csi_controller.cross_account import CloudForRole, CloudSelector
from efs_csi_controller.gid import DEFAULT_MAX_AGE, GidAllocator
from efs_csi_controller.metrics import ApiMetrics, ProvisioningCollector
from efs_csi_controller.provisioning import ObjectReader, Provisioner
from efs_csi_controller.root_dir import RootDirectoryRemover
from efs_csi_controller.service import ControllerService
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


def root_directory_remover(settings: RootDirectories,
                           region: str | None = None) -> RootDirectoryRemover:
    commands = MountCommands(CommandRunner(), ROOT_MOUNT_TIMEOUT, ROOT_MOUNT_TIMEOUT)
    mounter: Mounter
    options: tuple[str, ...]
    if settings.mount_backend == "local":
        assert settings.local_root is not None  # __main__ refuses local without a root
        mounter, options = LocalMounter(settings.local_root, commands, OffLoop()), ()
    else:
        # efs-utils would otherwise look the region up in its configuration, then in instance
        # metadata: give it the controller's own, so both always agree.
        mounter = EfsMounter(commands)
        options = ("tls", f"region={region}") if region else ("tls",)
    work_dir = Path(tempfile.gettempdir()) / "efs-csi-controller"
    return RootDirectoryRemover(mounter, work_dir=work_dir, mount_options=options,
                                detach=commands.lazy_unmount)


async def run_controller(*, config: ControllerConfig) -> None:
    readiness = Readiness()
    registry = new_registry()
    async with AsyncExitStack() as stack:
        # Opened before serving: Probe can only ever answer ready with a usable AWS client.
        clouds: CloudFactory | NoRegionCloud
        default: Cloud
        region: str | None = None
        try:
            # --region / AWS_REGION / AWS_DEFAULT_REGION, then instance metadata.
            region = await resolve_region(
                config.region, metadata_disabled=config.instance_metadata_disabled)
        except FailedPrecondition:
            _log.error("no AWS region; every EFS call will fail", hint=NO_REGION)
            clouds = default = NoRegionCloud()
        else:
            clouds = await stack.enter_async_context(
                CloudFactory(region, adaptive_retry=config.adaptive_retry_mode,
                             observer=ApiMetrics(registry)))
            default = clouds.default
        kube = KubernetesAsyncioKube(config.kube) if config.kube is not None else None
        if kube is not None:
            stack.push_async_callback(kube.close)
        root_dirs = (root_directory_remover(config.root_directories, region)
                     if config.root_directories is not None else None)
        parts = build_controller(
            default, for_role=clouds.cloud_for, access_point_limit=config.access_point_limit,
            extra_tags=config.extra_tags, kube=kube, root_dirs=root_dirs,
            inventory_max_age=config.gid_inventory_max_age)
        # Per-file-system access points, GIDs and in-flight creates, read at scrape time.
        registry.register(ProvisioningCollector(parts.allocator.snapshot))
        background: list[BackgroundTask] = []
        serving = config.serving
        if serving.http_endpoint is not None:
            host, port = serving.http_endpoint
            background.append(MetricsEndpoint(registry, host, port,
                                              healthy=lambda: readiness.ready).run)

        async def startup() -> None:
            readiness.set_ready()

        await serve(
            [IdentityService(readiness, controller=True), parts.service],
            serving.endpoint,
            options=ServeOptions(grace_period=serving.shutdown_grace_period,
                                 observer=RpcMetrics(registry)),
            startup=startup,
            background=background,
        )
