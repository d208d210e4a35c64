"""csi-sanity's Identity specs against both real binaries."""

from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.processes import StartBinary
from tests.conformance.sanity_runner import run_sanity


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["controller", "node"])
async def test_identity_specs_pass(kind: str, binary: StartBinary, tmp_path: Path,
                                   report: Callable[[str], None]) -> None:
    running = await binary(kind)
    result = await run_sanity(running.socket, tmp_path, focus="Identity Service")
    report(f"csi-sanity Identity ({kind}): {result.summary}")
    assert result.returncode == 0, result.output[-4000:]
    assert result.passed >= 3 and result.failed == 0
