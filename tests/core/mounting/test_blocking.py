"""Blocking calls off the event loop: results and errors come back, and a call whose caller
gave up (timed out or cancelled) while its thread still runs blocks new calls on its key."""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import Callable

import pytest

from efs_csi.mounting.blocking import BlockingCalls, StillHung


@pytest.mark.asyncio
async def test_a_blocking_call_passes_errors_and_results() -> None:
    blocking = BlockingCalls()
    boom: Callable[[], None] = lambda: (_ for _ in ()).throw(OSError(errno.EIO, "io"))  # noqa: E731
    with pytest.raises(OSError):
        await blocking.run("k", boom, 5)
    assert await blocking.run("k", lambda: 42, 5) == 42


@pytest.mark.asyncio
async def test_a_cancelled_blocking_call_counts_as_hung_until_its_thread_returns() -> None:
    """Cancellation, like a timeout, leaves a thread behind: a new call on the same key must
    not add another while it still runs."""
    blocking, started, release = BlockingCalls(), threading.Event(), threading.Event()

    def blocked() -> bool:
        started.set()
        return release.wait(30)

    task = asyncio.ensure_future(blocking.run("/dead", blocked, 30))
    while not started.is_set():  # noqa: ASYNC110 - set by the call's own thread
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(StillHung):
        await blocking.run("/dead", lambda: True, 1)
    release.set()
    for _ in range(100):
        if not blocking.hung("/dead"):
            break
        await asyncio.sleep(0.01)
    assert await blocking.run("/dead", lambda: True, 1) is True


@pytest.mark.asyncio
async def test_a_cancelled_call_that_can_stop_is_told_to_and_its_thread_waited_for() -> None:
    """A walk checks its stop event: cancelling its caller sets the event and returns once
    the thread has ended (within the grace), leaving no thread behind."""
    blocking, started, stop = BlockingCalls(), threading.Event(), threading.Event()
    ended = threading.Event()

    def walk() -> str:
        started.set()
        try:
            while not stop.wait(0.01):
                pass
            return "stopped"
        finally:
            ended.set()

    task = asyncio.ensure_future(blocking.run("walk:v", walk, None, stop=stop, grace_s=30))
    while not started.is_set():  # noqa: ASYNC110 - set by the call's own thread
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stop.is_set() and ended.is_set()
    assert not [t for t in threading.enumerate() if t.name == "walk:v"]
    assert not blocking.hung("walk:v")
