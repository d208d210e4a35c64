"""Running ``amazon-efs-mount-watchdog`` for the node's whole life.

The watchdog renews TLS tunnels' certificates, restarts dead tunnels (efs-proxy, or stunnel
for a mount made with the ``stunnel`` option or OCSP) and cleans up after unmounts. A tunnel
therefore lives only while the watchdog runs: efs-proxy exits on any unexpected client error
(a connection reset, for one) and only the watchdog starts it again, and only for a mount it
sees in this process's own ``/proc/mounts`` (the node's mount namespace: the chart's
Bidirectional kubelet directory shows it the staged mounts, also after a restart).

efs-utils normally asks the init system to run it; inside the node container there is no
init system ("Could not start amazon-efs-mount-watchdog, unrecognized init
system"), so the node runs it as a child process instead and restarts it whenever it exits,
waiting ``Backoff`` between attempts: doubling from ``initial`` up to ``maximum``, back to
``initial`` once a run lasted ``healthy_after`` seconds. A missing executable is treated like
an immediate exit (logged, retried with the same backoff), so the node still serves.

On cancellation (the server's shutdown) the watchdog gets SIGTERM, ``stop_timeout`` seconds
to exit, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from efs_csi.logging import get_logger
from efs_csi_node.efs_utils.reaper import ChildRegistry

WATCHDOG_COMMAND = ("amazon-efs-mount-watchdog",)

_log = get_logger("node.efs_utils.watchdog")


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0
    healthy_after: float = 60.0

    def next_delay(self, previous: float | None, ran_for: float) -> float:
        """Delay before the next start, given the last delay and how long the run lasted."""
        if previous is None or ran_for >= self.healthy_after:
            return self.initial
        return min(self.maximum, previous * self.factor)


@dataclass(frozen=True)
class WatchdogOptions:
    command: tuple[str, ...] = WATCHDOG_COMMAND
    backoff: Backoff = field(default_factory=Backoff)
    stop_timeout: float = 5.0
    # None: inherit ours. The executable is looked up on this environment's PATH.
    env: Mapping[str, str] | None = None


async def _stop(process: asyncio.subprocess.Process, timeout: float) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        _log.warning("watchdog ignored SIGTERM; killing it", pid=process.pid)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    _log.info("watchdog stopped", pid=process.pid, returncode=process.returncode)


async def _run_once(options: WatchdogOptions, registry: ChildRegistry,
                    on_start: Callable[[int], None] | None) -> int | None:
    """Run the watchdog until it exits; its exit code, or None when it could not start."""
    try:
        process = await asyncio.create_subprocess_exec(
            *options.command, env=dict(options.env) if options.env is not None else None,
            stdin=asyncio.subprocess.DEVNULL)
    except OSError as exc:
        _log.error("could not start the efs-utils watchdog", command=list(options.command),
                   error=str(exc))
        return None
    _log.info("watchdog started", pid=process.pid)
    with registry.owned(process.pid):
        if on_start is not None:
            on_start(process.pid)
        try:
            return await process.wait()
        except asyncio.CancelledError:
            await _stop(process, options.stop_timeout)
            raise


async def supervise_watchdog(
    options: WatchdogOptions | None = None,
    *,
    registry: ChildRegistry | None = None,
    on_start: Callable[[int], None] | None = None,
    on_exit: Callable[[int | None, float], None] | None = None,
) -> None:
    """Keep the watchdog running until cancelled.

    ``on_start(pid)`` and ``on_exit(returncode or None, next delay)`` let callers (tests,
    metrics) observe it; the registry keeps the orphan reaper off the watchdog's pid.
    """
    options = options or WatchdogOptions()
    registry = registry if registry is not None else ChildRegistry()
    loop = asyncio.get_running_loop()
    delay: float | None = None
    while True:
        started = loop.time()
        returncode = await _run_once(options, registry, on_start)
        delay = options.backoff.next_delay(delay, loop.time() - started)
        _log.warning("watchdog exited; restarting", returncode=returncode, delay_s=delay)
        if on_exit is not None:
            on_exit(returncode, delay)
        await asyncio.sleep(delay)
