"""Everything efs-csi-node starts with, typed and frozen.

``__main__`` builds it once from the flags and the process environment (the only place either is
read) and passes it to the composition root, ``app.run_node``. The groups already have their
own settings types: ``EfsUtilsConfig`` (efs-utils' file and directories), ``CollectorSettings``
(the usage collector), ``ImdsSettings`` (instance metadata, for the zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from efs_csi.kube import KubeEndpoint
from efs_csi.serving import ServingConfig
from efs_csi_node.efs_utils.startup import EfsUtilsConfig
from efs_csi_node.topology import ImdsSettings
from efs_csi_node.volume_stats import CollectorSettings

MountBackend = Literal["efs", "local"]


@dataclass(frozen=True)
class NodeConfig:
    serving: ServingConfig
    node_id: str
    # --availability-zone; None: instance metadata, then the Node's zone label.
    availability_zone: str | None
    imds: ImdsSettings
    # The in-cluster Kubernetes API (zone label, startup taint: the start-up helper process
    # uses it, efs_csi_node.startup_work); None outside a pod.
    kube: KubeEndpoint | None
    # --region (else AWS_REGION): efs-utils' region, and the local backend's EFS API.
    region: str | None
    efs_utils: EfsUtilsConfig
    mount_backend: MountBackend = "efs"
    local_root: Path | None = None  # set when mount_backend is "local"
    mount_timeout: float = 60.0
    unmount_timeout: float = 30.0
    max_inflight_mount_calls: int = 0
    volume_attach_limit: int = 0
    # --vol-metrics-opt-in and its settings; None when usage is not collected.
    volume_stats: CollectorSettings | None = None
    # --remove-not-ready-taint, unless DISABLE_TAINT_WATCHER is set.
    remove_not_ready_taint: bool = True
    # --log-format / --log-level, passed on to the start-up helper process.
    log_format: str = "json"
    log_level: str = "info"
    # --allow-insecure-mount-options: the TLS-weakening options volumes may use (tls_policy).
    allowed_insecure_mount_options: frozenset[str] = frozenset()
    # --mount-health-period: seconds between checks of the staged mounts (0: none).
    mount_health_period: float = 60.0
