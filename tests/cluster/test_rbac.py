"""The chart's RBAC is enough and no more: with default values, every flow of a user's day
(the startup taint, provision, mount in a pod, unmount, delete, a claim for a chosen node, a
StorageClass typo) runs with no request refused, and every permission the chart grants is
either used by those flows or listed below with the reason it stays."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.cluster.conftest import (
    Driver,
    claim,
    forbidden_since,
    namespace,
    phase,
    pod,
    storage_class,
    wait_bound,
    wait_gone,
)
from tests.support.cluster import ControlPlane, Kubelet, wait_until
from tests.support.deployment import NodePod

ACCOUNTS = {"efs-csi-controller-sa": "controller", "efs-csi-node-sa": "node"}

# Granted by default but not exercised by the flows here. All are in the RBAC csi-provisioner
# documents for itself (kubernetes-csi/external-provisioner deploy/kubernetes/rbac.yaml and its
# leader-election role); the sidecar reads through informer caches and makes these calls only
# on paths the flows do not take, so removing them would break those paths, not harden much.
SIDECAR_DOCUMENTED = "in csi-provisioner's documented RBAC"
JUSTIFIED = {
    ("controller", "", "persistentvolumeclaims", "update"):
        f"{SIDECAR_DOCUMENTED}: it updates a claim to drop the scheduler's selected-node "
        "annotation when provisioning for that node fails, so the pod is rescheduled",
    ("controller", "", "persistentvolumeclaims", "get"): SIDECAR_DOCUMENTED,
    ("controller", "", "nodes", "get"): SIDECAR_DOCUMENTED,
    ("controller", "storage.k8s.io", "csinodes", "get"): SIDECAR_DOCUMENTED,
    ("controller", "storage.k8s.io", "storageclasses", "get"): SIDECAR_DOCUMENTED,
    ("controller", "", "events", "list"): SIDECAR_DOCUMENTED,
    ("controller", "", "events", "watch"): SIDECAR_DOCUMENTED,
    ("controller", "", "events", "update"): SIDECAR_DOCUMENTED,
    ("controller", "coordination.k8s.io", "leases", "list"): SIDECAR_DOCUMENTED,
    ("controller", "coordination.k8s.io", "leases", "watch"): SIDECAR_DOCUMENTED,
    ("controller", "coordination.k8s.io", "leases", "delete"): SIDECAR_DOCUMENTED,
    # A Role in the release namespace, resourceNames [x-account] (controller.provisionerSecrets,
    # as the reference chart grants): csi-provisioner reads that Secret only for cross-account
    # StorageClasses (csi.storage.k8s.io/provisioner-secret-*), which this day does not use.
    ("controller", "", "secrets", "get"):
        "the x-account Secret of cross-account StorageClasses, by name, in the release namespace",
}


def granted(manifests: list[dict[str, object]]) -> set[tuple[str, str, str, str]]:
    """(who, apiGroup, resource, verb) for every rule the chart binds to our accounts."""
    roles = {(m["kind"], m["metadata"]["name"]): m for m in manifests  # type: ignore[index]
             if m["kind"] in ("ClusterRole", "Role")}
    found = set()
    for binding in manifests:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]  # type: ignore[index]
        for subject in binding["subjects"]:  # type: ignore[attr-defined]
            who = ACCOUNTS.get(subject["name"])
            if who is None:
                continue
            for rule in role["rules"]:  # type: ignore[index]
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            found.add((who, group, resource, verb))
    return found


def used(plane: ControlPlane, mark: int) -> set[tuple[str, str, str, str]]:
    found = set()
    for event in plane.audit_events()[mark:]:
        user = event["user"]["username"]
        account = user.rsplit(":", 1)[-1]
        if not user.startswith("system:serviceaccount:kube-system:") or account not in ACCOUNTS:
            continue
        ref = event.get("objectRef", {})
        resource = ref.get("resource", "") + (f"/{ref['subresource']}"
                                               if ref.get("subresource") else "")
        found.add((ACCOUNTS[account], ref.get("apiGroup", ""), resource, event["verb"]))
    return found


@pytest.fixture(scope="module")
def audit_start(control_plane: ControlPlane) -> int:
    """The audit log's length before this module's driver starts."""
    return len(control_plane.audit_events())


@pytest.fixture(scope="module")
def node(driver: Driver, kubelet_factory: Callable[..., Kubelet]) -> Iterator[NodePod]:
    node_pod = NodePod(driver.plane, driver.manifests, kubelet_factory("rbac-node"),
                       driver.efs.endpoint, driver.local_root).start()
    yield node_pod
    node_pod.stop()


def test_a_users_day_needs_every_permission_granted_and_no_other(
        audit_start: int, driver: Driver, node: NodePod) -> None:
    plane = driver.plane
    fs_id = driver.new_file_system()
    parameters = {"provisioningMode": "efs-ap", "fileSystemId": fs_id, "directoryPerms": "700"}
    plane.apply([storage_class("efs-rbac", parameters),
                 storage_class("efs-rbac-late", parameters,
                               volumeBindingMode="WaitForFirstConsumer"),
                 storage_class("efs-rbac-typo", {**parameters, "fileSystemId": "fs-0000dead"})])
    ns = namespace(plane, "rbac")

    # A claim bound at once, used by a pod, then released.
    plane.apply([claim("data", ns, "efs-rbac")])
    volume = wait_bound(plane, "data", ns)["spec"]["volumeName"]
    plane.apply([pod("app", ns, node.kubelet.node_name, "data")])
    wait_until("pod Running", lambda: phase(plane, "pod", "app", ns) == "Running", 60)
    plane.kubectl("-n", ns, "delete", "pod", "app", "--wait=true")
    plane.kubectl("-n", ns, "delete", "pvc", "data")
    wait_gone(plane, "pv", volume)

    # A claim provisioned once the scheduler picked a node (it annotates the claim so).
    late = claim("late", ns, "efs-rbac-late")
    late["metadata"]["annotations"] = {
        "volume.kubernetes.io/selected-node": node.kubelet.node_name}
    plane.apply([late])
    late_volume = wait_bound(plane, "late", ns)["spec"]["volumeName"]
    plane.kubectl("-n", ns, "delete", "pvc", "late")
    wait_gone(plane, "pv", late_volume)

    # A typo in a StorageClass: provisioning fails, again and again, and says so.
    plane.apply([claim("typo", ns, "efs-rbac-typo")])

    def failure_repeated() -> bool:
        listed = plane.get("events", namespace=ns)["items"]
        return any(e["reason"] == "ProvisioningFailed" and e.get("count", 1) >= 2
                   for e in listed)

    wait_until("the failure event repeated", failure_repeated, 60)
    plane.kubectl("-n", ns, "delete", "pvc", "typo")

    assert forbidden_since(plane, audit_start) == []
    grants = granted(driver.manifests)
    uses = used(plane, audit_start)
    assert uses <= grants, f"used without a grant (so refused?): {sorted(uses - grants)}"
    unjustified = sorted(grants - uses - set(JUSTIFIED))
    assert unjustified == [], f"granted, never used, no reason given: {unjustified}"
    stale = sorted(set(JUSTIFIED) & uses)
    assert stale == [], f"used after all; drop them from JUSTIFIED: {stale}"
    assert set(JUSTIFIED) <= grants, sorted(set(JUSTIFIED) - grants)
