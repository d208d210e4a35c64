"""What the driver needs from the Kubernetes API, and where that API is (no client import).

``Kube`` is implemented by ``efs_csi.adapters.kube.KubernetesAsyncioKube`` and by fakes in
tests. Errors surface as ``efs_csi.errors`` exceptions (404 NotFound, 403 PermissionDenied,
others Unavailable), with ``KubeConflict`` for 409/422 answers so callers can retry optimistic
updates.

Where the API is comes from a ``KubeEndpoint``: ``in_cluster_endpoint`` reads the pod's service
account (token + CA files, ``KUBERNETES_SERVICE_HOST``/``_PORT``), and tests build one that points
at a fake or a real API server of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from efs_csi.errors import Aborted, Unavailable
from efs_csi.logging import get_logger


class KubeConflict(Aborted):
    """The object changed under us (HTTP 409, or 422 from a failed JSON-patch ``test``)."""


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str | None = None


@dataclass(frozen=True)
class NodeInfo:
    name: str
    resource_version: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()


@dataclass(frozen=True)
class PersistentVolumeInfo:
    """What the controller reads of a PV to decide whether its directory may go."""

    name: str
    driver: str | None  # spec.csi.driver; None for a PV that is not a CSI volume
    volume_handle: str | None
    reclaim_policy: str
    phase: str
    deleting: bool = False  # metadata.deletionTimestamp is set


class Kube(Protocol):
    async def read_config_map_key(self, namespace: str, name: str, key: str) -> str:
        """NotFound when the ConfigMap or the key does not exist."""

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        """NotFound when the Secret or the key does not exist (value base64-decoded)."""

    async def get_node(self, name: str) -> NodeInfo: ...

    async def read_persistent_volume(self, name: str) -> PersistentVolumeInfo:
        """NotFound when the PV does not exist."""

    async def replace_node_taints(self, node: NodeInfo, taints: tuple[Taint, ...]) -> None:
        """JSON-patch the taints, guarded by a ``test`` on the resourceVersion (KubeConflict)."""

    async def csinode_has_driver(self, node_name: str, driver: str) -> bool | None:
        """True/False when the CSINode exists, None when the API does not know it."""

    async def close(self) -> None: ...


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class KubeEndpoint:
    """Where the API server is and how to authenticate to it."""

    host: str  # "https://10.0.0.1:443", or "http://127.0.0.1:PORT" for a test server
    token_file: Path | None = None
    ca_file: Path | None = None


def in_cluster_endpoint(environ: Mapping[str, str],
                        service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> KubeEndpoint:
    """The in-cluster API endpoint; Unavailable when not running in a pod."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    token_file = service_account_dir / "token"
    if not host or not port or not token_file.is_file():
        raise Unavailable("not running in a cluster: no KUBERNETES_SERVICE_HOST/PORT or "
                          f"no service account token at {token_file}")
    bracketed = f"[{host}]" if ":" in host else host
    ca_file = service_account_dir / "ca.crt"
    return KubeEndpoint(host=f"https://{bracketed}:{port}", token_file=token_file,
                        ca_file=ca_file if ca_file.is_file() else None)


_log = get_logger("efs_csi.kube")


def in_cluster_or_none(environ: Mapping[str, str], *, without: str,
                       service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> KubeEndpoint | None:
    """The in-cluster API endpoint, or None outside a pod (logged: what goes ``without``)."""
    try:
        return in_cluster_endpoint(environ, service_account_dir)
    except Unavailable as exc:
        _log.info("no Kubernetes API", consequence=without, reason=exc.message)
        return None
