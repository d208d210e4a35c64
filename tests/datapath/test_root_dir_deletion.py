"""controller.deleteAccessPointRootDir through the controller-efs image and the real mount.efs.

The controller Deployment the chart renders with deleteAccessPointRootDir (image
efs-csi-controller-efs, root, efs-utils v3.2.0 and its watchdog beside the controller) runs in
the data path's loopback-only sandbox (testbed/datapath), with moto's EFS API relayed in from
the host's loopback. CreateVolume makes an access point (ours, with our tags); a workload's
files are put in its directory on the NFS server's side; DeleteVolume must mount the file
system's root with ``mount -t efs -o tls`` (mount.efs, efs-proxy over TLS to the mount target,
whose certificate names this file system), remove the directory, unmount, and delete the
access point. Only the kernel's NFS mount is stood in for.

The image's own efs-utils configuration is kept, with two settings a test needs: the local CA
(the mount target's certificate is not Amazon's) and no readahead tuning (it writes to /sys).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from grpclib.client import Channel

from efs_csi import csi
from testbed.csi_builders import mount_capability
from testbed.datapath.harness import CA_IN_CONTAINER, REGION, DataPath
from testbed.datapath.servers import MOUNT_TARGET
from testbed.datapath.tls import dns_name
from testbed.images import Engine
from testbed.moto_server import CREDENTIALS, MotoEndpoint, create_file_system
from tests.chart.render import render
from tests.datapath.conftest import require_the_data_path

OWNER = 1000
SANDBOX_EFS_PORT = 5000  # moto, as the controller in the sandbox reaches it


def efs_client(moto: MotoEndpoint) -> Any:
    return boto3.client("efs", region_name=REGION, endpoint_url=moto.url,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def conf_for_the_test(image_conf: str) -> str:
    """efs-utils' own file from the image, pointed at the local CA, without readahead tuning."""
    text = re.sub(r"(?m)^stunnel_cafile = /etc/amazon/efs/efs-utils.crt$",
                  f"stunnel_cafile = {CA_IN_CONTAINER}/ca.pem", image_conf, count=1)
    text = re.sub(r"(?m)^optimize_readahead = true$", "optimize_readahead = false", text)
    assert "optimize_readahead = false" in text and CA_IN_CONTAINER in text
    return text




@pytest.mark.asyncio
async def test_delete_access_point_root_dir_through_controller_efs_and_mount_efs(
        engine: Engine, moto: MotoEndpoint, tmp_path: Path,
        report: Callable[[str], None]) -> None:
    require_the_data_path()
    fs_id = create_file_system(moto)
    path = DataPath(engine, tmp_path, [], tmp_path / "kubelet", with_node=False,
                    file_system=fs_id)
    await asyncio.to_thread(path.start)
    controller = None
    try:
        path.relay_into_sandbox(int(moto.url.rsplit(":", 1)[1]), SANDBOX_EFS_PORT)
        manifests = render(None, sets=["controller.deleteAccessPointRootDir=true",
                                       f"region={REGION}", "controller.replicaCount=1"])
        image_conf = engine.run("controller-efs", "/etc/amazon/efs-static-files/efs-utils.conf",
                                entrypoint="cat").stdout
        conf = tmp_path / "efs-utils.conf"
        conf.write_text(conf_for_the_test(image_conf))
        sockets, logs = tmp_path / "sockets", path.efs_logs
        sockets.mkdir(mode=0o777)
        inside = f"http://127.0.0.1:{SANDBOX_EFS_PORT}"
        environment = {**moto.environment(), "AWS_ENDPOINT_URL": inside,
                       "AWS_ENDPOINT_URL_EFS": inside, "AWS_ENDPOINT_URL_STS": inside}
        # The root mount is IAM-authenticated (`tls,iam`): mount.efs reads credentials from
        # the credentials file, ECS/Pod Identity, web identity (IRSA) or instance metadata,
        # never from the environment. The test's moto credentials go in the file.
        credentials = tmp_path / "aws-credentials"
        credentials.write_text("[default]\n"
                               f"aws_access_key_id = {CREDENTIALS['AWS_ACCESS_KEY_ID']}\n"
                               f"aws_secret_access_key = {CREDENTIALS['AWS_SECRET_ACCESS_KEY']}\n")
        controller = path.driver_container(
            manifests, "Deployment", "efs-csi-controller",
            {"/csi": str(sockets), "/var/log/amazon/efs": str(logs)},
            [*(f"--env={key}={value}" for key, value in environment.items()),
             "-v", f"{conf}:/etc/amazon/efs/efs-utils.conf:ro",
             "-v", f"{credentials}:/root/.aws/credentials:ro"], [],
            hosts=f"127.0.0.1\tlocalhost\n{MOUNT_TARGET[0]}\t{dns_name(fs_id, REGION)}\n")
        assert "controller-efs" in controller.image
        await asyncio.to_thread(controller.start)
        socket = sockets / "csi.sock"
        for _ in range(600):
            if socket.exists():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no CSI socket:\n{controller.logs()[-3000:]}")
        (path.export / "dynamic").mkdir(parents=True, exist_ok=True)
        channel = Channel(path=str(socket))
        try:
            stub = csi.ControllerStub(channel)
            created = await stub.create_volume(csi.CreateVolumeRequest(
                name="pvc-rootdir", capacity_range=csi.CapacityRange(required_bytes=1 << 30),
                volume_capabilities=[mount_capability()],
                parameters={"provisioningMode": "efs-ap", "fileSystemId": fs_id,
                            "directoryPerms": "700", "gidRangeStart": str(OWNER),
                            "gidRangeEnd": str(OWNER + 100), "basePath": "/dynamic"}),
                timeout=60)
            assert created.volume is not None
            volume_id = created.volume.volume_id
            access_point_id = volume_id.rsplit(":", 1)[-1]
            described = efs_client(moto).describe_access_points(AccessPointId=access_point_id)
            root = described["AccessPoints"][0]["RootDirectory"]["Path"]
            # What EFS creates on first mount, then a workload's files, on the server's side.
            directory = path.export / root.lstrip("/")
            (directory / "nested").mkdir(parents=True)
            (directory / "nested" / "written-by-the-workload").write_text("data")
            for item in (directory, directory / "nested",
                         directory / "nested" / "written-by-the-workload"):
                os.chown(item, OWNER, OWNER)
            await stub.delete_volume(csi.DeleteVolumeRequest(volume_id=volume_id), timeout=120)
        finally:
            channel.close()
        assert not directory.exists(), "the access point's directory survived DeleteVolume"
        assert (path.export / "dynamic").is_dir(), "the StorageClass basePath must stay"
        remaining = efs_client(moto).describe_access_points()["AccessPoints"]
        assert access_point_id not in {ap["AccessPointId"] for ap in remaining}
        # Through the real chain: mount.efs with TLS and the controller's region, efs-proxy's
        # local port mounted by the kernel (stand-in), and nothing left mounted.
        mount_log = (logs / "mount.log").read_text()
        assert f"Successfully mounted {dns_name(fs_id, REGION)}" in mount_log, mount_log[-2000:]
        assert "'tls': None" in mount_log and f"'region': '{REGION}'" in mount_log
        assert "--tls" in mount_log  # efs-proxy, with TLS
        assert "'iam': None" in mount_log, mount_log[-2000:]  # IAM-authenticated root mount
        calls = path.calls()
        assert len(calls) == 1 and calls[0].code == 0, calls
        assert calls[0].source == "127.0.0.1:/" and calls[0].options.get("port"), calls
        mounts = controller.exec("cat", "/proc/mounts")
        assert "127.0.0.1:/" not in mounts, mounts
        assert any("amazon-efs-mount-watchdog" in " ".join(p.command)
                   for p in controller.processes())
        report(f"deleteAccessPointRootDir through controller-efs: {path.timings}")
    finally:
        if controller is not None:
            await asyncio.to_thread(controller.remove)
        await asyncio.to_thread(path.stop)
