"""The kernel's mount table, read from ``/proc/self/mountinfo`` (parsing is pure).

mountinfo, not ``/proc/mounts``: it carries the mount's root within its file system and its
device, which is how a bind mount is matched to the mount it was made from, and it escapes
space, tab, newline and backslash in paths as ``\\040``-style octal.

Reading procfs never touches a remote file system, so it cannot hang on a dead NFS server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """Undo the kernel's octal escaping (``\\040`` is a space)."""
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), field)


@dataclass(frozen=True)
class MountEntry:
    mount_id: int
    parent_id: int
    device: str  # major:minor
    root: str  # the directory of the file system that is mounted here
    mount_point: str
    options: frozenset[str]  # per-mount options (ro/rw, nosuid, ...)
    fs_type: str
    source: str

    @property
    def read_only(self) -> bool:
        return "ro" in self.options

    def same_origin(self, other: MountEntry) -> bool:
        """True when both show the same directory of the same file system (a bind of it)."""
        return self.device == other.device and self.root == other.root


def parse_line(line: str) -> MountEntry:
    fields = line.split(" ")
    separator = fields.index("-", 6)
    return MountEntry(
        mount_id=int(fields[0]),
        parent_id=int(fields[1]),
        device=fields[2],
        root=unescape(fields[3]),
        mount_point=unescape(fields[4]),
        options=frozenset(fields[5].split(",")),
        fs_type=unescape(fields[separator + 1]),
        source=unescape(fields[separator + 2]) if len(fields) > separator + 2 else "",
    )


class MountTable:
    """A snapshot of the mount table; the last mount on a path is the visible one."""

    def __init__(self, entries: Iterable[MountEntry]) -> None:
        self.entries = list(entries)
        self._top: dict[str, MountEntry] = {}
        for entry in self.entries:
            self._top[entry.mount_point] = entry

    def at(self, path: Path | str) -> MountEntry | None:
        """The visible mount whose mount point is exactly ``path``, if any."""
        return self._top.get(str(path))

    def count_at(self, path: Path | str) -> int:
        return sum(1 for entry in self.entries if entry.mount_point == str(path))

    def under(self, directory: Path | str) -> list[MountEntry]:
        prefix = str(directory).rstrip("/") + "/"
        return [entry for entry in self.entries
                if entry.mount_point == str(directory) or entry.mount_point.startswith(prefix)]


def parse_mountinfo(text: str) -> MountTable:
    return MountTable(parse_line(line) for line in text.splitlines() if line.strip())


def read_mount_table(path: Path = MOUNTINFO) -> MountTable:
    return parse_mountinfo(path.read_text())
