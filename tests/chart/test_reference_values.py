"""Every key of the reference chart's values, as a user moving over would set it.

``REFERENCE`` lists the reference aws-efs-csi-driver chart's values keys (its values.yaml, 113
keys with whole maps counted once, plus the 10 its templates read without declaring them),
each with a value a user of that chart would write. A key either works here (the value renders
and passes the schema) or is refused with a message that says why and names this chart's key.
docs/upgrading.md lists every one of them with what became of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import helm, render, template_args
from tests.support.ci import REPO

Value = Any
WORKS = "works"

# key -> (value as the reference chart takes it, "works" or the words the refusal must contain)
REFERENCE: dict[str, tuple[Value, str]] = {
    "nameOverride": ("efs", WORKS),
    "fullnameOverride": ("my-efs", "object names are fixed"),
    "useFIPS": (True, "AWS_USE_FIPS_ENDPOINT"),
    "portRangeUpperBound": ("21049", WORKS),
    "debugLogs": (True, WORKS),
    "image.repository": ("602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/aws-efs-csi-driver",
                         "image.controllerRepository"),
    "image.tag": ("v3.4.1", WORKS),
    "image.pullPolicy": ("Always", WORKS),
    "sidecars.livenessProbe.image.repository": ("example.com/eks/livenessprobe", WORKS),
    "sidecars.livenessProbe.image.tag": ("v2.19.0-eksbuild.3", WORKS),
    "sidecars.livenessProbe.image.pullPolicy": ("Always", WORKS),
    "sidecars.livenessProbe.resources": ({"limits": {"memory": "64Mi"}}, WORKS),
    "sidecars.livenessProbe.securityContext": ({"readOnlyRootFilesystem": True}, WORKS),
    "sidecars.nodeDriverRegistrar.image.repository": ("example.com/eks/registrar", WORKS),
    "sidecars.nodeDriverRegistrar.image.tag": ("v2.17.0-eksbuild.3", WORKS),
    "sidecars.nodeDriverRegistrar.image.pullPolicy": ("Always", WORKS),
    "sidecars.nodeDriverRegistrar.resources": ({"limits": {"memory": "64Mi"}}, WORKS),
    "sidecars.nodeDriverRegistrar.securityContext": ({"readOnlyRootFilesystem": True}, WORKS),
    "sidecars.csiProvisioner.image.repository": ("example.com/eks/csi-provisioner", WORKS),
    "sidecars.csiProvisioner.image.tag": ("v6.3.0-eksbuild.2", WORKS),
    "sidecars.csiProvisioner.image.pullPolicy": ("Always", WORKS),
    "sidecars.csiProvisioner.resources": ({"limits": {"memory": "64Mi"}}, WORKS),
    "sidecars.csiProvisioner.securityContext": ({"readOnlyRootFilesystem": True}, WORKS),
    "sidecars.csiProvisioner.additionalArgs": (["--retry-interval-max=5m"], WORKS),
    "imagePullSecrets": (["regcred"], WORKS),
    "controller.create": (True, WORKS),
    "controller.name": ("efs-csi-controller", WORKS),
    "controller.replicaCount": (3, WORKS),
    "controller.enableMetrics": (True, WORKS),
    "controller.enablePrometheusAnnotations": (True, WORKS),
    "controller.serviceMonitor.enabled": (True, WORKS),
    "controller.logLevel": (5, WORKS),
    "controller.extraCreateMetadata": (True, WORKS),
    "controller.tags": ({"environment": "prod"}, WORKS),
    "controller.deleteAccessPointRootDir": (True, WORKS),
    "controller.podAnnotations": ({"example.com/a": "b"}, WORKS),
    "controller.podLabels": ({"team": "storage"}, WORKS),
    "controller.hostNetwork": (True, WORKS),
    "controller.priorityClassName": ("system-cluster-critical", WORKS),
    "controller.dnsPolicy": ("ClusterFirstWithHostNet", WORKS),
    "controller.dnsConfig": ({"nameservers": ["169.254.169.253"]}, WORKS),
    "controller.additionalLabels": ({"cost-center": "42"}, WORKS),
    "controller.resources": ({"limits": {"memory": "128Mi"}}, WORKS),
    "controller.revisionHistoryLimit": (5, WORKS),
    "controller.nodeSelector": ({"node-role": "infra"}, WORKS),
    "controller.tolerations": ([{"key": "CriticalAddonsOnly", "operator": "Exists"}], WORKS),
    "controller.affinity": ({"podAntiAffinity": {}}, WORKS),
    "controller.env": ([{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}], WORKS),
    "controller.volumes": ([{"name": "ca", "configMap": {"name": "ca"}}], WORKS),
    "controller.volumeMounts": ([{"name": "ca", "mountPath": "/etc/ca"}], WORKS),
    "controller.socketDirVolume": ({"emptyDir": {"medium": "Memory"}}, WORKS),
    "controller.serviceAccount.create": (False, WORKS),
    "controller.serviceAccount.name": ("efs-csi-controller-sa", WORKS),
    "controller.serviceAccount.annotations": (
        {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/efs"}, WORKS),
    "controller.healthPort": (9909, WORKS),
    "controller.regionalStsEndpoints": (True, WORKS),
    "controller.livenessProbe.httpGet": ({"path": "/healthz", "port": "healthz"}, WORKS),
    "controller.livenessProbe.initialDelaySeconds": (10, WORKS),
    "controller.livenessProbe.timeoutSeconds": (3, WORKS),
    "controller.livenessProbe.periodSeconds": (10, WORKS),
    "controller.livenessProbe.failureThreshold": (5, WORKS),
    "controller.readinessProbe": ({"httpGet": {"path": "/healthz", "port": "healthz"}}, WORKS),
    "controller.startupProbe": ({"httpGet": {"path": "/healthz", "port": "healthz"}}, WORKS),
    "controller.podDisruptionBudget.enabled": (True, WORKS),
    "controller.podDisruptionBudget.minAvailable": (1, WORKS),
    "controller.podDisruptionBudget.unhealthyPodEvictionPolicy": ("IfHealthyBudget", WORKS),
    "controller.securityContext": ({"runAsUser": 0, "runAsGroup": 0, "fsGroup": 0}, WORKS),
    "controller.containerSecurityContext": ({"privileged": True}, WORKS),
    "controller.leaderElectionRenewDeadline": ("10s", WORKS),
    "controller.leaderElectionLeaseDuration": ("15s", WORKS),
    "controller.timeout": ("15s", WORKS),
    "controller.workerThreads": (100, WORKS),
    "controller.topologySpreadConstraints": (
        [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
          "whenUnsatisfiable": "ScheduleAnyway"}], WORKS),
    "controller.fileSystemIdRefs.enabled": (True, "controller.fileSystemIdReferences: [{kind"),
    "controller.rollingUpdate": ({"maxUnavailable": 1}, WORKS),
    "node.logLevel": (2, WORKS),
    "node.volMetricsOptIn": (True, WORKS),
    "node.volMetricsRefreshPeriod": (240, WORKS),
    "node.volMetricsFsRateLimit": (5, WORKS),
    "node.hostAliases": ({"fs-01234567": {"ip": "10.10.2.2", "region": "us-east-2"}}, WORKS),
    "node.priorityClassName": ("system-node-critical", WORKS),
    "node.dnsPolicy": ("None", WORKS),
    "node.dnsConfig": ({"nameservers": ["169.254.169.253"]}, WORKS),
    "node.podLabels": ({"team": "storage"}, WORKS),
    "node.podAnnotations": ({"example.com/a": "b"}, WORKS),
    "node.additionalLabels": ({"cost-center": "42"}, WORKS),
    "node.resources": ({"limits": {"memory": "128Mi"}}, WORKS),
    "node.revisionHistoryLimit": (5, WORKS),
    "node.nodeSelector": ({"pool": "general"}, WORKS),
    "node.tolerations": ([{"operator": "Exists"}], WORKS),
    "node.affinity": ({}, WORKS),
    "node.serviceAccount.create": (False, WORKS),
    "node.serviceAccount.name": ("efs-csi-node-sa", WORKS),
    "node.serviceAccount.annotations": ({"example.com/a": "b"}, WORKS),
    "node.serviceAccount.disableMutation": (True, WORKS),
    "node.healthPort": (9809, WORKS),
    "node.livenessProbe.httpGet": ({"path": "/healthz", "port": "healthz"}, WORKS),
    "node.livenessProbe.initialDelaySeconds": (10, WORKS),
    "node.livenessProbe.timeoutSeconds": (3, WORKS),
    "node.livenessProbe.periodSeconds": (2, WORKS),
    "node.livenessProbe.failureThreshold": (5, WORKS),
    "node.readinessProbe": ({"httpGet": {"path": "/healthz", "port": "healthz"}}, WORKS),
    "node.startupProbe": ({"httpGet": {"path": "/healthz", "port": "healthz"}}, WORKS),
    "node.securityContext": ({"runAsUser": 0, "runAsGroup": 0, "fsGroup": 0}, WORKS),
    "node.env": ([{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}], WORKS),
    "node.volumes": ([{"name": "ca", "configMap": {"name": "ca"}}], WORKS),
    "node.volumeMounts": ([{"name": "ca", "mountPath": "/etc/ca"}], WORKS),
    "node.kubeletPath": ("/var/lib/k0s/kubelet", WORKS),
    "node.rollingUpdate": ({"maxUnavailable": "20%"}, WORKS),
    "node.efsUtilsConfOverrides": ("mount-watchdog:tls_cert_renewal_interval_min=30", WORKS),
    "node.s3filesUtilsConfOverrides": ("proxy:read_bypass_denylist_size=20000", "S3 Files"),
    "storageClasses": ([{"name": "efs-sc", "parameters": {
        "provisioningMode": "efs-ap", "fileSystemId": "fs-1122aabb",
        "ensureUniqueDirectory": True}}], WORKS),
    "useHelmHooksForCSIDriver": (False, WORKS),
    # Read by the reference's templates without a default in its values.yaml.
    "controller.podDisruptionBudget.maxUnavailable": (1, WORKS),
    "node.maxInflightMountCallsOptIn": (True, WORKS),
    "node.maxInflightMountCalls": (10, WORKS),
    "node.volumeAttachLimitOptIn": (True, WORKS),
    "node.volumeAttachLimit": (20, WORKS),
    "node.forceUnmountAfterTimeout": (True, WORKS),
    "node.unmountTimeout": ("30s", WORKS),
    "node.efsCloudWatchLogEnabled": (True, WORKS),
    "node.s3filesCloudWatchLogEnabled": (True, "S3 Files"),
    "node.s3filesCloudWatchMetricsEnabled": (True, "S3 Files"),
}

# The reference README's install commands use these spellings, which its own chart ignores.
README_SPELLINGS = {
    "useFips": (True, "useFIPS"),
    "sidecars.node-driver-registrar.image.repository": ("example.com/eks/registrar",
                                                        "sidecars.nodeDriverRegistrar"),
    "node.forceUnmountAfterTimeout": (False, "umount -l"),
}


def values_file(tmp_path: Path, key: str, value: Value) -> Path:
    values: dict[str, Any] = {}
    node = values
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_all_reference_keys_are_listed() -> None:
    assert len(REFERENCE) == 123


@pytest.mark.parametrize("key", sorted(REFERENCE))
def test_reference_key_works_or_is_refused_naming_ours(key: str, tmp_path: Path) -> None:
    value, expected = REFERENCE[key]
    result = helm(*template_args(values_file(tmp_path, key, value)), check=False)
    if expected == WORKS:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0, f"{key}={value!r} was accepted"
        assert expected in result.stderr and "schema" not in result.stderr, result.stderr


@pytest.mark.parametrize("key", sorted(README_SPELLINGS))
def test_reference_readme_spellings_fail_naming_ours(key: str, tmp_path: Path) -> None:
    value, ours = README_SPELLINGS[key]
    result = helm(*template_args(values_file(tmp_path, key, value)), check=False)
    assert result.returncode != 0
    assert ours in result.stderr and "schema" not in result.stderr, result.stderr


def test_upgrading_doc_lists_every_reference_key() -> None:
    text = (REPO / "docs" / "upgrading.md").read_text()
    missing = [key for key in REFERENCE if f"`{key}`" not in text]
    assert not missing, f"docs/upgrading.md does not mention {missing}"


def test_the_coverage_count_in_the_doc_is_the_tested_one() -> None:
    works = sum(1 for _, expected in REFERENCE.values() if expected == WORKS)
    text = (REPO / "docs" / "upgrading.md").read_text()
    assert f"{works} of {len(REFERENCE)}" in text


def plugin(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    workload = next(m for m in manifests if m["kind"] == kind)
    return next(c for c in workload["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]
                if c["name"] == "efs-plugin")


def test_reference_style_values_file_has_the_reference_effects() -> None:
    manifests = render(REPO / "tests" / "chart" / "values" / "reference-style.yaml")
    node_args = plugin(manifests, "DaemonSet")["args"]
    controller_args = plugin(manifests, "Deployment")["args"]
    assert "--port-range-upper-bound=21049" in node_args
    assert "--max-inflight-mount-calls=10" in node_args  # the reference's opted-in default
    assert "--volume-attach-limit=20" in node_args
    assert "--unmount-timeout=30" in node_args
    assert "--remove-not-ready-taint=false" in node_args  # disableMutation
    assert "--log-level=info" in node_args and "--log-level=debug" in controller_args
    overrides = next(a for a in node_args if a.startswith("--efs-utils-conf-overrides="))
    assert "mount-watchdog:tls_cert_renewal_interval_min=30" in overrides
    assert "cloudwatch-log:enabled=true" in overrides  # efsCloudWatchLogEnabled
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxUnavailable": 1}}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"} in plugin(
        manifests, "Deployment")["env"]
    kinds = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    assert ("ServiceMonitor", "efs-csi-controller") in kinds
    role = next(m for m in manifests if m["kind"] == "ClusterRole"
                and m["metadata"]["name"] == "efs-csi-external-provisioner-role")
    # fileSystemIdRefs.enabled is refused (it granted get on every Secret): nothing of it here.
    assert not any("configmaps" in rule["resources"] for rule in role["rules"])
