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

    def file_system(self, token: str, zone: str | None = None) -> str:
        """The EFS API's file system made with ``token`` (found again on a later run), and its
        directory: the local backend serves file system fs-x from <root>/fs-x, which the kind
        nodes share."""
        file_system = self.api.file_system(token, zone)
        self.tools.on_node(self.cluster.nodes()[0].name, "mkdir", "-p",
                           f"{self.settings.local_root}/{file_system}")
        return file_system
