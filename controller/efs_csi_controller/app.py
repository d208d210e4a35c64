"""Composition root of efs-csi-controller: builds the parts from its configuration and serves
them.

``run_controller`` opens the adapters the configuration asks for (the EFS API, the Kubernetes
API, a mounter for root directories) and serves; ``build_controller`` assembles the use cases
from whatever cloud it is given, and is how tests and benchmarks that need the whole assembly
over a real EFS API (moto) get it.

Serving comes first, so Probe answers ready within a fraction of a second: the AWS client is
built after serving begins (a background task; the first EFS call waits for it, within its
deadline: ``efs_csi_controller.waiting_cloud``), and the Kubernetes client is imported on the
first fileSystemIdConfigRef/SecretRef that needs it (``KubeOnFirstUse``). Both libraries are
imported in a worker thread so the event loop keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from efs_csi.cloud import Clouds
from efs_csi.errors import FailedPrecondition
from efs_csi.kube import KubeEndpoint, PersistentVolumeInfo
from efs_csi.logging import get_logger
from efs_csi.metrics import new_registry
from efs_csi.mounting.blocking import BlockingCalls
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.local import LocalMounter
from efs_csi.mounting.mount import EfsMounter, MountCommands, Mounter
from efs_csi.rpc.hook import seconds_left
from efs_csi.rpc.server import BackgroundTask
from efs_csi.serving import serve_binary
from efs_csi_controller.config import ControllerConfig, RootDirectories
from efs_csi_controller.gid import DEFAULT_MAX_AGE, GidAllocator
from efs_csi_controller.metrics import ApiMetrics, ProvisioningCollector
from efs_csi_controller.provisioning import ObjectReader, Provisioner
from efs_csi_controller.root_dir import RootDirectoryRemover
from efs_csi_controller.service import ControllerService
from efs_csi_controller.tags import LEGACY_CLUSTER_ID
from efs_csi_controller.waiting_cloud import NO_REGION, WaitingClouds

if TYPE_CHECKING:
    from efs_csi.adapters.aws import CloudFactory
    from efs_csi.adapters.kube import KubernetesAsyncioKube

_log = get_logger("controller.app")
# Mounting a file system root to delete one directory: generous, it is off the hot path.
ROOT_MOUNT_TIMEOUT = 120.0
#: How the efs backend mounts a file system root: encrypted, and authenticated by IAM.
ROOT_MOUNT_OPTIONS = ("tls", "iam")


@dataclass
class ControllerParts:
    service: ControllerService
    provisioner: Provisioner
    allocator: GidAllocator


def build_controller(clouds: Clouds, *, access_point_limit: int, extra_tags: Mapping[str, str],
                     kube: ObjectReader | None = None,
                     root_dirs: RootDirectoryRemover | None = None,
                     inventory_max_age: float = DEFAULT_MAX_AGE,
                     cluster_id: str = LEGACY_CLUSTER_ID,
                     allow_shared_roots: bool = False) -> ControllerParts:
    allocator = GidAllocator(access_point_limit=access_point_limit, max_age=inventory_max_age)
    provisioner = Provisioner(clouds=clouds, allocator=allocator,
                              kube=kube, extra_tags=extra_tags, root_dirs=root_dirs,
                              cluster_id=cluster_id, allow_shared_roots=allow_shared_roots)
    return ControllerParts(ControllerService(provisioner), provisioner, allocator)


def root_directory_remover(settings: RootDirectories,
                           region: str | None = None) -> RootDirectoryRemover:
    commands = MountCommands(CommandRunner(), ROOT_MOUNT_TIMEOUT, ROOT_MOUNT_TIMEOUT)
    mounter: Mounter
    options: tuple[str, ...]
    if settings.mount_backend == "local":
        assert settings.local_root is not None  # __main__ refuses local without a root
        mounter, options = LocalMounter(settings.local_root, commands, BlockingCalls()), ()
    else:
        # iam: efs-utils authenticates the mount with the controller's own AWS identity, so a
        # file system policy can grant root access (ClientRootAccess) to the controller's role
        # alone instead of to every anonymous client (docs/iam-policy.md), as the reference
        # driver mounts. efs-utils would otherwise look the region up in its configuration,
        # then in instance metadata: give it the controller's own, so both always agree.
        mounter = EfsMounter(commands)
        options = ROOT_MOUNT_OPTIONS + ((f"region={region}",) if region else ())
    work_dir = Path(tempfile.gettempdir()) / "efs-csi-controller"
    return RootDirectoryRemover(mounter, work_dir=work_dir, mount_options=options,
                                detach=commands.lazy_unmount)


def _aws_adapter() -> tuple[type[CloudFactory], Callable[..., Awaitable[str]]]:
    from efs_csi.adapters.aws import CloudFactory, resolve_region  # deferred: see the docstring

    return CloudFactory, resolve_region


def _kube_adapter() -> type[KubernetesAsyncioKube]:
    from efs_csi.adapters.kube import KubernetesAsyncioKube  # deferred: see the docstring

    return KubernetesAsyncioKube


@dataclass
class KubeOnFirstUse:
    """The ``ObjectReader`` of fileSystemIdConfigRef/SecretRef and of the PV checks before a
    directory is deleted: the Kubernetes client is imported (~0.5 s, tens of MiB) and opened by
    the first request that needs it."""

    endpoint: KubeEndpoint
    _kube: KubernetesAsyncioKube | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def _opened(self) -> KubernetesAsyncioKube:
        async with self._lock:
            if self._kube is None:
                self._kube = (await asyncio.to_thread(_kube_adapter))(self.endpoint)
        return self._kube

    async def read_config_map_key(self, namespace: str, name: str, key: str) -> str:
        return await (await self._opened()).read_config_map_key(namespace, name, key)

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        return await (await self._opened()).read_secret_key(namespace, name, key)

    async def read_persistent_volume(self, name: str) -> PersistentVolumeInfo:
        return await (await self._opened()).read_persistent_volume(name)

    async def close(self) -> None:
        if self._kube is not None:
            await self._kube.close()
            self._kube = None


@dataclass
class AwsClients:
    """Builds the EFS API clients after serving begins and hands them to ``clouds``; a
    background task for the server's lifetime, closing them when cancelled."""

    config: ControllerConfig
    clouds: WaitingClouds
    observer: ApiMetrics

    async def run(self) -> None:
        factory_type, resolve_region = await asyncio.to_thread(_aws_adapter)
        try:
            # --region / AWS_REGION / AWS_DEFAULT_REGION, then instance metadata.
            region = await resolve_region(
                self.config.region, metadata_disabled=self.config.instance_metadata_disabled)
        except FailedPrecondition:
            _log.error("no AWS region; every EFS call will fail", hint=NO_REGION)
            self.clouds.fail(NO_REGION)
            await asyncio.Event().wait()  # until the server stops
            return
        # Every EFS call stops short of its CSI call's deadline (and says why).
        async with factory_type(region, adaptive_retry=self.config.adaptive_retry_mode,
                                observer=self.observer, time_left=seconds_left) as factory:
            self.clouds.provide(factory)
            _log.info("EFS API client ready", region=region)
            try:
                await asyncio.Event().wait()  # until the server stops
            finally:
                self.clouds.withdraw()


async def run_controller(*, config: ControllerConfig) -> None:
    registry = new_registry()
    clouds = WaitingClouds(time_left=seconds_left)
    background: list[BackgroundTask] = [
        AwsClients(config, clouds, ApiMetrics(registry)).run]
    kube = KubeOnFirstUse(config.kube) if config.kube is not None else None
    # The region tells efs-utils where the file system is. Without --region (or AWS_REGION)
    # both the controller and efs-utils take it from instance metadata, so they still agree.
    root_dirs = (root_directory_remover(config.root_directories, config.region)
                 if config.root_directories is not None else None)
    parts = build_controller(
        clouds, access_point_limit=config.access_point_limit,
        extra_tags=config.extra_tags, kube=kube, root_dirs=root_dirs,
        inventory_max_age=config.gid_inventory_max_age, cluster_id=config.cluster_id,
        allow_shared_roots=config.allow_shared_root_directories)
    # Per-file-system access points, GIDs and in-flight creates, read at scrape time.
    registry.register(ProvisioningCollector(parts.allocator.snapshot,
                                            access_point_limit=config.access_point_limit))
    try:
        await serve_binary(parts.service, config.serving, controller=True, registry=registry,
                           background=background)
    finally:
        if kube is not None:
            await kube.close()
