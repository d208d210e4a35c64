"""The cluster tests run the versions they claim: the built binaries report the versions their
wrapper modules pin, and csi-provisioner is the one the chart deploys."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.support.ci import REPO
from tests.support.cluster import ClusterTools

MODULES = REPO / "tests" / "cluster" / "go"


def pinned(module: str, path: str) -> str:
    text = (MODULES / module / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(path)} (v\S+)", text, re.MULTILINE)
    assert match, f"{path} not required in {module}/go.mod"
    return match.group(1)


def version_output(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def test_binaries_report_the_pinned_versions() -> None:
    tools = ClusterTools.find()
    kubernetes = pinned("kubernetes", "k8s.io/kubernetes")
    assert kubernetes.startswith("v1.34.")
    for binary in ("kube-apiserver", "kube-controller-manager", "kubelet"):
        assert version_output(tools[binary], "--version").split() == ["Kubernetes", kubernetes]
    kubectl = yaml.safe_load(version_output(tools["kubectl"], "version", "--client", "-o",
                                            "yaml"))
    assert kubectl["clientVersion"]["gitVersion"] == kubernetes
    etcd = pinned("etcd", "go.etcd.io/etcd/server/v3")
    assert etcd.startswith("v3.6.")
    assert f"etcd Version: {etcd.lstrip('v')}" in version_output(tools["etcd"], "--version")


def test_csi_provisioner_is_the_one_the_chart_deploys() -> None:
    values = yaml.safe_load(Path(REPO / "helm" / "values.yaml").read_text())
    tag = values["sidecars"]["csiProvisioner"]["image"]["tag"]
    assert pinned("provisioner", "github.com/kubernetes-csi/external-provisioner/v5") == tag
    tools = ClusterTools.find()
    assert tag in version_output(tools["csi-provisioner"], "--version")
