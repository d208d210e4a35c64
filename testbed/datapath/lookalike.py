"""The stand-in for the kernel's NFS mount: a FUSE pass-through that looks like one.

    python -m testbed.datapath.lookalike --mount-ns /proc/PID/ns/mnt --source 127.0.0.1:/ \\
        --target /path/in/that/namespace --backing /host/dir --ready-fd N

This machine's kernel has no NFS client, so after the tunnel has been proven with libnfs
(``testbed.datapath.kernel``), the export's backing directory is mounted at the target with
FUSE, as the kernel would mount the export: in the caller's mount namespace (a container's),
owned by no process of the caller (it survives the container, as a kernel NFS mount does), and
shown by ``/proc/mounts`` as ``127.0.0.1:/ TARGET fuse.nfs4 ...``: server 127.0.0.1 and "nfs" in
the type are what efs-utils' watchdog looks for. FUSE cannot show ``port=``, so the watchdog
takes every such mount for port 2049 (see ``testbed.datapath``).

How it gets there: ``/dev/fuse`` is opened here, the process enters the target mount namespace
(before any thread exists: ``setns`` refuses a threaded process), mounts with ``fd=N`` (the
``mount`` system call, as ``fusermount`` would), returns to its own namespace and serves the
pass-through from host paths through libfuse's "already mounted" form ``/dev/fd/N``. The
server exits when the last copy of the mount is unmounted.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import stat
import sys
from pathlib import Path
from typing import Any

_CLONE_NEWNS = 0x00020000
_MS_NOSUID = 2
_MS_NODEV = 4


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def mount_fuse_in(namespace: Path, source: str, target: str, fuse_fd: int) -> None:
    """Mount the FUSE connection ``fuse_fd`` at ``target`` inside mount namespace
    ``namespace``, then come back to this process's own namespace."""
    libc = _libc()
    own = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    other = os.open(namespace, os.O_RDONLY)
    try:
        _check(libc.setns(other, _CLONE_NEWNS), f"setns {namespace}")
        try:
            data = (f"fd={fuse_fd},rootmode={stat.S_IFDIR:o},user_id=0,group_id=0,"
                    "allow_other,default_permissions")
            _check(libc.mount(source.encode(), target.encode(), b"fuse.nfs4",
                              _MS_NOSUID | _MS_NODEV, data.encode()), f"mount {target}")
        finally:
            _check(libc.setns(own, _CLONE_NEWNS), "setns back")
            os.chdir("/")
    finally:
        os.close(own)
        os.close(other)


class Passthrough:
    """Read-write pass-through of ``root`` (mfusepy's operations protocol)."""

    use_ns = True

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.lstat(self._path(path))
        found: dict[str, Any] = {key: getattr(st, key) for key in (
            "st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino")}
        for key in ("st_atime", "st_mtime", "st_ctime"):
            found[key] = getattr(st, key + "_ns")
        return found

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._path(path))]

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._path(path), amode):
            raise OSError(errno.EACCES, path)
        return 0

    def open(self, path: str, flags: int) -> int:
        return os.open(self._path(path), flags)

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return os.open(self._path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        os.truncate(self._path(path), length)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        os.fsync(fh)
        return 0

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._path(path), mode)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._path(path))
        return 0

    def unlink(self, path: str) -> int:
        os.unlink(self._path(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        os.rename(self._path(old), self._path(new))
        return 0

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._path(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        os.lchown(self._path(path), uid, gid)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        if times is None:
            os.utime(self._path(path), follow_symlinks=False)
        else:
            os.utime(self._path(path), ns=times, follow_symlinks=False)
        return 0

    def symlink(self, target: str, source: str) -> int:
        os.symlink(source, self._path(target))
        return 0

    def readlink(self, path: str) -> str:
        return os.readlink(self._path(path))

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self._path(path))
        return {key: getattr(sv, key) for key in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files",
            "f_flag", "f_frsize", "f_namemax")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.datapath.lookalike",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--mount-ns", type=Path, required=True)
    parser.add_argument("--source", required=True, help="what /proc/mounts shows as the source")
    parser.add_argument("--target", required=True, help="the mount point, in that namespace")
    parser.add_argument("--backing", type=Path, required=True, help="directory to serve")
    parser.add_argument("--ready-fd", type=int, default=None,
                        help="written to ('ok' or the error) and closed once mounted")
    args = parser.parse_args(argv)
    fuse_fd = os.open("/dev/fuse", os.O_RDWR)
    try:
        mount_fuse_in(args.mount_ns, args.source, args.target, fuse_fd)
    except OSError as exc:
        if args.ready_fd is not None:
            os.write(args.ready_fd, str(exc).encode())
            os.close(args.ready_fd)
        return 32
    if args.ready_fd is not None:
        os.write(args.ready_fd, b"ok")
        os.close(args.ready_fd)
    # libfuse 3 by name: a machine may carry libfuse 2 beside it.
    os.environ.setdefault("FUSE_LIBRARY_PATH", "libfuse3.so.3")
    import mfusepy  # after setns: loading it may start no thread, but keep the order obvious

    mfusepy.FUSE(Passthrough(str(args.backing)), f"/dev/fd/{fuse_fd}", foreground=True,
                 nothreads=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
