"""The node path with a real kubelet: registration, the startup taint, the zone, and pods whose
volumes kubelet stages and publishes through efs-csi-node (local backend, real bind mounts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from grpclib.client import Channel

from efs_csi import csi
from tests.cluster.conftest import (
    NOT_READY_TAINT,
    Driver,
    claim,
    forbidden_since,
    namespace,
    node_taints,
    phase,
    pod,
    storage_class,
    timed,
    wait_bound,
    wait_gone,
)
from tests.support.cluster import (
    KUBELET_SYSCTLS,
    ControlPlane,
    KernelSettings,
    Kubelet,
    wait_until,
)
from tests.support.deployment import NodePod

OTHER_TAINT = "example.com/keep-me=yes:NoSchedule"
ZONE = "us-east-1a"


@pytest.fixture(scope="module")
def node(driver: Driver, kubelet_factory: Callable[..., Kubelet]) -> Iterator[NodePod]:
    """node-a: a fresh kubelet (CSINode with no drivers yet), then the node plugin's pod."""
    kubelet = kubelet_factory("node-a", zone=ZONE,
                              taints=(f"{NOT_READY_TAINT}:NoExecute", OTHER_TAINT))
    node_pod = NodePod(driver.plane, driver.manifests, kubelet, driver.efs.endpoint,
                       driver.local_root)
    yield node_pod
    node_pod.stop()


def test_a_kubelet_changes_kernel_settings_and_the_harness_puts_them_back(
        control_plane: ControlPlane, cluster_dir: Path) -> None:
    kubelet = Kubelet(control_plane, cluster_dir / "nodes" / "sysctl-node", "sysctl-node")
    before = {key: KernelSettings.read(key) for key in KUBELET_SYSCTLS}
    try:
        kubelet.start()
        # It did change some (kernel.panic 1 -> 10 and the like): the restore is not idle.
        assert kubelet.sysctls_restored, "the kubelet changed no kernel setting"
        assert {key: KernelSettings.read(key) for key in KUBELET_SYSCTLS} == before
    finally:
        kubelet.stop()
        control_plane.kubectl("delete", "node", "sysctl-node", "--wait=false")
    assert {key: KernelSettings.read(key) for key in KUBELET_SYSCTLS} == before


def test_startup_taint_goes_on_first_start_once_the_driver_is_registered(
        node: NodePod, report: Callable[[str], None]) -> None:
    plane, name = node.plane, node.kubelet.node_name
    mark = len(plane.audit_events())
    # What a node's first start looks like: kubelet made the CSINode with no drivers.
    assert plane.raw(f"/apis/storage.k8s.io/v1/csinodes/{name}")["spec"]["drivers"] is None

    node.start(register=False)
    assert node.plugin is not None
    wait_until("the plugin to wait for registration",
               lambda: "waiting for the driver to be registered" in node.plugin.logs(), 30,
               diagnose=node.plugin.log_tail)
    assert any(t["key"] == NOT_READY_TAINT for t in node_taints(plane, name))

    removal_s = timed(node.start_registrar)  # returns once CSINode lists us and the taint is gone
    keys = {(t["key"], t["effect"]) for t in node_taints(plane, name)}
    assert ("example.com/keep-me", "NoSchedule") in keys, keys
    assert "background task failed" not in node.plugin.logs()
    assert forbidden_since(plane, mark) == []
    report(f"cluster: registrar started -> driver in CSINode and startup taint removed "
           f"{removal_s:.2f} s")


@pytest.mark.asyncio
async def test_zone_from_the_node_label_reaches_node_get_info_and_csinode(
        node: NodePod) -> None:
    channel = Channel(path=str(node.socket))
    try:
        info = await csi.NodeStub(channel).node_get_info(csi.NodeGetInfoRequest(), timeout=10)
    finally:
        channel.close()
    assert info.node_id == node.kubelet.node_name
    assert info.accessible_topology is not None
    assert info.accessible_topology.segments == {"topology.kubernetes.io/zone": ZONE}
    csinode = node.plane.get("csinode", node.kubelet.node_name)
    ours = [d for d in csinode["spec"]["drivers"] if d["name"] == "efs.csi.aws.com"]
    assert ours and ours[0]["topologyKeys"] == ["topology.kubernetes.io/zone"]
    assert ours[0]["nodeID"] == node.kubelet.node_name


def csi_mounts(kubelet: Kubelet) -> list[str]:
    """What kubelet's CSI volume plugin has mounted: staging (globalmount) and pod targets."""
    return [m for m in kubelet.mounts() if "/kubernetes.io/csi/" in m or "kubernetes.io~csi" in m]


def run_pod_and_write(node: NodePod, ns: str, pod_name: str, claim_name: str,
                      expected_dir: Path) -> float:
    plane, kubelet = node.plane, node.kubelet
    running_s = timed(lambda: (plane.apply([pod(pod_name, ns, kubelet.node_name, claim_name)]),
                               wait_until(f"pod {pod_name} Running",
                                          lambda: phase(plane, "pod", pod_name, ns) == "Running",
                                          60, interval=0.2,
                                          diagnose=lambda: kubelet.kubelet.log_tail(20))))
    uid = plane.get("pod", pod_name, ns)["metadata"]["uid"]
    targets = [m for m in csi_mounts(kubelet) if f"/pods/{uid}/" in m]
    assert len(targets) == 1, csi_mounts(kubelet)
    assert any(m.endswith("/globalmount") for m in csi_mounts(kubelet)), csi_mounts(kubelet)
    (Path(targets[0]) / "written-by-pod").write_text(pod_name)
    assert (expected_dir / "written-by-pod").read_text() == pod_name
    plane.kubectl("-n", ns, "delete", "pod", pod_name, "--wait=true")
    wait_until("kubelet unpublished and unstaged", lambda: csi_mounts(kubelet) == [], 60,
               interval=0.2)
    return running_s


def test_static_volume_in_a_pod_is_staged_published_and_cleaned_up(
        driver: Driver, node: NodePod, report: Callable[[str], None]) -> None:
    plane = driver.plane
    if not node.registered():
        pytest.fail("the node plugin is not registered (the taint test runs first)")
    mark = len(plane.audit_events())
    fs_id = driver.new_file_system()
    data = driver.local_root / fs_id / "static"
    data.mkdir()
    ns = namespace(plane, "static")
    plane.apply([
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "static-pv"},
         "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "csi": {"driver": "efs.csi.aws.com", "volumeHandle": f"{fs_id}:/static"}}},
        claim("static-claim", ns, "", volume_name="static-pv"),
    ])
    wait_bound(plane, "static-claim", ns)
    running_s = run_pod_and_write(node, ns, "static-pod", "static-claim", data)
    plane.kubectl("-n", ns, "delete", "pvc", "static-claim")
    plane.kubectl("delete", "pv", "static-pv")
    assert forbidden_since(plane, mark) == []
    report(f"cluster: static PV pod created -> Running {running_s:.2f} s")


def test_dynamic_volume_in_a_pod_writes_into_its_access_point_directory(
        driver: Driver, node: NodePod, report: Callable[[str], None]) -> None:
    plane, efs = driver.plane, driver.efs
    if not node.registered():
        pytest.fail("the node plugin is not registered (the taint test runs first)")
    mark = len(plane.audit_events())
    fs_id = driver.new_file_system()
    plane.apply([storage_class("efs-ap-pods", {
        "provisioningMode": "efs-ap", "fileSystemId": fs_id, "directoryPerms": "700",
        "basePath": "/pods"})])
    ns = namespace(plane, "dynamic")
    plane.apply([claim("data", ns, "efs-ap-pods")])
    pv = plane.get("pv", wait_bound(plane, "data", ns)["spec"]["volumeName"])
    access_point = efs.access_point(pv["spec"]["csi"]["volumeHandle"].split("::")[1])
    assert access_point is not None
    directory = driver.local_root / fs_id / access_point["RootDirectory"]["Path"].lstrip("/")
    running_s = run_pod_and_write(node, ns, "dynamic-pod", "data", directory)
    assert directory.stat().st_gid == access_point["PosixUser"]["Gid"]
    plane.kubectl("-n", ns, "delete", "pvc", "data")
    wait_gone(plane, "pv", pv["metadata"]["name"])
    assert forbidden_since(plane, mark) == []
    report(f"cluster: dynamic PVC pod created -> Running {running_s:.2f} s")
