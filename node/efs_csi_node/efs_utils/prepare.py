"""Preparing efs-utils' configuration directory at node start (blocking file I/O).

The directory (``--efs-utils-config-dir``, a host directory) outlives the node container, so
what efs-utils keeps there survives restarts and upgrades. The image has to make it visible
where efs-utils looks (``/etc/amazon/efs``, e.g. a symlink to the host directory).

At start, in order:
1. Migration, once: an older release kept the same state in ``--efs-utils-legacy-config-dir``.
   When the new directory holds nothing and the legacy one holds something, the legacy
   entries are copied over. A marker file makes an interrupted copy resume (overwriting) on
   the next start instead of being mistaken for a finished one. The legacy directory is left
   alone, so downgrading still works.
2. Static files shipped in the image (the Amazon CA bundle ``efs-utils.crt``...) are copied in
   when missing; existing ones are never overwritten.
3. ``efs-utils.conf`` is written atomically (temporary file, fsync, rename, fsync of the
   directory) so mount.efs never reads a half-written file. It is rewritten at every start:
   the flags are its source of truth.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CONF_NAME = "efs-utils.conf"
MIGRATION_MARKER = ".legacy-migration-in-progress"


@dataclass(frozen=True)
class Prepared:
    conf_path: Path
    migrated_from: Path | None
    static_files_copied: tuple[str, ...]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _has_entries(directory: Path) -> bool:
    try:
        return any(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return False


def _copy_entry(source: Path, target: Path) -> None:
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target, follow_symlinks=False)


def migrate_legacy(config_dir: Path, legacy_dir: Path | None) -> bool:
    """Copy the legacy directory's entries into an empty ``config_dir``; True if it did."""
    if legacy_dir is None or not _has_entries(legacy_dir):
        return False
    with contextlib.suppress(FileNotFoundError):
        if legacy_dir.resolve() == config_dir.resolve():
            return False
    marker = config_dir / MIGRATION_MARKER
    if _has_entries(config_dir) and not marker.exists():
        return False
    marker.touch()
    for entry in sorted(legacy_dir.iterdir()):
        _copy_entry(entry, config_dir / entry.name)
    _fsync_directory(config_dir)
    marker.unlink()
    _fsync_directory(config_dir)
    return True


def copy_static_files(config_dir: Path, static_dir: Path | None) -> tuple[str, ...]:
    """Copy the image's files into ``config_dir`` where missing; return the names copied."""
    if static_dir is None or not static_dir.is_dir():
        return ()
    copied = []
    for entry in sorted(static_dir.iterdir()):
        target = config_dir / entry.name
        if target.exists() or target.is_symlink():
            continue
        _copy_entry(entry, target)
        copied.append(entry.name)
    return tuple(copied)


def prepare_config_dir(config_dir: Path, conf_text: str, *, legacy_dir: Path | None = None,
                       static_dir: Path | None = None) -> Prepared:
    """Run the three steps of the module docstring; blocking, call it off the event loop."""
    config_dir.mkdir(parents=True, exist_ok=True)
    migrated = migrate_legacy(config_dir, legacy_dir)
    copied = copy_static_files(config_dir, static_dir)
    conf_path = config_dir / CONF_NAME
    write_atomically(conf_path, conf_text)
    return Prepared(conf_path, legacy_dir if migrated else None, copied)
