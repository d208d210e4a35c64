"""Blocking calls (stat, statvfs, mkdir, rmdir, a usage walk) off the event loop, one thread
each, time-limited: ``BlockingCalls.run``, the one thread runner of the driver.

A call on a path whose NFS server is dead blocks its thread forever, and Python cannot
interrupt it. So these calls never use the default executor (a few hung calls would exhaust
it and stall every other volume): each runs in its own daemon thread, named after its key
(daemon, so a hung one never blocks process exit), and while a call on a key (a path) is still
hung, new calls on that key fail at once (``StillHung``) instead of piling up more stuck
threads. One dead server costs at most one thread per key it serves. A call whose caller gave
up (timed out, or was cancelled) while its thread still runs counts as hung until the thread
returns.

A call that can stop early (a walk checks a ``threading.Event`` between its steps) is given
that event as ``stop``: when its caller gives up, the event is set and the caller waits up to
``grace_s`` for the thread to end, so a cancelled walk leaves no thread behind unless one of
its calls hangs in the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class StillHung(TimeoutError):
    """An earlier call on the same key has not returned yet."""


@dataclass
class BlockingCalls:
    _hung: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def run(self, key: str, function: Callable[[], T], time_limit: float | None, *,
                  stop: threading.Event | None = None, grace_s: float = 0.0) -> T:
        """Run ``function`` in a daemon thread named ``key``; TimeoutError when it takes over
        ``time_limit`` (None: no limit); ``stop`` is set when the caller gives up."""
        with self._lock:
            if key in self._hung:
                raise StillHung(f"an earlier call on {key} is still blocked")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        finished = threading.Event()  # set under the lock, so "gave up" and "done" never race

        def deliver(result: T | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]

        def work() -> None:
            try:
                result, error = function(), None
            except BaseException as exc:  # handed to the awaiting coroutine
                result, error = None, exc
            with self._lock:
                finished.set()
                self._hung.discard(key)
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed in between
                    loop.call_soon_threadsafe(deliver, result, error)

        thread = threading.Thread(target=work, name=key, daemon=True)
        thread.start()
        try:
            return await asyncio.wait_for(asyncio.shield(future), time_limit)
        except (TimeoutError, asyncio.CancelledError):
            with self._lock:
                if not finished.is_set():
                    self._hung.add(key)
            # Whenever it ends, its outcome is nobody's concern now.
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
            if stop is not None:
                stop.set()
                await _ended(thread, future, grace_s)
            raise

    def forget(self, key: str) -> None:
        """Let new calls on ``key`` run again (the path was lazily unmounted; the hung
        thread is abandoned, one per recovery)."""
        with self._lock:
            self._hung.discard(key)

    def hung(self, key: str) -> bool:
        with self._lock:
            return key in self._hung


async def _ended(thread: threading.Thread, future: asyncio.Future[Any],
                 grace_s: float) -> None:
    """Wait up to ``grace_s`` for a stopped call's thread to return."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    await asyncio.wait({future}, timeout=grace_s)
    # The result is handed over just before the thread returns: see it gone too.
    while thread.is_alive() and loop.time() < deadline:  # noqa: ASYNC110 - no event to await
        await asyncio.sleep(0.001)
