"""csi-sanity's Controller specs against the real controller binary, backed by moto over HTTP
(through the EFS proxy, which adds ClientToken idempotency, pagination and not-found errors)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from tests.conftest import StartBinary
from tests.sanity.sanity_runner import run_sanity
from tests.support.ci import require_root
from tests.support.efs_proxy import EfsProxy, make_file_system
from tests.support.moto_server import CREDENTIALS, REGION, MotoEndpoint

CLIENT = {"region_name": REGION, "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
          "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_controller_specs_pass(binary: StartBinary, moto: MotoEndpoint,
                                     tmp_path: Path, report: Callable[[str], None]) -> None:
    require_root()  # the node half of the run performs real bind mounts
    with EfsProxy(moto.url, seed=1) as proxy:
        file_system_id = make_file_system(proxy.url).file_system_id
        local_root = tmp_path / "efs"
        (local_root / file_system_id).mkdir(parents=True)
        controller = await binary("controller", env=proxy.environment())
        node = await binary("node", ["--mount-backend", "local", "--local-root",
                                     str(local_root)], env=proxy.environment())
        parameters = tmp_path / "parameters.yaml"
        parameters.write_text(f"provisioningMode: efs-ap\nfileSystemId: {file_system_id}\n"
                              "directoryPerms: '700'\nbasePath: /sanity\n")
        result = await run_sanity(
            node.socket, tmp_path, focus="Controller Service",
            controller_endpoint=controller.socket,
            extra=[f"--csi.testvolumeparameters={parameters}"])
        report(f"csi-sanity Controller: {result.summary}")
        assert result.returncode == 0, result.output[-6000:]
        assert result.passed >= 15 and result.failed == 0
        # The run really provisioned through the EFS API, and deleted all it created.
        assert proxy.calls["CreateAccessPoint"] >= 3
        efs = boto3.client("efs", endpoint_url=proxy.url, **CLIENT)
        left = efs.describe_access_points(FileSystemId=file_system_id)["AccessPoints"]
        assert left == []
