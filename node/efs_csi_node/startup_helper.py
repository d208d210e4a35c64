"""Runs the node's start-up work (``efs_csi_node.startup_work``) in a child process, after the
node serves, and hands its results to the node.

``StartupHelper.run`` is a node background task, supervised like the others
(``efs_csi.rpc.supervision``): it starts ``python -m efs_csi_node.startup_work`` with the
node's own interpreter, reads the child's JSON lines (the zone goes to ``NodeZone`` as soon as
it is known, so NodeGetInfo answers while the child still waits to remove the taint), and
returns when the child exits 0 with everything done. A non-zero exit, or an exit before the
zone was reported, raises: supervision logs it and starts the child again with backoff (asking
only for what is still missing). When the node stops, the task is cancelled: the child is
terminated, killed if it does not exit within ``stop_timeout``, and reaped, so a stopped node
leaves no child behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass

from efs_csi.kube import KubeEndpoint
from efs_csi.logging import get_logger
from efs_csi_node.topology import ImdsSettings
from efs_csi_node.zone import NodeZone

_log = get_logger("node.startup_helper")
MODULE = "efs_csi_node.startup_work"  # run as python -m; never imported by the node


class StartupHelperFailed(Exception):
    """The child exited without finishing its work."""


@dataclass(frozen=True)
class StartupWork:
    """What the node asks of its start-up helper."""

    node_name: str
    remove_taint: bool
    imds: ImdsSettings
    kube: KubeEndpoint | None
    log_format: str = "json"
    log_level: str = "info"


def needed(work: StartupWork, zone: NodeZone) -> bool:
    """Whether there is anything for a helper to do (no child is started otherwise)."""
    zone_lookup = not zone.resolved and (not work.imds.disabled or work.kube is not None)
    return zone_lookup or (work.remove_taint and work.kube is not None)


def helper_arguments(work: StartupWork, *, resolve_zone: bool, remove_taint: bool) -> list[str]:
    argv = ["--node-id", work.node_name, "--log-format", work.log_format,
            "--log-level", work.log_level,
            "--imds-endpoint", work.imds.endpoint, "--imds-timeout", str(work.imds.timeout)]
    if work.imds.disabled:
        argv.append("--imds-disabled")
    if resolve_zone:
        argv.append("--resolve-zone")
    if remove_taint:
        argv.append("--remove-taint")
    if work.kube is not None:
        argv += ["--kube-host", work.kube.host]
        if work.kube.token_file is not None:
            argv += ["--kube-token-file", str(work.kube.token_file)]
        if work.kube.ca_file is not None:
            argv += ["--kube-ca-file", str(work.kube.ca_file)]
    return argv


class StartupHelper:
    def __init__(self, work: StartupWork, zone: NodeZone, *, python: str = sys.executable,
                 stop_timeout: float = 5.0) -> None:
        self._work = work
        self._zone = zone
        self._python = python
        self._stop_timeout = stop_timeout
        self._taint_done = not (work.remove_taint and work.kube is not None)
        self.pid: int | None = None  # the running child's (tests watch it)
        self.started = asyncio.Event()  # set once a child has been started

    async def run(self) -> None:
        resolve_zone = not self._zone.resolved
        if not resolve_zone and self._taint_done:
            return
        argv = helper_arguments(self._work, resolve_zone=resolve_zone,
                                remove_taint=not self._taint_done)
        # -P: the node's working directory is not put on the child's sys.path.
        child = await asyncio.create_subprocess_exec(
            self._python, "-P", "-m", MODULE, *argv, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE)  # stderr: the node's, for the child's logs
        self.pid = child.pid
        self.started.set()
        _log.info("start-up helper started", pid=child.pid, resolve_zone=resolve_zone,
                  remove_taint=not self._taint_done)
        try:
            assert child.stdout is not None
            async for line in child.stdout:
                self._take(line)
            code = await child.wait()
        finally:
            await self._reap(child)
            self.pid = None
        if code != 0:
            raise StartupHelperFailed(f"start-up helper exited with status {code}")
        if not self._zone.resolved or not self._taint_done:
            raise StartupHelperFailed("start-up helper exited before finishing its work")

    def _take(self, line: bytes) -> None:
        try:
            result = json.loads(line)
        except ValueError:
            _log.warning("start-up helper wrote something that is not JSON",
                         line=line[:200].decode(errors="replace"))
            return
        if not isinstance(result, dict):
            return
        if "zone" in result:
            zone = result["zone"]
            self._zone.resolve(zone if isinstance(zone, str) and zone else None)
        if "taint_removed" in result:
            self._taint_done = True

    async def _reap(self, child: asyncio.subprocess.Process) -> None:
        """Terminate the child if it still runs (we were cancelled), then wait for it."""
        if child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        try:
            await asyncio.shield(asyncio.wait_for(child.wait(), self._stop_timeout))
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await asyncio.shield(child.wait())
