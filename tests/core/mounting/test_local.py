"""The local backend's access-point roots, made as EFS makes them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from efs_csi.mounting import local


def test_a_root_and_its_missing_parents_get_the_owner_and_mode(tmp_path: Path) -> None:
    root = tmp_path / "dynamic" / "pvc-a"
    local._make_root(root, os.getuid(), os.getgid(), "750")
    for path in (tmp_path / "dynamic", root):
        assert stat.S_IMODE(path.stat().st_mode) == 0o750


def test_a_parent_made_meanwhile_by_another_mount_is_used_as_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race of two first mounts under one missing parent, made deterministic: the parent
    looks missing, then exists by the time of the mkdir (the other mount made it)."""
    parent = tmp_path / "dynamic"
    parent.mkdir(mode=0o700)
    os.chmod(parent, 0o700)
    real_exists = Path.exists

    def exists_as_before_the_other_mount(self: Path) -> bool:
        return False if self == parent else real_exists(self)

    monkeypatch.setattr(Path, "exists", exists_as_before_the_other_mount)
    root = parent / "pvc-b"
    local._make_root(root, os.getuid(), os.getgid(), "750")
    assert root.is_dir() and stat.S_IMODE(root.stat().st_mode) == 0o750
    assert stat.S_IMODE(parent.stat().st_mode) == 0o700  # the other mount's, untouched


def test_a_file_where_a_parent_belongs_is_still_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "dynamic"
    blocker.write_text("not a directory")
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists",
                        lambda self: False if self == blocker else real_exists(self))
    with pytest.raises(FileExistsError):
        local._make_root(blocker / "pvc-c", os.getuid(), os.getgid(), "750")
