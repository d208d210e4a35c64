"""``FakeKube``: the Kubernetes API (``efs_csi.kube.Kube``) in memory, for the logic of the use
cases that read it (fileSystemId references, the node's zone label). The adapter itself is
tested against a real kube-apiserver (tests/cluster) and, for faults, ``kube_api.FakeKubeApi``.
"""

from __future__ import annotations

from collections.abc import Mapping

from efs_csi.errors import NotFound
from efs_csi.kube import NodeInfo, PersistentVolumeInfo, Taint


class FakeKube:
    def __init__(self, *, config_maps: Mapping[tuple[str, str, str], str] | None = None,
                 secrets: Mapping[tuple[str, str, str], str] | None = None,
                 labels: Mapping[str, str] | None = None, node_missing: bool = False) -> None:
        self.config_maps = dict(config_maps or {})  # (namespace, name, key) -> value
        self.secrets = dict(secrets or {})
        self.labels = dict(labels or {})  # every Node's labels
        self.node_missing = node_missing
        self.taints: dict[str, tuple[Taint, ...]] = {}
        self.registered: set[tuple[str, str]] = set()  # (node, driver) listed in CSINodes
        self.asked: list[str] = []  # Nodes read
        self.volumes: dict[str, PersistentVolumeInfo] = {}  # PVs by name

    async def read_config_map_key(self, namespace: str, name: str, key: str) -> str:
        try:
            return self.config_maps[(namespace, name, key)]
        except KeyError:
            raise NotFound(f"configmap {namespace}/{name} key {key} not found") from None

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        try:
            return self.secrets[(namespace, name, key)]
        except KeyError:
            raise NotFound(f"secret {namespace}/{name} key {key} not found") from None

    async def get_node(self, name: str) -> NodeInfo:
        self.asked.append(name)
        if self.node_missing:
            raise NotFound(f"node {name} not found")
        return NodeInfo(name=name, resource_version="1", labels=dict(self.labels),
                        taints=self.taints.get(name, ()))

    async def read_persistent_volume(self, name: str) -> PersistentVolumeInfo:
        try:
            return self.volumes[name]
        except KeyError:
            raise NotFound(f"persistentvolume {name} not found") from None

    async def replace_node_taints(self, node: NodeInfo, taints: tuple[Taint, ...]) -> None:
        self.taints[node.name] = taints

    async def csinode_has_driver(self, node_name: str, driver: str) -> bool | None:
        return (node_name, driver) in self.registered

    async def close(self) -> None:
        return None
