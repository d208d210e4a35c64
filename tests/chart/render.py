"""Render the chart with real helm and pick apart what it produced.

Every check in this package works on what ``helm template`` really renders, for each values
file users are offered: the defaults, the kind values, each example's values, and the
"everything on" file below that switches every option away from its default.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from testbed.chart import (
    CHART,
    KUBE_VERSIONS,
    NAMESPACE,
    parse_manifests,
    template_args,
)
from testbed.pods import Manifest
from tests.support.ci import REPO, tool

__all__ = ["CHART", "KUBE_VERSIONS", "NAMESPACE", "Manifest", "template_args"]

BINARIES = ("efs-csi-controller", "efs-csi-node")


def values_files() -> list[Path | None]:
    """None stands for the chart's defaults."""
    files: list[Path | None] = [None, REPO / "kind" / "values.yaml"]
    files += sorted((REPO / "examples").glob("*/values.yaml"))
    files += sorted((Path(__file__).parent / "values").glob("*.yaml"))
    return files


def values_id(path: Path | None) -> str:
    return "defaults" if path is None else str(path.relative_to(REPO))


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm", "HELM"), *args], capture_output=True, text=True,
                          check=check, timeout=50)


def render(values: Path | None = None, sets: Sequence[str] = (),
           kube_version: str = KUBE_VERSIONS[0]) -> list[Manifest]:
    result = helm(*template_args(values, sets, kube_version), check=False)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return parse_manifests(result.stdout)


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    for manifest in manifests:
        if manifest["kind"] == kind and manifest["metadata"]["name"] == name:
            return manifest
    raise AssertionError(f"no {kind} {name} rendered")


def containers(manifests: list[Manifest]) -> Iterator[dict[str, Any]]:
    for manifest in manifests:
        pod = manifest.get("spec", {}).get("template", {}).get("spec")
        if pod:
            yield from pod.get("containers", [])
            yield from pod.get("initContainers", [])


def binary_args(manifests: list[Manifest], binary: str) -> list[list[str]]:
    """The argument lists the chart gives ``binary``, with $(VAR) expanded as kubelet would."""
    found = []
    for container in containers(manifests):
        command = list(container.get("command", []))
        if binary not in command:  # may follow an init: [tini, -g, --, binary]
            continue
        env_names = [item["name"] for item in container.get("env", [])]
        args = command[command.index(binary) + 1:] + list(container.get("args", []))
        for name in env_names:
            args = [arg.replace(f"$({name})", f"value-of-{name.lower()}") for arg in args]
        found.append(args)
    return found


def flag_name(arg: str) -> str:
    return arg.split("=", 1)[0]
