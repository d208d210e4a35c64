"""The FUSE server of ``slowfs``: a read-only pass-through of a directory, slowed per operation.

Run as its own process (``python -m testbed.slowfs BACKING MOUNTPOINT --delay-ms 1``), so its
threads and its share of the GIL stay apart from the walk being measured, as an NFS server would.

Every operation a tree walk causes sleeps ``delay`` before answering: LOOKUP and GETATTR (both
reach ``getattr`` in libfuse's high-level API), OPENDIR, each READDIR request (entries carry
offsets, so the kernel asks again for every page it reads, as an NFS client sends READDIR per
page), READLINK, STATFS, OPEN and READ. RELEASEDIR and RELEASE answer at once: the kernel sends
them without waiting, and NFS has no round trip for them (RELEASEDIR is left to libfuse).

What the kernel and Debian's libfuse 3.14 make different from NFS (both make the walk *slower*
here than on EFS, so a speed-up measured here is a lower bound):

- libfuse before 3.16 never passes FUSE_PARALLEL_DIROPS to the kernel, so the kernel serialises
  LOOKUP and READDIR within one directory (different directories proceed in parallel). An NFS
  client looks names up in one directory in parallel.
- libfuse 3.14.0 ignores ``-o max_threads``: ``fuse_main`` serves at most 10 requests at once.
  ``serve`` therefore runs libfuse's loop itself with a larger thread limit (``--threads``).

READDIRPLUS is turned off so each entry costs its own LOOKUP, as it does on an NFS mount whose
client does not use READDIRPLUS for the directory; inode numbers pass through (``use_ino``) so
hard links stay recognisable to ``du`` and to the walk.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from testbed.slowfs.libfuse import LibfuseMissing, load_mfusepy

try:  # before anything of mfusepy's is used: it picks its libfuse when imported
    mfusepy: Any = load_mfusepy()
except LibfuseMissing as missing:
    raise SystemExit(f"python -m testbed.slowfs: {missing}") from None

# libfuse capability bits (fuse_common.h) for fuse_conn_info.want.
_CAP_READDIRPLUS = 1 << 13
_CAP_READDIRPLUS_AUTO = 1 << 14

_STAT_FIELDS = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks",
                "st_rdev")


class OperationLog:
    """Counts operations by kind and the most that were ever in flight at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak_in_flight = 0
        self.counts: Counter[str] = Counter()

    def enter(self, kind: str) -> None:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            self.counts[kind] += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with self._lock:
            return {"operations": sum(self.counts.values()), "by_kind": dict(self.counts),
                    "peak_in_flight": self.peak_in_flight,
                    "server_cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}


def _stat_dict(st: os.stat_result) -> dict[str, int]:
    attrs = {name: getattr(st, name) for name in _STAT_FIELDS}
    attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
    return attrs


class LatencyPassthrough(mfusepy.Operations):  # type: ignore[misc]
    """Read-only view of ``backing`` that sleeps ``delay`` seconds in each round-trip operation."""

    use_ns = True

    def __init__(self, backing: str, delay: float, log: OperationLog) -> None:
        self._backing = backing.rstrip("/")
        self._delay = delay
        self._log = log
        self._listings: dict[int, list[tuple[str, dict[str, int], int]]] = {}
        self._handles = iter(range(1, 1 << 62))
        self._handles_lock = threading.Lock()

    def _real(self, path: str) -> str:
        return self._backing + path

    def _round_trip(self, kind: str) -> None:
        self._log.enter(kind)
        try:
            if self._delay > 0:
                time.sleep(self._delay)
        finally:
            self._log.leave()

    def _next_handle(self) -> int:
        with self._handles_lock:
            return next(self._handles)

    def init_with_config(self, conn: Any, config: Any) -> None:
        if conn is not None:
            conn.want &= ~(_CAP_READDIRPLUS | _CAP_READDIRPLUS_AUTO)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        self._round_trip("getattr")
        try:
            return _stat_dict(os.lstat(self._real(path)))
        except OSError as exc:
            raise mfusepy.FuseOSError(exc.errno or errno.EIO) from None

    def _list(self, path: str) -> list[tuple[str, dict[str, int], int]]:
        try:
            with os.scandir(self._real(path)) as entries:
                return [(entry.name, {"st_ino": entry.inode()}, offset)
                        for offset, entry in enumerate(entries, start=1)]
        except OSError as exc:
            raise mfusepy.FuseOSError(exc.errno or errno.EIO) from None

    def opendir(self, path: str) -> int:
        self._round_trip("opendir")
        handle = self._next_handle()
        self._listings[handle] = self._list(path)
        return handle

    def readdir_with_offset(self, path: str, offset: int,
                            fh: int) -> Iterator[tuple[str, dict[str, int], int]]:
        self._round_trip("readdir")
        # The kernel asks again from the last offset it kept until a page comes back empty.
        # The listing is dropped there rather than in RELEASEDIR: no Python callback may be
        # running when an unmount makes libfuse 3.14 pthread_cancel its workers (a thread
        # cancelled inside the interpreter can hang the server's exit).
        listing = self._listings.get(fh)
        if listing is None:  # read again after its end (rewinddir): list afresh
            listing = self._listings[fh] = self._list(path)
        if offset >= len(listing):
            self._listings.pop(fh, None)
        return iter(listing[offset:])

    def readlink(self, path: str) -> str:
        self._round_trip("readlink")
        try:
            return os.readlink(self._real(path))
        except OSError as exc:
            raise mfusepy.FuseOSError(exc.errno or errno.EIO) from None

    def statfs(self, path: str) -> dict[str, int]:
        self._round_trip("statfs")
        fs = os.statvfs(self._real(path))
        return {name: getattr(fs, name) for name in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
            "f_favail", "f_flag", "f_namemax")}

    def open(self, path: str, flags: int) -> int:
        self._round_trip("open")
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise mfusepy.FuseOSError(errno.EROFS)
        try:
            return os.open(self._real(path), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise mfusepy.FuseOSError(exc.errno or errno.EIO) from None

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        self._round_trip("read")
        return os.pread(fh, size, offset)

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0


class _FuseArgs(ctypes.Structure):
    _fields_ = [("argc", ctypes.c_int), ("argv", ctypes.POINTER(ctypes.c_char_p)),
                ("allocated", ctypes.c_int)]


def _main_with_threads(threads: int) -> Any:
    """A stand-in for libfuse's ``fuse_main_real`` that honours a thread limit.

    mfusepy builds the operations table and hands it to ``fuse_main_real``, whose loop in
    libfuse 3.14.0 never applies ``-o max_threads`` (fixed in 3.14.1). This does what it does
    (new, mount, multi-threaded loop, unmount) with the limit set on the loop's config.
    """
    lib = mfusepy._libfuse
    lib.fuse_new.restype = ctypes.c_void_p
    lib.fuse_new.argtypes = [ctypes.POINTER(_FuseArgs), ctypes.c_void_p, ctypes.c_size_t,
                             ctypes.c_void_p]
    lib.fuse_mount.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.fuse_unmount.argtypes = [ctypes.c_void_p]
    lib.fuse_destroy.argtypes = [ctypes.c_void_p]
    lib.fuse_get_session.restype = ctypes.c_void_p
    lib.fuse_get_session.argtypes = [ctypes.c_void_p]
    lib.fuse_set_signal_handlers.argtypes = [ctypes.c_void_p]
    lib.fuse_remove_signal_handlers.argtypes = [ctypes.c_void_p]
    lib.fuse_loop_cfg_create.restype = ctypes.c_void_p
    lib.fuse_loop_cfg_set_max_threads.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.fuse_loop_cfg_set_idle_threads.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.fuse_loop_cfg_destroy.argtypes = [ctypes.c_void_p]
    lib.fuse_loop_mt.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

    def fuse_main_real(argc: int, argv: Any, operations: Any, size: int, user_data: Any) -> int:
        words = [argv[index] for index in range(argc)]
        mountpoint = words[-1]
        # fuse_new takes library and mount options; -f/-s/-d are fuse_main's own.
        kept = [word for word in words[:-1] if word not in (b"-f", b"-s", b"-d")]
        array = (ctypes.c_char_p * (len(kept) + 1))(*kept, None)
        args = _FuseArgs(len(kept), ctypes.cast(array, ctypes.POINTER(ctypes.c_char_p)), 0)
        fuse = lib.fuse_new(ctypes.byref(args), ctypes.cast(operations, ctypes.c_void_p),
                            size, user_data)
        if not fuse:
            return 1
        config = lib.fuse_loop_cfg_create()
        try:
            if lib.fuse_mount(fuse, mountpoint) != 0:
                return 2
            session = lib.fuse_get_session(fuse)
            lib.fuse_set_signal_handlers(session)
            try:
                lib.fuse_loop_cfg_set_max_threads(config, threads)
                lib.fuse_loop_cfg_set_idle_threads(config, threads)
                result = lib.fuse_loop_mt(fuse, config)
            finally:
                lib.fuse_remove_signal_handlers(session)
                lib.fuse_unmount(fuse)
            return 8 if result else 0
        finally:
            lib.fuse_loop_cfg_destroy(config)
            lib.fuse_destroy(fuse)

    return fuse_main_real


def serve(backing: Path, mountpoint: Path, *, delay: float, threads: int,
          stats_file: Path | None = None) -> None:
    """Serve until unmounted; then write the operation counts to ``stats_file``."""
    log = OperationLog()
    operations = LatencyPassthrough(str(backing), delay, log)
    mfusepy.fuse_main_real = _main_with_threads(threads)
    try:
        mfusepy.FUSE(operations, str(mountpoint), foreground=True, ro=True, use_ino=True,
                     fsname=f"slowfs:{backing}", subtype="slowfs")
    finally:
        if stats_file is not None:
            stats_file.write_text(json.dumps(log.snapshot()) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m testbed.slowfs",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("backing", type=Path, help="directory to serve")
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("--delay-ms", type=float, default=1.0,
                        help="latency added to every round-trip operation")
    parser.add_argument("--threads", type=int, default=64,
                        help="requests served at once (libfuse worker threads)")
    parser.add_argument("--stats-file", type=Path, default=None,
                        help="where to write operation counts when unmounted (JSON)")
    args = parser.parse_args(argv)
    serve(args.backing, args.mountpoint, delay=args.delay_ms / 1000, threads=args.threads,
          stats_file=args.stats_file)
