"""controller.deleteAccessPointRootDir, end to end through the built images.

The controller image the chart picks runs with the chart's settings (testbed/pods.py) on
the host network, against moto on loopback as the EFS API. CreateVolume makes an access point,
a workload's files are put in its directory, and DeleteVolume must remove that directory and
the access point, leaving nothing mounted.

- local backend, with kind/values.yaml (the kind set-up): the controller image, root and
  privileged, bind-mounts the file system directory under the chart's local root.
- efs backend: the controller-efs image through the real mount.efs, efs-proxy and a TLS mount
  target: tests/datapath/test_root_dir_deletion.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from grpclib.client import Channel

from efs_csi import csi
from testbed.csi_builders import mount_capability
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint, create_file_system
from testbed.pods import container, docker_command, docker_run_options, pod_spec
from tests.chart.render import render
from tests.images.engine import Engine
from tests.support.ci import REPO

OWNER = 1000  # the access point owner the StorageClass gives (gidRangeStart)


def efs_client(moto: MotoEndpoint) -> Any:
    return boto3.client("efs", region_name=REGION, endpoint_url=moto.url,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


class RunningController:
    def __init__(self, engine: Engine, name: str, socket: Path) -> None:
        self.engine, self.name, self.socket = engine, name, socket

    def exec(self, *command: str) -> str:
        return self.engine.docker("exec", self.name, *command).stdout

    async def wait_ready(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while not self.socket.exists():
            if time.monotonic() > end:
                logs = self.engine.docker("logs", self.name, check=False)
                raise TimeoutError(f"no CSI socket after {timeout}s:\n{logs.stderr[-3000:]}")
            await asyncio.sleep(0.2)


@pytest.fixture
def controller_for(engine: Engine, moto: MotoEndpoint,
                   tmp_path: Path) -> Iterator[Any]:
    started: list[str] = []

    def start(values: Path | None, sets: list[str],
              host_dirs: dict[str, Path]) -> RunningController:
        manifests = render(values, sets=sets)
        spec = pod_spec(manifests, "Deployment", "efs-csi-controller")
        plugin = container(spec, "efs-plugin")
        image = plugin["image"].rsplit("/", 1)[-1].split(":")[0]  # efs-csi-<target>
        sockets = tmp_path / "sockets"
        sockets.mkdir(mode=0o777)
        mapped = {"/csi": str(sockets), **{path: str(host) for path, host in host_dirs.items()}}
        fields = {"spec.nodeName": "test-node"}
        options = docker_run_options(spec, plugin, field_values=fields, host_dirs=mapped)
        name = f"efs-csi-rootdir-{time.monotonic_ns()}"
        # The SDK points at moto on loopback: later -e values win over the chart's.
        aws = {**moto.environment(), "AWS_ENDPOINT_URL_EFS": moto.url,
               "AWS_ENDPOINT_URL_STS": moto.url}
        env = [f"--env={key}={value}" for key, value in aws.items()]
        engine.docker("run", "-d", "--name", name, "--network", "host", *options, *env,
                      f"{image}:{engine.image('controller').split(':')[1]}",
                      *docker_command(plugin, fields))
        started.append(name)
        return RunningController(engine, name, sockets / "csi.sock")

    yield start
    for name in started:
        engine.docker("rm", "-f", name, check=False)


async def create_and_delete(running: RunningController, moto: MotoEndpoint, fs_root: Path,
                            fs_id: str) -> tuple[str, Path]:
    """CreateVolume, fill the access point's directory as a workload would, DeleteVolume."""
    await running.wait_ready()
    channel = Channel(path=str(running.socket))
    try:
        stub = csi.ControllerStub(channel)
        created = await stub.create_volume(csi.CreateVolumeRequest(
            name="pvc-rootdir", capacity_range=csi.CapacityRange(required_bytes=1 << 30),
            volume_capabilities=[mount_capability()],
            parameters={"provisioningMode": "efs-ap", "fileSystemId": fs_id,
                        "directoryPerms": "700", "gidRangeStart": str(OWNER),
                        "gidRangeEnd": str(OWNER + 100),
                        "basePath": "/dynamic"}), timeout=60)
        assert created.volume is not None
        volume_id = created.volume.volume_id
        access_point_id = volume_id.rsplit(":", 1)[-1]
        described = efs_client(moto).describe_access_points(AccessPointId=access_point_id)
        root_path = described["AccessPoints"][0]["RootDirectory"]["Path"]
        directory = fs_root / fs_id / root_path.lstrip("/")
        # What the node (local backend) or EFS creates on first mount, then a workload's file.
        directory.mkdir(parents=True)
        (directory / "written-by-the-workload").write_text("data")
        for path in (directory, directory / "written-by-the-workload"):
            os.chown(path, OWNER, OWNER)
        directory.chmod(0o700)
        await stub.delete_volume(csi.DeleteVolumeRequest(volume_id=volume_id), timeout=120)
        return access_point_id, directory
    finally:
        channel.close()


def assert_nothing_left(running: RunningController, moto: MotoEndpoint, access_point_id: str,
                        directory: Path) -> None:
    assert not directory.exists(), f"{directory} survived DeleteVolume"
    assert directory.parent.exists(), "the StorageClass basePath must stay"
    remaining = efs_client(moto).describe_access_points()["AccessPoints"]
    assert access_point_id not in {ap["AccessPointId"] for ap in remaining}
    mounts = running.exec("cat", "/proc/mounts")
    assert "efs-csi-controller" not in mounts, mounts


@pytest.mark.asyncio
async def test_local_backend_in_the_kind_setup_deletes_the_directory(
        controller_for: Any, moto: MotoEndpoint, tmp_path: Path) -> None:
    fs_id = create_file_system(moto)
    local_root = tmp_path / "local-root"
    (local_root / fs_id / "dynamic").mkdir(parents=True)
    kind_values = REPO / "kind" / "values.yaml"
    running = controller_for(kind_values, [], {"/var/lib/efs-csi-local": local_root})
    access_point_id, directory = await create_and_delete(running, moto, local_root, fs_id)
    assert_nothing_left(running, moto, access_point_id, directory)
