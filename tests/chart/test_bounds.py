"""The values schema and the binaries agree on every numeric bound.

The binaries are the one source of truth: their parsers and startup checks decide what a
value may be. For every value that becomes a flag, this test probes the schema's bounds
against the binary's own ``main()`` (tests/support/startup.py): the schema's minimum and maximum
must start the binary, the value just past each must be refused by both, and a value with no
schema maximum must be one the binary accepts at any size. A bound changed on either side
alone fails here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import CHART, binary_args, helm, render, template_args
from tests.support.startup import start_up


@dataclass(frozen=True)
class Bound:
    key: str  # dotted path in values.yaml
    binary: str
    flag: str


BOUNDS = [
    Bound("controller.accessPointLimit", "efs-csi-controller", "--access-point-limit"),
    Bound("controller.gidInventoryMaxAge", "efs-csi-controller", "--gid-inventory-max-age"),
    Bound("controller.shutdownGracePeriod", "efs-csi-controller", "--shutdown-grace-period"),
    Bound("node.shutdownGracePeriod", "efs-csi-node", "--shutdown-grace-period"),
    Bound("node.volMetricsRefreshPeriod", "efs-csi-node", "--vol-metrics-refresh-period"),
    Bound("node.volMetricsFsRateLimit", "efs-csi-node", "--vol-metrics-fs-rate-limit"),
    Bound("node.volMetricsWalkConcurrency", "efs-csi-node", "--vol-metrics-walk-concurrency"),
    Bound("node.maxInflightMountCalls", "efs-csi-node", "--max-inflight-mount-calls"),
    Bound("node.volumeAttachLimit", "efs-csi-node", "--volume-attach-limit"),
    Bound("node.mountTimeout", "efs-csi-node", "--mount-timeout"),
    Bound("node.unmountTimeout", "efs-csi-node", "--unmount-timeout"),
    Bound("node.mountHealthPeriod", "efs-csi-node", "--mount-health-period"),
    Bound("portRangeUpperBound", "efs-csi-node", "--port-range-upper-bound"),
]
# Numeric values that do not become one of our flags, and why.
NOT_A_FLAG = {
    "controller.replicaCount": "Deployment replicas (the API server's rule)",
    "controller.workerThreads": "a csi-provisioner flag",
    "controller.healthPort": "the liveness-probe sidecar's port",
    "node.healthPort": "the liveness-probe sidecar's port",
    "controller.revisionHistoryLimit": "a Deployment field",
    "node.revisionHistoryLimit": "a DaemonSet field",
    # --http-endpoint accepts port 0 (tests bind an ephemeral port); a containerPort must be
    # 1..65535, which is the bound the schema keeps.
    "controller.metricsPort": "containerPort (1..65535); --http-endpoint also takes 0",
    "node.metricsPort": "containerPort (1..65535); --http-endpoint also takes 0",
    "controller.logLevel": "a klog verbosity (the reference's form), mapped to a level name",
    "node.logLevel": "a klog verbosity (the reference's form), mapped to a level name",
}


def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())  # type: ignore[no-any-return]


def numeric_schema(key: str) -> dict[str, Any]:
    node: dict[str, Any] = schema()
    for part in key.split("."):
        node = node["properties"][part]
    for alternative in node.get("oneOf", [node]):
        if alternative.get("type") in ("integer", "number"):
            return alternative
    raise AssertionError(f"{key} has no numeric schema")


def numeric_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
    found = set()
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        alternatives = child.get("oneOf", [child])
        if any(alt.get("type") in ("integer", "number") for alt in alternatives):
            found.add(path)
        found |= numeric_keys(child, f"{path}.")
    return found


def rendered_flag_args(bound: Bound, value: object, tmp_path: Path) -> list[str] | None:
    """The binary's args rendered with ``key: value``, or None when the schema refuses it.

    A values file, not --set: --set keeps a float such as 0.001 a string.
    """
    values: dict[str, Any] = {}
    node = values
    *parents, leaf = bound.key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    values_file = tmp_path / "bound.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = helm(*template_args(values_file), check=False)
    if result.returncode != 0:
        assert "schema" in result.stderr, result.stderr
        return None
    manifests = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    (args,) = binary_args(manifests, bound.binary)
    return args


def with_flag(args: list[str], flag: str, value: object) -> list[str]:
    return [f"{flag}={value}" if arg.startswith(f"{flag}=") else arg for arg in args]


def base_args(bound: Bound) -> list[str]:
    (args,) = binary_args(render(), bound.binary)
    assert any(arg.startswith(f"{bound.flag}=") for arg in args), (bound.flag, args)
    return args


def test_every_numeric_value_is_checked_or_explained() -> None:
    assert numeric_keys(schema()) == {b.key for b in BOUNDS} | set(NOT_A_FLAG)


@pytest.mark.parametrize("bound", BOUNDS, ids=lambda b: b.key)
def test_schema_and_binary_agree_on_the_bounds(bound: Bound, tmp_path: Path) -> None:
    rules = numeric_schema(bound.key)
    integer = rules["type"] == "integer"
    probes: list[tuple[object, bool]] = []  # (value, accepted by both)
    if "minimum" in rules:
        low = rules["minimum"]
        probes += [(low, True), (low - 1 if integer else low - 0.5, False)]
    if "exclusiveMinimum" in rules:
        low = rules["exclusiveMinimum"]
        probes += [(low, False), (low + (1 if integer else 0.001), True)]
    if "maximum" in rules:
        high = rules["maximum"]
        probes += [(high, True), (high + 1, False)]
    else:
        probes.append((10**9, True))
    assert probes
    for value, accepted in probes:
        args = rendered_flag_args(bound, value, tmp_path)
        assert (args is not None) == accepted, f"schema on {bound.key}={value}"
        outcome = start_up(bound.binary, args if args is not None
                           else with_flag(base_args(bound), bound.flag, value))
        assert outcome.accepted == accepted, (
            f"{bound.binary} on {bound.flag}={value}: {outcome.error or 'accepted'}")


def test_the_reference_string_form_of_the_port_bound_is_bounded_too() -> None:
    """portRangeUpperBound also takes the reference chart's string ("21049")."""
    bound = next(b for b in BOUNDS if b.key == "portRangeUpperBound")
    for text, accepted in [("20050", True), ("65535", True), ("20049", False),
                           ("65536", False), ("021049", False)]:
        # --set turns digits into a number: --set-string keeps the reference's string.
        result = helm(*template_args(None, []), "--set-string",
                      f"portRangeUpperBound={text}", check=False)
        assert (result.returncode == 0) == accepted, (text, result.stderr)
        if accepted:
            outcome = start_up(bound.binary, with_flag(base_args(bound), bound.flag, int(text)))
            assert outcome.accepted
