"""Keeping node operations apart: per-key serialisation and the bound on concurrent mounts.

A path's key (``path_key``) is held by whatever mounts or unmounts there, and also by the
node's own readers of a mounted path (NodeGetVolumeStats's probe, the mount-health check): an
unmount then never meets one of our own calls in flight on the path, which would make it fail
with "target is busy".

Both wait at most until the caller's gRPC deadline (``efs_csi.rpc.hook.seconds_left``): a call
that would wait past it is answered ABORTED at once, so the CO retries instead of timing out
while holding nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from efs_csi.errors import Aborted
from efs_csi.rpc.hook import seconds_left

DeadlineClock = Callable[[], float | None]


def path_key(path: Path) -> str:
    return f"path:{path}"


async def _acquire(lock: asyncio.Lock | asyncio.Semaphore, wait: float | None,
                   what: str) -> None:
    if wait is None:
        await lock.acquire()
        return
    try:
        await asyncio.wait_for(lock.acquire(), max(wait, 0.0))
    except TimeoutError:
        raise Aborted(f"{what}; retry later") from None


@dataclass
class KeyLocksInFlight:
    """A lock per key (volume id, path) with an operation in flight: a second operation on a
    key waits its turn (see ``efs_csi.rpc.hook.CallsInFlight`` for the family); entries
    disappear when nobody holds or waits."""

    deadline: DeadlineClock = seconds_left
    _locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def hold(self, keys: Sequence[str]) -> AsyncIterator[None]:
        """Hold every key's lock (taken in sorted order, so two callers cannot deadlock)."""
        ordered = sorted(set(keys))
        taken: list[str] = []
        try:
            for key in ordered:
                lock = self._ref(key)
                try:
                    await _acquire(lock, self.deadline(),
                                   f"another operation on {key} is in progress")
                except BaseException:
                    self._unref(key)
                    raise
                taken.append(key)
            yield
        finally:
            for key in reversed(taken):
                self._locks[key][0].release()
                self._unref(key)

    @contextlib.asynccontextmanager
    async def hold_if_free(self, keys: Sequence[str]) -> AsyncIterator[bool]:
        """Hold every key's lock when none is held now, and yield True; else hold nothing and
        yield False (for background work that comes back later rather than wait)."""
        if any(key in self._locks for key in keys):
            yield False
            return
        async with self.hold(keys):  # free: taken without waiting
            yield True

    def _ref(self, key: str) -> asyncio.Lock:
        lock, count = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, count + 1)
        return lock

    def _unref(self, key: str) -> None:
        lock, count = self._locks[key]
        if count <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, count - 1)

    def __len__(self) -> int:
        return len(self._locks)


@dataclass
class MountSlots:
    """``--max-inflight-mount-calls``: mounts beyond the limit queue (0 means no limit)."""

    limit: int
    deadline: DeadlineClock = seconds_left
    _semaphore: asyncio.Semaphore | None = None

    def __post_init__(self) -> None:
        if self.limit > 0:
            self._semaphore = asyncio.Semaphore(self.limit)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._semaphore is None:
            yield
            return
        await _acquire(self._semaphore, self.deadline(),
                       f"{self.limit} mount operations already in flight")
        try:
            yield
        finally:
            self._semaphore.release()
