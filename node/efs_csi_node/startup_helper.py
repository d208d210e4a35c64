"""Runs the node's Kubernetes work (``efs_csi_node.startup_work``) in a child process, after the
node serves, as the kernel's first OOM victim (``as_oom_victim``), and hands its results to the
node.

``StartupHelper.run`` is a node background task, supervised like the others
(``efs_csi.rpc.supervision``): it starts ``python -m efs_csi_node.startup_work`` with the
node's own interpreter, reads the child's JSON lines (the zone label goes to ``NodeZone`` as
soon as it is known, so NodeGetInfo answers while the child still waits to remove the taint;
an API failure it reports becomes the zone's cause), and returns when the child exits 0 with
everything done. A non-zero exit, a death by a signal (SIGKILL: most likely the OOM killer under
the container's memory limit), or an exit before the work is done raises: the cause goes to
``NodeZone`` and ``failures``, supervision logs it and starts the child again with backoff
(asking only for what is still missing). When the node stops, the task is cancelled: the child
is terminated, killed if it does not exit within ``stop_timeout``, and reaped, so a stopped node
leaves no child behind.

The node's start-up, room by room (why a child at all: ``startup_work``'s docstring)::

    node process (long-lived)                        child process (once the node serves)

    app.start_up_tasks
     |- topology.zone_from_imds ---------> zone.NodeZone <-- NodeGetInfo, NodeStage wait on it
     '- startup_helper.StartupHelper ---------^  (the label, or a failure's cause)
          starts the child, reads its JSON lines <------ startup_work.work
                                                           |- topology.zone_label: {"zone"}
                                                           '- taint.TaintRemover: {"taint_removed"}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from efs_csi.kube import KubeEndpoint
from efs_csi.logging import get_logger
from efs_csi_node.zone import NodeZone

_log = get_logger("node.startup_helper")
MODULE = "efs_csi_node.startup_work"  # run as python -m; never imported by the node
# The kernel's most willing OOM victim (-1000: never, 1000: always first).
OOM_SCORE_ADJ = 1000


class StartupHelperFailed(Exception):
    """The child exited without finishing its work."""


@dataclass(frozen=True)
class StartupWork:
    """What the node asks of its start-up helper."""

    node_name: str
    remove_taint: bool
    kube: KubeEndpoint
    log_format: str = "json"
    log_level: str = "info"


def helper_arguments(work: StartupWork, *, zone_label: bool, remove_taint: bool) -> list[str]:
    argv = ["--node-id", work.node_name, "--kube-host", work.kube.host,
            "--log-format", work.log_format, "--log-level", work.log_level]
    if work.kube.token_file is not None:
        argv += ["--kube-token-file", str(work.kube.token_file)]
    if work.kube.ca_file is not None:
        argv += ["--kube-ca-file", str(work.kube.ca_file)]
    if zone_label:
        argv.append("--zone-label")
    if remove_taint:
        argv.append("--remove-taint")
    return argv


def optimization_flags(level: int) -> list[str]:
    """The interpreter option of optimization ``level`` (``sys.flags.optimize``): the helper
    runs at the node's own level, the one whose bytecode the image holds (docker/venv.sh)."""
    return [f"-{'O' * level}"] if level else []


def as_oom_victim(argv: list[str]) -> list[str]:
    """``argv`` run as the kernel's first choice when the container's memory runs out.

    A memory limit sized for the steady node may be too tight for the node and the helper
    together; then the helper must be the one killed (the node goes on serving, the helper is
    restarted), never the node. The OOM killer picks the process with the highest score, and
    ``oom_score_adj`` 1000 puts the helper first whatever its size; any process may raise its
    own. It is set by a shell that then ``exec``s the interpreter (same pid), so the helper is
    the victim from its first allocation, before Python has started (setting it from Python
    would leave the interpreter's own start-up unprotected; a ``preexec_fn`` is unsafe in the
    node, which has threads). One limit of it, the kernel's: if the node's own allocation is the
    one that meets the limit, the kernel may take the node too, its second selection skipping the
    dying helper before the helper's pages are uncharged; only a limit above the start-up peak
    rules that out (the chart's values say so).
    """
    if not Path("/bin/sh").exists():
        return argv
    return ["/bin/sh", "-c", f'echo {OOM_SCORE_ADJ} > /proc/self/oom_score_adj; exec "$@"',
            "efs-csi-node-startup-helper", *argv]


def exit_cause(code: int) -> tuple[str, str]:
    """(metric reason, cause for logs and /healthz) of a child's non-zero exit status."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        cause = f"start-up helper killed by {name}"
        if -code == signal.SIGKILL:
            cause += " (the OOM killer, if the container's memory limit is below the start-up "\
                     "peak: docs/performance.md)"
        return "killed", cause
    return "exited", f"start-up helper exited with status {code}"


class StartupHelper:
    def __init__(self, work: StartupWork, zone: NodeZone, *, python: str = sys.executable,
                 optimize: int = sys.flags.optimize, stop_timeout: float = 5.0) -> None:
        self._work = work
        self._zone = zone
        self._interpreter = [python, *optimization_flags(optimize)]
        self._stop_timeout = stop_timeout
        self._label_done = False
        self._taint_done = not work.remove_taint
        self.failures: Counter[str] = Counter()  # by reason: exited, killed, kubernetes_api
        self.pid: int | None = None  # the running child's (tests watch it)
        self.started = asyncio.Event()  # set once a child has been started

    def pending(self) -> bool:
        """Whether work is left for a child (the zone label, the taint): the
        ``efs_csi_node_startup_helper_pending`` gauge."""
        return self._wants_label() or not self._taint_done

    def _wants_label(self) -> bool:
        return not self._label_done and not self._zone.settled

    async def run(self) -> None:
        zone_label = self._wants_label()
        if not self.pending():
            return
        argv = helper_arguments(self._work, zone_label=zone_label,
                                remove_taint=not self._taint_done)
        # -P: the node's working directory is not put on the child's sys.path.
        child = await asyncio.create_subprocess_exec(
            *as_oom_victim([*self._interpreter, "-P", "-m", MODULE, *argv]),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE)  # stderr: the node's, for the child's logs
        self.pid = child.pid
        self.started.set()
        _log.info("start-up helper started", pid=child.pid, zone_label=zone_label,
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
            reason, cause = exit_cause(code)
            self._fail(reason, cause)
            raise StartupHelperFailed(cause)
        if (zone_label and not self._label_done) or not self._taint_done:
            self._fail("exited", "start-up helper exited before finishing its work")
            raise StartupHelperFailed("start-up helper exited before finishing its work")

    def _fail(self, reason: str, cause: str) -> None:
        self.failures[reason] += 1
        self._zone.failed(cause)

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
            self._label_done = True
            self._zone.from_label(zone if isinstance(zone, str) and zone else None)
        if "error" in result:
            self._fail("kubernetes_api", f"Kubernetes API: {result['error']}")
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
