"""`helm install`, `upgrade` and `uninstall` into a real kube-apiserver.

A control plane of its own for this module (tests/support/cluster.py: etcd, kube-apiserver,
kube-controller-manager on loopback), so cluster-scoped objects (ClusterRoles, the CSIDriver)
never meet another test's. No kubelet runs and no workload controller: pods are not started,
but every object goes through the API server's validation, admission (privileged pods need
--allow-privileged), and its RBAC answers the access checks.

Covers: the defaults; the reference README's install commands (each either installs or fails
naming this chart's key before anything is created); values files in the reference's shape and
with every option on; moving over from the reference driver with its CSIDriver left behind; and
the narrow Secrets access for cross-account provisioning, checked by the API server's own RBAC.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.custom_resources import CRDS
from tests.chart.render import CHART, NAMESPACE
from tests.support.ci import REPO, tool
from tests.support.cluster import ClusterTools, ControlPlane, wait_until

pytestmark = pytest.mark.timeout(300)

RELEASE = "efs-csi"
CONTROLLER_SA = f"system:serviceaccount:{NAMESPACE}:efs-csi-controller-sa"

# The CSIDriver the reference chart leaves behind after `helm uninstall`: a hook with
# resource-policy keep, no Helm ownership labels or annotations, only attachRequired set.
REFERENCE_CSIDRIVER = {
    "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
    "metadata": {"name": "efs.csi.aws.com", "annotations": {
        "helm.sh/hook": "pre-install, pre-upgrade",
        "helm.sh/hook-delete-policy": "before-hook-creation",
        "helm.sh/resource-policy": "keep"}},
    "spec": {"attachRequired": False},
}

# The Prometheus Operator's CRDs the chart's monitoring objects need (ServiceMonitor,
# PrometheusRule), as that project ships them (tests/chart/crds): the API server then checks the
# chart's objects against their real schemas. The dashboard's namespace in everything.yaml.
MONITORING_CRDS = [yaml.safe_load(path.read_text()) for path in sorted(CRDS.glob("*.yaml"))]
DASHBOARD_NAMESPACE = {"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "monitoring"}}


class Helm:
    """Real helm against the control plane, with its own config/cache/data directories."""

    def __init__(self, plane: ControlPlane, home: Path) -> None:
        self.plane = plane
        self.env = {**os.environ, "HELM_CONFIG_HOME": str(home / "config"),
                    "HELM_CACHE_HOME": str(home / "cache"), "HELM_DATA_HOME": str(home / "data"),
                    "KUBECONFIG": str(plane.admin_kubeconfig)}
        self.binary = tool("helm", "HELM")

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.binary, *args, "--namespace", NAMESPACE],
                                capture_output=True, text=True, env=self.env, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    def install(self, *options: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self("install", RELEASE, str(CHART), *options, check=check)

    def releases(self) -> list[dict[str, Any]]:
        return json.loads(self("list", "--all", "-o", "json").stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    tools = ClusterTools.find()
    directory = Path(tempfile.mkdtemp(prefix="efs-helm-", dir="/tmp"))
    started = ControlPlane(directory, tools).start()
    try:
        started.apply([*MONITORING_CRDS, DASHBOARD_NAMESPACE])
        for plural in ("servicemonitors", "prometheusrules"):
            wait_until(f"the {plural} CRD", lambda p=plural: started.kubectl(
                "get", p, "-A", check=False).returncode == 0, 30)
        yield started
    finally:
        started.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def helm(plane: ControlPlane, tmp_path: Path) -> Iterator[Helm]:
    client = Helm(plane, tmp_path)
    yield client
    # Each test leaves the cluster as it found it (the CSIDriver is kept by design).
    client("uninstall", RELEASE, "--wait", check=False)
    plane.kubectl("delete", "csidriver", "efs.csi.aws.com", "--ignore-not-found")
    plane.kubectl("-n", NAMESPACE, "delete", "serviceaccount", "efs-csi-controller-sa",
                  "--ignore-not-found")


def plugin(workload: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in workload["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]
                if c["name"] == "efs-plugin")


def can_i(plane: ControlPlane, *args: str) -> bool:
    result = plane.kubectl("auth", "can-i", *args, "--as", CONTROLLER_SA, check=False)
    return result.stdout.strip() == "yes"


def test_defaults_install_upgrade_and_uninstall(plane: ControlPlane, helm: Helm) -> None:
    helm.install()
    deployment = plane.get("deployment", "efs-csi-controller", NAMESPACE)
    daemonset = plane.get("daemonset", "efs-csi-node", NAMESPACE)
    for workload in (deployment, daemonset):
        assert workload["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/os"] == "linux"
    assert plugin(daemonset)["securityContext"]["privileged"] is True
    driver = plane.get("csidriver", "efs.csi.aws.com")
    assert driver["spec"]["fsGroupPolicy"] == "None"

    helm("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "controller.replicaCount=3",
         "--set", "node.logLevel=debug")
    assert plane.get("deployment", "efs-csi-controller", NAMESPACE)["spec"]["replicas"] == 3
    assert "--log-level=debug" in plugin(plane.get("daemonset", "efs-csi-node", NAMESPACE))["args"]
    assert [r["revision"] for r in helm.releases()] == ["2"]
    assert plane.find("csidriver", "efs.csi.aws.com") is not None  # replaced by the hook

    helm("uninstall", RELEASE, "--wait")
    assert plane.find("deployment", "efs-csi-controller", NAMESPACE) is None
    assert plane.find("daemonset", "efs-csi-node", NAMESPACE) is None
    assert plane.find("clusterrole", "efs-csi-node-role") is None
    # Kept on purpose (docs/upgrading.md): kubelet keeps treating the volumes as attach-free.
    assert plane.find("csidriver", "efs.csi.aws.com") is not None


def test_reference_readme_install_commands(plane: ControlPlane, helm: Helm) -> None:
    registry = "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks"
    refused = {
        f"image.repository={registry}/aws-efs-csi-driver": "image.controllerRepository",
        f"sidecars.node-driver-registrar.image.repository={registry}/csi-node-driver-registrar":
            "sidecars.nodeDriverRegistrar",
        "useFips=true": "useFIPS",
        "useFIPS=true": "AWS_USE_FIPS_ENDPOINT=true",
    }
    for setting, ours in refused.items():
        result = helm.install("--set", setting, check=False)
        assert result.returncode != 0 and ours in result.stderr, (setting, result.stderr)
        assert helm.releases() == [] and plane.find(
            "deployment", "efs-csi-controller", NAMESPACE) is None, "half-made release"

    # The service account made beforehand (IRSA), private-registry sidecars, our image keys.
    plane.kubectl("-n", NAMESPACE, "create", "serviceaccount", "efs-csi-controller-sa")
    helm.install(
        "--set", "controller.serviceAccount.create=false",
        "--set", "controller.serviceAccount.name=efs-csi-controller-sa",
        "--set", f"sidecars.livenessProbe.image.repository={registry}/livenessprobe",
        "--set",
        f"sidecars.nodeDriverRegistrar.image.repository={registry}/csi-node-driver-registrar",
        "--set", f"sidecars.csiProvisioner.image.repository={registry}/csi-provisioner",
        "--set", f"image.controllerRepository={registry}/efs-csi-controller",
        "--set", f"image.nodeRepository={registry}/efs-csi-node")
    deployment = plane.get("deployment", "efs-csi-controller", NAMESPACE)
    images = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert images["csi-provisioner"].startswith(f"{registry}/csi-provisioner:")
    assert images["liveness-probe"].startswith(f"{registry}/livenessprobe:")
    assert images["efs-plugin"].startswith(f"{registry}/efs-csi-controller:")
    daemonset = plane.get("daemonset", "efs-csi-node", NAMESPACE)
    node_images = {c["name"]: c["image"]
                   for c in daemonset["spec"]["template"]["spec"]["containers"]}
    assert node_images["csi-driver-registrar"].startswith(f"{registry}/csi-node-driver-registrar:")
    # The chart did not take over the user's service account.
    account = plane.get("serviceaccount", "efs-csi-controller-sa", NAMESPACE)
    assert "meta.helm.sh/release-name" not in account["metadata"].get("annotations", {})


@pytest.mark.parametrize("values", ["reference-style.yaml", "everything.yaml"])
def test_values_files_install(plane: ControlPlane, helm: Helm, values: str) -> None:
    helm.install("--values", str(REPO / "tests" / "chart" / "values" / values))
    assert plane.find("daemonset", "efs-csi-node", NAMESPACE) is not None
    assert plane.get("servicemonitors", namespace=NAMESPACE)["items"]
    helm("uninstall", RELEASE, "--wait")


def test_moving_from_the_reference_with_its_csidriver_left_behind(plane: ControlPlane,
                                                                  helm: Helm) -> None:
    plane.apply([REFERENCE_CSIDRIVER])
    helm.install()  # the hook replaces it
    driver = plane.get("csidriver", "efs.csi.aws.com")
    assert driver["spec"]["fsGroupPolicy"] == "None"
    assert driver["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_without_hooks_the_documented_command_clears_the_way(plane: ControlPlane,
                                                             helm: Helm) -> None:
    plane.apply([REFERENCE_CSIDRIVER])
    blocked = helm.install("--set", "useHelmHooksForCSIDriver=false", check=False)
    assert blocked.returncode != 0 and "ownership metadata" in blocked.stderr, blocked.stderr
    # docs/upgrading.md: the one command, then install.
    plane.kubectl("delete", "csidriver", "efs.csi.aws.com")
    helm.install("--set", "useHelmHooksForCSIDriver=false")
    assert plane.get("csidriver", "efs.csi.aws.com")["spec"]["fsGroupPolicy"] == "None"


def test_cross_account_secrets_access_is_by_name_in_the_release_namespace(
        plane: ControlPlane, helm: Helm) -> None:
    helm.install()
    assert can_i(plane, "get", "secrets/x-account", "-n", NAMESPACE)
    assert not can_i(plane, "get", "secrets/other", "-n", NAMESPACE)
    assert not can_i(plane, "get", "secrets/x-account", "-n", "default")
    assert not can_i(plane, "list", "secrets", "-n", NAMESPACE)
    # What csi-provisioner needs, granted.
    assert can_i(plane, "create", "persistentvolumes")
    assert can_i(plane, "update", "leases", "-n", NAMESPACE)
    assert not can_i(plane, "update", "leases", "-n", "default")


def cluster_id_arg(plane: ControlPlane) -> str:
    args = plugin(plane.get("deployment", "efs-csi-controller", NAMESPACE))["args"]
    (found,) = [arg.removeprefix("--cluster-id=") for arg in args
                if arg.startswith("--cluster-id=")]
    return found


def test_the_cluster_id_is_the_clusters_own_and_survives_upgrades(plane: ControlPlane,
                                                                  helm: Helm) -> None:
    """Review finding #4: the cluster tag's value is unique per cluster (the kube-system
    Namespace's UID), and an upgrade never changes it, even with the value reset."""
    helm.install()
    uid = plane.get("namespace", "kube-system")["metadata"]["uid"]
    assert cluster_id_arg(plane) == uid
    helm("upgrade", RELEASE, str(CHART), "--reset-values", "--set", "controller.replicaCount=1")
    assert cluster_id_arg(plane) == uid
    helm("uninstall", RELEASE, "--wait")
    helm.install("--set", "controller.clusterId=prod-eu-west-1")
    helm("upgrade", RELEASE, str(CHART), "--reset-values")  # the value is gone: kept anyway
    assert cluster_id_arg(plane) == "prod-eu-west-1"


def pod_from(workload: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The pod a workload controller would create from ``workload``'s template."""
    spec = json.loads(json.dumps(workload["spec"]["template"]["spec"]))
    spec.pop("priorityClassName", None)  # system-*-critical is for kube-system only
    spec["serviceAccountName"] = "default"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pss-{workload['metadata']['name']}", "namespace": namespace},
            "spec": spec}


@pytest.fixture
def restricted_namespace(plane: ControlPlane) -> Iterator[str]:
    name = "pss-restricted"
    plane.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                 "pod-security.kubernetes.io/enforce-version": "latest"}}}])
    wait_until("the namespace's default ServiceAccount", lambda: plane.kubectl(
        "-n", name, "get", "serviceaccount", "default", check=False).returncode == 0, 30)
    yield name
    plane.kubectl("delete", "namespace", name, "--wait=false")


def admitted(plane: ControlPlane, pod: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod),
                         check=False)


def test_the_controller_pod_passes_pod_security_restricted(
        plane: ControlPlane, restricted_namespace: str) -> None:
    """Review finding #10, judged by the API server's own pod-security admission: the
    controller pod as the chart renders it is admitted where `restricted` is enforced; the
    node's is refused (the check can fail), and so is the controller's once it mounts."""
    from tests.chart.render import find, render

    manifests = render(kube_version=plane.version().lstrip("v"))
    controller = admitted(plane, pod_from(find(manifests, "Deployment", "efs-csi-controller"),
                                          restricted_namespace))
    assert controller.returncode == 0, controller.stderr
    node = admitted(plane, pod_from(find(manifests, "DaemonSet", "efs-csi-node"),
                                    restricted_namespace))
    assert node.returncode != 0 and "violates PodSecurity" in node.stderr, node.stderr
    assert "privileged" in node.stderr
    mounting = render(sets=["controller.deleteAccessPointRootDir=true"],
                      kube_version=plane.version().lstrip("v"))
    refused = admitted(plane, pod_from(find(mounting, "Deployment", "efs-csi-controller"),
                                       restricted_namespace))
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr


def test_file_system_id_references_are_granted_by_name_only(plane: ControlPlane,
                                                           helm: Helm) -> None:
    """Review finding #9, checked by the API server's RBAC."""
    helm.install("--set", "controller.fileSystemIdReferences[0].kind=ConfigMap",
                 "--set", "controller.fileSystemIdReferences[0].namespace=default",
                 "--set", "controller.fileSystemIdReferences[0].name=efs-ids",
                 "--set", "controller.fileSystemIdReferences[1].kind=Secret",
                 "--set", "controller.fileSystemIdReferences[1].namespace=default",
                 "--set", "controller.fileSystemIdReferences[1].name=efs-secret")
    assert can_i(plane, "get", "configmaps/efs-ids", "-n", "default")
    assert can_i(plane, "get", "secrets/efs-secret", "-n", "default")
    assert not can_i(plane, "get", "configmaps/other", "-n", "default")
    assert not can_i(plane, "get", "secrets/efs-ids", "-n", "default")
    assert not can_i(plane, "get", "secrets/efs-secret", "-n", NAMESPACE)
    assert not can_i(plane, "list", "secrets", "-n", "default")
    assert not can_i(plane, "get", "secrets", "--all-namespaces")
