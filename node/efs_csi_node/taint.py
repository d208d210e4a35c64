"""Startup taint removal: take ``efs.csi.aws.com/agent-not-ready`` off this node's Node.

Cluster operators put the taint on new nodes so pods needing EFS are not scheduled before the
node plugin can mount. ``TaintRemover.run`` (in the node's start-up helper, started once the
plugin is serving) waits, when the API has a CSINode for the node, until kubelet lists our
driver in it; then it removes every taint with our key (any effect), leaving all others alone.

The removal is an optimistic update: a JSON patch of the whole taint list (taints have no merge
key) guarded by a ``test`` on the resourceVersion that was read. A conflict (someone edited the
Node meanwhile) or an API error is retried with capped exponential backoff and full jitter, so a
fleet of nodes restarting together does not hammer the API in step. After each patch the Node
is read again to verify. Then the work is done: the taint marks a node's first start, put there
by whoever provisions nodes, and nobody puts it back on a node whose plugin is running (the
reference driver removes it once too). Keeping a Kubernetes client in the node process to look
again every minute would cost every node tens of MiB for nothing; the removal runs in the
node's short-lived start-up helper process (``efs_csi_node.startup_work``) and ends with it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from efs_csi.contract import NOT_READY_TAINT, PLUGIN_NAME
from efs_csi.errors import CsiError
from efs_csi.kube import Kube, KubeConflict
from efs_csi.logging import get_logger

_log = get_logger("node.taint")


def taint_removal_enabled(flag: bool, environ: Mapping[str, str]) -> bool:
    """``--remove-not-ready-taint=false`` or any ``DISABLE_TAINT_WATCHER`` value disables it."""
    return flag and not environ.get("DISABLE_TAINT_WATCHER")


@dataclass(frozen=True)
class TaintRemovalSettings:
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    registration_poll_s: float = 2.0


def jittered_backoff(failures: int, settings: TaintRemovalSettings,
                     rng: random.Random) -> float:
    """Capped exponential backoff with full jitter: a fleet of nodes restarting together
    does not hammer the API in step."""
    cap = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** failures)
    return rng.uniform(0, cap)


class TaintRemover:
    def __init__(self, kube: Kube, node_name: str,
                 settings: TaintRemovalSettings | None = None, *,
                 rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._kube = kube
        self._node_name = node_name
        self._settings = settings or TaintRemovalSettings()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._sleep = sleep

    async def run(self) -> None:
        """Wait for registration, then remove the taint."""
        await self.wait_registered()
        await self.remove_taint()

    async def wait_registered(self) -> None:
        """Return once kubelet lists our driver in the CSINode, or the API has no CSINode."""
        failures = 0
        told = False
        while True:
            try:
                registered = await self._kube.csinode_has_driver(self._node_name, PLUGIN_NAME)
            except CsiError as exc:
                failures += 1
                _log.warning("cannot read CSINode; retrying", node=self._node_name,
                             error=exc.message)
                await self._sleep(self._backoff(failures))
                continue
            if registered is not False:
                return
            if not told:  # once: kubelet may take a while, the wait is not news every poll
                _log.info("waiting for the driver to be registered in CSINode",
                          node=self._node_name)
                told = True
            await self._sleep(self._settings.registration_poll_s)

    async def remove_taint(self) -> bool:
        """Remove our taint until a fresh read shows it gone; True when a patch was applied."""
        removed = False
        failures = 0
        while True:
            try:
                node = await self._kube.get_node(self._node_name)
                remaining = tuple(t for t in node.taints if t.key != NOT_READY_TAINT)
                if len(remaining) == len(node.taints):
                    if removed:
                        _log.info("startup taint removed", node=self._node_name,
                                  taint=NOT_READY_TAINT)
                    return removed
                await self._kube.replace_node_taints(node, remaining)
                removed = True
                failures = 0
                continue  # read again: the verification
            except KubeConflict as exc:
                _log.info("node changed while removing taint; retrying", node=self._node_name,
                          detail=str(exc))
            except CsiError as exc:
                _log.warning("taint removal failed; retrying", node=self._node_name,
                             error=exc.message)
            failures += 1
            await self._sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        return jittered_backoff(failures, self._settings, self._rng)
