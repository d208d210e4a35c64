"""Everything efs-csi-controller starts with, typed and frozen.

``__main__`` builds it once from the flags and the process environment (the only place either is
read) and passes it to the composition root, ``app.run_controller``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from efs_csi.kube import KubeEndpoint
from efs_csi.serving import ServingConfig
from efs_csi_controller.gid import DEFAULT_MAX_AGE
from efs_csi_controller.tags import LEGACY_CLUSTER_ID

MountBackend = Literal["efs", "local"]


@dataclass(frozen=True)
class RootDirectories:
    """``--delete-access-point-root-dir``: how a file system root is mounted to delete an access
    point's directory (``efs``: mount -t efs; ``local``: a directory under ``local_root``)."""

    mount_backend: MountBackend = "efs"
    local_root: Path | None = None


@dataclass(frozen=True)
class ControllerConfig:
    serving: ServingConfig
    # --region, else AWS_REGION, else AWS_DEFAULT_REGION; None: ask instance metadata.
    region: str | None = None
    # AWS_EC2_METADATA_DISABLED=true: never ask instance metadata for the region.
    instance_metadata_disabled: bool = False
    # The in-cluster Kubernetes API (fileSystemIdConfigRef/SecretRef); None outside a pod.
    kube: KubeEndpoint | None = None
    # --tags, parsed and checked against EFS's tag rules.
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    adaptive_retry_mode: bool = True
    access_point_limit: int = 10000
    gid_inventory_max_age: float = DEFAULT_MAX_AGE
    # None unless --delete-access-point-root-dir.
    root_directories: RootDirectories | None = None
    # --cluster-id: the efs.csi.aws.com/cluster tag's value on every access point made here.
    cluster_id: str = LEGACY_CLUSTER_ID
    # --allow-shared-root-directories: volumes of two namespaces may overlap on one directory.
    allow_shared_root_directories: bool = False
