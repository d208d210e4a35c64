"""csi-sanity's Node specs against the real node binary with the local backend (real bind
mounts), the volumes created by the real controller binary backed by moto over HTTP (node
specs call CreateVolume on a controller when one is offered)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conformance.conftest import SanityDriver
from tests.conformance.sanity_runner import run_sanity


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_node_specs_pass(sanity_driver: SanityDriver, tmp_path: Path,
                               report: Callable[[str], None]) -> None:
    result = await run_sanity(
        sanity_driver.node.socket, tmp_path, focus="Node Service",
        controller_endpoint=sanity_driver.controller.socket,
        extra=[f"--csi.testvolumeparameters={sanity_driver.parameters}"])
    report(f"csi-sanity Node: {result.summary}")
    assert result.returncode == 0, result.output[-8000:]
    assert result.passed >= 15 and result.failed == 0
