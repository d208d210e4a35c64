"""Blocking calls off the event loop: results and errors come back, and a call whose caller
gave up (timed out or cancelled) while its thread still runs blocks new calls on its key."""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Callable

import pytest

from efs_csi.mounting.offloop import OffLoop, StillHung


@pytest.mark.asyncio
async def test_off_loop_passes_errors_and_results() -> None:
    off_loop = OffLoop()
    boom: Callable[[], None] = lambda: (_ for _ in ()).throw(OSError(errno.EIO, "io"))  # noqa: E731
    with pytest.raises(OSError):
        await off_loop.run("k", boom, 5)
    assert await off_loop.run("k", lambda: 42, 5) == 42


@pytest.mark.asyncio
async def test_a_cancelled_off_loop_call_counts_as_hung_until_its_thread_returns() -> None:
    """Cancellation, like a timeout, leaves a thread behind: a new call on the same key must
    not add another while it still runs."""
    off_loop, started, release = OffLoop(), threading.Event(), threading.Event()

    def blocked() -> bool:
        started.set()
        return release.wait(30)

    task = asyncio.ensure_future(off_loop.run("/dead", blocked, 30))
    while not started.is_set():  # noqa: ASYNC110 - set by the call's own thread
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(StillHung):
        await off_loop.run("/dead", lambda: True, 1)
    release.set()
    for _ in range(100):
        if not off_loop.hung("/dead"):
            break
        await asyncio.sleep(0.01)
    assert await off_loop.run("/dead", lambda: True, 1) is True
