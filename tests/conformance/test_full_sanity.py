"""The full csi-sanity suite (v5.4.0) against both real binaries: the controller backed by moto
(through the EFS proxy), the node on the local backend with real bind mounts.

Skips are allowed only for capabilities the driver deliberately does not advertise; the exact
counts are printed so `make test` shows them.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conformance.combined_endpoint import combined_endpoint
from tests.conformance.conftest import SanityDriver
from tests.conformance.sanity_runner import run_sanity

# What the driver deliberately does not offer: snapshots, group snapshots, cloning, listing,
# capacity, attach (ControllerPublish), volume modification, node expansion (EFS is elastic;
# ControllerExpandVolume answers without needing the node). Block access is refused outright.
DELIBERATE = re.compile(
    r"(CreateSnapshot|DeleteSnapshot|ListSnapshots|Snapshot|GroupControllerService|"
    r"Volume Cloning|ListVolumes|GetCapacity|ControllerPublishVolume|ControllerUnpublishVolume|"
    r"Controller Publish, UnpublishVolume|ControllerModifyVolume|Modify [Vv]olume|"
    r"NodeExpandVolume) not supported")


def skip_reasons(junit: Path) -> Counter[str]:
    reasons: Counter[str] = Counter()
    for case in ET.parse(junit).iter("testcase"):
        skipped = case.find("skipped")
        # "pending" is csi-sanity's own disabled spec (ListVolumes pagination), not a skip.
        if skipped is not None and skipped.get("message") != "pending":
            reasons[(skipped.get("message") or "").removeprefix("skipped - ")] += 1
    return reasons


@pytest.mark.asyncio
@pytest.mark.timeout(600)
async def test_full_suite_passes(sanity_driver: SanityDriver, tmp_path: Path,
                                 report: Callable[[str], None]) -> None:
    junit = tmp_path / "junit.xml"
    async with combined_endpoint(tmp_path / "plugin.sock", sanity_driver.controller.socket,
                                 sanity_driver.node.socket) as plugin:
        result = await run_sanity(
            plugin, tmp_path, extra=[f"--csi.testvolumeparameters={sanity_driver.parameters}",
                                     f"--ginkgo.junit-report={junit}"])
    reasons = skip_reasons(junit)
    report(f"csi-sanity v5.4.0 full suite: {result.summary}")
    for reason, count in sorted(reasons.items()):
        report(f"  skipped {count:>2} x {reason}")
    assert result.returncode == 0, result.output[-8000:]
    assert result.failed == 0 and result.passed >= 40
    unexpected = {r: n for r, n in reasons.items() if not DELIBERATE.search(r)}
    assert not unexpected, f"skips for capabilities we do offer: {unexpected}"
    assert sanity_driver.access_points_left() == []
