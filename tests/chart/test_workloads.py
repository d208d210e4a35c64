"""What the rendered controller, node and RBAC must look like (the security-relevant parts)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.chart.render import CHART, Manifest, find, helm, render, template_args
from tests.support.ci import REPO


def pod_spec(manifests: list[Manifest], kind: str, name: str) -> dict[str, Any]:
    return find(manifests, kind, name)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in spec["containers"] if c["name"] == name)


def rules(manifests: list[Manifest], role: str) -> list[dict[str, Any]]:
    return find(manifests, "ClusterRole", role)["rules"]  # type: ignore[no-any-return]


def verbs_on(role_rules: list[dict[str, Any]], resource: str) -> set[str]:
    return {verb for rule in role_rules if resource in rule["resources"] for verb in rule["verbs"]}


@pytest.fixture(scope="module")
def defaults() -> list[Manifest]:
    return render()


def test_node_daemonset_is_privileged_on_the_host_network(defaults: list[Manifest]) -> None:
    spec = pod_spec(defaults, "DaemonSet", "efs-csi-node")
    plugin = container(spec, "efs-plugin")
    assert spec["hostNetwork"] is True
    assert plugin["securityContext"]["privileged"] is True
    assert {"operator": "Exists"} in spec["tolerations"]
    node_name = next(e for e in plugin["env"] if e["name"] == "CSI_NODE_NAME")
    assert node_name["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert {c["name"] for c in spec["containers"]} == {
        "efs-plugin", "csi-driver-registrar", "liveness-probe"}


@pytest.mark.parametrize("kubelet", ["/var/lib/kubelet", "/var/lib/k0s/kubelet"])
def test_node_mounts_the_kubelet_dir_bidirectionally(kubelet: str) -> None:
    manifests = render(sets=[f"node.kubeletPath={kubelet}"])
    spec = pod_spec(manifests, "DaemonSet", "efs-csi-node")
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in container(spec, "efs-plugin")["volumeMounts"]}
    assert host_paths["kubelet-dir"] == kubelet
    assert mounts["kubelet-dir"] == {"name": "kubelet-dir", "mountPath": kubelet,
                                     "mountPropagation": "Bidirectional"}
    assert host_paths["plugin-dir"] == f"{kubelet}/plugins/efs.csi.aws.com"
    assert host_paths["registration-dir"] == f"{kubelet}/plugins_registry"
    registrar = container(spec, "csi-driver-registrar")
    assert {"name": "DRIVER_REG_SOCK_PATH",
            "value": f"{kubelet}/plugins/efs.csi.aws.com/csi.sock"} in registrar["env"]


def test_efs_utils_state_lives_on_the_host(defaults: list[Manifest]) -> None:
    spec = pod_spec(defaults, "DaemonSet", "efs-csi-node")
    host_paths = {v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert {"/var/amazon/efs", "/var/run/efs", "/etc/amazon/efs"} <= host_paths


def test_controller_deployment(defaults: list[Manifest]) -> None:
    deployment = find(defaults, "Deployment", "efs-csi-controller")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    provisioner = container(spec, "csi-provisioner")["args"]
    for arg in ("--extra-create-metadata", "--leader-election", "--timeout=60s",
                "--feature-gates=Topology=true"):
        assert arg in provisioner
    assert any(arg.startswith("--worker-threads=") for arg in provisioner)
    socket = next(v for v in spec["volumes"] if v["name"] == "socket-dir")
    assert socket == {"name": "socket-dir", "emptyDir": {}}
    assert "liveness-probe" in {c["name"] for c in spec["containers"]}


def test_controller_runs_with_its_memory_settings_unless_the_user_says_otherwise() -> None:
    env = container(pod_spec(render(), "Deployment", "efs-csi-controller"), "efs-plugin")["env"]
    assert {"name": "MALLOC_ARENA_MAX", "value": "1"} in env
    assert {"name": "FROZENLIST_NO_EXTENSIONS", "value": "1"} in env
    assert {"name": "SSL_CERT_FILE", "value": "/dev/null"} in env
    node = container(pod_spec(render(), "DaemonSet", "efs-csi-node"), "efs-plugin")
    assert not {"MALLOC_ARENA_MAX", "FROZENLIST_NO_EXTENSIONS", "SSL_CERT_FILE"} & {
        item["name"] for item in node.get("env", [])}
    own = container(pod_spec(render(sets=["controller.env[0].name=MALLOC_ARENA_MAX",
                                          "controller.env[0].value=4"]),
                             "Deployment", "efs-csi-controller"), "efs-plugin")["env"]
    arenas = [str(item["value"]) for item in own if item["name"] == "MALLOC_ARENA_MAX"]
    assert arenas[-1] == "4"  # the last of a name is what the container gets


def test_controller_is_unprivileged_by_default(defaults: list[Manifest]) -> None:
    spec = pod_spec(defaults, "Deployment", "efs-csi-controller")
    plugin = container(spec, "efs-plugin")
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert plugin["securityContext"]["allowPrivilegeEscalation"] is False
    assert "privileged" not in plugin["securityContext"]
    assert plugin["image"].startswith("ghcr.io/efs-csi/efs-csi-controller:")


@pytest.mark.parametrize(("backend", "image"), [("efs", "efs-csi-controller-efs"),
                                                  ("local", "efs-csi-controller")])
def test_controller_is_root_and_privileged_only_to_delete_access_point_dirs(
        backend: str, image: str) -> None:
    """Only root in a privileged container can mount (util-linux refuses uid 65532)."""
    manifests = render(sets=["controller.deleteAccessPointRootDir=true", f"mountBackend={backend}"])
    spec = pod_spec(manifests, "Deployment", "efs-csi-controller")
    plugin = container(spec, "efs-plugin")
    assert plugin["securityContext"] == {"privileged": True}
    assert spec["securityContext"] == {"runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 0}
    # With the efs backend the controller mounts through efs-utils: its own image has it.
    assert plugin["image"].startswith(f"ghcr.io/efs-csi/{image}:")


@pytest.mark.parametrize("enabled", [True, False])
def test_node_may_patch_nodes_only_when_it_removes_the_taint(enabled: bool) -> None:
    manifests = render(sets=[f"node.removeNotReadyTaint={str(enabled).lower()}"])
    verbs = verbs_on(rules(manifests, "efs-csi-node-role"), "nodes")
    assert ("patch" in verbs) is enabled
    assert verbs <= {"get", "patch"}
    args = container(pod_spec(manifests, "DaemonSet", "efs-csi-node"), "efs-plugin")["args"]
    assert f"--remove-not-ready-taint={str(enabled).lower()}" in args


def test_controller_reads_only_the_configmaps_and_secrets_listed_by_name(
        defaults: list[Manifest]) -> None:
    """Review finding #9: references used to grant get on every ConfigMap and Secret."""
    for manifests in (defaults, render(REPO / "tests" / "chart" / "values" / "everything.yaml")):
        for manifest in manifests:
            if manifest["kind"] == "ClusterRole":
                assert not verbs_on(manifest["rules"], "secrets"), manifest["metadata"]["name"]
                assert not verbs_on(manifest["rules"], "configmaps"), manifest["metadata"]["name"]
    listed = render(sets=["controller.fileSystemIdReferences[0].kind=ConfigMap",
                          "controller.fileSystemIdReferences[0].namespace=storage",
                          "controller.fileSystemIdReferences[0].name=efs-ids",
                          "controller.fileSystemIdReferences[1].kind=Secret",
                          "controller.fileSystemIdReferences[1].namespace=storage",
                          "controller.fileSystemIdReferences[1].name=efs-secret",
                          "controller.fileSystemIdReferences[2].kind=Secret",
                          "controller.fileSystemIdReferences[2].namespace=team-b",
                          "controller.fileSystemIdReferences[2].name=efs"])
    roles = {m["metadata"]["namespace"]: m["rules"] for m in listed if m["kind"] == "Role"
             and m["metadata"]["name"] == "efs-csi-file-system-id-references"}
    assert roles == {
        "storage": [{"apiGroups": [""], "resources": ["configmaps"],
                     "resourceNames": ["efs-ids"], "verbs": ["get"]},
                    {"apiGroups": [""], "resources": ["secrets"],
                     "resourceNames": ["efs-secret"], "verbs": ["get"]}],
        "team-b": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["efs"],
                    "verbs": ["get"]}]}
    bindings = [m for m in listed if m["kind"] == "RoleBinding"
                and m["metadata"]["name"] == "efs-csi-file-system-id-references"]
    assert {b["metadata"]["namespace"] for b in bindings} == {"storage", "team-b"}
    assert all(b["subjects"] == [{"kind": "ServiceAccount", "name": "efs-csi-controller-sa",
                                  "namespace": "kube-system"}] for b in bindings)


@pytest.mark.parametrize("sets", [["controller.fileSystemIdReferences=true"],
                                  ["controller.fileSystemIdRefs.enabled=true"]])
def test_the_cluster_wide_reference_switch_is_refused_with_the_way_out(
        sets: list[str]) -> None:
    result = helm(*template_args(None, sets), check=False)
    assert result.returncode != 0
    assert "every ConfigMap and Secret" in result.stderr
    assert "controller.fileSystemIdReferences: [{kind: ConfigMap" in result.stderr


def test_no_role_grants_wildcards(defaults: list[Manifest]) -> None:
    everything = render(REPO / "tests" / "chart" / "values" / "everything.yaml")
    for manifest in defaults + everything:
        for rule in manifest.get("rules", []) if manifest["kind"].endswith("Role") else []:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule


def test_csidriver_needs_no_attach(defaults: list[Manifest]) -> None:
    driver = find(defaults, "CSIDriver", "efs.csi.aws.com")
    assert driver["spec"]["attachRequired"] is False


def test_chart_ships_the_driver_version() -> None:
    from efs_csi import __version__

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__


def test_both_workloads_run_on_linux_nodes_only(defaults: list[Manifest]) -> None:
    for kind, name in (("Deployment", "efs-csi-controller"), ("DaemonSet", "efs-csi-node")):
        assert pod_spec(defaults, kind, name)["nodeSelector"]["kubernetes.io/os"] == "linux"
    extra = render(sets=["node.nodeSelector.pool=general"])
    assert pod_spec(extra, "DaemonSet", "efs-csi-node")["nodeSelector"] == {
        "kubernetes.io/os": "linux", "pool": "general"}


def test_storage_class_labels_and_expansion_are_rendered() -> None:
    manifests = render(REPO / "tests" / "chart" / "values" / "everything.yaml")
    storage_class = find(manifests, "StorageClass", "efs-sc")
    assert storage_class["metadata"]["labels"]["team"] == "storage"
    assert storage_class["allowVolumeExpansion"] is True
    assert storage_class["parameters"]["ensureUniqueDirectory"] == "true"


def test_topology_spread_gets_the_controller_pods_labels() -> None:
    manifests = render(REPO / "tests" / "chart" / "values" / "everything.yaml")
    deployment = find(manifests, "Deployment", "efs-csi-controller-main")
    spec = deployment["spec"]["template"]["spec"]
    (constraint,) = spec["topologySpreadConstraints"]
    selected = constraint["labelSelector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selected and selected.items() <= pod_labels.items()
    assert selected == deployment["spec"]["selector"]["matchLabels"]


def test_controller_resources_reach_the_sidecars_unless_they_set_their_own() -> None:
    manifests = render(REPO / "tests" / "chart" / "values" / "everything.yaml")
    spec = pod_spec(manifests, "Deployment", "efs-csi-controller-main")
    assert container(spec, "liveness-probe")["resources"] == {
        "requests": {"cpu": "10m", "memory": "64Mi"}}
    assert container(spec, "csi-provisioner")["resources"] == {"limits": {"memory": "128Mi"}}


def test_prometheus_annotations_follow_metrics() -> None:
    on = render(sets=["controller.enableMetrics=true"])
    annotations = find(on, "Deployment", "efs-csi-controller")["spec"]["template"]["metadata"][
        "annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "3301"}
    assert find(on, "Service", "efs-csi-controller")["spec"]["ports"][0]["port"] == 3301
    off = render(sets=["controller.enableMetrics=true",
                       "controller.enablePrometheusAnnotations=false"])
    assert "annotations" not in find(off, "Deployment", "efs-csi-controller")["spec"][
        "template"]["metadata"]


def test_pods_carry_the_reference_app_labels(defaults: list[Manifest]) -> None:
    for kind, name, app in (("Deployment", "efs-csi-controller", "efs-csi-controller"),
                            ("DaemonSet", "efs-csi-node", "efs-csi-node")):
        labels = find(defaults, kind, name)["spec"]["template"]["metadata"]["labels"]
        assert labels["app"] == app
