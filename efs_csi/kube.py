"""What the driver needs from the Kubernetes API.

``Kube`` is the protocol; the kubernetes-asyncio adapter lives in this module too (the only
place that imports kubernetes_asyncio). Errors surface as ``efs_csi.errors`` exceptions, with
``KubeConflict`` for 409/422 answers so callers can retry optimistic updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class KubeConflict(Exception):
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


class Kube(Protocol):
    async def read_config_map_key(self, namespace: str, name: str, key: str) -> str:
        """NotFound when the ConfigMap or the key does not exist."""

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        """NotFound when the Secret or the key does not exist (value base64-decoded)."""

    async def get_node(self, name: str) -> NodeInfo: ...

    async def replace_node_taints(self, node: NodeInfo, taints: tuple[Taint, ...]) -> None:
        """JSON-patch the taints, guarded by a ``test`` on the resourceVersion (KubeConflict)."""

    async def csinode_has_driver(self, node_name: str, driver: str) -> bool | None:
        """True/False when the CSINode exists, None when the API does not know it."""

    async def close(self) -> None: ...
