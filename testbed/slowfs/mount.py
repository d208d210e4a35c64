"""Mounting and unmounting a ``slowfs`` pass-through from a test or a benchmark.

``slow_mount`` starts the server process, waits until the kernel shows the mount, and on exit
unmounts it, waits for the process and reads its operation counts. A fresh mount starts with
the kernel's caches empty, so each measured walk mounts its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.slowfs.libfuse import MISSING, libfuse3

_REPO = Path(__file__).resolve().parents[2]


def libfuse_available() -> bool:
    """Whether libfuse 3 can be loaded and ``/dev/fuse`` opened (what the server needs)."""
    return (libfuse3() is not None and os.path.exists("/dev/fuse")
            and os.access("/dev/fuse", os.R_OK | os.W_OK))


def ensure_libfuse() -> None:
    """Install Debian's ``fuse3`` (libfuse 3 and fusermount3) when it is missing and we may.

    The benchmark calls this so it runs on a fresh machine; ``make test`` does the same from
    the Makefile. Raises ``RuntimeError`` naming what is missing when it cannot.
    """
    if libfuse_available():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "fuse3"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    if not libfuse_available():
        raise RuntimeError(f"{MISSING}; and a usable /dev/fuse")


def _is_mount_point(path: Path) -> bool:
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


@dataclass
class SlowMount:
    """A mounted pass-through: ``path`` to walk, ``stats`` once it is unmounted."""

    path: Path
    backing: Path
    delay_s: float
    counted: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None  # why the server left no counts

    @property
    def stats(self) -> dict[str, Any]:
        """The server's counts (operations by kind, peak in flight); raises with the server's
        own words when it left none, so a test never fails on a bare missing key."""
        if self.failure is not None:
            raise RuntimeError(self.failure)
        return self.counted


def _unmount(path: Path) -> None:
    """Unmount, retrying for a few seconds: right after a walk the kernel may still hold the
    mount busy with asynchronous RELEASEDIR requests. Lazily only as a last resort."""
    tool = "fusermount3" if shutil.which("fusermount3") else None
    deadline = time.monotonic() + 10
    while _is_mount_point(path) and time.monotonic() < deadline:
        command = [tool, "-u", str(path)] if tool else ["umount", str(path)]
        if subprocess.run(command, check=False, capture_output=True).returncode != 0:
            time.sleep(0.1)
    if _is_mount_point(path):
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@contextlib.contextmanager
def slow_mount(backing: Path, mountpoint: Path, *, delay_s: float, threads: int = 64,
               ready_timeout: float = 20.0,
               env: dict[str, str] | None = None) -> Iterator[SlowMount]:
    """Serve ``backing`` at ``mountpoint`` (an empty directory) with ``delay_s`` per operation
    (``env``: more environment for the server process)."""
    with tempfile.TemporaryDirectory(prefix="slowfs-") as scratch:
        stats_file = Path(scratch) / "stats.json"
        log_file = Path(scratch) / "server.log"
        env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
            [str(_REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        with open(log_file, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "testbed.slowfs", str(backing), str(mountpoint),
                 "--delay-ms", repr(delay_s * 1000), "--threads", str(threads),
                 "--stats-file", str(stats_file)],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        mount = SlowMount(mountpoint, backing, delay_s)
        try:
            deadline = time.monotonic() + ready_timeout
            while not _is_mount_point(mountpoint):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"slowfs did not mount {mountpoint}: "
                                       f"{log_file.read_text(errors='replace')[-2000:]}")
                time.sleep(0.02)
            yield mount
        finally:
            _unmount(mountpoint)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            if stats_file.exists():
                mount.counted = json.loads(stats_file.read_text())
            else:
                mount.failure = (f"slowfs server exited {server.returncode} without its "
                                 f"counts: {log_file.read_text(errors='replace')[-2000:]}")
