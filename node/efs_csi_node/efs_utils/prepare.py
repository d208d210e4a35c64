"""Preparing efs-utils' configuration directory at node start (blocking file I/O).

The directory (``--efs-utils-config-dir``, a host directory) outlives the node container, so
what efs-utils keeps there survives restarts and upgrades. The image has to make it visible
where efs-utils looks (``/etc/amazon/efs``, e.g. a symlink to the host directory).

At start, in order:
1. Migration, once: an older release kept the same state in ``--efs-utils-legacy-config-dir``.
   When the new directory holds nothing and the legacy one holds something, the legacy
   entries are copied over, except the files the image owns (below): an old CA bundle is never
   carried over. A marker file makes an interrupted copy resume (overwriting) on the next start
   instead of being mistaken for a finished one. The legacy directory is left alone, so
   downgrading still works.
2. The files the image ships (its static directory, ``/etc/amazon/efs-static-files``: the
   Amazon CA bundle ``efs-utils.crt``...) are installed at every start, replacing what the
   host directory holds, each atomically: a CA rotated by an image upgrade takes effect at the
   next start, and a stale or tampered copy on the host never outlives one (the reference
   driver overwrites the bundle at every start too). When the image has no CA bundle, a host
   copy is removed rather than trusted: mounts then fail naming the missing file.
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
CA_BUNDLE_NAME = "efs-utils.crt"
MIGRATION_MARKER = ".legacy-migration-in-progress"
# What the image owns in the directory: installed (or rendered) at every start, never migrated.
IMAGE_OWNED = frozenset({CONF_NAME, CA_BUNDLE_NAME})


@dataclass(frozen=True)
class Prepared:
    conf_path: Path
    migrated_from: Path | None
    static_files_installed: tuple[str, ...]
    # A host CA bundle removed because the image has none (never trusted instead).
    removed_host_ca: bool = False


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never a mix."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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
        if entry.name in IMAGE_OWNED:
            continue
        _copy_entry(entry, config_dir / entry.name)
    _fsync_directory(config_dir)
    marker.unlink()
    _fsync_directory(config_dir)
    return True


def install_static_files(config_dir: Path, static_dir: Path | None) -> tuple[str, ...]:
    """Install every file of the image's ``static_dir`` into ``config_dir``, replacing what is
    there (a symlink included: the entry is replaced, never followed); return the names. The
    conf is not among them: step 3 renders it."""
    if static_dir is None or not static_dir.is_dir():
        return ()
    installed = []
    for entry in sorted(static_dir.iterdir()):
        if entry.name == CONF_NAME or not entry.is_file():
            continue
        write_atomically(config_dir / entry.name, entry.read_bytes(),
                         mode=entry.stat().st_mode & 0o777)
        installed.append(entry.name)
    return tuple(installed)


def remove_host_ca(config_dir: Path) -> bool:
    """Remove a CA bundle the image did not install; True if there was one."""
    target = config_dir / CA_BUNDLE_NAME
    if not (target.exists() or target.is_symlink()):
        return False
    target.unlink()
    _fsync_directory(config_dir)
    return True


def prepare_config_dir(config_dir: Path, conf_text: str, *, legacy_dir: Path | None = None,
                       static_dir: Path | None = None) -> Prepared:
    """Run the three steps of the module docstring; blocking, call it off the event loop."""
    config_dir.mkdir(parents=True, exist_ok=True)
    migrated = migrate_legacy(config_dir, legacy_dir)
    installed = install_static_files(config_dir, static_dir)
    removed = CA_BUNDLE_NAME not in installed and remove_host_ca(config_dir)
    conf_path = config_dir / CONF_NAME
    write_atomically(conf_path, conf_text)
    return Prepared(conf_path, legacy_dir if migrated else None, installed, removed)
