"""The node's availability zone as the services see it: known at start, or later.

``--availability-zone`` makes it known before serving. Otherwise it is resolved after serving
begins (instance metadata, then the Node's zone label, in the start-up helper process:
``efs_csi_node.startup_helper``), so Probe never waits on instance metadata or the Kubernetes
API; the calls that report or use the zone (NodeGetInfo, NodeStageVolume) wait for it instead,
within their own deadline. "Resolved" may mean "no zone": then there is no topology.
"""

from __future__ import annotations

import asyncio


class NodeZone:
    def __init__(self) -> None:
        self._zone: str | None = None
        self._resolved = asyncio.Event()

    @classmethod
    def known(cls, zone: str | None) -> NodeZone:
        """A zone resolved from the start (``None``: no topology)."""
        node_zone = cls()
        node_zone.resolve(zone)
        return node_zone

    @property
    def resolved(self) -> bool:
        return self._resolved.is_set()

    def resolve(self, zone: str | None) -> None:
        """The answer (the first one counts: a restarted helper never changes it)."""
        if not self._resolved.is_set():
            self._zone = zone
            self._resolved.set()

    async def wait(self) -> str | None:
        """The zone, once resolved; cancelled with the caller (its call's deadline)."""
        await self._resolved.wait()
        return self._zone
