"""NodeGetVolumeStats with the usage collector, through gRPC and the real binary, on volumes
served by slowfs (a real FUSE mount with real latency, standing in for EFS's round trips):
no ``used`` figure before a walk has measured one, the walk-concurrency flag reaching the walk
(its parsing: tests/node/test_main.py), and a collector that closes without leaving a walk's
thread behind. The node's own readers never make an unmount fail with "target is busy": an
unpublish stops a walk running under its target, and an unstage waits for a mount-health probe
in flight at its staging path (the probe skips a path being unstaged)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
import pytest_asyncio
from grpclib.testing import ChannelFor

from efs_csi import csi
from efs_csi.mounting.blocking import BlockingCalls
from efs_csi.mounting.commands import CommandRunner
from efs_csi.mounting.health import PathProbe
from efs_csi.mounting.local import LocalMounter
from efs_csi.mounting.mount import MountCommands
from efs_csi_node.app import STAT_TIMEOUT, NodeParts, build_node
from efs_csi_node.locks import path_key
from efs_csi_node.mount_health import MountHealth
from efs_csi_node.service import NodeServiceConfig
from efs_csi_node.stats import StatsRequest
from efs_csi_node.volume_stats import CollectorSettings, VolumeStatsCollector
from efs_csi_node.zone import NodeZone
from testbed.csi_builders import publish_request, stage_request
from testbed.processes import StartBinary
from testbed.slowfs import SlowMount, libfuse_available, slow_mount
from tests.support.ci import skip_or_fail
from tests.support.node import FS_ID, unpublish_and_unstage
from tests.support.scrape import scrape, value

CAPACITY = 5 << 30
T = TypeVar("T")


def du(path: Path, *flags: str) -> int:
    out = subprocess.run(["du", "-s", *flags, str(path)], check=True, capture_output=True).stdout
    return int(out.split()[0])


@dataclass
class SlowEfs:
    """A local-backend root whose file system directory is served through slowfs."""

    root: Path  # the slowfs mount point: --local-root
    backing: Path  # where the files really are
    work: Path  # staging and target paths
    mount: SlowMount


@contextlib.contextmanager
def slow_efs(base: Path, *, delay_s: float, directories: int,
             files_per_directory: int) -> Iterator[SlowEfs]:
    if not libfuse_available():
        skip_or_fail("libfuse 3 and /dev/fuse are needed (make test installs fuse3)")
    backing = base / "backing"
    volume = backing / FS_ID
    for index in range(directories):
        (volume / f"d{index}").mkdir(parents=True)
        for inner in range(files_per_directory):
            (volume / f"d{index}" / f"f{inner}").write_bytes(b"v" * (inner * 100))
    root = base / "efs"
    root.mkdir()
    with slow_mount(backing, root, delay_s=delay_s) as mounted:
        yield SlowEfs(root, backing, base / "kubelet", mounted)


@pytest.fixture
def make_slow_efs(mounts_cleaned: Path) -> Iterator[Callable[..., SlowEfs]]:
    with contextlib.ExitStack() as stack:
        def make(*, delay_s: float, directories: int, files_per_directory: int) -> SlowEfs:
            return stack.enter_context(slow_efs(mounts_cleaned, delay_s=delay_s,
                                                directories=directories,
                                                files_per_directory=files_per_directory))
        yield make


@dataclass
class StatsNode:
    stub: csi.NodeStub
    collector: VolumeStatsCollector
    parts: NodeParts


class StatsNodeFactory(Protocol):
    def __call__(self, root: Path, settings: CollectorSettings, *,
                 statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
                 ) -> contextlib.AbstractAsyncContextManager[StatsNode]: ...


@pytest_asyncio.fixture
async def stats_node() -> AsyncIterator[StatsNodeFactory]:
    """A node assembled like the binary's (``build_node``) with the usage collector for stats;
    ``statvfs``: its stats probe's."""

    @contextlib.asynccontextmanager
    async def make(root: Path, settings: CollectorSettings, *,
                   statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
                   ) -> AsyncIterator[StatsNode]:
        commands = MountCommands(CommandRunner(), mount_timeout=20, unmount_timeout=10)
        blocking = BlockingCalls()
        collector = VolumeStatsCollector(settings, blocking=blocking)
        parts = build_node(NodeServiceConfig("node-a", 16, volume_stats=True),
                           LocalMounter(root, commands, blocking, None), commands,
                           zone=NodeZone.known("us-east-1a"), blocking=blocking, usage=collector,
                           probe=PathProbe(blocking, STAT_TIMEOUT, statvfs=statvfs))
        try:
            async with ChannelFor([parts.service]) as channel:
                yield StatsNode(csi.NodeStub(channel), collector, parts)
        finally:
            await collector.aclose()

    yield make


def holding_the_path(seconds: float, call: Callable[[int], T],
                     asked: list[str]) -> Callable[[str], T]:
    """A stat or statvfs that holds its path for ``seconds``, as one waiting on a slow NFS
    server does (a fake: FUSE answers a cached getattr without a round trip)."""

    def held(path: str) -> T:
        asked.append(path)
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)  # the path in use
        try:
            time.sleep(seconds)
            return call(descriptor)
        finally:
            os.close(descriptor)

    return held


def threads_named(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def walk_threads() -> list[threading.Thread]:
    return threads_named("walk:")


def by_unit(reply: csi.NodeGetVolumeStatsResponse) -> dict[csi.VolumeUsageUnit, csi.VolumeUsage]:
    return {usage.unit: usage for usage in reply.usage}


@pytest.mark.asyncio
async def test_stats_before_the_first_walk_ends_carry_no_usage_then_the_measured_figures(
    make_slow_efs: Callable[..., SlowEfs], stats_node: StatsNodeFactory
) -> None:
    """Real parts throughout: a walk one call at a time over 60 entries at 20 ms each cannot
    end within the first answer's 0.1 s wait, so the first answer is "not measured yet"."""
    efs = make_slow_efs(delay_s=0.02, directories=2, files_per_directory=30)
    settings = CollectorSettings(first_answer_wait_s=0.1, walk_concurrency=1)
    staging, target = efs.work / "staging", efs.work / "pod" / "vol"
    async with stats_node(efs.root, settings) as node:
        await node.stub.node_stage_volume(stage_request(
            FS_ID, staging, context={"capacityBytes": str(CAPACITY)}))
        await node.stub.node_publish_volume(publish_request(FS_ID, staging, target))
        request = csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(target))
        first = await node.stub.node_get_volume_stats(request)
        # Nothing measured: no entry at all (an entry would read as used 0, available 0).
        assert first.usage == []
        assert first.volume_condition is not None and not first.volume_condition.abnormal
        assert node.collector.queue_depth == 1  # the walk is under way, not given up
        await node.collector.wait_idle()
        measured = await node.stub.node_get_volume_stats(request)
        await node.stub.node_unpublish_volume(
            csi.NodeUnpublishVolumeRequest(volume_id=FS_ID, target_path=str(target)))
        await node.stub.node_unstage_volume(
            csi.NodeUnstageVolumeRequest(volume_id=FS_ID, staging_target_path=str(staging)))
    volume = efs.backing / FS_ID
    units = by_unit(measured)
    assert units[csi.VolumeUsageUnit.BYTES].used == du(volume, "-B1")
    assert units[csi.VolumeUsageUnit.BYTES].total == CAPACITY
    assert units[csi.VolumeUsageUnit.BYTES].available == CAPACITY - du(volume, "-B1")
    assert units[csi.VolumeUsageUnit.INODES].used == du(volume, "--inodes")


@pytest.mark.asyncio
async def test_a_small_volume_is_measured_by_the_first_answer(
    mounts_cleaned: Path, stats_node: StatsNodeFactory
) -> None:
    root, work = mounts_cleaned / "efs", mounts_cleaned / "kubelet"
    (root / FS_ID / "sub").mkdir(parents=True)
    (root / FS_ID / "sub" / "data").write_bytes(os.urandom(300_000))
    staging, target = work / "staging", work / "pod" / "vol"
    async with stats_node(root, CollectorSettings()) as node:
        await node.stub.node_stage_volume(stage_request(
            FS_ID, staging, context={"capacityBytes": str(CAPACITY)}))
        await node.stub.node_publish_volume(publish_request(FS_ID, staging, target))
        first = await node.stub.node_get_volume_stats(
            csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(target)))
        await node.stub.node_unpublish_volume(
            csi.NodeUnpublishVolumeRequest(volume_id=FS_ID, target_path=str(target)))
        await node.stub.node_unstage_volume(
            csi.NodeUnstageVolumeRequest(volume_id=FS_ID, staging_target_path=str(staging)))
    units = by_unit(first)
    assert units[csi.VolumeUsageUnit.BYTES].used == du(root / FS_ID, "-B1")
    assert units[csi.VolumeUsageUnit.INODES].used == 3


@pytest.mark.asyncio
async def test_closing_the_collector_stops_a_walk_on_a_slow_mount_leaving_no_thread(
    make_slow_efs: Callable[..., SlowEfs]
) -> None:
    efs = make_slow_efs(delay_s=0.005, directories=30, files_per_directory=100)
    collector = VolumeStatsCollector(CollectorSettings(first_answer_wait_s=0,
                                                       walk_concurrency=8))
    volume = efs.root / FS_ID
    first = await collector.figures(StatsRequest(FS_ID, FS_ID, volume), os.statvfs(volume))
    assert first.used_bytes is None
    while len(walk_threads()) < 8:  # noqa: ASYNC110 - threads have no event to await
        await asyncio.sleep(0.01)
    await collector.aclose()
    # aclose returned after the walk's eight threads had ended: none is left, none runs.
    assert walk_threads() == []
    assert collector.queue_depth == 0


@pytest.mark.asyncio
async def test_the_walk_concurrency_flag_bounds_the_binary_walk(
    binary: StartBinary, mounts_cleaned: Path, unused_tcp_port: int
) -> None:
    """The real binary walks a slowfs volume: the server never sees more than the flag's
    three requests at once (each call of the walk waits for one request at a time), and the
    walk does overlap them. While the walk runs nothing else touches the mount: the first
    stats call waits for the walk before its statvfs, and progress is read from /metrics."""
    port = unused_tcp_port
    with slow_efs(mounts_cleaned, delay_s=0.002, directories=20,
                  files_per_directory=40) as efs:
        staging, target = efs.work / "staging", efs.work / "pod" / "vol"
        node = await binary("node", ["--mount-backend", "local", "--local-root", str(efs.root),
                                     "--availability-zone", "zone-x", "--vol-metrics-opt-in",
                                     "--vol-metrics-walk-concurrency", "3",
                                     "--http-endpoint", f"127.0.0.1:{port}"])
        channel = node.channel()
        try:
            stub = csi.NodeStub(channel)
            await stub.node_stage_volume(stage_request(FS_ID, staging, context={
                "capacityBytes": str(CAPACITY)}))
            await stub.node_publish_volume(publish_request(FS_ID, staging, target))
            request = csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(target))
            reply = await stub.node_get_volume_stats(request)
            walked = "efs_csi_node_volume_stats_walk_duration_seconds_count"
            while value(await scrape(port), walked, outcome="ok") < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            reply = await stub.node_get_volume_stats(request)
            await unpublish_and_unstage(stub, FS_ID, staging, target)
        finally:
            channel.close()
        assert await node.stop() == 0
    assert by_unit(reply)[csi.VolumeUsageUnit.BYTES].used == du(efs.backing / FS_ID, "-B1")
    assert efs.mount.stats["by_kind"]["getattr"] >= 20 * 40
    assert 2 <= efs.mount.stats["peak_in_flight"] <= 3


@pytest.mark.asyncio
async def test_an_unpublish_stops_the_walk_under_its_target_which_is_not_a_failure(
    make_slow_efs: Callable[..., SlowEfs], stats_node: StatsNodeFactory
) -> None:
    """A walk keeps directories of the target open: unmounting it under the walk fails with
    "target is busy" until the walk ends (hours on a large volume). The unpublish stops it; the
    volume's next stats call, through another pod's target, walks again at once (no backoff)."""
    efs = make_slow_efs(delay_s=0.02, directories=4, files_per_directory=50)
    settings = CollectorSettings(first_answer_wait_s=0.1, walk_concurrency=1)
    staging = efs.work / "staging"
    target, other = efs.work / "pod-a" / "vol", efs.work / "pod-b" / "vol"
    async with stats_node(efs.root, settings) as node:
        await node.stub.node_stage_volume(stage_request(
            FS_ID, staging, context={"capacityBytes": str(CAPACITY)}))
        for path in (target, other):
            await node.stub.node_publish_volume(publish_request(FS_ID, staging, path))
        first = await node.stub.node_get_volume_stats(
            csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(target)))
        assert first.usage == []  # the walk of some 200 entries at 20 ms each is under way
        while not walk_threads():  # noqa: ASYNC110 - threads have no event to await
            await asyncio.sleep(0.01)
        await node.stub.node_unpublish_volume(
            csi.NodeUnpublishVolumeRequest(volume_id=FS_ID, target_path=str(target)))
        assert not target.exists()
        assert walk_threads() == [] and node.collector.queue_depth == 0
        request = csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(other))
        await node.stub.node_get_volume_stats(request)
        assert node.collector.queue_depth == 1  # walked again at once: no failure's backoff
        await node.collector.wait_idle()
        measured = await node.stub.node_get_volume_stats(request)
        await unpublish_and_unstage(node.stub, FS_ID, staging, other)
    assert by_unit(measured)[csi.VolumeUsageUnit.BYTES].used == du(efs.backing / FS_ID, "-B1")


@pytest.mark.asyncio
async def test_an_unstage_waits_for_a_health_probe_in_flight_which_skips_a_path_held(
    make_slow_efs: Callable[..., SlowEfs], stats_node: StatsNodeFactory
) -> None:
    """The health probe's stat holds the staging path for 0.5 s (``holding_the_path``): it is in
    flight when the unstage arrives, and the unmount must not meet it."""
    efs = make_slow_efs(delay_s=0.01, directories=1, files_per_directory=1)
    staging = efs.work / "staging"
    async with stats_node(efs.root, CollectorSettings()) as node:
        parts, probed = node.parts, list[str]()
        probe = PathProbe(parts.blocking, 5.0, stat=holding_the_path(0.5, os.fstat, probed))
        health = MountHealth(parts.stager.staged, probe, parts.ops.table, parts.locks)
        await node.stub.node_stage_volume(stage_request(FS_ID, staging))
        async with parts.locks.hold([path_key(staging)]):  # as a stage or an unstage does
            await health.check()
        assert probed == []  # skipped, not waited for
        checking = asyncio.create_task(health.check())
        while not threads_named(f"stat:{staging}"):  # noqa: ASYNC110 - a thread, no event
            await asyncio.sleep(0.01)
        await node.stub.node_unstage_volume(
            csi.NodeUnstageVolumeRequest(volume_id=FS_ID, staging_target_path=str(staging)))
        assert checking.done() and probed == [str(staging)]
        assert parts.ops.table().at(staging) is None and health.snapshot() == []


@pytest.mark.asyncio
async def test_an_unpublish_waits_for_a_stats_probe_in_flight_at_its_target(
    make_slow_efs: Callable[..., SlowEfs], stats_node: StatsNodeFactory
) -> None:
    """NodeGetVolumeStats's statvfs holds the target for 0.5 s when the unpublish arrives: the
    stats call is answered (the mount healthy) and the unmount does not meet it."""
    efs = make_slow_efs(delay_s=0.01, directories=1, files_per_directory=1)
    staging, target = efs.work / "staging", efs.work / "pod" / "vol"
    asked: list[str] = []
    settings = CollectorSettings(first_answer_wait_s=0)
    async with stats_node(efs.root, settings,
                          statvfs=holding_the_path(0.5, os.fstatvfs, asked)) as node:
        await node.stub.node_stage_volume(stage_request(FS_ID, staging, context={
            "capacityBytes": str(CAPACITY)}))
        await node.stub.node_publish_volume(publish_request(FS_ID, staging, target))
        stats = asyncio.create_task(node.stub.node_get_volume_stats(
            csi.NodeGetVolumeStatsRequest(volume_id=FS_ID, volume_path=str(target))))
        while not threads_named(f"statvfs:{target}"):  # noqa: ASYNC110 - a thread, no event
            await asyncio.sleep(0.01)
        await unpublish_and_unstage(node.stub, FS_ID, staging, target)
        answered = await stats
    assert asked == [str(target)]
    assert answered.volume_condition is not None and not answered.volume_condition.abnormal
    assert not target.exists()
