"""The chart as ``helm template`` renders it, for benchmarks that run a binary with the
environment the chart gives its container (the tests render through ``tests/chart/render``,
which checks far more; a benchmark must not import from the test suite).

helm is found as the tests find it: ``$HELM``, then ``.tools/bin/helm`` (``make tools``), then
``PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # no stubs in the dev group

from testbed.pods import container, pod_spec

REPO = Path(__file__).resolve().parent.parent
#: The oldest Kubernetes the chart supports (as tests/chart/render renders first).
KUBE_VERSION = "1.30.0"


def helm_binary() -> str | None:
    for candidate in (os.environ.get("HELM", ""), str(REPO / ".tools" / "bin" / "helm"),
                      shutil.which("helm") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def container_env(kind: str, name: str, container_name: str = "efs-plugin") -> dict[str, str]:
    """The literal environment (``value``, not ``valueFrom``) the chart's defaults give one
    container of one workload."""
    helm = helm_binary()
    if helm is None:
        raise FileNotFoundError("helm not found: make tools installs it (or set HELM)")
    rendered = subprocess.run(
        [helm, "template", "efs-csi", str(REPO / "helm"), "--namespace", "kube-system",
         "--kube-version", KUBE_VERSION, "--set", "region=us-east-1"],
        capture_output=True, text=True, check=False, timeout=60)
    if rendered.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{rendered.stderr}")
    manifests = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    spec = container(pod_spec(manifests, kind, name), container_name)
    return {item["name"]: str(item["value"]) for item in spec.get("env", []) if "value" in item}
