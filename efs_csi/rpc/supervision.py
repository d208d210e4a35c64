"""Background tasks that never die silently.

A server's background tasks (startup work, taint removal, volume-stats collection, efs-utils'
watchdog, the metrics endpoint) are meant to run for the process's lifetime. ``supervise`` runs
one of them: an unexpected error is logged with its cause and traceback, and the task starts
again after a capped exponential backoff, so a bug or an outage nobody foresaw costs a retry,
not the feature for the rest of the process's life. The backoff starts over once a run has
lasted longer than the cap (a task failing once a day restarts promptly each time). A task that
returns is logged as finished and not restarted: it decided it was done. Cancellation (the
server stopping) ends supervision at once, during a backoff too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from efs_csi.logging import get_logger

_log = get_logger("efs_csi.supervision")

Task = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_s: float = 1.0
    max_delay_s: float = 60.0

    def delay(self, failures_in_a_row: int) -> float:
        growth: float = 2.0 ** max(0, failures_in_a_row - 1)
        return min(self.max_delay_s, self.first_delay_s * growth)


def task_name(task: Task) -> str:
    return getattr(task, "__qualname__", None) or getattr(task, "__name__", None) or repr(task)


async def supervise(task: Task, policy: RestartPolicy = RestartPolicy(), *,
                    clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Run ``task`` until it returns or is cancelled, restarting it after each failure."""
    name = task_name(task)
    failures = 0
    while True:
        started = clock()
        try:
            await task()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures = 1 if clock() - started > policy.max_delay_s else failures + 1
            delay = policy.delay(failures)
            _log.error("background task failed; restarting it", task=name,
                       cause=f"{type(exc).__name__}: {exc}", failures_in_a_row=failures,
                       restart_in_s=delay, exc_info=True)
            await sleep(delay)
            continue
        _log.info("background task finished", task=name)
        return
