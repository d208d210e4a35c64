"""Measuring a volume's usage like ``du``: one bounded-memory walk of a directory tree.

``measure_usage`` runs in a worker thread (it blocks on the file system). It does not cross
into other mounts (st_dev), counts each hard-linked inode once while the link table has room,
and reports bytes as allocated blocks (``st_blocks * 512``, as ``du -B1``) and inodes as
files plus directories (as ``du --inodes``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

# Inodes with several links whose other links have not been seen yet. Each costs ~100 bytes of
# dict, so 100k keeps the walk's memory under ~10 MiB whatever the tree's size. Past it, further
# multiply-linked files are counted every time they are met (an over-count, flagged in the
# result) rather than letting memory grow with the tree.
DEFAULT_HARDLINK_CAPACITY = 100_000


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    used_inodes: int
    # True when the hard-link table overflowed and some links may be counted twice.
    approximate: bool = False


class WalkCancelled(Exception):
    """The collector is shutting down; the walk stopped early."""


def measure_usage(root: Path, *, stop: threading.Event | None = None,
                  hardlink_capacity: int = DEFAULT_HARDLINK_CAPACITY) -> Usage:
    """Bytes (``st_blocks * 512``, as ``du -s -B1``) and inodes (as ``du -s --inodes``) under
    ``root``, root included, staying on root's device and counting each hard-linked file once.

    Blocking: run it in a thread. Each directory is opened once and its entries are stat'ed
    relative to that descriptor, so only one directory descriptor is open at a time.
    """
    root_stat = os.stat(root)
    device = root_stat.st_dev
    used_blocks = root_stat.st_blocks
    inodes = 1
    # inode -> links not yet seen; dropped once all are seen, so it only holds "open" links.
    pending_links: dict[int, int] = {}
    approximate = False
    directories = [os.fsencode(root)]
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    while directories:
        if stop is not None and stop.is_set():
            raise WalkCancelled(str(root))
        directory = directories.pop()
        try:
            fd = os.open(directory, flags)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed or replaced while we walked: nothing left to count
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if info.st_dev != device:
                        continue  # another mount: not this volume's usage
                    if entry.is_dir(follow_symlinks=False):
                        directories.append(directory + b"/" + os.fsencode(entry.name))
                    elif info.st_nlink > 1:
                        remaining = pending_links.get(info.st_ino)
                        if remaining is not None:
                            if remaining <= 1:
                                del pending_links[info.st_ino]
                            else:
                                pending_links[info.st_ino] = remaining - 1
                            continue  # already counted through another link
                        if len(pending_links) < hardlink_capacity:
                            pending_links[info.st_ino] = info.st_nlink - 1
                        else:
                            approximate = True
                    used_blocks += info.st_blocks
                    inodes += 1
        finally:
            os.close(fd)
    return Usage(used_bytes=used_blocks * 512, used_inodes=inodes, approximate=approximate)
