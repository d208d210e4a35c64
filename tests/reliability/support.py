"""What the reliability suite shares: the lab (moto + EfsProxy + both real binaries), a
csi-provisioner/kubelet-style retrying client, mount-table and /proc figures, and cleanup.

Everything here talks to the binaries the way Kubernetes does: over their unix sockets, as
separate processes, with real bind mounts (the node's ``local`` backend).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import boto3
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError

from efs_csi import csi
from testbed.csi_builders import mount_capability as capability
from testbed.efs_proxy import EfsProxy, make_file_system
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint
from testbed.mounts import mounts_under, unmount_everything_under
from testbed.processes import RunningBinary, start_binary

T = TypeVar("T")
Mode = csi.VolumeCapabilityAccessModeMode
GID_START, GID_END = 50000, 59999
RETRYABLE = frozenset({Status.UNAVAILABLE, Status.ABORTED, Status.DEADLINE_EXCEEDED})



def create_request(name: str, file_system_id: str) -> csi.CreateVolumeRequest:
    """What csi-provisioner sends for a dynamically provisioned PVC."""
    return csi.CreateVolumeRequest(
        name=name, capacity_range=csi.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[capability()],
        parameters={"provisioningMode": "efs-ap", "fileSystemId": file_system_id,
                    "directoryPerms": "700", "gidRangeStart": str(GID_START),
                    "gidRangeEnd": str(GID_END), "basePath": "/dynamic",
                    "csi.storage.k8s.io/pvc/name": name,
                    "csi.storage.k8s.io/pvc/namespace": "reliability",
                    "csi.storage.k8s.io/pv/name": name})


# the mount table and /proc ---------------------------------------------------------------


def mount_counts_under(directory: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for point in mounts_under(directory):
        counts[point] = counts.get(point, 0) + 1
    return counts


@dataclass(frozen=True)
class ProcessFigures:
    fds: int
    threads: int
    rss_kib: int

    def __str__(self) -> str:
        return f"fds={self.fds} threads={self.threads} rss={self.rss_kib / 1024:.1f} MiB"


def process_figures(pid: int) -> ProcessFigures:
    status = Path(f"/proc/{pid}/status").read_text()
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return ProcessFigures(fds=len(os.listdir(f"/proc/{pid}/fd")),
                          threads=int(values["Threads"].strip()),
                          rss_kib=int(values["VmRSS"].strip().split()[0]))


# AWS, seen from outside the driver ---------------------------------------------------------


def efs_client(moto: MotoEndpoint) -> Any:
    """boto3 straight to moto (not through the proxy: no faults, not counted)."""
    return boto3.client("efs", region_name=REGION, endpoint_url=moto.url,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def access_points(moto: MotoEndpoint, file_system_id: str) -> list[dict[str, Any]]:
    reply = efs_client(moto).describe_access_points(FileSystemId=file_system_id)
    return list(reply["AccessPoints"])


# the binaries ----------------------------------------------------------------------------


@dataclass
class Binary:
    """A restartable binary: ``stub`` always talks to the current process."""

    kind: str
    directory: Path
    args: list[str]
    env: dict[str, str]
    running: RunningBinary | None = None
    channel: Channel | None = None
    generation: int = 0

    async def start(self) -> None:
        self.generation += 1
        directory = self.directory / f"run-{self.generation}"
        directory.mkdir(parents=True, exist_ok=True)
        self.running = await start_binary(self.kind, directory, self.args, self.env)
        self.channel = self.running.channel()

    @property
    def pid(self) -> int:
        assert self.running is not None
        return self.running.process.pid

    def _close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    async def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, mounts and half-done EFS calls left as they are."""
        self._close_channel()
        if self.running is not None:
            await self.running.stop(signal.SIGKILL)

    async def stop(self) -> int | None:
        self._close_channel()
        if self.running is None or self.running.process.returncode is not None:
            return None if self.running is None else self.running.process.returncode
        try:
            return await self.running.stop(signal.SIGTERM, timeout=20)
        except TimeoutError:
            return await self.running.stop(signal.SIGKILL)

    def _check_running(self) -> None:
        if self.channel is None:  # between a SIGKILL and the restart: like a refused dial
            raise ConnectionRefusedError(f"{self.kind} is not running")

    def controller(self) -> csi.ControllerStub:
        self._check_running()
        return csi.ControllerStub(self.channel)

    def node(self) -> csi.NodeStub:
        self._check_running()
        return csi.NodeStub(self.channel)

    def identity(self) -> csi.IdentityStub:
        self._check_running()
        return csi.IdentityStub(self.channel)


@dataclass
class Lab:
    """moto behind an EfsProxy, one file system, its local-backend directory, both binaries."""

    work: Path
    moto: MotoEndpoint
    proxy: EfsProxy
    file_system_id: str
    controller: Binary
    node: Binary
    retries: dict[str, int] = field(default_factory=dict)

    @property
    def kubelet(self) -> Path:
        return self.work / "kubelet"

    def staging_path(self, name: str) -> Path:
        return self.kubelet / "plugins" / "efs.csi.aws.com" / "staging" / name

    def target_path(self, pod: str, name: str) -> Path:
        return self.kubelet / "pods" / pod / "volumes" / name / "mount"

    def access_points(self) -> list[dict[str, Any]]:
        return access_points(self.moto, self.file_system_id)


@contextlib.asynccontextmanager
async def lab(work: Path, moto: MotoEndpoint, proxy: EfsProxy, *,
              controller_args: list[str] | None = None,
              node_args: list[str] | None = None) -> AsyncIterator[Lab]:
    """Start both binaries (the proxy is the EFS API); stop them and unmount on the way out."""
    setup = make_file_system(moto.url)
    local_root = work / "efs"
    (local_root / setup.file_system_id).mkdir(parents=True)
    env = proxy.environment()
    controller = Binary("controller", work / "controller", list(controller_args or []), env)
    node = Binary("node", work / "node", [
        "--node-id", "reliability-node", "--availability-zone", "us-east-1a",
        "--mount-backend", "local", "--local-root", str(local_root),
        "--remove-not-ready-taint=false", *(node_args or [])], env)
    try:
        await controller.start()
        await node.start()
        yield Lab(work, moto, proxy, setup.file_system_id, controller, node)
    finally:
        try:
            await node.stop()
        finally:
            await controller.stop()
            await asyncio.to_thread(unmount_everything_under, work)


# the retrying client ---------------------------------------------------------------------


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, GRPCError):
        return exc.status in RETRYABLE
    return isinstance(exc, ConnectionError | OSError | StreamTerminatedError | TimeoutError)


async def with_retries(call: Callable[[], Awaitable[T]], *, attempts: int = 200,
                       pause: float = 0.05, counter: Counter[str] | None = None) -> T:
    """Retry like csi-provisioner/kubelet: the same request again after retryable failures."""
    for attempt in range(attempts):
        try:
            return await call()
        except Exception as exc:
            if not retryable(exc) or attempt == attempts - 1:
                raise
            if counter is not None:
                counter[exc.status.name if isinstance(exc, GRPCError)
                        else type(exc).__name__] += 1
            await asyncio.sleep(min(pause * (attempt + 1), 0.5))
    raise AssertionError("unreachable")
