"""Blocking file-system calls (stat, statvfs, mkdir, rmdir) off the event loop, time-limited.

A call on a path whose NFS server is dead blocks its thread forever, and Python cannot
interrupt it. So these calls never use the default executor (a few hung calls would exhaust
it and stall every other volume): each runs in its own daemon thread (daemon, so a hung one
never blocks process exit), and while a call on a key (a path) is still hung, new calls on
that key fail at once instead of piling up more stuck threads. One dead server costs at most
one thread per path it serves. A call whose caller gave up (timed out, or was cancelled) while
its thread still runs counts as hung until the thread returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class StillHung(TimeoutError):
    """An earlier call on the same key has not returned yet."""


@dataclass
class OffLoop:
    _hung: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def run(self, key: str, function: Callable[[], T], time_limit: float) -> T:
        """Run ``function`` in a daemon thread; TimeoutError when it takes over ``time_limit``."""
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

        threading.Thread(target=work, name=f"offloop:{key}", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(future), time_limit)
        except (TimeoutError, asyncio.CancelledError):
            with self._lock:
                if not finished.is_set():
                    self._hung.add(key)
            raise

    def forget(self, key: str) -> None:
        """Let new calls on ``key`` run again (the path was lazily unmounted; the hung
        thread is abandoned, one per recovery)."""
        with self._lock:
            self._hung.discard(key)

    def hung(self, key: str) -> bool:
        with self._lock:
            return key in self._hung
