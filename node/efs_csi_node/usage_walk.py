"""Measuring a volume's usage like ``du``: a bounded-memory, optionally concurrent tree walk.

``measure_usage`` blocks on the file system: run it in a worker thread. It does not cross into
other mounts (st_dev), counts each hard-linked inode once while the link table has room, and
reports bytes as allocated blocks (``st_blocks * 512``, as ``du -B1``) and inodes as files,
directories and symlinks (as ``du --inodes``); symlinks are counted, never followed.

Whatever the tree holds, it gives a figure, as ``du`` does under the same privileges:

- what cannot be read is counted out, not fatal: a directory that cannot be opened (a 700
  directory of another uid, as EFS's root squashing makes them) counts itself but nothing
  beneath it, an entry that cannot be looked up is not counted, and ``Usage.unreadable`` says
  how many such entries there were;
- every directory is opened relative to its parent's descriptor (openat, then scandir and
  fstatat on descriptors), never by path, so a tree deeper than PATH_MAX is measured too. A
  directory's descriptor stays open until its subdirectories are opened (at most about one per
  level of the deepest branch being walked);
- a directory that is its own ancestor (the same st_dev and st_ino: a bind mount of the volume,
  or of one of its directories, inside itself) is not counted again, nor walked into, as
  ``du`` skips such a cycle.

Why concurrent: on EFS every lookup and every page of a directory listing is a network round
trip (about a millisecond), so a walk that waits for one entry at a time (as ``du`` and the
reference driver do) is bound by latency, not by the CPU. With ``concurrency`` N the walk keeps
up to N operations in flight: N worker threads (the calling thread is the first), each making
one blocking call at a time, so no more than N calls are ever outstanding. The calling thread
starts alone and adds the other N - 1 only once two batches in a row took over
``_SLOW_ENTRY_S`` per entry: on a local or fully cached file system calls take microseconds,
the walk is CPU-bound, and more threads would only contend for the GIL.

How work is shared: a worker takes a directory of its own while fewer than N are being read,
so workers spread over different directories (file systems that serialise lookups within one
directory, as FUSE does, still get N-fold parallelism), and joins the directory with the
fewest readers otherwise, so one huge directory is read by all of them. A shared directory
hands out its entries in small batches from one listing; a worker that shares a directory
moves to a waiting one after its batch. Memory stays bounded: at most about 2N directories are
open (a descriptor each), each worker holds one batch, and directories still to visit are kept
as names on a depth-first stack, each with the directory it was found in.

The walk stops at the next call when ``stop`` is set (workers waiting for work check it every
``_IDLE_POLL_S``) and only returns once every worker thread has finished.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Inodes with several links whose other links have not been seen yet. Each costs ~100 bytes of
# dict, so 100k keeps the walk's memory under ~10 MiB whatever the tree's size. Past it, further
# multiply-linked files are counted every time they are met (an over-count, flagged in the
# result) rather than letting memory grow with the tree.
DEFAULT_HARDLINK_CAPACITY = 100_000

# Operations in flight per walk (``--vol-metrics-walk-concurrency``). At ~1 ms per round trip
# this is ~16x the rate of a one-at-a-time walk; per file system the collector runs at most
# ``--vol-metrics-fs-rate-limit`` walks, so a file system sees at most their product.
DEFAULT_WALK_CONCURRENCY = 16

# Entries a worker takes from a shared directory at once: small, so a directory of a few
# hundred entries still spreads over many workers.
_BATCH = 16
# How often a worker waiting for work looks at ``stop`` (nothing else wakes it).
_IDLE_POLL_S = 0.02
# Time per entry (listing and stat) above which the file system counts as slow: a local stat
# costs a few microseconds, a network round trip hundreds.
_SLOW_ENTRY_S = 50e-6
_OPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A directory removed, or replaced by a file or a symlink, while we walked: nothing to count.
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
# What we may not read (root squashing makes the node's root an ordinary user): counted out.
_DENIED = (errno.EACCES, errno.EPERM)


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    used_inodes: int
    # True when the hard-link table overflowed and some links may be counted twice.
    approximate: bool = False
    # Entries that could not be read (permission denied): directories whose contents are not
    # counted, and entries not counted at all. The figures are then a lower bound, as du's.
    unreadable: int = 0


class WalkCancelled(Exception):
    """The collector is shutting down; the walk stopped early."""


def _open_directory(name: bytes, parent: int | None) -> int:
    return os.open(name, _OPEN_FLAGS, dir_fd=parent)


def _list_directory(fd: int) -> Iterator[os.DirEntry[str]]:
    return os.scandir(fd)


def _stat_entry(entry: os.DirEntry[str]) -> os.stat_result:
    return entry.stat(follow_symlinks=False)


@dataclass(frozen=True)
class WalkCalls:
    """The blocking calls a walk makes, one at a time per worker.

    Passed in so tests can count the calls in flight; the defaults are the real ones.
    ``open_directory(name, parent)`` opens ``name`` relative to the descriptor ``parent`` (the
    root: its path, and None). ``list_directory`` returns an iterator whose every ``next`` may
    read the directory; its entries' ``stat`` is an fstatat on that directory's descriptor.
    """

    stat_root: Callable[[bytes], os.stat_result] = os.stat
    open_directory: Callable[[bytes, int | None], int] = _open_directory
    list_directory: Callable[[int], Iterator[os.DirEntry[str]]] = _list_directory
    stat_entry: Callable[[os.DirEntry[str]], os.stat_result] = _stat_entry
    close: Callable[[int], None] = os.close


class _Directory:
    """An open directory being read; its listing is shared between its readers. It stays open
    while subdirectories found in it wait to be opened (relative to its descriptor), and it
    is kept (without a descriptor) while anything beneath it is: its identity is what a
    directory found deeper down is checked against, for cycles."""

    __slots__ = ("entries", "exhausted", "fd", "identity", "lock", "parent", "readers",
                 "waiting_children")

    def __init__(self, parent: _Directory | None, identity: tuple[int, int], fd: int,
                 entries: Iterator[os.DirEntry[str]]) -> None:
        self.parent = parent
        self.identity = identity  # (st_dev, st_ino)
        self.fd = fd
        self.entries = entries
        self.lock = threading.Lock()  # one reader at a time advances the listing
        self.exhausted = False
        self.readers = 1
        self.waiting_children = 0  # found here, not opened yet (under the walk's lock)

    def closable(self) -> bool:
        return self.exhausted and self.readers == 0 and self.waiting_children == 0

    def has_ancestor(self, identity: tuple[int, int]) -> bool:
        """Whether this directory or one above it is ``identity``."""
        directory: _Directory | None = self
        while directory is not None:
            if directory.identity == identity:
                return True
            directory = directory.parent
        return False

    def next_batch(self) -> list[os.DirEntry[str]]:
        with self.lock:
            if self.exhausted:
                return []
            batch = list(itertools.islice(self.entries, _BATCH))
            if len(batch) < _BATCH:
                self.exhausted = True
            return batch


@dataclass(frozen=True)
class _Pending:
    """A directory found, not opened yet: ``name`` in ``parent`` (the root: its path, no
    parent)."""

    parent: _Directory | None
    name: bytes
    identity: tuple[int, int]


class _Stop(Exception):
    """Raised inside a worker when the walk is cancelled or has failed."""


class _Walk:
    """State shared by the workers of one walk. Counts are per worker, summed at the end."""

    def __init__(self, root: bytes, identity: tuple[int, int], *, calls: WalkCalls,
                 workers: int, stop: threading.Event | None, hardlink_capacity: int,
                 name: str) -> None:
        self._name = name
        self.helpers: list[threading.Thread] = []  # started once the file system proves slow
        self._slow_batches = 0
        self._device = identity[0]
        self._calls = calls
        self._workers = workers
        self._stop = stop
        self._capacity = hardlink_capacity
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Directories still to open, depth first.
        self._pending: list[_Pending] = [_Pending(None, root, identity)]
        self._open: list[_Directory] = []
        self._busy = 0  # workers holding a directory (or opening one)
        self._finished = False
        self.failure: BaseException | None = None
        self._links_lock = threading.Lock()
        # inode -> links not yet seen; dropped once all are seen, so it only holds "open" links.
        self._pending_links: dict[int, int] = {}
        self.approximate = False
        self.blocks = 0
        self.inodes = 0
        self.unreadable = 0

    def stopping(self) -> bool:
        return self.failure is not None or (self._stop is not None and self._stop.is_set())

    def work(self) -> None:
        """One worker: take directories and batches until the walk is done or stopped."""
        blocks = inodes = 0
        directory: _Directory | None = None
        try:
            while True:
                leaving, directory = directory, None  # released once, even if that fails
                job = self._next_job(leaving)
                if job is None:
                    break
                if isinstance(job, _Pending):
                    directory = self._open_job(job)
                    if directory is None:
                        continue
                else:
                    directory = job
                while True:
                    started = time.perf_counter()
                    batch = directory.next_batch()
                    if not batch:
                        break
                    found_blocks, found_inodes = self._count(directory, batch)
                    blocks += found_blocks
                    inodes += found_inodes
                    if not self.helpers:
                        self._judge_speed((time.perf_counter() - started) / len(batch))
                    if directory.readers > 1 and self._should_move(directory):
                        break  # others are on this directory and new ones wait: move on
        except _Stop:
            pass
        except BaseException as exc:  # handed to the caller of measure_usage
            with self._changed:
                if self.failure is None:
                    self.failure = exc
                self._changed.notify_all()
        finally:
            if directory is not None:
                self._release(directory)
            with self._lock:
                self.blocks += blocks
                self.inodes += inodes

    def _judge_speed(self, per_entry_s: float) -> None:
        """While alone: start the other workers after two slow batches in a row."""
        self._slow_batches = self._slow_batches + 1 if per_entry_s > _SLOW_ENTRY_S else 0
        if self._slow_batches < 2 or self._workers < 2:
            return
        # Only the calling thread runs before the helpers exist, so this happens once.
        self.helpers = [threading.Thread(target=self.work, name=f"{self._name}/{index}",
                                         daemon=True) for index in range(1, self._workers)]
        for helper in self.helpers:
            helper.start()

    def _next_job(self, leaving: _Directory | None) -> _Directory | _Pending | None:
        """The next directory to read (or a path to open); None when the walk is over.

        A directory this worker was the last to leave is closed here, outside the lock; the
        walk may be declared finished meanwhile, but ``measure_usage`` joins every worker
        before it returns, so no descriptor outlives the walk.
        """
        if leaving is not None:
            self._release(leaving)
        with self._changed:
            while True:
                if self.stopping() or self._finished:
                    return None
                readable = [d for d in self._open if not d.exhausted]
                if self._pending and len(readable) < self._workers:
                    self._busy += 1
                    return self._pending.pop()
                if readable:
                    directory = min(readable, key=lambda d: d.readers)
                    directory.readers += 1
                    self._busy += 1
                    return directory
                if self._busy == 0 and not self._pending:
                    self._finished = True
                    self._changed.notify_all()
                    return None
                self._changed.wait(_IDLE_POLL_S)

    def _leave(self, directory: _Directory) -> _Directory | None:
        """Under the lock: this worker is done with ``directory``; returns it if it must close."""
        directory.readers -= 1
        self._busy -= 1
        self._changed.notify_all()
        return self._unless_needed(directory)

    def _unless_needed(self, directory: _Directory | None) -> _Directory | None:
        """Under the lock: ``directory``, taken off the open list, if nothing needs it open."""
        if directory is not None and directory.closable() and directory in self._open:
            self._open.remove(directory)
            return directory
        return None

    def _release(self, directory: _Directory) -> None:
        with self._changed:
            to_close = self._leave(directory)
        if to_close is not None:
            self._close(to_close)

    def _close(self, directory: _Directory) -> None:
        close = getattr(directory.entries, "close", None)
        if close is not None:
            close()
        self._calls.close(directory.fd)

    def _open_job(self, job: _Pending) -> _Directory | None:
        """Open ``job`` (relative to its parent) for reading; None (and not busy any more) when
        it has gone or may not be read. Its parent closes once nothing waits on it."""
        try:
            if self.stopping():
                raise _Stop
            fd = self._calls.open_directory(job.name, job.parent.fd if job.parent else None)
        except (OSError, _Stop) as exc:
            with self._changed:
                self._busy -= 1
                parent = self._opened_in(job.parent)
                if isinstance(exc, OSError) and exc.errno in _DENIED:
                    self.unreadable += 1  # counted itself, when listed; nothing beneath it
                self._changed.notify_all()
            if parent is not None:
                self._close(parent)
            if isinstance(exc, OSError) and exc.errno in _GONE + _DENIED:
                return None
            raise
        with self._changed:
            parent = self._opened_in(job.parent)
        if parent is not None:
            self._close(parent)
        try:
            entries = self._calls.list_directory(fd)
        except BaseException:
            self._calls.close(fd)
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()
            raise
        directory = _Directory(job.parent, job.identity, fd, entries)
        with self._changed:
            self._open.append(directory)
            self._changed.notify_all()  # idle workers may share it
        return directory

    def _opened_in(self, parent: _Directory | None) -> _Directory | None:
        """Under the lock: a child of ``parent`` no longer waits to be opened; returns the
        parent if it must close now."""
        if parent is None:
            return None
        parent.waiting_children -= 1
        return self._unless_needed(parent)

    def _should_move(self, directory: _Directory) -> bool:
        """True if this worker should leave shared ``directory`` for one still to open."""
        with self._lock:
            readable = sum(1 for d in self._open if not d.exhausted)
            return directory.readers > 1 and bool(self._pending) and readable < self._workers

    def _found_directory(self, directory: _Directory, name: bytes,
                         identity: tuple[int, int]) -> None:
        # Published at once, not after the batch: an idle worker can start on it now.
        with self._changed:
            directory.waiting_children += 1
            self._pending.append(_Pending(directory, name, identity))
            self._changed.notify()

    def _count(self, directory: _Directory, batch: list[os.DirEntry[str]]) -> tuple[int, int]:
        blocks = inodes = denied = 0
        stat_entry = self._calls.stat_entry
        try:
            for entry in batch:
                if self.stopping():
                    raise _Stop
                try:
                    info = stat_entry(entry)
                except FileNotFoundError:
                    continue  # removed while we walked
                except OSError as exc:
                    if exc.errno not in _DENIED:
                        raise
                    denied += 1  # listed, but not ours to look at: not counted
                    continue
                if info.st_dev != self._device:
                    continue  # another mount: not this volume's usage
                if stat.S_ISDIR(info.st_mode):
                    identity = (info.st_dev, info.st_ino)
                    if directory.has_ancestor(identity):
                        continue  # a cycle (a bind mount inside itself): already counted
                    self._found_directory(directory, os.fsencode(entry.name), identity)
                elif info.st_nlink > 1 and not self._first_link(info.st_ino, info.st_nlink):
                    continue  # already counted through another link
                blocks += info.st_blocks
                inodes += 1
        finally:
            if denied:
                with self._lock:
                    self.unreadable += denied
        return blocks, inodes

    def _first_link(self, inode: int, links: int) -> bool:
        with self._links_lock:
            remaining = self._pending_links.get(inode)
            if remaining is not None:
                if remaining <= 1:
                    del self._pending_links[inode]
                else:
                    self._pending_links[inode] = remaining - 1
                return False
            if len(self._pending_links) < self._capacity:
                self._pending_links[inode] = links - 1
            else:
                self.approximate = True
            return True

    def close_leftovers(self) -> None:
        """After a failure or a stop: close what the stopped workers left open."""
        with self._lock:
            leftovers, self._open = self._open, []
        for directory in leftovers:
            self._close(directory)


def measure_usage(root: Path, *, stop: threading.Event | None = None,
                  hardlink_capacity: int = DEFAULT_HARDLINK_CAPACITY, concurrency: int = 1,
                  calls: WalkCalls | None = None) -> Usage:
    """Bytes (``st_blocks * 512``, as ``du -s -B1``) and inodes (as ``du -s --inodes``) under
    ``root``, root included, staying on root's device, counting each hard-linked file once and
    what may not be read out (``Usage.unreadable``).

    Blocking: run it in a thread. With ``concurrency`` above 1 it may start ``concurrency - 1``
    worker threads (named after the calling thread) and returns only after they have ended.
    Raises ``WalkCancelled`` when ``stop`` is set, or the first error a worker met.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    calls = calls or WalkCalls()
    root_path = os.fsencode(root)
    root_stat = calls.stat_root(root_path)
    walk = _Walk(root_path, (root_stat.st_dev, root_stat.st_ino), calls=calls,
                 workers=concurrency, stop=stop, hardlink_capacity=hardlink_capacity,
                 name=threading.current_thread().name)
    walk.work()  # starts the helpers itself if the file system is slow
    for helper in walk.helpers:
        helper.join()
    walk.close_leftovers()
    if walk.failure is not None:
        raise walk.failure
    if stop is not None and stop.is_set():
        raise WalkCancelled(str(root))
    return Usage(used_bytes=(root_stat.st_blocks + walk.blocks) * 512,
                 used_inodes=1 + walk.inodes, approximate=walk.approximate,
                 unreadable=walk.unreadable)
