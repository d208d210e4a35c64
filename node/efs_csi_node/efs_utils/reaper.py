"""Reaping orphaned processes (efs-utils' TLS tunnels) that become our children.

mount.efs starts a TLS tunnel per mount (efs-proxy; stunnel only with the ``stunnel`` mount
option or OCSP) in a session of its own and exits; the watchdog restarts dead tunnels. Those
processes are orphaned, and the kernel hands an orphan to the nearest ancestor that is a
"child subreaper", or to PID 1 of the PID namespace, which is us when the node plugin is
the container's entrypoint. Nobody waits for them, so each one that exits stays a zombie.

Why not ``waitpid(-1, WNOHANG)``: it would also collect children that other code in this
process is about to wait for (asyncio subprocesses, ``subprocess.run`` in a thread); that code
then gets ECHILD, and ``subprocess`` reports such a child as exit code 0 — a failed ``mount``
would look successful. So the reaper never waits on "any child". Instead each sweep lists our
zombie children from ``/proc`` and waits on one pid at a time, only for a zombie that
- is not in the ``ChildRegistry`` (pids whose owner will collect the status itself), and
- was already a zombie at the previous sweep, i.e. nobody collected it for a whole interval.
asyncio's child watchers and ``subprocess`` collect their children as soon as they exit, so
the second rule alone protects them; code that waits on a child later than that (a Popen
polled from time to time) must put its pid in the registry.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from efs_csi.logging import get_logger

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

_log = get_logger("node.efs_utils.reaper")


class ChildRegistry:
    """Pids of our children whose exit status code in this process collects itself."""

    def __init__(self) -> None:
        self._pids: set[int] = set()

    def add(self, pid: int) -> None:
        self._pids.add(pid)

    def discard(self, pid: int) -> None:
        self._pids.discard(pid)

    def __contains__(self, pid: object) -> bool:
        return pid in self._pids

    @contextmanager
    def owned(self, pid: int) -> Iterator[None]:
        self.add(pid)
        try:
            yield
        finally:
            self.discard(pid)


def _prctl(option: int, argument: int | ctypes._Pointer[ctypes.c_int]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, argument, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def set_child_subreaper(enabled: bool) -> None:
    """Make orphaned descendants of this process become its children (Linux prctl)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1 if enabled else 0)


def adopts_orphans() -> bool:
    """True when orphans can be handed to us: we are PID 1 or a child subreaper."""
    if os.getpid() == 1:
        return True
    flag = ctypes.c_int(0)
    try:
        _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.pointer(flag))
    except OSError:
        return False
    return flag.value != 0


def _state_and_parent(stat_line: str) -> tuple[str, int]:
    # The command name (field 2) may contain spaces and ')'; the fields after the last ')'
    # are fixed: state, then the parent pid.
    fields = stat_line.rpartition(")")[2].split()
    return fields[0], int(fields[1])


def read_zombie_children(parent: int, proc_root: Path = Path("/proc")) -> set[int]:
    """Pids of ``parent``'s children that have exited and not been waited for."""
    zombies = set()
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = _state_and_parent((entry / "stat").read_text())
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not a process directory we can read
        if state == "Z" and ppid == parent:
            zombies.add(int(entry.name))
    return zombies


def reapable(zombies: set[int], seen_before: set[int], registry: ChildRegistry) -> set[int]:
    """The two rules of the module docstring (pure)."""
    return {pid for pid in zombies & seen_before if pid not in registry}


class OrphanReaper:
    """One sweep at a time; remembers which zombies it saw last time."""

    def __init__(self, registry: ChildRegistry, *, parent_pid: int | None = None,
                 proc_root: Path = Path("/proc")) -> None:
        self._registry = registry
        self._parent = parent_pid if parent_pid is not None else os.getpid()
        self._proc_root = proc_root
        self._seen: set[int] = set()

    def sweep(self) -> list[tuple[int, int]]:
        """Reap what the rules allow; returns (pid, exit code) of each reaped process."""
        zombies = read_zombie_children(self._parent, self._proc_root)
        reaped = []
        for pid in sorted(reapable(zombies, self._seen, self._registry)):
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue  # its owner collected it after all
            if got == pid:
                reaped.append((pid, os.waitstatus_to_exitcode(status)))
        self._seen = zombies - {pid for pid, _ in reaped}
        return reaped


async def reap_orphans(reaper: OrphanReaper, *, interval: float = 2.0,
                       on_reaped: Callable[[int, int], None] | None = None) -> None:
    """Sweep every ``interval`` seconds until cancelled (a server background task)."""
    while True:
        # Listing /proc may take a while on a host with many processes: off the loop.
        for pid, code in await asyncio.to_thread(reaper.sweep):
            _log.info("reaped orphaned process", pid=pid, exit_code=code)
            if on_reaped is not None:
                on_reaped(pid, code)
        await asyncio.sleep(interval)
