"""What every step of the flow works with: the tools, the cluster, the EFS API, the report, and
the flow's settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from testbed.kind.cluster import Cluster
from testbed.kind.commands import Tools
from testbed.kind.efs_api import EfsApi
from testbed.kind.report import Report


@dataclass(frozen=True)
class Settings:
    chart: Path  # the chart helm upgrades the release with
    values: Path  # kind/values.yaml
    upgrade_tag: str  # the image tag `helm upgrade` moves to (tagged and loaded by the flow)
    local_root: str = "/var/lib/efs-csi-local"  # the local backend's root on every kind node
    burst: int = 30  # claims created at once for the controller failover


@dataclass
class Context:
    tools: Tools
    cluster: Cluster
    api: EfsApi
    report: Report
    settings: Settings
