"""Running ``mount``/``umount`` as child processes with a time limit.

A child process keeps the event loop free whatever the kernel does. When the time limit
passes, or the caller is cancelled (grpclib cancels a handler when its client's deadline
passes), the child's whole process group is killed (a helper it started, such as mount.efs,
must not keep mounting), and ``run`` returns only once the child is gone: whoever holds a lock
around the command (the node's per-volume and per-path locks) must not let a retry start a
second mount while the first still runs. A cancellation that arrives meanwhile is held back
until then. A child stuck in uninterruptible sleep (a dead NFS server) may not die at once:
after ``kill_wait`` seconds it is left to the child watcher and an error is logged, the one
case where a lock is let go with the child still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from efs_csi.errors import DeadlineExceeded, Internal
from efs_csi.logging import get_logger

_log = get_logger("efs_csi.commands")
KILL_WAIT = 10.0
_POLL = 0.02
_MAX_OUTPUT = 2000


class CommandFailed(Internal):
    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        super().__init__(f"{argv[0]} failed (exit {returncode}): {output.strip()[:_MAX_OUTPUT]}")
        self.returncode = returncode
        self.output = output


class CommandTimedOut(DeadlineExceeded):
    pass


class Runner(Protocol):
    """Runs one command line with a time limit: ``CommandRunner``, or an in-memory stand-in for
    the kernel in tests."""

    async def run(self, argv: Sequence[str], time_limit: float) -> str:
        """The command's output; CommandFailed or CommandTimedOut."""


@dataclass(frozen=True)
class CommandRunner:
    env: Mapping[str, str] | None = None
    kill_wait: float = KILL_WAIT

    async def run(self, argv: Sequence[str], time_limit: float) -> str:
        """Run ``argv``; its combined output, or CommandFailed / CommandTimedOut."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                env=dict(self.env) if self.env is not None else None)
        except OSError as exc:
            raise CommandFailed(argv, -1, f"cannot run: {exc}") from None
        try:
            output, _ = await asyncio.wait_for(process.communicate(), time_limit)
        except TimeoutError:
            await self._stop(process, argv)
            raise CommandTimedOut(f"{argv[0]} did not finish within {time_limit:g}s") from None
        except asyncio.CancelledError:
            await self._stop(process, argv)
            raise
        text = output.decode(errors="replace")
        if process.returncode != 0:
            raise CommandFailed(argv, process.returncode or -1, text)
        return text

    async def _stop(self, process: asyncio.subprocess.Process, argv: Sequence[str]) -> None:
        """Kill the child's process group and wait until the child has exited (at most
        ``kill_wait`` seconds), holding back any cancellation until then."""
        # The whole group: a helper the command started (mount.efs, mount.nfs4) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.kill_wait
        cancelled = False
        # The exit status, not the end of the output: a helper that left the group may hold
        # the pipe open; the child itself is what a retry must not race.
        while process.returncode is None and loop.time() < give_up:
            try:
                await asyncio.sleep(_POLL)
            except asyncio.CancelledError:
                cancelled = True
        if process.returncode is None:
            _log.error("killed command still running; letting go of it", command=argv[0],
                       pid=process.pid, waited_s=self.kill_wait)
        if cancelled:
            raise asyncio.CancelledError
