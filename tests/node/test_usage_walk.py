"""The concurrent usage walk: the same figures as ``du`` and as the one-at-a-time walk on awkward
trees (real and through a real FUSE mount that adds latency), never more calls in flight than
allowed, and a stop that leaves no thread or descriptor behind."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from efs_csi_node.usage_walk import Usage, WalkCalls, WalkCancelled, measure_usage
from testbed.slowfs import libfuse_available, slow_mount
from tests.support.ci import require_root, skip_or_fail
from tests.support.du import du, du_usage

ODD_NAMES = [b"caf\xe9", b"new\nline", b" spaced ", b"-dash", b"x" * 255,
             "\u00e9t\u00e9".encode(), b"*?[", b".hidden"]


def build_awkward_tree(root: Path, outside: Path) -> None:
    """Hard links (within the tree, across directories, to a file outside it), symlinks that
    must not be followed, odd names, deep nesting, a wide directory, a FIFO, a sparse file."""
    raw = os.fsencode(root)
    for index, name in enumerate(ODD_NAMES):
        os.mkdir(raw + b"/" + name)
        with open(raw + b"/" + name + b"/" + name, "wb") as handle:
            handle.write(b"o" * (index * 700))
    (root / "links-a").mkdir()
    (root / "links-b").mkdir()
    (root / "links-a" / "three").write_bytes(os.urandom(20_000))
    os.link(root / "links-a" / "three", root / "links-b" / "three-2")
    os.link(root / "links-a" / "three", root / ODD_NAMES[1].decode("utf-8", "surrogateescape")
            / "three-3")
    (outside / "shared").write_bytes(os.urandom(9_000))
    os.link(outside / "shared", root / "links-b" / "shared-from-outside")
    (root / "dangling").symlink_to("nowhere")
    (root / "to-dir").symlink_to(root / "links-a")
    (root / "to-parent").symlink_to("..")
    (root / "loop").symlink_to("loop")
    deep = root
    for level in range(120):
        deep = deep / f"l{level}"
        deep.mkdir()
        (deep / "f").write_bytes(b"d" * (level * 10))
    (deep / "bottom-link").symlink_to(root / "links-a" / "three")
    wide = root / "wide"
    wide.mkdir()
    for index in range(700):
        (wide / f"w{index}").write_bytes(b"w" * (index % 9 * 1000))
    for index in range(0, 700, 50):
        os.link(wide / f"w{index}", root / "links-a" / f"wide-{index}")
    for index in range(40):
        (root / "many" / f"d{index}").mkdir(parents=True)
        (root / "many" / f"d{index}" / "f").write_bytes(b"m" * 4097)
    (root / "empty").mkdir()
    os.mkfifo(root / "fifo")
    with open(root / "sparse", "wb") as handle:
        handle.truncate(10 << 20)


@pytest.fixture
def awkward_tree(tmp_path: Path) -> Path:
    root, outside = tmp_path / "tree", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    build_awkward_tree(root, outside)
    return root


class SlowedCalls:
    """The real calls, each stat made to take ``delay_s`` (as over a network), recording which
    threads made them. A fake, because a local file system answers in microseconds and the
    walk rightly stays on one thread there; the slowfs test below does this for real."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.threads: set[str] = set()
        self.real = WalkCalls()

    def stat_entry(self, entry: os.DirEntry[str]) -> os.stat_result:
        self.threads.add(threading.current_thread().name)
        threading.Event().wait(self.delay_s)
        return self.real.stat_entry(entry)

    def walk_calls(self) -> WalkCalls:
        return WalkCalls(stat_entry=self.stat_entry)


def build_tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "c").mkdir()
    for i in range(30):
        (root / "a" / f"small{i}").write_bytes(b"x" * (i * 300))
    (root / "a" / "b" / "big").write_bytes(os.urandom(1 << 20))
    os.link(root / "a" / "b" / "big", root / "c" / "big-link")
    os.link(root / "a" / "small3", root / "small3-link")
    os.link(root / "a" / "small3", root / "c" / "small3-link2")
    (root / "dangling").symlink_to("nowhere")
    (root / "c" / "dirlink").symlink_to(root / "a")


@pytest.mark.slow  # du
def test_walk_matches_du_bytes_and_inodes(tmp_path: Path) -> None:
    build_tree(tmp_path)
    usage = measure_usage(tmp_path)
    assert usage == Usage(used_bytes=du(tmp_path, "-B1"), used_inodes=du(tmp_path, "--inodes"))
    assert usage.used_bytes >= 1 << 20


@pytest.mark.slow  # du
def test_hardlink_table_is_bounded_and_overflow_is_flagged(tmp_path: Path) -> None:
    # First links all in one directory, second links in another: the walk finishes one
    # directory before the other, so the table holds every first link at once.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for i in range(4):
        (tmp_path / "a" / f"f{i}").write_bytes(b"y" * 5000)
        os.link(tmp_path / "a" / f"f{i}", tmp_path / "b" / f"g{i}")
    exact = measure_usage(tmp_path)
    assert exact.used_inodes == du(tmp_path, "--inodes") == 7
    untracked = measure_usage(tmp_path, hardlink_capacity=0)
    assert untracked.approximate
    assert untracked.used_inodes == exact.used_inodes + 4  # every second link counted again
    bounded = measure_usage(tmp_path, hardlink_capacity=1)
    assert bounded.approximate
    assert bounded.used_inodes == exact.used_inodes + 3  # the one tracked inode deduped


@pytest.mark.slow  # mount, as root
def test_walk_does_not_cross_into_another_mount(tmp_path: Path) -> None:
    require_root()
    build_tree(tmp_path)
    before = measure_usage(tmp_path)
    inner = tmp_path / "a" / "mnt"
    inner.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(inner)], check=True)
    try:
        (inner / "payload").write_bytes(os.urandom(4 << 20))
        after = measure_usage(tmp_path)
    finally:
        subprocess.run(["umount", str(inner)], check=True)
    assert after == before  # the mount point and all beneath it are another file system's


def test_walk_stops_when_told(tmp_path: Path) -> None:
    build_tree(tmp_path)
    stop = threading.Event()
    stop.set()
    with pytest.raises(WalkCancelled):
        measure_usage(tmp_path, stop=stop)


@pytest.mark.slow  # du
@pytest.mark.parametrize("concurrency", [1, 2, 16, 64])
def test_concurrent_walk_counts_exactly_like_du(awkward_tree: Path, concurrency: int) -> None:
    expected = du_usage(awkward_tree)
    slowed = SlowedCalls(0.0002)
    assert measure_usage(awkward_tree, concurrency=concurrency,
                         calls=slowed.walk_calls()) == expected
    assert (len(slowed.threads) > 1) == (concurrency > 1)  # the workers did share the walk
    assert measure_usage(awkward_tree, concurrency=concurrency) == expected  # local speed
    assert measure_usage(awkward_tree) == expected  # the one-at-a-time walk agrees


@pytest.mark.slow  # du, slowfs (a FUSE server process)
def test_walk_through_a_slow_fuse_mount_counts_like_du(awkward_tree: Path,
                                                       tmp_path: Path) -> None:
    """Real parts: the slowfs pass-through (real FUSE, real latency), the walk and du."""
    require_root()
    if not libfuse_available():
        skip_or_fail("libfuse 3 and /dev/fuse are needed (make test installs fuse3)")
    expected = du_usage(awkward_tree)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    with slow_mount(awkward_tree, mountpoint, delay_s=0.0002) as mounted:
        assert du_usage(mountpoint) == expected  # the pass-through hides nothing
    with slow_mount(awkward_tree, mountpoint, delay_s=0.0002) as mounted:
        concurrent = measure_usage(mountpoint, concurrency=16)
    assert concurrent == expected
    assert mounted.stats["peak_in_flight"] > 1  # the walk really had calls in flight together
    assert mounted.stats["by_kind"]["getattr"] >= expected.used_inodes
    with slow_mount(awkward_tree, mountpoint, delay_s=0.0002):
        assert measure_usage(mountpoint) == expected


class CountingCalls:
    """The real calls, counted while in flight.

    A fake is needed here: the bound is on the walk's own calls, and what a FUSE server sees in
    flight also holds requests the kernel makes on its own (RELEASEDIR, FORGET), so the server's
    count cannot show it. Each stat lingers ``linger_s`` so calls overlap as on a slow mount,
    and until ``target`` calls are in flight once, so the peak is reached whenever the walk
    allows it; the other calls are counted but not slowed.
    """

    def __init__(self, target: int, linger_s: float = 0.001) -> None:
        self.target = target
        self.linger_s = linger_s
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.calls = 0
        self.reached = threading.Event()
        self.real = WalkCalls()

    def _enter(self, hold: bool = False) -> None:
        with self.lock:
            self.in_flight += 1
            self.calls += 1
            self.peak = max(self.peak, self.in_flight)
            if self.in_flight >= self.target:
                self.reached.set()
        if hold:
            self.reached.wait(0.02)
            threading.Event().wait(self.linger_s)

    def _leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def counted(self, function: Callable[..., Any], hold: bool = False) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self._enter(hold)
            try:
                return function(*args)
            finally:
                self._leave()
        return call

    def listing(self, fd: int) -> CountedListing:
        return CountedListing(self, self.real.list_directory(fd))

    def walk_calls(self) -> WalkCalls:
        return WalkCalls(stat_root=self.counted(self.real.stat_root),
                         open_directory=self.counted(self.real.open_directory),
                         list_directory=self.listing,
                         stat_entry=self.counted(self.real.stat_entry, hold=True),
                         close=self.counted(self.real.close))


class CountedListing:
    """A directory listing whose every step (a possible getdents) counts as a call."""

    def __init__(self, calls: CountingCalls, entries: Iterator[os.DirEntry[str]]) -> None:
        self._calls = calls
        self._entries = entries

    def __iter__(self) -> CountedListing:
        return self

    def __next__(self) -> os.DirEntry[str]:
        self._calls._enter()
        try:
            return next(self._entries)
        finally:
            self._calls._leave()

    def close(self) -> None:
        close = getattr(self._entries, "close", None)
        if close is not None:
            close()


@pytest.mark.slow  # du
@pytest.mark.parametrize("concurrency", [1, 4, 12])
def test_never_more_calls_in_flight_than_the_concurrency(tmp_path: Path,
                                                         concurrency: int) -> None:
    (tmp_path / "huge").mkdir()  # one wide directory: all workers must share it
    for index in range(400):
        (tmp_path / "huge" / f"f{index}").write_bytes(b"h")
    for index in range(30):
        (tmp_path / f"d{index}").mkdir()
        for inner in range(10):
            (tmp_path / f"d{index}" / f"g{inner}").write_bytes(b"g")
    calls = CountingCalls(target=concurrency)
    usage = measure_usage(tmp_path, concurrency=concurrency, calls=calls.walk_calls())
    assert usage == du_usage(tmp_path)
    assert calls.peak == concurrency  # reached, and never passed
    assert calls.calls > 700


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_stop_ends_every_worker_and_closes_every_directory(tmp_path: Path) -> None:
    for index in range(40):
        (tmp_path / f"d{index}").mkdir()
        for inner in range(50):
            (tmp_path / f"d{index}" / f"f{inner}").write_bytes(b"s")
    stop = threading.Event()
    calls = CountingCalls(target=1, linger_s=0.002)
    real_stat = calls.walk_calls().stat_entry

    def stat_then_stop(entry: os.DirEntry[str]) -> os.stat_result:
        if calls.calls > 300:
            stop.set()
        return real_stat(entry)

    counted = calls.walk_calls()
    slow = WalkCalls(counted.stat_root, counted.open_directory, counted.list_directory,
                     stat_then_stop, counted.close)
    before = open_descriptors()
    outcome: list[BaseException] = []

    def walk() -> None:
        try:
            measure_usage(tmp_path, stop=stop, concurrency=8, calls=slow)
        except BaseException as exc:
            outcome.append(exc)

    walker = threading.Thread(target=walk, name="walk-stop-test")
    walker.start()
    walker.join(30)
    assert not walker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], WalkCancelled)
    # measure_usage returned only after its workers ended: none is left, nothing is open.
    assert not [t for t in threading.enumerate() if t.name.startswith("walk-stop-test")]
    assert calls.in_flight == 0
    assert open_descriptors() == before
    assert calls.calls < 40 * 50  # it stopped early, it did not finish the tree


def test_an_error_in_one_worker_fails_the_walk_and_stops_the_others(tmp_path: Path) -> None:
    for index in range(20):
        (tmp_path / f"d{index}").mkdir()
        for inner in range(30):
            (tmp_path / f"d{index}" / f"f{inner}").write_bytes(b"e")
    real = WalkCalls()
    seen = 0
    lock = threading.Lock()

    def failing_stat(entry: os.DirEntry[str]) -> os.stat_result:
        nonlocal seen
        with lock:
            seen += 1
            if seen == 200:
                raise OSError(errno.EIO, "Input/output error")
        return real.stat_entry(entry)

    before = open_descriptors()
    with pytest.raises(OSError) as caught:
        measure_usage(tmp_path, concurrency=6, calls=WalkCalls(stat_entry=failing_stat))
    assert caught.value.errno == errno.EIO
    assert open_descriptors() == before
    assert seen < 20 * 30


@pytest.mark.slow  # du
def test_directories_removed_or_replaced_while_walking_are_skipped(tmp_path: Path) -> None:
    for name in ("kept", "removed", "replaced"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_bytes(b"r" * 5000)
    real = WalkCalls()

    def racing_open(name: bytes, parent: int | None) -> int:
        if name == b"removed":
            raise FileNotFoundError(errno.ENOENT, "gone")
        if name == b"replaced":
            raise OSError(errno.ELOOP, "now a symlink")
        return real.open_directory(name, parent)

    usage = measure_usage(tmp_path, concurrency=4, calls=WalkCalls(open_directory=racing_open))
    full = du_usage(tmp_path)
    one_file = du(tmp_path / "kept" / "f", "-B1")
    # The two directories themselves were counted when listed; their files were never seen.
    assert usage == Usage(full.used_bytes - 2 * one_file, full.used_inodes - 2)


def test_concurrency_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        measure_usage(tmp_path, concurrency=0)
