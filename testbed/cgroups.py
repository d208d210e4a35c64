"""A memory cgroup of our own for a process tree: a container's memory limit without a
container runtime, and the peak the kernel charged to it (what its OOM killer judges by).

``memory_cgroup`` makes a child of the cgroup this process is in (cgroup v1's memory hierarchy,
or v2 when the memory controller is delegated to it), optionally with a limit; ``command``
puts a command in it before it runs, so every process it starts is charged there too. Root,
or a delegated hierarchy, is needed: ``CgroupUnavailable`` says what is missing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")


class CgroupUnavailable(Exception):
    """No memory cgroup can be made here (the message says why)."""


@dataclass(frozen=True)
class MemoryCgroup:
    path: Path
    version: int  # 1 or 2

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv``, run inside this cgroup (``exec``: the pid is the command's own)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"),
                *argv]

    def set_limit(self, limit_bytes: int | None) -> None:
        """Limit the memory charged to the cgroup (None: no limit)."""
        if self.version == 1:
            (self.path / "memory.limit_in_bytes").write_text(
                "-1" if limit_bytes is None else str(limit_bytes))
        else:
            (self.path / "memory.max").write_text(
                "max" if limit_bytes is None else str(limit_bytes))
            if (self.path / "memory.swap.max").exists():
                (self.path / "memory.swap.max").write_text("0")  # the limit, not swap, decides

    def _read(self, v1: str, v2: str) -> str:
        return (self.path / (v1 if self.version == 1 else v2)).read_text()

    def peak_bytes(self) -> int:
        """The most memory ever charged to the cgroup (v2 needs a kernel with memory.peak)."""
        return int(self._read("memory.max_usage_in_bytes", "memory.peak"))

    def usage_bytes(self) -> int:
        return int(self._read("memory.usage_in_bytes", "memory.current"))

    def oom_kills(self) -> int:
        """Processes the OOM killer took in this cgroup."""
        for line in self._read("memory.oom_control", "memory.events").splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def pids(self) -> list[int]:
        return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]


def _own_memory_cgroup() -> tuple[Path, int]:
    """Where this process's memory cgroup is in the mounted hierarchy, and its version."""
    entries = [line.split(":", 2) for line in Path("/proc/self/cgroup").read_text().splitlines()]
    for _, controllers, path in entries:
        if "memory" in controllers.split(","):
            base = _ROOT / "memory"
            if (base / "memory.limit_in_bytes").exists():
                return base / path.lstrip("/"), 1
    for hierarchy, _, path in entries:
        if hierarchy == "0":
            for base in (_ROOT, _ROOT / "unified"):
                here = base / path.lstrip("/")
                available = here / "cgroup.controllers"
                if available.exists() and "memory" in available.read_text().split():
                    return here, 2
    raise CgroupUnavailable("no memory cgroup controller is mounted for this process")


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int | None = None, *,
                  name: str = "efs-csi-test") -> Iterator[MemoryCgroup]:
    """A new memory cgroup, removed afterwards (what still runs in it then is killed)."""
    parent, version = _own_memory_cgroup()
    path = parent / f"{name}-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as exc:
        raise CgroupUnavailable(f"cannot make a cgroup under {parent}: {exc.strerror}") from None
    cgroup = MemoryCgroup(path, version)
    try:
        if version == 2 and not (path / "memory.max").exists():
            raise CgroupUnavailable(f"the memory controller is not delegated to {parent}")
        if limit_bytes is not None:
            cgroup.set_limit(limit_bytes)
        yield cgroup
    finally:
        _remove(cgroup)


def _remove(cgroup: MemoryCgroup) -> None:
    """rmdir once its processes are gone: what still runs in it (the caller started it there,
    and a failing test may not have stopped it) is killed first."""
    deadline = time.monotonic() + 10
    with contextlib.suppress(FileNotFoundError):
        for pid in cgroup.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    while True:
        try:
            os.rmdir(cgroup.path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
