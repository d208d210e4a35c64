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

from tests.conftest import StartBinary
from tests.node.conftest import unmount_everything_under
from tests.sanity.combined_endpoint import combined_endpoint
from tests.sanity.sanity_runner import run_sanity
from tests.support.ci import require_root
from tests.support.efs_proxy import EfsProxy, make_file_system
from tests.support.moto_server import MotoEndpoint

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
async def test_full_suite_passes(binary: StartBinary, moto: MotoEndpoint, tmp_path: Path,
                                 report: Callable[[str], None]) -> None:
    require_root()
    try:
        with EfsProxy(moto.url, seed=7) as proxy:
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
            junit = tmp_path / "junit.xml"
            async with combined_endpoint(tmp_path / "plugin.sock", controller.socket,
                                         node.socket) as plugin:
                result = await run_sanity(
                    plugin, tmp_path, extra=[f"--csi.testvolumeparameters={parameters}",
                                             f"--ginkgo.junit-report={junit}"])
            reasons = skip_reasons(junit)
            report(f"csi-sanity v5.4.0 full suite: {result.summary}")
            for reason, count in sorted(reasons.items()):
                report(f"  skipped {count:>2} x {reason}")
            assert result.returncode == 0, result.output[-8000:]
            assert result.failed == 0 and result.passed >= 40
            unexpected = {r: n for r, n in reasons.items() if not DELIBERATE.search(r)}
            assert not unexpected, f"skips for capabilities we do offer: {unexpected}"
    finally:
        unmount_everything_under(tmp_path)
