"""csi-sanity (v5.4.0), once and in full, against both real binaries: the controller backed by
moto (through the EFS proxy), the node on the local backend with real bind mounts.

Every spec csi-sanity has either passes or is skipped for a capability the driver
deliberately does not advertise (the counts are printed so `make test` shows them). The run
also proves what the focused runs used to: the controller really provisioned through the EFS
API and deleted all it made, and the node binary answered every Identity call as the
controller did (tests/conformance/combined_endpoint.py puts each one to both).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from efs_csi import __version__, csi
from efs_csi.contract import PLUGIN_NAME
from tests.conformance.combined_endpoint import NodeIdentity, combined_endpoint
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
    node_identity = NodeIdentity()
    async with combined_endpoint(tmp_path / "plugin.sock", sanity_driver.controller.socket,
                                 sanity_driver.node.socket, node_identity) as plugin:
        result = await run_sanity(
            plugin, tmp_path, extra=[f"--csi.testvolumeparameters={sanity_driver.parameters}",
                                     f"--ginkgo.junit-report={junit}"])
    reasons = skip_reasons(junit)
    report(f"csi-sanity v5.4.0 full suite: {result.summary}")
    for reason, count in sorted(reasons.items()):
        report(f"  skipped {count:>2} x {reason}")
    assert result.returncode == 0, result.output[-8000:]
    # Every spec ran and passed, or was skipped for a reason below: none is lost unnoticed.
    assert result.failed == 0 and result.passed == result.ran > 0
    assert result.ran + result.skipped + result.pending == result.total
    assert sum(reasons.values()) == result.skipped
    unexpected = {r: n for r, n in reasons.items() if not DELIBERATE.search(r)}
    assert not unexpected, f"skips for capabilities we do offer: {unexpected}"
    # The controller provisioned through the EFS API, and deleted everything it made.
    assert sanity_driver.proxy.calls["CreateAccessPoint"] >= 3
    assert sanity_driver.access_points_left() == []
    check_node_identity(node_identity)


def check_node_identity(node_identity: NodeIdentity) -> None:
    """The node answered each Identity call csi-sanity made: the same plugin name and version
    as the controller, ready, and VOLUME_ACCESSIBILITY_CONSTRAINTS without CONTROLLER_SERVICE."""
    answers: dict[str, list[bytes]] = {}
    for path, answer in node_identity.answers:
        assert isinstance(answer, bytes), f"the node failed {path}: {answer!r}"
        answers.setdefault(path.rsplit("/", 1)[-1], []).append(answer)
    assert {"GetPluginInfo", "GetPluginCapabilities", "Probe"} <= set(answers)
    for raw in answers["GetPluginInfo"]:
        info = csi.GetPluginInfoResponse.parse(raw)
        assert (info.name, info.vendor_version) == (PLUGIN_NAME, __version__)
    for raw in answers["Probe"]:
        assert csi.ProbeResponse.parse(raw).ready is True
    kinds = csi.PluginCapabilityServiceType
    for raw in answers["GetPluginCapabilities"]:
        offered = {capability.service.type for capability in
                   csi.GetPluginCapabilitiesResponse.parse(raw).capabilities
                   if capability.service is not None}
        assert offered == {kinds.VOLUME_ACCESSIBILITY_CONSTRAINTS}
