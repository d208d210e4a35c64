"""Mounting, shared by the node (volumes) and the controller (a file system root, to delete an
access point's directory).

- ``Mounter``: mount a file system path somewhere, and unmount it. Backends: ``EfsMounter``
  (``mount -t efs`` through efs-utils) and ``efs_csi.mounting.local.LocalMounter`` (a directory
  per file system, real bind mounts).
- ``BindMounts``: bind one mounted directory to another place (how a staged volume reaches a
  pod), unmount with escalation to a lazy unmount, for either backend.

Every operation is a child process with a time limit (``efs_csi.mounting.commands``), so
nothing here blocks the event loop or outlives its timeout.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from efs_csi.logging import get_logger
from efs_csi.mounting.commands import CommandFailed, CommandTimedOut, Runner
from efs_csi.mounting.efs_leftovers import EFS_UTILS_STATE_DIR, find_leftovers, remove_leftovers
from efs_csi.mounting.tls_probe import certificate_refusal

_log = get_logger("efs_csi.mount")
T = TypeVar("T")


class Mounter(Protocol):
    async def mount(self, file_system_id: str, path: str, target: Path,
                    options: Sequence[str]) -> None:
        """Mount ``file_system_id:path`` at ``target`` (efs-utils, or a bind in ``local``).

        ``path`` is below the access point's root when ``options`` hold ``accesspoint=``.
        """

    async def unmount(self, target: Path) -> None:
        """Unmount ``target``; a timed-out unmount escalates to a lazy one."""


def _not_mounted(error: CommandFailed) -> bool:
    return "not mounted" in error.output or "no mount point specified" in error.output


@dataclass(frozen=True)
class MountCommands:
    """``mount``/``umount`` invocations with the node's time limits."""

    runner: Runner
    mount_timeout: float
    unmount_timeout: float
    mount_binary: str = "mount"
    umount_binary: str = "umount"

    async def mount(self, arguments: Sequence[str]) -> None:
        await self.runner.run([self.mount_binary, *arguments], self.mount_timeout)

    async def unmount(self, target: Path) -> None:
        try:
            await self.runner.run([self.umount_binary, str(target)], self.unmount_timeout)
        except CommandTimedOut:
            _log.warning("unmount timed out; unmounting lazily", target=str(target))
            await self.lazy_unmount(target)
        except CommandFailed as error:
            if not _not_mounted(error):
                raise

    async def lazy_unmount(self, target: Path) -> None:
        """Detach ``target`` now; the kernel finishes when the last user lets go."""
        try:
            await self.runner.run([self.umount_binary, "-l", str(target)], self.unmount_timeout)
        except CommandFailed as error:
            if not _not_mounted(error):
                raise


@dataclass(frozen=True)
class BindMounts:
    commands: MountCommands

    async def bind(self, source: Path, target: Path, *, read_only: bool) -> None:
        # util-linux applies "ro" to a bind mount itself (bind, then remount read-only).
        options = ["-o", "ro"] if read_only else []
        await self.commands.mount(["--bind", *options, str(source), str(target)])

    async def unmount(self, target: Path) -> None:
        await self.commands.unmount(target)

    async def lazy_unmount(self, target: Path) -> None:
        await self.commands.lazy_unmount(target)


async def _to_completion(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile (the caller is on
    its way out already and re-raises)."""
    task = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise


@dataclass(frozen=True)
class EfsMounter:
    """The production backend: ``mount -t efs -o <options> fs-id:/path <target>`` (efs-utils).

    A mount killed on its time limit or because its caller gave up leaves mount.efs' work half
    done; what it left for ``target`` in efs-utils' state directory (``state_dir``) is removed
    before the error goes up (``efs_csi.mounting.efs_leftovers``), so a retry starts clean and
    no tunnel outlives the attempt. A failed or timed-out TLS mount whose mount target's
    certificate is refused says so (``efs_csi.mounting.tls_probe``): efs-proxy only times out."""

    commands: MountCommands
    state_dir: Path = EFS_UTILS_STATE_DIR

    async def mount(self, file_system_id: str, path: str, target: Path,
                    options: Sequence[str]) -> None:
        arguments = ["-t", "efs"]
        if options:
            arguments += ["-o", ",".join(options)]
        argv = [*arguments, f"{file_system_id}:{path or '/'}", str(target)]
        try:
            await self.commands.mount(argv)
        except CommandFailed as error:
            refusal = await certificate_refusal(self.state_dir, target)
            if refusal is None:
                raise
            raise CommandFailed(["mount", *argv], error.returncode,
                                f"{refusal}\n{error.output}") from None
        except CommandTimedOut as error:
            # Before the tunnel's configuration goes with the rest of what mount.efs left.
            refusal = await _to_completion(certificate_refusal(self.state_dir, target))
            await _to_completion(self._remove_leftovers(target))
            if refusal is None:
                raise
            raise CommandTimedOut(f"{error}: {refusal}") from None
        except asyncio.CancelledError:
            await _to_completion(self._remove_leftovers(target))
            raise

    async def _remove_leftovers(self, target: Path) -> None:
        try:
            # One listing of a local directory decides; the work (/proc, removals: local
            # files only, never the NFS mount) goes to a thread.
            if not find_leftovers(os.listdir(self.state_dir), target).found:
                return
            done = await asyncio.to_thread(remove_leftovers, self.state_dir, target)
        except FileNotFoundError:
            return
        except OSError as exc:
            _log.error("could not remove what a killed mount.efs left", target=str(target),
                       error=str(exc))
            return
        if done:
            _log.warning("removed what a killed mount.efs left", target=str(target),
                         removed=done)

    async def unmount(self, target: Path) -> None:
        await self.commands.unmount(target)
