"""Security findings of the 2026-12-06 review, shown on the real API server with the chart's
objects and the real binaries (#2 the node's Node patch, #3 deletion only with proof, #8 shared
root directories, #15 what PVC events say).

The node policy is probed with real tokens: the one kubelet would project into the node pod
(bound to the pod, so the API server names the node in the token's user info) and, for
contrast, an unbound one. Nodes for the probes are plain Node objects (no kubelet needed to be
patched); the node plugin that removes its own startup taint is the real one, on a real kubelet.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from efs_csi.contract import NOT_READY_TAINT
from tests.cluster.conftest import (
    CHART_SETS,
    Driver,
    Efs,
    Json,
    claim,
    events,
    handle_parts,
    namespace,
    node_taints,
    phase,
    storage_class,
    wait_bound,
    wait_gone,
)
from tests.support.cluster import ControlPlane, Kubelet, wait_until, write_kubeconfig
from tests.support.deployment import (
    NAMESPACE,
    ControllerPod,
    NodePod,
    PodProcesses,
    install_chart,
)

NODE_SA = "efs-csi-node-sa"
POLICY = "efs-csi-node-taint-removal-only"
OTHER_TAINT = {"key": "dedicated", "value": "storage", "effect": "NoSchedule"}
STARTUP_TAINT = {"key": NOT_READY_TAINT, "effect": "NoExecute"}


# --- #2: the node's ServiceAccount and Nodes ------------------------------------------------

def bare_node(plane: ControlPlane, name: str) -> None:
    plane.apply([{"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": name, "labels": {"kubernetes.io/hostname": name, "tier": "general"}},
        "spec": {"taints": [STARTUP_TAINT, OTHER_TAINT]}}])


def kubeconfig_for(plane: ControlPlane, files: Path, name: str) -> Path:
    return write_kubeconfig(plane.workdir / f"{name}.kubeconfig", plane.server, plane.pki.ca,
                            (files / "token").read_text(), name)


def json_patch(plane: ControlPlane, kubeconfig: Path, node: str,
               operations: list[Json]) -> tuple[bool, str]:
    result = plane.kubectl("--kubeconfig", str(kubeconfig), "patch", "node", node,
                           "--type=json", "-p", json.dumps(operations), check=False)
    return result.returncode == 0, result.stderr + result.stdout


def taints(plane: ControlPlane, node: str) -> list[tuple[str, str]]:
    """Our two taints as (key, effect), without the API server's own (node.kubernetes.io/*)."""
    return [(t["key"], t["effect"]) for t in node_taints(plane, node)
            if not t["key"].startswith("node.kubernetes.io/")]


def without_startup_taint(plane: ControlPlane, node: str) -> list[Json]:
    """What the node plugin writes: every taint of the Node but the startup taint."""
    return [t for t in node_taints(plane, node) if t["key"] != NOT_READY_TAINT]


BOTH = [(NOT_READY_TAINT, "NoExecute"), ("dedicated", "NoSchedule")]


@pytest.fixture(scope="module")
def chart(control_plane: ControlPlane) -> list[Json]:
    return install_chart(control_plane, CHART_SETS)


@pytest.fixture
def two_nodes(control_plane: ControlPlane, chart: list[Json]) -> Iterator[tuple[str, str]]:
    names = ("policy-node-a", "policy-node-b")
    for name in names:
        bare_node(control_plane, name)
    yield names
    for name in names:
        control_plane.forget_node_pod(NAMESPACE, NODE_SA, name)
        control_plane.kubectl("delete", "node", name, "--ignore-not-found")


def test_the_nodes_token_may_remove_its_own_startup_taint_and_nothing_else(
        control_plane: ControlPlane, two_nodes: tuple[str, str]) -> None:
    plane = control_plane
    own, other = two_nodes
    bound = kubeconfig_for(plane, plane.node_pod_service_account_files(NAMESPACE, NODE_SA, own),
                           "node-a-pod")
    startup_index = [t["key"] for t in node_taints(plane, own)].index(NOT_READY_TAINT)
    refused = {
        "a label": [{"op": "add", "path": "/metadata/labels/tier", "value": "gpu"}],
        "a node-restriction label": [{"op": "add", "path":
                                      "/metadata/labels/node-restriction.kubernetes.io~1pool",
                                      "value": "secret"}],
        "an annotation": [{"op": "add", "path": "/metadata/annotations",
                           "value": {"example.com/x": "y"}}],
        "another taint removed": [{"op": "replace", "path": "/spec/taints",
                                   "value": [t for t in node_taints(plane, own)
                                             if t["key"] != "dedicated"]}],
        "a taint added": [{"op": "add", "path": "/spec/taints/-",
                           "value": {"key": "evil", "effect": "NoExecute"}}],
        "cordoned": [{"op": "add", "path": "/spec/unschedulable", "value": True}],
        "the startup taint plus a label": [
            {"op": "remove", "path": f"/spec/taints/{startup_index}"},
            {"op": "add", "path": "/metadata/labels/tier", "value": "gpu"}],
    }
    for what, operations in refused.items():
        allowed, output = json_patch(plane, bound, own, operations)
        assert not allowed, f"{what} was allowed"
        # Refused by a rule of the policy, not by an expression that failed to evaluate.
        assert "denied request" in output and "resulted in error" not in output, (what, output)
    # Another node: not even the startup taint.
    allowed, output = json_patch(plane, bound, other, [
        {"op": "replace", "path": "/spec/taints",
         "value": without_startup_taint(plane, other)}])
    assert not allowed and f"not {other}" in output and "resulted in error" not in output, \
        output
    # A token bound to no node (made by hand, or a long-lived Secret's) changes nothing.
    unbound = kubeconfig_for(plane, plane.service_account_files(NAMESPACE, NODE_SA), "unbound")
    allowed, output = json_patch(plane, unbound, own, [
        {"op": "replace", "path": "/spec/taints", "value": without_startup_taint(plane, own)}])
    assert not allowed and "bound to no node" in output, output
    assert plane.get("node", own)["metadata"]["labels"]["tier"] == "general"
    assert taints(plane, own) == BOTH
    # What the node plugin does: its own node, the startup taint only.
    allowed, output = json_patch(plane, bound, own, [
        {"op": "replace", "path": "/spec/taints", "value": without_startup_taint(plane, own)}])
    assert allowed, output
    assert taints(plane, own) == BOTH[1:]
    assert taints(plane, other) == BOTH


def test_without_the_policy_the_same_token_could_relabel_its_node(
        control_plane: ControlPlane, two_nodes: tuple[str, str], chart: list[Json]) -> None:
    """The refusals above are the policy's doing: RBAC alone lets the patch through."""
    plane = control_plane
    own, _other = two_nodes
    bound = kubeconfig_for(plane, plane.node_pod_service_account_files(NAMESPACE, NODE_SA, own),
                           "node-a-pod")
    plane.kubectl("delete", "validatingadmissionpolicybinding", POLICY)
    try:
        def relabelled() -> bool:
            return json_patch(plane, bound, own, [
                {"op": "add", "path": "/metadata/labels/tier", "value": "gpu"}])[0]

        # The API server notices a removed binding within a second or so.
        wait_until("the label patch admitted without the policy", relabelled, 30, interval=0.5)
        assert plane.get("node", own)["metadata"]["labels"]["tier"] == "gpu"
    finally:
        plane.apply([m for m in chart if m["kind"] == "ValidatingAdmissionPolicyBinding"])
    wait_until("the policy enforced again", lambda: not json_patch(plane, bound, own, [
        {"op": "add", "path": "/metadata/labels/tier", "value": "general"}])[0], 30,
        interval=0.5)


def test_the_real_node_plugin_removes_its_startup_taint_under_the_policy(
        control_plane: ControlPlane, chart: list[Json], efs: Efs, local_root: Path,
        kubelet_factory: Callable[..., Kubelet]) -> None:
    plane = control_plane
    mark = len(plane.audit_events())
    kubelet = kubelet_factory("policy-real", taints=(f"{NOT_READY_TAINT}:NoExecute",
                                                     "dedicated=storage:NoSchedule"))
    node = NodePod(plane, chart, kubelet, efs.endpoint, local_root)
    try:
        node.start()  # waits for the startup taint to be gone
        assert ("dedicated", "NoSchedule") in taints(plane, kubelet.node_name)
    finally:
        node.stop()
    patches = [e for e in plane.audit_events()[mark:]
               if e["user"]["username"].endswith(f":{NODE_SA}") and e["verb"] == "patch"]
    assert patches and all(e["responseStatus"]["code"] == 200 for e in patches)
    # The token the plugin used names its node, as kubelet's projected tokens do.
    extra = patches[-1]["user"].get("extra", {})
    assert extra.get("authentication.kubernetes.io/node-name") == [kubelet.node_name]


# --- #8 and #3: through csi-provisioner -----------------------------------------------------

def test_two_namespaces_never_share_a_root_directory(driver: Driver) -> None:
    plane = driver.plane
    fs_id = driver.new_file_system()
    plane.apply([storage_class("efs-shared-name", {
        "provisioningMode": "efs-ap", "fileSystemId": fs_id, "directoryPerms": "777",
        "subPathPattern": "${.PVC.name}", "ensureUniqueDirectory": "false"})])
    first, second = namespace(plane, "tenant-a"), namespace(plane, "tenant-b")
    plane.apply([claim("db", first, "efs-shared-name")])
    wait_bound(plane, "db", first)
    plane.apply([claim("db", second, "efs-shared-name")])
    wait_until("tenant-b's claim refused, naming the directory and the switch",
               lambda: "--allow-shared-root-directories" in events(plane, second), 60,
               diagnose=lambda: events(plane, second))
    told = events(plane, second)
    assert "/db" in told and "tenant-a" not in told
    assert phase(plane, "pvc", "db", second) == "Pending"
    assert len(driver.efs.access_points(fs_id)) == 1
    for ns in (first, second):
        plane.kubectl("-n", ns, "delete", "pvc", "db", "--wait=true")
    wait_until("the access point deleted", lambda: driver.efs.access_points(fs_id) == [], 60)


@pytest.fixture
def deleting_controller(driver: Driver, cluster_dir: Path) -> Iterator[ControllerPod]:
    """The controller as the chart runs it with controller.deleteAccessPointRootDir=true."""
    driver.controller.stop()
    driver.reinstall(["controller.deleteAccessPointRootDir=true"])
    pod = ControllerPod(driver.plane, driver.manifests, driver.efs.endpoint,
                        cluster_dir / "pods" / "security-deleting", driver.local_root).start()
    try:
        yield pod
    finally:
        pod.stop()
        driver.reinstall()
        # The module's own controller, back (the driver fixture stops it at the end).
        driver.controller.pod = PodProcesses()
        driver.controller.start()


def fill(driver: Driver, fs_id: str, access_point_id: str) -> Path:
    """What a workload leaves in the access point's directory."""
    found = driver.efs.access_point(access_point_id)
    assert found is not None
    directory = driver.local_root / fs_id / found["RootDirectory"]["Path"].lstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data.txt").write_text("payload")
    return directory


def test_a_pv_naming_another_volumes_access_point_never_removes_its_directory(
        driver: Driver, deleting_controller: ControllerPod) -> None:
    plane = driver.plane
    fs_id = driver.new_file_system()
    plane.apply([storage_class("efs-delete-dirs", {
        "provisioningMode": "efs-ap", "fileSystemId": fs_id, "directoryPerms": "700",
        "basePath": "/dynamic"})])
    ns = namespace(plane, "victims")
    plane.apply([claim("victim", ns, "efs-delete-dirs"), claim("plain", ns, "efs-delete-dirs")])
    victim_pv = plane.get("pv", wait_bound(plane, "victim", ns)["spec"]["volumeName"])
    plain_pv = plane.get("pv", wait_bound(plane, "plain", ns)["spec"]["volumeName"])
    victim_ap, plain_ap = handle_parts(victim_pv)[2], handle_parts(plain_pv)[2]
    victim_dir, plain_dir = fill(driver, fs_id, victim_ap), fill(driver, fs_id, plain_ap)

    # Someone who may create PVs writes one naming the victim's access point, bound to a
    # claim that is gone: the PV controller releases it and csi-provisioner deletes it.
    plane.apply([{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {
        "name": "forged", "annotations": {"pv.kubernetes.io/provisioned-by": "efs.csi.aws.com"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"],
                 "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "efs-delete-dirs",
                 "claimRef": {"namespace": ns, "name": "long-gone",
                              "uid": "00000000-0000-0000-0000-000000000000"},
                 "csi": {"driver": "efs.csi.aws.com",
                         "volumeHandle": victim_pv["spec"]["csi"]["volumeHandle"]}}}])
    wait_gone(plane, "pv", "forged", timeout=90)
    assert (victim_dir / "data.txt").read_text() == "payload"
    assert driver.efs.access_point(victim_ap) is not None  # nor its access point
    assert "is Bound, not released or being deleted" in deleting_controller.logs()

    # A claim of its own, deleted: its directory goes, with its access point.
    plane.kubectl("-n", ns, "delete", "pvc", "plain")
    wait_gone(plane, "pv", plain_pv["metadata"]["name"], timeout=90)
    assert not plain_dir.exists()
    assert driver.efs.access_point(plain_ap) is None
    plane.kubectl("-n", ns, "delete", "pvc", "victim", "--wait=true")
