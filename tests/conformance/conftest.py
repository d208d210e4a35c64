"""The environment the csi-sanity run needs: moto behind the EFS proxy with one file system,
the controller binary on it, and the node binary on the local backend (real bind mounts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest_asyncio

from testbed.efs_proxy import EfsProxy, make_file_system
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint
from testbed.mounts import unmount_everything_under
from testbed.processes import RunningBinary, StartBinary
from tests.support.ci import require_root
from tests.support.fixtures.aws import efs_proxy, file_system, moto, moto_session  # noqa: F401 - fixtures
from tests.support.fixtures.binaries import binary  # noqa: F401 - fixture


@dataclass
class SanityDriver:
    proxy: EfsProxy
    file_system_id: str
    controller: RunningBinary
    node: RunningBinary
    parameters: Path  # --csi.testvolumeparameters

    def access_points_left(self) -> list[dict[str, object]]:
        efs = boto3.client("efs", endpoint_url=self.proxy.url, region_name=REGION,
                           aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        reply = efs.describe_access_points(FileSystemId=self.file_system_id)
        return list(reply["AccessPoints"])


@pytest_asyncio.fixture
async def sanity_driver(binary: StartBinary, moto: MotoEndpoint,
                        tmp_path: Path) -> AsyncIterator[SanityDriver]:
    require_root()  # the node performs real bind mounts
    try:
        with EfsProxy(moto.url, seed=1) as proxy:
            file_system_id = make_file_system(proxy.url).file_system_id
            local_root = tmp_path / "efs"
            (local_root / file_system_id).mkdir(parents=True)
            controller = await binary("controller", env=proxy.environment())
            node = await binary("node", ["--mount-backend", "local", "--local-root",
                                         str(local_root), "--availability-zone", "us-east-1a",
                                         "--vol-metrics-opt-in"], env=proxy.environment())
            parameters = tmp_path / "parameters.yaml"
            parameters.write_text(f"provisioningMode: efs-ap\nfileSystemId: {file_system_id}\n"
                                  "directoryPerms: '700'\nbasePath: /sanity\n")
            yield SanityDriver(proxy, file_system_id, controller, node, parameters)
            await node.stop()
            await controller.stop()
    finally:
        unmount_everything_under(tmp_path)
