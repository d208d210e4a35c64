"""The API server goes away mid-flow and comes back: the driver recovers on its own, without a
restart of either binary."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.cluster.conftest import (
    Driver,
    claim,
    namespace,
    storage_class,
    wait_bound,
    wait_gone,
)
from tests.support.cluster import Kubelet, wait_until
from tests.support.deployment import NodePod


def test_claims_made_around_an_api_server_restart_bind_and_delete(driver: Driver) -> None:
    plane = driver.plane
    fs_id = driver.new_file_system()
    plane.apply([storage_class("efs-ap-restart", {
        "provisioningMode": "efs-ap", "fileSystemId": fs_id, "directoryPerms": "700"})])
    ns = namespace(plane, "restart")
    plane.apply([claim("before", ns, "efs-ap-restart")])
    plane.restart_apiserver(downtime=1.0)
    plane.apply([claim("after", ns, "efs-ap-restart")])
    for name in ("before", "after"):
        wait_bound(plane, name, ns, timeout=90)
    # csi-provisioner may lose its lease and exit to be restarted (its design); ours never.
    assert driver.controller.pod.restarts["efs-csi-controller"] == 0
    volumes = [plane.get("pvc", name, ns)["spec"]["volumeName"] for name in ("before", "after")]
    plane.kubectl("-n", ns, "delete", "pvc", "--all")
    for volume in volumes:
        wait_gone(plane, "pv", volume, timeout=90)
    assert driver.efs.access_points(fs_id) == []


@pytest.fixture
def node_b(driver: Driver, kubelet_factory: Callable[..., Kubelet]) -> Iterator[NodePod]:
    kubelet = kubelet_factory("node-b")
    node = NodePod(driver.plane, driver.manifests, kubelet, driver.efs.endpoint,
                   driver.local_root)
    yield node
    node.stop()


def test_taint_removal_waits_out_an_api_server_outage(driver: Driver, node_b: NodePod) -> None:
    """The node plugin starts while the API server is down: its taint removal fails, is
    retried, and succeeds once the server is back (the process was never restarted)."""
    plane = driver.plane
    # Issued before the outage: the token kubelet projects, bound to the node's pod.
    plane.node_pod_service_account_files("kube-system", "efs-csi-node-sa",
                                         node_b.kubelet.node_name)
    plane.stop_apiserver()
    try:
        node_b.start(register=False)
        assert node_b.plugin is not None
        wait_until("the plugin to fail reaching the API",
                   lambda: "kubernetes API unreachable" in node_b.plugin.logs(), 30,  # type: ignore[union-attr]
                   diagnose=node_b.plugin.log_tail)
    finally:
        plane.start_apiserver()
    node_b.start_registrar()  # returns once the taint is gone
    assert node_b.untainted()
    assert node_b.pod.restarts[node_b.plugin.name] == 0
