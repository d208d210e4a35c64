"""csi-sanity's Controller specs against the real controller binary, backed by moto over HTTP
(through the EFS proxy, which adds ClientToken idempotency, pagination and not-found errors)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conformance.conftest import SanityDriver
from tests.conformance.sanity_runner import run_sanity


@pytest.mark.asyncio
@pytest.mark.timeout(300)
async def test_controller_specs_pass(sanity_driver: SanityDriver, tmp_path: Path,
                                     report: Callable[[str], None]) -> None:
    result = await run_sanity(
        sanity_driver.node.socket, tmp_path, focus="Controller Service",
        controller_endpoint=sanity_driver.controller.socket,
        extra=[f"--csi.testvolumeparameters={sanity_driver.parameters}"])
    report(f"csi-sanity Controller: {result.summary}")
    assert result.returncode == 0, result.output[-6000:]
    assert result.passed >= 15 and result.failed == 0
    # The run really provisioned through the EFS API, and deleted all it created.
    assert sanity_driver.proxy.calls["CreateAccessPoint"] >= 3
    assert sanity_driver.access_points_left() == []
