"""The volume-usage collector: caching, rate limits, retries, capacity and lifecycle. (The walk
itself: tests/node/test_usage_walk.py; the mount's probe and condition before it is asked:
tests/node/test_stats.py.)"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from efs_csi.errors import Unavailable
from efs_csi_node.stats import StatsRequest, VolumeStats
from efs_csi_node.usage_walk import Usage, WalkCancelled
from efs_csi_node.volume_stats import CollectorSettings, VolumeStatsCollector
from tests.support.du import du

FS_A = "fs-0000000a"
FS_B = "fs-0000000b"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class GatedWalker:
    """Fake walker: real walks cannot be held open to observe concurrency, or made to fail."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.calls: list[Path] = []
        self.fail_next = 0
        self.unreadable = 0  # entries each walk reports it could not read

    def __call__(self, path: Path, stop: threading.Event) -> Usage:
        key = path.parent.name
        with self.lock:
            self.calls.append(path)
            self.running[key] = self.running.get(key, 0) + 1
            self.peak[key] = max(self.peak.get(key, 0), self.running[key])
            fail = self.fail_next > 0
            self.fail_next -= 1 if fail else 0
        try:
            while not self.gate.wait(0.01):
                if stop.is_set():
                    raise WalkCancelled(str(path))
            if fail:
                raise OSError(errno.EIO, "walk failed")
            return Usage(used_bytes=4096, used_inodes=3, unreadable=self.unreadable)
        finally:
            with self.lock:
                self.running[key] -= 1

    def running_now(self, key: str) -> int:
        with self.lock:
            return self.running.get(key, 0)


class DepthRecorder:
    def __init__(self) -> None:
        self.depths: list[int] = []
        self.walks: list[bool] = []
        self.unreadable: list[int] = []

    def observe_walk(self, seconds: float, ok: bool, unreadable: int = 0) -> None:
        self.walks.append(ok)
        self.unreadable.append(unreadable)

    def set_queue_depth(self, depth: int) -> None:
        self.depths.append(depth)


@pytest_asyncio.fixture
async def make_collector() -> AsyncIterator[Callable[..., VolumeStatsCollector]]:
    made: list[VolumeStatsCollector] = []

    def make(**kwargs: object) -> VolumeStatsCollector:
        settings = kwargs.pop("settings", CollectorSettings(refresh_period_s=600,
                                                            walks_per_file_system=2,
                                                            retry_base_s=30,
                                                            first_answer_wait_s=0))
        collector = VolumeStatsCollector(settings, **kwargs)  # type: ignore[arg-type]
        made.append(collector)
        return collector

    yield make
    for collector in made:
        await collector.aclose()


def request(tmp_path: Path, fs: str, volume: str, capacity: int | None = None) -> StatsRequest:
    path = tmp_path / fs / volume
    path.mkdir(parents=True, exist_ok=True)
    return StatsRequest(volume_id=f"{fs}::{volume}", file_system_id=fs, volume_path=path,
                        capacity_bytes=capacity)


async def ask(collector: VolumeStatsCollector, req: StatsRequest,
              fs: os.statvfs_result | None = None) -> VolumeStats:
    """The collector's figures for a volume whose mount answered ``fs`` (its real ``statvfs``
    unless given): what ``efs_csi_node.stats.VolumeStatsSource`` asks once the probe passed."""
    return await collector.figures(req, fs or os.statvfs(req.volume_path))


async def wait_for(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - the condition is set by a worker thread
        await asyncio.sleep(0.01)


@pytest.mark.slow  # du
@pytest.mark.asyncio
async def test_first_call_waits_briefly_and_answers_a_small_volume_for_real(
    make_collector: Callable[..., VolumeStatsCollector], tmp_path: Path
) -> None:
    collector = make_collector(settings=CollectorSettings(first_answer_wait_s=30))
    req = request(tmp_path, FS_A, "vol1", capacity=10 << 20)
    (req.volume_path / "data").write_bytes(os.urandom(1 << 20))
    first = await ask(collector, req)
    assert first.used_bytes == du(req.volume_path, "-B1")
    assert first.used_inodes == 2
    assert first.total_bytes == 10 << 20
    assert first.available_bytes == (10 << 20) - first.used_bytes
    assert collector.queue_depth == 0  # measured once, not again on the next call
    again = await ask(collector, req)
    # The cached walk's figures (statvfs's free inodes move with whatever else writes to this
    # machine's file system meanwhile).
    assert (again.used_bytes, again.used_inodes) == (first.used_bytes, first.used_inodes)


@pytest.mark.asyncio
async def test_a_volume_not_measured_yet_has_no_used_figure(
    make_collector: Callable[..., VolumeStatsCollector], tmp_path: Path
) -> None:
    walker = GatedWalker()  # a walk that outlasts the first answer's wait
    collector = make_collector(walker=walker, settings=CollectorSettings(
        first_answer_wait_s=0.05))
    req = request(tmp_path, FS_A, "vol1", capacity=10 << 20)
    first = await ask(collector, req)
    assert walker.running_now(FS_A) == 1
    assert first.used_bytes is None and first.used_inodes is None
    assert first.available_bytes is None  # not capacity - 0: nothing was measured
    assert first.total_bytes == 10 << 20 and not first.abnormal
    walker.gate.set()
    await collector.wait_idle()
    measured = await ask(collector, req)
    assert measured.used_bytes == 4096 and measured.available_bytes == (10 << 20) - 4096


@pytest.mark.asyncio
async def test_rate_limits_per_file_system_and_one_walk_per_volume(
    make_collector: Callable[..., VolumeStatsCollector], tmp_path: Path
) -> None:
    walker = GatedWalker()
    recorder = DepthRecorder()
    collector = make_collector(walker=walker, observer=recorder)
    a_requests = [request(tmp_path, FS_A, f"v{i}") for i in range(5)]
    for req in a_requests * 3:  # repeated calls for the same volume add no walk
        assert (await ask(collector, req)).used_bytes is None
    await wait_for(lambda: walker.running_now(FS_A) == 2)
    # File system B is not held up by A's full pool.
    await ask(collector, request(tmp_path, FS_B, "v0"))
    await wait_for(lambda: walker.running_now(FS_B) == 1)
    assert collector.queue_depth == 6
    walker.gate.set()
    await collector.wait_idle()
    assert len(walker.calls) == 6
    assert walker.peak[FS_A] == 2
    assert max(recorder.depths) == 6 and recorder.depths[-1] == 0
    assert recorder.walks == [True] * 6
    assert (await ask(collector, a_requests[0])).used_bytes == 4096


@pytest.mark.asyncio
async def test_stale_figures_are_served_while_a_refresh_runs(
    make_collector: Callable[..., VolumeStatsCollector], tmp_path: Path
) -> None:
    clock = Clock()
    walker = GatedWalker()
    walker.gate.set()
    collector = make_collector(walker=walker, clock=clock)
    req = request(tmp_path, FS_A, "v")
    await ask(collector, req)
    await collector.wait_idle()
    clock.now += 599
    assert (await ask(collector, req)).used_bytes == 4096
    assert collector.queue_depth == 0 and len(walker.calls) == 1
    clock.now += 2
    walker.gate.clear()
    assert (await ask(collector, req)).used_bytes == 4096  # old figure, at once
    assert collector.queue_depth == 1
    walker.gate.set()
    await collector.wait_idle()
    assert len(walker.calls) == 2


@pytest.mark.asyncio
async def test_failed_walk_is_retried_after_backoff(
    make_collector: Callable[..., VolumeStatsCollector], tmp_path: Path
) -> None:
    clock = Clock()
    walker = GatedWalker()
    walker.gate.set()
    walker.fail_next = 2
    collector = make_collector(walker=walker, clock=clock)
    req = request(tmp_path, FS_A, "v")
    await ask(collector, req)
    await collector.wait_idle()
    await ask(collector, req)
    assert collector.queue_depth == 0  # backing off: no walk on every call
    clock.now += 31  # first retry within 30 s (jittered 15..30)
    await ask(collector, req)
    await collector.wait_idle()
    assert len(walker.calls) == 2
    clock.now += 29  # second backoff is 30..60 s: still waiting
    await ask(collector, req)
    assert collector.queue_depth == 0
    clock.now += 32  # past 60 s, however the jitter fell
    await ask(collector, req)
    await collector.wait_idle()
    assert len(walker.calls) == 3
    assert (await ask(collector, req)).used_bytes == 4096


def nfs_statvfs(path: Path) -> os.statvfs_result:
    """Fake statvfs: NFS's 8 EiB answer cannot be produced by a local file system."""
    blocks, files = (8 << 60) // 4096, 1 << 62
    return os.statvfs_result((4096, 4096, blocks, blocks, blocks, files, files, files, 0, 255))


@pytest.mark.asyncio
async def test_capacity_falls_back_to_statvfs_but_never_to_nfs_infinity(
    make_collector: Callable[..., VolumeStatsCollector], tmp_path: Path
) -> None:
    collector = make_collector()
    real = await ask(collector, request(tmp_path, FS_A, "v"))
    fs = os.statvfs(tmp_path)
    assert real.total_bytes == fs.f_blocks * fs.f_frsize
    infinite = nfs_statvfs(tmp_path)
    answer = await ask(collector, request(tmp_path, FS_A, "v"), infinite)
    assert answer.total_bytes is None and answer.available_bytes is None
    assert answer.total_inodes is None
    sized = await ask(collector, request(tmp_path, FS_A, "v", capacity=5 << 30), infinite)
    assert sized.total_bytes == 5 << 30


@pytest.mark.asyncio
async def test_run_cancels_pending_walks_and_stops_threads(tmp_path: Path) -> None:
    walker = GatedWalker()  # never opened: the walk only ends through the stop signal
    collector = VolumeStatsCollector(
        CollectorSettings(walks_per_file_system=1, first_answer_wait_s=0), walker=walker)
    lifetime = asyncio.create_task(collector.run())
    for i in range(3):
        await ask(collector, request(tmp_path, FS_A, f"v{i}"))
    await wait_for(lambda: walker.running_now(FS_A) == 1)
    lifetime.cancel()
    with pytest.raises(asyncio.CancelledError):
        await lifetime
    assert collector.queue_depth == 0
    # Closing waited for the walk's thread to see the stop signal and return: nothing runs.
    assert walker.running_now(FS_A) == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("walk:")]
    with pytest.raises(Unavailable):  # closed: nothing new scheduled
        await ask(collector, request(tmp_path, FS_A, "v9"))
    assert collector.queue_depth == 0


@pytest.mark.asyncio
async def test_volumes_nobody_asks_about_are_forgotten(
    make_collector: Callable[..., VolumeStatsCollector], tmp_path: Path
) -> None:
    clock = Clock()
    walker = GatedWalker()
    walker.gate.set()
    collector = make_collector(walker=walker, clock=clock)
    old, busy = request(tmp_path, FS_A, "old"), request(tmp_path, FS_A, "busy")
    await ask(collector, old)
    await ask(collector, busy)
    await collector.wait_idle()
    for _ in range(4):  # "busy" keeps being asked for; "old" (unstaged) is not
        clock.now += 500
        assert (await ask(collector, busy)).used_bytes == 4096
        await collector.wait_idle()
    assert (await ask(collector, old)).used_bytes is None  # its entry was dropped


@pytest.mark.asyncio
async def test_a_partly_unreadable_volume_is_measured_on_schedule_and_says_so(
        make_collector: Callable[..., VolumeStatsCollector], tmp_path: Path) -> None:
    """Entries the node may not read leave a lower bound, not a failure: no retry storm, the
    next walk when the figure is old, and the condition's message says how many were left
    out (the condition stays normal: the volume is healthy)."""
    walker = GatedWalker()
    walker.gate.set()
    walker.unreadable = 3
    clock = Clock()
    collector = make_collector(walker=walker, clock=clock)
    req = request(tmp_path, FS_A, "vol1")
    await ask(collector, req)
    await collector.wait_idle()
    answer = await ask(collector, req)
    assert answer.used_bytes == 4096 and answer.used_inodes == 3
    assert not answer.abnormal
    assert "3 entries could not be read" in answer.message
    for _ in range(5):  # asked again and again before the refresh period: no walk
        clock.now += 60
        await ask(collector, req)
    await collector.wait_idle()
    assert len(walker.calls) == 1
    clock.now += 600  # the refresh period (fixture): the next walk, as for any figure
    walker.unreadable = 0
    await ask(collector, req)
    await collector.wait_idle()
    assert len(walker.calls) == 2
    assert (await ask(collector, req)).message == ""


@pytest.mark.asyncio
async def test_the_longest_running_walk_and_partial_walks_are_reported(
        make_collector: Callable[..., VolumeStatsCollector], tmp_path: Path) -> None:
    """What the "walks too slow for their refresh" alert reads: how long the longest walk now
    running has run, against the refresh period; and what a partial walk left out."""
    walker = GatedWalker()
    walker.unreadable = 2
    recorder = DepthRecorder()
    clock = Clock()
    collector = make_collector(walker=walker, clock=clock, observer=recorder)
    assert collector.refresh_period_s == 600
    assert collector.longest_walk_s() == 0
    await ask(collector, request(tmp_path, FS_A, "slow"))
    await wait_for(lambda: walker.running_now(FS_A) == 1)
    clock.now += 700  # longer than the refresh period, still running
    await ask(collector, request(tmp_path, FS_A, "other"))
    await wait_for(lambda: walker.running_now(FS_A) == 2)
    clock.now += 5
    assert collector.longest_walk_s() == 705
    walker.gate.set()
    await collector.wait_idle()
    assert collector.longest_walk_s() == 0
    assert recorder.walks == [True, True]
    assert recorder.unreadable == [2, 2]
