"""The chart's alerts and dashboard as helm renders them, in the forms promtool, Prometheus and
Grafana read, and the one change the real-Prometheus flow makes to them: time, scaled.

Alert durations are operators' minutes (``for: 10m``, ``rate(...[15m])``). The flow in
test_prometheus_flow.py scrapes every second and evaluates every second, and runs the rules with
every duration (each ``for`` and each range selector) divided by ``TIME_SCALE``: a minute of
the chart's becomes a second of the test's, and nothing else changes (``scaled`` is checked to
touch durations only). The unscaled rules are what promtool's unit tests check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.chart.render import render
from tests.support.ci import skip_or_fail

#: The flow's clock: one of the chart's minutes is one of its seconds.
TIME_SCALE = 60
RuleGroups = list[dict[str, Any]]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"^(?:\d+(?:ms|[smhdwy]))+$")
_PART = re.compile(r"(\d+)(ms|[smhdwy])")
_RANGE = re.compile(r"\[((?:\d+(?:ms|[smhdwy]))+)\]")


def debian_prometheus_tool(name: str, env_var: str) -> str:
    """Path of ``prometheus`` or ``promtool``: $ENV_VAR, then PATH. Missing, the test skips on a
    laptop and fails under CI (``make test`` installs Debian's prometheus package when it runs
    as root with apt-get)."""
    for candidate in (os.environ.get(env_var, ""), shutil.which(name) or ""):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    skip_or_fail(f"{name} not found (${env_var} or PATH): Debian's prometheus package has it; "
                 "`make test` installs it when run as root with apt-get")


def promtool() -> str:
    return debian_prometheus_tool("promtool", "PROMTOOL")


def prometheus() -> str:
    return debian_prometheus_tool("prometheus", "PROMETHEUS")


def _values_file(values: Mapping[str, Any]) -> Path:
    """A values file (``--set`` would turn 0.05 into a string)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(dict(values), handle)
    return Path(handle.name)


def _render(values: Mapping[str, Any], kind: str, name: str) -> dict[str, Any]:
    path = _values_file(values)
    try:
        manifests = render(path)
    finally:
        path.unlink()
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def rendered_groups(values: Mapping[str, Any] | None = None) -> RuleGroups:
    """The PrometheusRule's groups, rendered by helm with ``values`` (rules switched on)."""
    merged = {**(values or {}), "prometheusRule": {
        **(values or {}).get("prometheusRule", {}), "enabled": True}}
    groups: RuleGroups = _render(merged, "PrometheusRule", "efs-csi")["spec"]["groups"]
    return groups


def rendered_dashboard(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The dashboard JSON from the rendered ConfigMap (the dashboard switched on)."""
    merged = {**(values or {}), "dashboard": {**(values or {}).get("dashboard", {}),
                                              "enabled": True}}
    config_map = _render(merged, "ConfigMap", "efs-csi-dashboard")
    data: dict[str, str] = config_map["data"]
    (text,) = data.values()
    dashboard: dict[str, Any] = json.loads(text)
    return dashboard


def write_rule_file(groups: RuleGroups, path: Path) -> Path:
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def alerting_rules(groups: RuleGroups) -> Iterator[dict[str, Any]]:
    for group in groups:
        for rule in group["rules"]:
            if "alert" in rule:
                yield rule


def seconds(duration: str) -> float:
    if not _DURATION.match(duration):
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(number) * _UNITS[unit] for number, unit in _PART.findall(duration))


def _shorter(duration: str, scale: int, shortest: float) -> str:
    milliseconds = round(seconds(duration) * 1000 / scale)
    if milliseconds / 1000 < shortest:
        raise ValueError(f"{duration} scaled by 1/{scale} is shorter than {shortest:g}s")
    return f"{milliseconds}ms"


def scaled(groups: RuleGroups, scale: int = TIME_SCALE, *, shortest: float = 2.0) -> RuleGroups:
    """``groups`` with every ``for`` and every range selector divided by ``scale`` (refusing one
    that would become shorter than ``shortest`` seconds: a window must hold several scrapes)."""
    out = json.loads(json.dumps(groups))
    for rule in alerting_rules(out):
        if "for" in rule:
            rule["for"] = _shorter(rule["for"], scale, shortest)
        rule["expr"] = _RANGE.sub(
            lambda match: f"[{_shorter(match.group(1), scale, shortest)}]", rule["expr"])
    return out  # type: ignore[no-any-return]


def dashboard_targets(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(panel title, refId, expr, legend) of every query of every panel, rows' panels too."""
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner["title"], target["refId"], target["expr"], target["legendFormat"]


def dashboard_queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query."""
    for title, ref_id, expr, _ in dashboard_targets(dashboard):
        yield title, ref_id, expr
