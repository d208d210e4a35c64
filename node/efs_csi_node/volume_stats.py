"""The rate-limited volume-usage collector behind NodeGetVolumeStats (``--vol-metrics-opt-in``):
a ``UsageSource`` of ``efs_csi_node.stats``, asked once the mount has answered.

``VolumeStatsCollector.figures`` answers from a per-volume cache. A missing entry, or one older
than the refresh period, schedules a background walk. A volume never measured waits up to
``first_answer_wait_s`` for that walk (a small volume is measured by then); past it, the answer
has no usage figures at all rather than a ``used`` of 0 that was never measured. Later calls
answer at once with the previous figures while a refresh runs. Walks run in daemon threads of
their own (``efs_csi.mounting.blocking``: never the default executor; daemon so a walk stuck on
a dead server never blocks process exit), each with up to ``walk_concurrency`` operations in flight
(``--vol-metrics-walk-concurrency``), at most ``--vol-metrics-fs-rate-limit`` walks at once per
file system, each file system with its own limit so one slow file system never delays another;
at most one walk per volume runs at a time, and a failed walk is retried with exponential
backoff rather than on every call.

A walk that could not read everything (``Usage.unreadable``: permission denied, as EFS's root
squashing makes another uid's 700 directories) is a measured figure, not a failure: it is kept
and refreshed on the same schedule as any other, and the volume condition's message (normal,
not abnormal) says how many entries it leaves out.

The mount itself is checked before the collector is asked (``efs_csi_node.stats``: one
``statvfs``, time-limited, whose figures it is given). Capacity is the PV's requested size when
the node knows it, else that ``statvfs``'s, except that NFS's "unlimited" (~8 EiB) is reported
as unknown rather than as a real size.

The collector owns its tasks and threads: cancelling a walk's task (``run`` ending, or
``aclose``) tells that walk's threads to stop and waits, up to ``stop_grace_s``, until they have.
``stop_reading`` does the same for the walks under a path about to be unmounted (an unpublish,
an unstage), whose open directories would otherwise keep the unmount failing with "target is
busy" until the walk ended, hours on a large volume. Such a walk is not a failure: the next
NodeGetVolumeStats of the volume, through a path still mounted, walks it again at once.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from efs_csi.errors import Unavailable
from efs_csi.logging import get_logger
from efs_csi.mounting.blocking import BlockingCalls
from efs_csi_node.stats import StatsRequest, VolumeStats
from efs_csi_node.usage_walk import DEFAULT_WALK_CONCURRENCY, Usage, WalkCancelled, measure_usage

_log = get_logger("node.volume_stats")

# Sizes at or above this are NFS's "no limit" placeholder, not a real capacity.
_IMPLAUSIBLE_SIZE = 1 << 60
class WalkObserver(Protocol):
    """Told about walks (``efs_csi_node.metrics.NodeMetrics`` implements it); ``unreadable``:
    the entries a finished walk had to leave out (a partial figure when above 0)."""

    def observe_walk(self, seconds: float, ok: bool, unreadable: int = 0) -> None: ...

    def set_queue_depth(self, depth: int) -> None: ...


@dataclass
class _Volume:
    usage: Usage | None = None
    measured_at: float = 0.0
    walking: bool = False
    task: asyncio.Task[None] | None = None
    failures: int = 0
    retry_at: float = 0.0
    asked_at: float = 0.0
    walk_started: float | None = None  # while a walk of it runs (holding its slot)
    walk_path: Path | None = None  # while a walk of it is scheduled or runs


@dataclass(frozen=True)
class CollectorSettings:
    refresh_period_s: float = 240 * 60.0
    walks_per_file_system: int = 5
    walk_concurrency: int = DEFAULT_WALK_CONCURRENCY
    # How long a volume never measured waits for its first walk before answering without usage.
    first_answer_wait_s: float = 2.0
    retry_base_s: float = 30.0
    retry_max_s: float = 3600.0
    # How long a cancelled walk is given to stop its threads (one call each) before we move on.
    stop_grace_s: float = 5.0


Walker = Callable[[Path, threading.Event], Usage]


class VolumeStatsCollector:
    """``efs_csi_node.stats.UsageSource`` with cached, rate-limited background walks."""

    def __init__(self, settings: CollectorSettings, *, blocking: BlockingCalls | None = None,
                 observer: WalkObserver | None = None, walker: Walker | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._blocking = blocking or BlockingCalls()
        self._observer = observer
        self._walker = walker or self._measure
        self._clock = clock
        self._volumes: dict[str, _Volume] = {}
        self._last_sweep = clock()
        self._walk_slots: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stops: set[threading.Event] = set()  # one per running walk
        self._closed = False

    def _measure(self, path: Path, stop: threading.Event) -> Usage:
        return measure_usage(path, stop=stop, concurrency=self._settings.walk_concurrency)

    async def figures(self, request: StatsRequest, fs: os.statvfs_result) -> VolumeStats:
        if self._closed:
            raise Unavailable("node plugin is shutting down")
        self._sweep()
        volume = self._volumes.setdefault(request.volume_id, _Volume())
        volume.asked_at = self._clock()
        self._maybe_schedule(request, volume)
        first_walk = volume.task if volume.usage is None else None
        if first_walk is not None and self._settings.first_answer_wait_s > 0:
            # Never measured: a small volume's walk ends within the wait and answers for real.
            # Cancelling this call leaves the walk to the collector (asyncio.wait never
            # cancels what it waits for).
            await asyncio.wait({first_walk}, timeout=self._settings.first_answer_wait_s)
        return _answer(request, volume.usage, fs)

    async def wait_idle(self) -> None:
        """Wait until no walk is scheduled or running (tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def queue_depth(self) -> int:
        return len(self._tasks)

    @property
    def refresh_period_s(self) -> float:
        return self._settings.refresh_period_s

    def longest_walk_s(self) -> float:
        """How long the longest walk now running has run (0 when none runs): a walk longer than
        the refresh period cannot keep its figure as fresh as asked."""
        now = self._clock()
        return max((now - volume.walk_started for volume in self._volumes.values()
                    if volume.walk_started is not None), default=0.0)

    async def run(self) -> None:
        """Lifetime of the collector as a server background task: closes it when cancelled."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.aclose()

    async def stop_reading(self, path: Path) -> None:
        """Stop the walks scheduled or running under ``path`` and return once their threads have
        ended (or their grace passed), without counting them as failed."""
        walks = [volume.task for volume in self._volumes.values()
                 if volume.task is not None and volume.walk_path is not None
                 and volume.walk_path.is_relative_to(path)]
        for task in walks:
            task.cancel()  # the walk's threads are told to stop (BlockingCalls.run)
        if walks:
            _log.info("usage walks stopped: their path is being unmounted", path=str(path),
                      walks=len(walks))
            await asyncio.wait(walks)  # never cancels them again if this call is cancelled

    async def aclose(self) -> None:
        """Stop every walk and return once their threads have ended (or their grace passed)."""
        self._closed = True
        for stop in list(self._stops):
            stop.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _sweep(self) -> None:
        """Forget volumes nobody asked about for two refresh periods (unstaged ones)."""
        now = self._clock()
        period = self._settings.refresh_period_s
        if now - self._last_sweep < period:
            return
        self._last_sweep = now
        for volume_id, volume in list(self._volumes.items()):
            if not volume.walking and now - volume.asked_at > 2 * period:
                del self._volumes[volume_id]

    def _maybe_schedule(self, request: StatsRequest, volume: _Volume) -> None:
        now = self._clock()
        fresh = (volume.usage is not None
                 and now - volume.measured_at < self._settings.refresh_period_s)
        if self._closed or fresh or volume.walking or now < volume.retry_at:
            return
        volume.walking = True
        volume.walk_path = request.volume_path
        task = asyncio.create_task(self._walk(request, volume),
                                   name=f"volume-stats-walk:{request.volume_id}")
        volume.task = task
        self._tasks.add(task)
        task.add_done_callback(self._walk_done)
        self._report_depth()

    def _walk_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._report_depth()

    def _report_depth(self) -> None:
        if self._observer is not None:
            self._observer.set_queue_depth(len(self._tasks))

    async def _walk(self, request: StatsRequest, volume: _Volume) -> None:
        slots = self._walk_slots.setdefault(
            request.file_system_id, asyncio.Semaphore(self._settings.walks_per_file_system))
        ok = ended = False  # ended: with a figure or a failure, not stopped (cancelled)
        unreadable = 0
        started = self._clock()
        stop = threading.Event()
        self._stops.add(stop)
        try:
            async with slots:
                started = volume.walk_started = self._clock()
                # No time limit: a walk takes what its volume takes, and stops when told.
                usage = await self._blocking.run(
                    f"walk:{request.volume_id}",
                    lambda: self._walker(request.volume_path, stop), None,
                    stop=stop, grace_s=self._settings.stop_grace_s)
            volume.usage, volume.measured_at, volume.failures = usage, self._clock(), 0
            ok = ended = True
            unreadable = usage.unreadable
            if usage.approximate:
                _log.warning("hard-link table full; usage may count some links twice",
                             volume_id=request.volume_id)
            if usage.unreadable:
                _log.warning("volume usage counts only what the node may read",
                             volume_id=request.volume_id, unreadable_entries=usage.unreadable)
        except (OSError, WalkCancelled) as exc:
            ended = True
            volume.failures += 1
            delay = min(self._settings.retry_base_s * 2 ** (volume.failures - 1),
                        self._settings.retry_max_s)
            # Jitter so volumes that failed together do not retry together.
            volume.retry_at = self._clock() + delay * random.uniform(0.5, 1.0)  # noqa: S311
            _log.warning("volume usage walk failed", volume_id=request.volume_id,
                         error=str(exc), retry_in_s=round(delay, 1))
        finally:
            self._stops.discard(stop)
            volume.walking = False
            volume.task = None
            volume.walk_started = None
            volume.walk_path = None
            if ended and self._observer is not None:
                self._observer.observe_walk(self._clock() - started, ok, unreadable)

def _answer(request: StatsRequest, usage: Usage | None, fs: os.statvfs_result) -> VolumeStats:
    total_bytes = request.capacity_bytes
    total_inodes: int | None = None
    available_inodes: int | None = None
    available_bytes: int | None = None
    if total_bytes is None and fs.f_blocks * fs.f_frsize < _IMPLAUSIBLE_SIZE:
        total_bytes = fs.f_blocks * fs.f_frsize
        available_bytes = fs.f_bavail * fs.f_frsize
    if 0 < fs.f_files < _IMPLAUSIBLE_SIZE:
        total_inodes, available_inodes = fs.f_files, fs.f_favail
    used_bytes = usage.used_bytes if usage else None
    used_inodes = usage.used_inodes if usage else None
    if request.capacity_bytes is not None and used_bytes is not None:
        available_bytes = max(request.capacity_bytes - used_bytes, 0)
    return VolumeStats(used_bytes=used_bytes, total_bytes=total_bytes,
                       available_bytes=available_bytes, used_inodes=used_inodes,
                       total_inodes=total_inodes, available_inodes=available_inodes,
                       message=partial_note(usage))


def partial_note(usage: Usage | None) -> str:
    """The volume condition's message for a figure that leaves out what may not be read (the
    volume is healthy: the condition stays normal)."""
    if usage is None or not usage.unreadable:
        return ""
    entries = "entry" if usage.unreadable == 1 else "entries"
    return (f"usage counts what the node may read: {usage.unreadable} {entries} could not be "
            "read (permission denied, as with EFS root squashing), so used bytes and inodes "
            "are a lower bound")
