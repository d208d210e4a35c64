"""The node's availability zone as the services see it: known, known to be none, or not known
yet, and how long anyone waits for it.

Sources, first that knows wins (``efs_csi_node.topology``): ``--availability-zone``; instance
metadata, which the node asks itself once it serves; the Node object's zone label, which the
start-up helper process reads when the node runs in a cluster (``efs_csi_node.startup_helper``).
When every source has answered without a zone, the node has no topology: the zone is *settled*
as none.

A source can also fail (the helper crashed, was killed under the memory limit, or cannot reach
the Kubernetes API): the zone is then *unknown*, with that cause, and the search goes on in the
background (the helper is restarted, and retries the API itself). An unknown zone never stops
the node (the README's promise): NodeGetInfo waits for it at most ``registration_bound_s`` from
the node's start, then answers without topology (``answered_without_zone``: a warning with the
cause, a metric, /healthz saying so), so kubelet registers the node; and a volume waits for it
only when its mount target depends on the zone (``depends_on_zone``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from efs_csi.contract.volume_context import VolumeContext
from efs_csi.logging import get_logger

_log = get_logger("node.zone")

# How long after start NodeGetInfo waits for an unknown zone. Instance metadata answers in
# milliseconds and the helper reads the label within a second or two, even on a loaded node;
# kubelet allows NodeGetInfo minutes, but a broken helper must cost registration only seconds.
REGISTRATION_BOUND_S = 10.0


def depends_on_zone(context: VolumeContext) -> bool:
    """Whether this node's zone changes the mount target a volume is mounted through (pure):
    only then does staging it wait for an unknown zone."""
    choices = {context.mount_target_for(zone)[0] for zone in context.mount_target_ip_map}
    choices.add(context.mount_target_for(None)[0])
    return len(choices) > 1


class NodeZone:
    def __init__(self, *, label_source: bool = False,
                 registration_bound_s: float = REGISTRATION_BOUND_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``label_source``: a helper will report the Node's zone label (so an empty answer
        from instance metadata does not settle the zone yet)."""
        self._label_source = label_source
        self._bound_s = registration_bound_s
        self._clock = clock
        self._started = clock()
        self._zone: str | None = None
        self._settled = asyncio.Event()
        self._imds_done = False
        self._label_done = False
        self._label: str | None = None
        self.cause = ""  # why the zone is not known yet (the latest failure of a source)
        self.answered_without_zone = 0  # NodeGetInfo answers given without it

    @classmethod
    def known(cls, zone: str | None) -> NodeZone:
        """A zone settled from the start (``--availability-zone``; ``None``: no topology)."""
        node_zone = cls()
        node_zone.settle(zone, "--availability-zone")
        return node_zone

    @property
    def settled(self) -> bool:
        return self._settled.is_set()

    @property
    def current(self) -> str | None:
        """The zone if known now; None while it is unknown or settled as none."""
        return self._zone

    def from_imds(self, zone: str | None) -> None:
        self._imds_done = True
        if zone:
            self.settle(zone, "instance metadata")
        elif not self._label_source:
            self.settle(None, "no source knows it (instance metadata gave none, no "
                              "Kubernetes API)")
        elif self._label_done:
            self._settle_from_label()

    def from_label(self, zone: str | None) -> None:
        self._label_done, self._label = True, zone
        if self._imds_done:
            self._settle_from_label()

    def _settle_from_label(self) -> None:
        if self._label:
            self.settle(self._label, "node label")
        else:
            self.settle(None, "no source knows it (instance metadata gave none, the Node has "
                              "no zone label)")

    def failed(self, cause: str) -> None:
        """A source failed; the search goes on. ``cause`` is what /healthz and logs show."""
        if not self.settled:
            self.cause = cause

    def settle(self, zone: str | None, source: str) -> None:
        """The answer (the first one counts: a late source never changes it)."""
        if self.settled:
            return
        self._zone = zone
        self.cause = ""
        self._settled.set()
        if zone is None:
            _log.warning("availability zone unknown; reporting no topology", reason=source)
        elif self.answered_without_zone:
            _log.warning("availability zone learned after NodeGetInfo answered without it: "
                         "the node stays registered without topology until the plugin "
                         "restarts; mounts use it from now on", zone=zone, source=source)
        else:
            _log.info("availability zone resolved", zone=zone, source=source)

    async def wait(self) -> str | None:
        """The zone once settled; cancelled with the caller."""
        await self._settled.wait()
        return self._zone

    def registration_wait_s(self) -> float:
        """How much longer NodeGetInfo may wait for the zone (0 once the bound has passed)."""
        return max(0.0, self._started + self._bound_s - self._clock())

    def answer_without_zone(self, waited_s: float) -> None:
        """NodeGetInfo answers without topology although the zone is not settled."""
        self.answered_without_zone += 1
        _log.warning("NodeGetInfo answers without topology: the availability zone is still "
                     "unknown; it is sought in the background",
                     cause=self.cause or "no source has answered yet",
                     waited_s=round(waited_s, 3))

    def health_note(self) -> str:
        """What /healthz adds while the zone is unknown ("" once settled)."""
        if self.settled:
            return ""
        return ("availability zone unknown, still sought: "
                f"{self.cause or 'no source has answered yet'}")
