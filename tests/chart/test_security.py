"""The chart's least-privilege settings, on what helm really renders (review findings #2, #4,
#10, #11, #12), for every values file users are offered. What the API server makes of them
(pod security admission, the node policy) is in tests/chart/test_install.py and
tests/cluster/test_security.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import (
    Manifest,
    find,
    helm,
    render,
    template_args,
    values_files,
    values_id,
)
from tests.support.ci import REPO

SIDECARS = {"csi-provisioner", "liveness-probe", "csi-driver-registrar"}
#: The containers that call the Kubernetes API, per workload: only they get a token.
API_CALLERS = {"Deployment": {"efs-plugin", "csi-provisioner"}, "DaemonSet": {"efs-plugin"}}
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    """The chart's own (not extraObjects, such as the kind values' EFS API)."""
    return [m for m in manifests if m["kind"] in ("Deployment", "DaemonSet")
            and "helm.sh/chart" in m["metadata"].get("labels", {})]


def pod(workload: Manifest) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=values_files(), ids=values_id)
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(request.param)


def test_every_sidecar_drops_all_capabilities_and_uses_the_default_seccomp_profile(
        rendered: list[Manifest]) -> None:
    seen = set()
    for workload in workloads(rendered):
        for container in pod(workload)["containers"]:
            if container["name"] not in SIDECARS:
                continue
            seen.add(container["name"])
            context = container["securityContext"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, container["name"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert "privileged" not in context and "add" not in context["capabilities"]
    assert seen == SIDECARS


def test_a_sidecar_security_context_from_values_keeps_the_hardening(tmp_path: Path) -> None:
    """The reference chart's users replace the whole securityContext with
    {readOnlyRootFilesystem: true}: that must not undo the dropped capabilities or the seccomp
    profile. (Two values files, as helm merges them: the first clears the chart's map.)"""
    cleared, replaced = tmp_path / "cleared.yaml", tmp_path / "replaced.yaml"
    cleared.write_text("sidecars:\n  livenessProbe:\n    securityContext: null\n")
    replaced.write_text("sidecars:\n  livenessProbe:\n"
                        "    securityContext: {readOnlyRootFilesystem: true}\n")
    result = helm(*template_args(cleared), "--values", str(replaced))
    manifests = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    for workload in workloads(manifests):
        probe = next(c for c in pod(workload)["containers"] if c["name"] == "liveness-probe")
        assert probe["securityContext"] == {
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}, "allowPrivilegeEscalation": False}


def test_only_the_containers_that_call_the_api_get_a_token(rendered: list[Manifest]) -> None:
    for workload in workloads(rendered):
        spec = pod(workload)
        assert spec["automountServiceAccountToken"] is False
        (volume,) = [v for v in spec["volumes"] if v["name"] == "kube-api-access"]
        sources = volume["projected"]["sources"]
        assert sources[0]["serviceAccountToken"]["path"] == "token"
        with_token = {c["name"] for c in spec["containers"]
                      if any(m["name"] == "kube-api-access" and m["mountPath"] == TOKEN_PATH
                             and m.get("readOnly") for m in c.get("volumeMounts", []))}
        assert with_token == API_CALLERS[workload["kind"]], workload["metadata"]["name"]


def test_metrics_listen_on_the_pod_ip_only() -> None:
    everything = render(REPO / "tests" / "chart" / "values" / "everything.yaml")
    for workload in workloads(everything):
        plugin = next(c for c in pod(workload)["containers"] if c["name"] == "efs-plugin")
        endpoint = next(a for a in plugin["args"] if a.startswith("--http-endpoint="))
        assert re.fullmatch(r"--http-endpoint=\$\(POD_IP\):\d+", endpoint), endpoint
        pod_ip = next(e for e in plugin["env"] if e["name"] == "POD_IP")
        assert pod_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    for manifests in (render(), everything):
        for workload in workloads(manifests):
            for container in pod(workload)["containers"]:
                assert not any("0.0.0.0" in arg for arg in container.get("args", []))


def test_the_node_may_patch_nodes_only_under_the_admission_policy() -> None:
    manifests = render()
    policy = find(manifests, "ValidatingAdmissionPolicy", "efs-csi-node-taint-removal-only")
    (condition,) = policy["spec"]["matchConditions"]
    assert condition["expression"] == (
        "request.userInfo.username == \"system:serviceaccount:kube-system:efs-csi-node-sa\"")
    assert policy["spec"]["failurePolicy"] == "Fail"
    text = str(policy["spec"]["validations"])
    assert "authentication.kubernetes.io/node-name" in text or "boundNode" in text
    assert "efs.csi.aws.com/agent-not-ready" in text
    binding = find(manifests, "ValidatingAdmissionPolicyBinding",
                   "efs-csi-node-taint-removal-only")
    assert binding["spec"] == {"policyName": "efs-csi-node-taint-removal-only",
                               "validationActions": ["Deny"]}
    # Without taint removal the node may not patch Nodes at all: no policy is needed.
    off = render(sets=["node.removeNotReadyTaint=false"])
    assert not [m for m in off if m["kind"].startswith("ValidatingAdmissionPolicy")]


@pytest.mark.parametrize(("sets", "expected"), [
    (["controller.clusterId=prod-eu-west-1"], r"prod-eu-west-1"),
    # Rendered without a cluster (nothing to look up): derived from namespace and release.
    ([], r"efs-csi-[0-9a-f]{16}"),
])
def test_the_cluster_id_reaches_the_controller(sets: list[str], expected: str) -> None:
    manifests = render(sets=sets)
    plugin = next(c for c in pod(find(manifests, "Deployment", "efs-csi-controller"))[
        "containers"] if c["name"] == "efs-plugin")
    (cluster_id,) = [a for a in plugin["args"] if a.startswith("--cluster-id=")]
    assert re.fullmatch(f"--cluster-id={expected}", cluster_id), cluster_id


@pytest.mark.parametrize("value", ["a,b", "x" * 257])
def test_the_schema_refuses_a_cluster_id_efs_would_refuse(value: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(f"controller:\n  clusterId: '{value}'\n")
    result = helm(*template_args(values), check=False)
    assert result.returncode != 0 and "schema" in result.stderr, result.stderr
