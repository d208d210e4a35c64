"""Stand-ins for the kernel's mounts.

``FakeMountTable`` is the kernel's mount table in memory, changed by the command lines the
driver really runs (``efs_csi.mounting``): staging, publishing and stale-mount recovery run as
plain unit tests, without root, while every layer above the kernel is the real one. Real bind
mounts are tested too (tests/node/test_local_backend.py and others, as root); this fake is for
the logic, and for what a real mount cannot be made to do on cue (fail with a chosen message).

``FlakyMounter`` is a ``Mounter`` that fails on demand.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from efs_csi.mounting.commands import CommandFailed
from efs_csi.mounting.mountinfo import MountEntry, MountTable

# The kernel's answer to ``umount`` of a path nothing is mounted on (util-linux 2.38).
_NOT_MOUNTED = "umount: {target}: not mounted."


@dataclass
class FakeMountTable:
    """Understands ``mount -t efs [-o OPTS] FS-ID:PATH TARGET``, ``mount --bind [-o ro] SOURCE
    TARGET``, ``umount TARGET`` and ``umount -l TARGET``, as util-linux and the kernel answer
    them: the target must be a directory; an efs mount shows the file system's PATH (below the
    access point's root when ``accesspoint=`` is given); a bind of a mount point shows what that
    mount shows, a bind of a plain directory that directory; ``umount`` takes the topmost mount
    and fails with "not mounted" where there is none.

    Give it to ``MountCommands`` as the runner and ``read_table`` to ``build_node``.
    ``fail_next`` makes the next command fail with that output; ``commands`` records them all.
    """

    entries: list[MountEntry] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    fail_next: str | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def read_table(self) -> MountTable:
        return MountTable(list(self.entries))

    def mounts(self) -> list[str]:
        """The command lines that mounted something (``mount ...``), in order."""
        return [" ".join(argv) for argv in self.commands if argv[0] == "mount"]

    async def run(self, argv: Sequence[str], time_limit: float) -> str:
        self.commands.append(list(argv))
        await asyncio.sleep(0)  # a command is a wait for another process
        if self.fail_next is not None:
            output, self.fail_next = self.fail_next, None
            raise CommandFailed(argv, 32, output)
        if argv[0] == "umount":
            self._unmount(argv)
        elif argv[0] == "mount":
            self._mount(argv)
        else:
            raise CommandFailed(argv, 127, f"{argv[0]}: not a mount command")
        return ""

    def _unmount(self, argv: Sequence[str]) -> None:
        target = argv[-1]
        for index in range(len(self.entries) - 1, -1, -1):
            if self.entries[index].mount_point == target:
                del self.entries[index]
                return
        raise CommandFailed(argv, 32, _NOT_MOUNTED.format(target=target))

    def _mount(self, argv: Sequence[str]) -> None:
        words = list(argv[1:])
        options: list[str] = []
        if "-o" in words:
            at = words.index("-o")
            options = words[at + 1].split(",")
            del words[at:at + 2]
        bind = "--bind" in words
        if bind:
            words.remove("--bind")
        kind = None
        if "-t" in words:
            at = words.index("-t")
            kind = words[at + 1]
            del words[at:at + 2]
        source, target = words
        if not Path(target).is_dir():
            raise CommandFailed(argv, 32, f"mount: {target}: mount point does not exist.")
        per_mount = frozenset({"ro" if "ro" in options else "rw"})
        if bind:
            shown = self.read_table().at(source)
            device, root = (shown.device, shown.root) if shown else ("0:local", source)
            fs_type = shown.fs_type if shown else "ext4"
            entry_source = shown.source if shown else source
        elif kind == "efs":
            file_system_id, _, path = source.partition(":")
            access_point = next((o.split("=", 1)[1] for o in options
                                 if o.startswith("accesspoint=")), "")
            device = f"0:{file_system_id}"
            root = "/" + "/".join(p for p in (access_point, path.strip("/")) if p)
            fs_type, entry_source = "nfs4", "127.0.0.1:/"
        else:
            raise CommandFailed(argv, 32, f"mount: unknown file system type {kind!r}")
        self.entries.append(MountEntry(
            mount_id=next(self._ids), parent_id=1, device=device, root=root,
            mount_point=target, options=per_mount, fs_type=fs_type, source=entry_source))


class FlakyMounter:
    """A ``Mounter`` that records its calls and fails with ``fail_with`` when set: a real mount
    cannot be made to fail on demand with a chosen cause."""

    def __init__(self) -> None:
        self.fail_with: Exception | None = None
        self.calls: list[str] = []

    async def mount(self, file_system_id: str, path: str, target: Path,
                    options: Sequence[str]) -> None:
        self.calls.append(f"mount {target}")
        if self.fail_with is not None:
            raise self.fail_with

    async def unmount(self, target: Path) -> None:
        self.calls.append(f"unmount {target}")
        if self.fail_with is not None:
            raise self.fail_with
