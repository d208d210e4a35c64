"""csi-sanity's Node specs against the real node binary with the local backend (real bind
mounts), the volumes created by the real controller binary backed by moto over HTTP (node
specs call CreateVolume on a controller when one is offered)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import StartBinary
from tests.node.conftest import unmount_everything_under
from tests.sanity.sanity_runner import run_sanity
from tests.support.ci import require_root
from tests.support.efs_proxy import EfsProxy, make_file_system
from tests.support.moto_server import MotoEndpoint


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_node_specs_pass(binary: StartBinary, moto: MotoEndpoint,
                               tmp_path: Path, report: Callable[[str], None]) -> None:
    require_root()
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
            result = await run_sanity(
                node.socket, tmp_path, focus="Node Service",
                controller_endpoint=controller.socket,
                extra=[f"--csi.testvolumeparameters={parameters}"])
            report(f"csi-sanity Node: {result.summary}")
            assert result.returncode == 0, result.output[-8000:]
            assert result.passed >= 15 and result.failed == 0
    finally:
        unmount_everything_under(tmp_path)
