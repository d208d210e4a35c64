"""`make demo`: the driver's main job on the embedded default — no AWS account needed.

Starts moto as a local EFS API (a file system with mount targets in two zones), then
efs-csi-controller and efs-csi-node (local mount backend: a file system is a directory, mounts
are real bind mounts) on their own sockets, and drives them exactly as csi-provisioner and
kubelet would: CreateVolume with the provisioner's ``csi.storage.k8s.io/*`` parameters and a
``subPathPattern`` StorageClass, NodeStage, two NodePublish calls (two pods), a write through
one and a read through the other, NodeGetVolumeStats, a read-only publish that refuses writes,
then unpublish, unstage and DeleteVolume. Prints one line per step and checks nothing is left
behind: no mounts, no processes, no access points.

Not root? The demo re-runs itself inside a new user and mount namespace (``unshare``), where
bind mounts are allowed, instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from efs_csi import csi  # noqa: E402
from testbed.csi_builders import mount_capability  # noqa: E402
from testbed.efs_proxy import make_file_system  # noqa: E402
from testbed.moto_server import REGION, running_moto  # noqa: E402
from testbed.mounts import mounts_under  # noqa: E402
from testbed.processes import RunningBinary, start_binary  # noqa: E402

Mode = csi.VolumeCapabilityAccessModeMode
GIB = 1 << 30



@dataclass
class Report:
    rows: list[tuple[str, str, float]] = field(default_factory=list)
    failed: bool = False

    async def step(self, name: str, action: Callable[[], Awaitable[str]]) -> None:
        started = time.monotonic()
        try:
            result = await action()
        except Exception as exc:
            self.failed = True
            result = f"FAILED: {type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - started
        self.rows.append((name, result, elapsed))
        print(f"  {len(self.rows):>2}. {name:<44} {elapsed * 1000:8.1f} ms  {result}", flush=True)
        if self.failed:
            raise SystemExit(1)


@contextlib.asynccontextmanager
async def driver(work: Path, env: dict[str, str],
                 file_system_id: str) -> AsyncIterator[tuple[RunningBinary, RunningBinary]]:
    local_root = work / "efs"
    # The local backend's file system is a directory named after it (the "NFS server").
    (local_root / file_system_id).mkdir(parents=True)
    (work / "controller").mkdir()
    (work / "node").mkdir()
    controller = await start_binary("controller", work / "controller", env=env)
    try:
        node = await start_binary("node", work / "node", env=env, args=[
            "--node-id", "demo-node", "--availability-zone", "us-east-1a",
            "--mount-backend", "local", "--local-root", str(local_root),
            "--vol-metrics-opt-in", "--remove-not-ready-taint=false"])
        try:
            yield controller, node
        finally:
            await node.stop(signal.SIGTERM)
    finally:
        await controller.stop(signal.SIGTERM)


class Walkthrough:
    """The steps csi-provisioner and kubelet take for one volume and three pods."""

    def __init__(self, work: Path, controller: csi.ControllerStub, node: csi.NodeStub,
                 file_system_id: str,
                 list_access_points: Callable[[], list[dict[str, Any]]]) -> None:
        self.work = work
        self.controller = controller
        self.node = node
        self.file_system_id = file_system_id
        self.list_access_points = list_access_points
        self.volume_id = ""
        self.context: dict[str, str] = {}
        self.staging = work / "kubelet" / "plugins" / "efs.csi.aws.com" / "staging" / "pv-demo"
        pods = work / "kubelet" / "pods"
        self.pods = {name: pods / f"pod-{name}" / "volumes" / "pv-demo" / "mount"
                     for name in ("a", "b", "readonly")}
        self.writer = mount_capability(Mode.MULTI_NODE_MULTI_WRITER)
        self.reader = mount_capability(Mode.MULTI_NODE_READER_ONLY)

    async def run(self, report: Report) -> None:
        await report.step("CreateVolume (subPathPattern)", self.create)
        await report.step("NodeStageVolume", self.stage)
        await report.step("NodePublishVolume (pod a)", lambda: self.publish("a"))
        await report.step("NodePublishVolume (pod b)", lambda: self.publish("b"))
        await report.step("write through pod a, read through pod b", self.write_and_read)
        await report.step("NodeGetVolumeStats", self.stats)
        await report.step("NodePublishVolume (read-only pod)", lambda: self.publish("readonly"))
        await report.step("write through the read-only pod", self.refuse_write)
        for pod in self.pods:
            await report.step(f"NodeUnpublishVolume (pod {pod})",
                              lambda pod=pod: self.unpublish(pod))
        await report.step("NodeUnstageVolume", self.unstage)
        await report.step("DeleteVolume", self.delete)

    async def create(self) -> str:
        reply = await self.controller.create_volume(csi.CreateVolumeRequest(
            name="pvc-5f0c2d0e-demo",
            capacity_range=csi.CapacityRange(required_bytes=5 * GIB),
            volume_capabilities=[self.writer],
            parameters={
                "provisioningMode": "efs-ap", "fileSystemId": self.file_system_id,
                "directoryPerms": "700", "gidRangeStart": "50000", "gidRangeEnd": "50100",
                "basePath": "/dynamic", "subPathPattern": "${.PVC.namespace}/${.PVC.name}",
                "ensureUniqueDirectory": "false",
                "csi.storage.k8s.io/pvc/name": "data",
                "csi.storage.k8s.io/pvc/namespace": "shop",
                "csi.storage.k8s.io/pv/name": "pvc-5f0c2d0e-demo",
            }))
        assert reply.volume is not None
        self.volume_id = reply.volume.volume_id
        self.context = dict(reply.volume.volume_context)
        (point,) = self.list_access_points()
        return (f"{self.volume_id}  path={point['RootDirectory']['Path']} "
                f"gid={point['PosixUser']['Gid']}")

    async def stage(self) -> str:
        await self.node.node_stage_volume(csi.NodeStageVolumeRequest(
            volume_id=self.volume_id, staging_target_path=str(self.staging),
            volume_capability=self.writer, volume_context=self.context))
        return f"staged at {self.staging.relative_to(self.work)}"

    async def publish(self, pod: str) -> str:
        read_only = pod == "readonly"
        target = self.pods[pod]
        await self.node.node_publish_volume(csi.NodePublishVolumeRequest(
            volume_id=self.volume_id, staging_target_path=str(self.staging),
            target_path=str(target), volume_capability=self.reader if read_only else self.writer,
            readonly=read_only, volume_context=self.context))
        return f"bind-mounted into {target.relative_to(self.work)}"

    async def write_and_read(self) -> str:
        message = "hello from pod a\n"
        await asyncio.to_thread((self.pods["a"] / "greeting.txt").write_text, message)
        seen = await asyncio.to_thread((self.pods["b"] / "greeting.txt").read_text)
        assert seen == message, f"pod b read {seen!r}"
        return f"pod b read {seen.strip()!r}"

    async def stats(self) -> str:
        request = csi.NodeGetVolumeStatsRequest(volume_id=self.volume_id,
                                                volume_path=str(self.pods["a"]))
        reply = await self.node.node_get_volume_stats(request)
        # The collector answers from its cache at once and walks in the background.
        for _ in range(100):
            if any(u.unit == csi.VolumeUsageUnit.BYTES and u.used for u in reply.usage):
                break
            await asyncio.sleep(0.05)
            reply = await self.node.node_get_volume_stats(request)
        usage = {u.unit.name: (u.used, u.total) for u in reply.usage}
        condition = reply.volume_condition
        health = "abnormal" if condition is not None and condition.abnormal else "healthy"
        return (f"bytes used/total={usage.get('BYTES')} "
                f"inodes used/total={usage.get('INODES')} {health}")

    async def refuse_write(self) -> str:
        try:
            await asyncio.to_thread((self.pods["readonly"] / "intruder.txt").write_text, "no")
        except OSError as exc:
            if exc.errno == errno.EROFS:
                return "write refused: read-only file system"
            raise
        raise AssertionError("the read-only pod could write")

    async def unpublish(self, pod: str) -> str:
        target = self.pods[pod]
        await self.node.node_unpublish_volume(csi.NodeUnpublishVolumeRequest(
            volume_id=self.volume_id, target_path=str(target)))
        assert not await asyncio.to_thread(target.exists), "target directory left behind"
        return "bind removed, target directory removed"

    async def unstage(self) -> str:
        await self.node.node_unstage_volume(csi.NodeUnstageVolumeRequest(
            volume_id=self.volume_id, staging_target_path=str(self.staging)))
        return "staging mount removed"

    async def delete(self) -> str:
        await self.controller.delete_volume(csi.DeleteVolumeRequest(volume_id=self.volume_id))
        return f"access points left: {len(self.list_access_points())}"


async def walk_through(work: Path, env: dict[str, str], file_system_id: str,
                       list_access_points: Callable[[], list[dict[str, Any]]]) -> Report:
    report = Report()
    async with driver(work, env, file_system_id) as (controller_process, node_process):
        controller_channel, node_channel = (controller_process.channel(),
                                            node_process.channel())
        try:
            await Walkthrough(work, csi.ControllerStub(controller_channel),
                              csi.NodeStub(node_channel), file_system_id,
                              list_access_points).run(report)
        finally:
            controller_channel.close()
            node_channel.close()

    async def nothing_left() -> str:
        leftovers = mounts_under(work)
        assert not leftovers, f"mounts left behind: {leftovers}"
        for process in (controller_process, node_process):
            assert process.process.returncode == 0, f"{process.kind} exited badly"
        points = list_access_points()
        assert not points, f"access points left behind: {points}"
        return "no mounts, no processes, no access points"

    await report.step("check nothing is left behind", nothing_left)
    return report


async def main() -> None:
    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log

    print("efs-csi demo — local EFS API (moto), controller + node (local backend)\n")
    with running_moto() as moto, tempfile.TemporaryDirectory(prefix="efs-csi-demo-") as tmp:
        work = Path(tmp)
        setup = make_file_system(moto.url)
        efs = boto3.client("efs", region_name=REGION, endpoint_url=moto.url,
                           aws_access_key_id="testing", aws_secret_access_key="testing")

        def list_access_points() -> list[dict[str, Any]]:
            reply = efs.describe_access_points(FileSystemId=setup.file_system_id)
            return list(reply["AccessPoints"])

        print(f"  file system {setup.file_system_id}, mount targets "
              f"{', '.join(f'{z}={ip}' for z, ip in setup.mount_target_ips.items())}\n")
        started = time.monotonic()
        report = await walk_through(work, moto.environment(), setup.file_system_id,
                                    list_access_points)
        print(f"\n  {len(report.rows)} steps passed in {time.monotonic() - started:.2f} s")


def reexec_in_user_namespace() -> None:
    """Without root, bind mounts need a user and mount namespace of our own."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SystemExit("not root and no `unshare` available: cannot perform mounts")
    os.environ["EFS_CSI_DEMO_IN_NAMESPACE"] = "1"
    os.execv(unshare, [unshare, "--user", "--map-root-user", "--mount", "--propagation",
                       "private", sys.executable, *sys.argv])


if __name__ == "__main__":
    if os.geteuid() != 0 and not os.environ.get("EFS_CSI_DEMO_IN_NAMESPACE"):
        reexec_in_user_namespace()
    asyncio.run(main())
