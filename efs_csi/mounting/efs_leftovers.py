"""What mount.efs leaves behind when it is killed in the middle of a mount, and removing it.

For a TLS mount, mount.efs (efs-utils v3.2.0, ``efs_utils_common/proxy.py``) writes into its
state directory, in this order: the mount's state directory ``fs-ID.MNT.PORT+`` (the client
certificate), the tunnel's configuration ``stunnel-config.fs-ID.MNT.PORT``, a temporary state
file ``~fs-ID.MNT.PORT`` (which also reserves the port), then starts efs-proxy (or stunnel) in
a session of its own and records its pid. Only after ``mount.nfs4`` returns does it rename the
temporary file to ``fs-ID.MNT.PORT``, the name efs-utils' watchdog reads to stop the tunnel and
remove the rest once the mount is gone.

The node kills a mount that outlives its time limit, and a mount whose caller gave up
(``efs_csi.mounting.commands``). mount.efs tries ``mount.nfs4`` three times and the last try has
no time limit of its own, so against a server that never answers the kill lands before the
rename: the temporary file, the state directory, the configuration and an efs-proxy that no
longer belongs to any process group stay behind, and neither the watchdog nor a fresh one ever
looks at a ``~`` name. ``remove_leftovers`` finishes the job the rename would have handed to
the watchdog: it stops the tunnel (only a process that is efs-proxy or stunnel) and removes
the files, for one mount point after a killed mount, or for every mount point when the node
starts (no mount.efs of ours can be running then).

Name parsing and the choice of what to remove are pure; the I/O is in ``remove_leftovers``
(local files under efs-utils' state directory, and /proc; blocking, call it off the loop).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# efs-utils' fixed state directory (STATE_FILE_DIR); the node keeps it on the host.
EFS_UTILS_STATE_DIR = Path("/var/run/efs")
_TUNNEL_NAMES = ("efs-proxy", "stunnel")
_STEM = r"fs-[0-9a-f]+\.(?P<mount>.+)\.(?P<port>\d+)"
_TEMPORARY = re.compile(rf"^~(?P<stem>{_STEM})$")
_STATE_DIR = re.compile(rf"^(?P<stem>{_STEM})\+$")
_CONFIG = re.compile(rf"^stunnel-config\.(?P<stem>{_STEM})$")
_FINAL = re.compile(rf"^(?P<stem>{_STEM})$")


def file_safe_mount_point(target: Path | str) -> str:
    """efs-utils' name for a mount point in its file names (``/a/b`` is ``a.b``)."""
    return os.path.abspath(target).replace(os.sep, ".").lstrip(".")


@dataclass(frozen=True)
class Leftovers:
    """The names (relative to the state directory) of one abandoned mount's files."""

    temporary_states: tuple[str, ...]
    other_files: tuple[str, ...]  # configurations and state directories with no live mount

    @property
    def found(self) -> bool:
        return bool(self.temporary_states or self.other_files)


def find_leftovers(names: Iterable[str], mount_point: Path | str | None = None) -> Leftovers:
    """What an abandoned mount left among ``names`` (a listing of the state directory), for
    ``mount_point``, or for every mount point when it is None.

    A ``~`` state file is always abandoned (mount.efs renames it before it exits). A
    configuration or a ``+`` directory is abandoned when no final state file goes with it
    (the watchdog owns those): mount.efs was killed before it renamed one, or wrote one."""
    wanted = None if mount_point is None else file_safe_mount_point(mount_point)
    listing = set(names)
    temporary, others = [], []
    for name in sorted(listing):
        for pattern in (_TEMPORARY, _STATE_DIR, _CONFIG):
            match = pattern.match(name)
            if match is None or (wanted is not None and match.group("mount") != wanted):
                continue
            stem = match.group("stem")
            if pattern is _TEMPORARY:
                temporary.append(name)
            elif stem not in listing:
                others.append(name)
            break
    return Leftovers(tuple(temporary), tuple(others))


@dataclass(frozen=True)
class TunnelState:
    """The parts of a state file (``~fs-...`` or ``fs-...``) that locate its tunnel."""

    pid: int | None
    files: tuple[str, ...]
    mount_state_dir: str | None


def parse_state(text: str) -> TunnelState:
    """A state file's JSON; unreadable parts come back empty rather than failing."""
    try:
        data = json.loads(text)
    except ValueError:
        return TunnelState(None, (), None)
    if not isinstance(data, dict):
        return TunnelState(None, (), None)
    pid = data.get("pid")
    files = data.get("files")
    state_dir = data.get("mountStateDir")
    return TunnelState(
        pid=pid if isinstance(pid, int) and pid > 0 else None,
        files=tuple(f for f in files if isinstance(f, str)) if isinstance(files, list) else (),
        mount_state_dir=state_dir if isinstance(state_dir, str) else None)


def is_tunnel(command_line: list[str]) -> bool:
    """Whether a process's command line is efs-utils' tunnel (efs-proxy or stunnel)."""
    return bool(command_line) and any(
        name in os.path.basename(command_line[0]) for name in _TUNNEL_NAMES)


def tunnel_pids(state: TunnelState, processes: dict[int, list[str]]) -> set[int]:
    """The running tunnels of a state file: its recorded pid, and any efs-proxy or stunnel
    started with one of its files (killed before the pid was recorded, it is still -1)."""
    found = set()
    for pid, command_line in processes.items():
        if not is_tunnel(command_line):
            continue
        if pid == state.pid or any(path in command_line for path in state.files):
            found.add(pid)
    return found


def _processes(proc_root: Path) -> dict[int, list[str]]:
    found = {}
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            raw = (entry / "cmdline").read_bytes()
            found[int(entry.name)] = [part.decode(errors="replace")
                                      for part in raw.split(b"\0") if part]
    return found


def _inside(state_dir: Path, path: str) -> Path | None:
    """``path`` if it lies in ``state_dir`` (a state file names files; never follow one out)."""
    candidate = (state_dir / path) if not os.path.isabs(path) else Path(path)
    resolved = Path(os.path.normpath(candidate))
    return resolved if resolved.parent == Path(os.path.normpath(state_dir)) else None


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True


def remove_leftovers(state_dir: Path = EFS_UTILS_STATE_DIR, mount_point: Path | str | None = None,
                     *, proc_root: Path = Path("/proc")) -> list[str]:
    """Stop the tunnels of abandoned mounts and remove their files; what was done, for the log.

    ``mount_point``: after a killed mount of it; None: at start, every abandoned mount."""
    try:
        names = [entry.name for entry in state_dir.iterdir()]
    except FileNotFoundError:
        return []
    found = find_leftovers(names, mount_point)
    if not found.found:
        return []
    done: list[str] = []
    processes = _processes(proc_root)
    for name in found.temporary_states:
        try:
            state = parse_state((state_dir / name).read_text())
        except OSError:
            continue
        for pid in sorted(tunnel_pids(state, processes)):
            # mount.efs starts the tunnel in a session of its own: its group is its pid.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
                done.append(f"stopped tunnel {pid}")
        for path in (*state.files, *([state.mount_state_dir] if state.mount_state_dir else [])):
            inside = _inside(state_dir, path)
            if inside is not None and _remove(inside):
                done.append(f"removed {inside.name}")
        if _remove(state_dir / name):
            done.append(f"removed {name}")
    for name in found.other_files:
        if _remove(state_dir / name):
            done.append(f"removed {name}")
    return done
