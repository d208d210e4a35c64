"""Running ``mount``/``umount`` as child processes with a time limit.

A child process keeps the event loop free whatever the kernel does; on timeout the child is
killed and the caller gets ``CommandTimedOut``. A child stuck in uninterruptible sleep (a dead
NFS server) may not die at once: it is waited for only briefly and then left to the child
watcher, so the caller is never held past its limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from efs_csi.errors import DeadlineExceeded, Internal

_REAP_WAIT = 1.0
_MAX_OUTPUT = 2000


class CommandFailed(Internal):
    def __init__(self, argv: Sequence[str], returncode: int, output: str) -> None:
        super().__init__(f"{argv[0]} failed (exit {returncode}): {output.strip()[:_MAX_OUTPUT]}")
        self.returncode = returncode
        self.output = output


class CommandTimedOut(DeadlineExceeded):
    pass


@dataclass(frozen=True)
class CommandRunner:
    env: Mapping[str, str] | None = None

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
            # The whole process group: a helper the command started (mount.efs, stunnel
            # setup) must not keep the output pipe open.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.communicate(), _REAP_WAIT)
            raise CommandTimedOut(f"{argv[0]} did not finish within {time_limit:g}s") from None
        text = output.decode(errors="replace")
        if process.returncode != 0:
            raise CommandFailed(argv, process.returncode or -1, text)
        return text
