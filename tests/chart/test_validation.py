"""helm lint, Kubernetes schema validation in strict mode, and values.schema.json."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart import custom_resources
from tests.chart.render import (
    CHART,
    KUBE_VERSIONS,
    Manifest,
    helm,
    render,
    template_args,
    values_files,
    values_id,
)
from tests.support.ci import REPO


def validate_strict(manifest: Manifest, kube_version: str) -> None:
    """Kubernetes' own kinds against kubernetes-validate's schemas; the Prometheus Operator's
    (ServiceMonitor, PrometheusRule) against their vendored CRDs (tests/chart/crds)."""
    name = f"{manifest['kind']}/{manifest['metadata'].get('name')}"
    if custom_resources.is_custom(manifest):
        try:
            custom_resources.validate(manifest)
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{name} breaks its CRD's schema: {exc.message} at {list(exc.path)}")
        return
    try:
        kubernetes_validate.validate(manifest, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{name} is invalid for Kubernetes {kube_version}: {exc.message} "
                    f"at {list(exc.path)}")


@pytest.mark.parametrize("values", values_files(), ids=values_id)
def test_helm_lint_strict(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values is not None:
        args += ["--values", str(values)]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", values_files(), ids=values_id)
def test_rendered_manifests_validate_strictly(values: Path | None, kube_version: str) -> None:
    manifests = render(values, kube_version=kube_version)
    assert manifests
    for manifest in manifests:
        validate_strict(manifest, kube_version)


def example_specs() -> list[Path]:
    return sorted((REPO / "examples").glob("*/specs/*.yaml"))


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("spec", example_specs(), ids=lambda p: str(p.relative_to(REPO)))
def test_example_specs_validate_strictly(spec: Path, kube_version: str) -> None:
    documents = [doc for doc in yaml.safe_load_all(spec.read_text()) if doc]
    assert documents
    for document in documents:
        validate_strict(document, kube_version)


def test_the_validator_can_fail() -> None:
    """Strict mode really rejects a field the API does not have."""
    manifests = render()
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)


def test_custom_resources_are_checked_against_their_crds_strictly() -> None:
    """The PrometheusRule and the ServiceMonitors really meet their CRD schemas, and a field a
    CRD lacks (or a rule without its expression) is refused."""
    manifests = render(sets=["prometheusRule.enabled=true", "serviceMonitor.enabled=true",
                             "controller.enableMetrics=true", "node.enableMetrics=true"])
    custom = [m for m in manifests if custom_resources.is_custom(m)]
    assert sorted(m["kind"] for m in custom) == ["PrometheusRule", "ServiceMonitor",
                                                  "ServiceMonitor"]
    for manifest in custom:
        custom_resources.validate(manifest)
    rule = next(m for m in custom if m["kind"] == "PrometheusRule")
    typo = copy.deepcopy(rule)
    typo["spec"]["groups"][0]["rules"][0]["fro"] = "5m"
    no_expr = copy.deepcopy(rule)
    del no_expr["spec"]["groups"][0]["rules"][0]["expr"]
    for broken in (typo, no_expr):
        with pytest.raises(jsonschema.ValidationError):
            custom_resources.validate(broken)


BAD_VALUES = {
    "unknown top-level key": ["replicaCount=2"],
    "unknown nested key": ["controller.replicaCont=2"],
    "unknown sidecar key": ["sidecars.csiProvisioner.image.sha=x"],
    "integer as a string": ["controller.replicaCount=two"],
    "boolean as a string": ["node.volMetricsOptIn=maybe"],
    "unknown mount backend": ["mountBackend=nfs"],
    "unknown log level": ["node.logLevel=verbose"],
    "relative kubelet path": ["node.kubeletPath=var/lib/kubelet"],
    "zero refresh period": ["node.volMetricsRefreshPeriod=0"],
    "port out of range": ["controller.healthPort=70000"],
    "bad duration": ["controller.timeout=sixty"],
    "storage class without a name": ["storageClasses[0].parameters.fileSystemId=fs-1"],
    "comma in an efs-utils override": ["node.efsUtilsConfOverrides.mount.key=a\\,b"],
    "unknown prometheusRule key": ["prometheusRule.severity=page"],
    "runbook URL with a fragment": ["prometheusRule.runbookUrl=https://x.example/a#b"],
    "unknown dashboard key": ["dashboard.folder=Storage"],
    "negative mount health period": ["node.mountHealthPeriod=-1"],
}


@pytest.mark.parametrize("sets", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_values_schema_rejects(sets: list[str]) -> None:
    result = helm(*template_args(None, sets), check=False)
    assert result.returncode != 0, f"helm accepted {sets}"
    assert "schema" in result.stderr, result.stderr


def test_values_schema_accepts_a_good_override() -> None:
    """The rejections above are the schema's doing, not a broken --set."""
    result = helm(*template_args(None, ["controller.replicaCount=3"]), check=False)
    assert result.returncode == 0, result.stderr
