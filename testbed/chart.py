"""The chart as ``helm template`` renders it: the command (``template_args``) and its output
read back (``parse_manifests``), shared by the tests (``tests/chart/render``, which checks
far more) and the benchmarks, which run a binary with the environment
the chart gives its container (``container_env``) and must not import from the test suite.

helm is found as the tests find it (``testbed.tools.find_tool``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # no stubs in the dev group

from testbed.pods import Manifest, container, pod_spec
from testbed.tools import find_tool

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm"
NAMESPACE = "kube-system"
# Validated Kubernetes versions: the bundled schema sets of kubernetes-validate.
KUBE_VERSIONS = ("1.30.0", "1.34.0")


def template_args(values: Path | None, sets: Sequence[str] = (),
                  kube_version: str = KUBE_VERSIONS[0]) -> list[str]:
    """helm's arguments to render the chart with a values file (None: the defaults)."""
    args = ["template", "efs-csi", str(CHART), "--namespace", NAMESPACE,
            "--kube-version", kube_version]
    if values is not None:
        args += ["--values", str(values)]
    for item in sets:
        args += ["--set", item]
    return args


def parse_manifests(rendered: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def container_env(kind: str, name: str, container_name: str = "efs-plugin") -> dict[str, str]:
    """The literal environment (``value``, not ``valueFrom``) the chart's defaults give one
    container of one workload."""
    helm = find_tool("helm", "HELM")
    if helm is None:
        raise FileNotFoundError("helm not found: make tools installs it (or set HELM)")
    rendered = subprocess.run([helm, *template_args(None, ["region=us-east-1"])],
                              capture_output=True, text=True, check=False, timeout=60)
    if rendered.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{rendered.stderr}")
    spec = container(pod_spec(parse_manifests(rendered.stdout), kind, name), container_name)
    return {item["name"]: str(item["value"]) for item in spec.get("env", []) if "value" in item}
