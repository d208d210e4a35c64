"""The config directory on a real file system: migration once, static files, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from efs_csi_node.efs_utils import prepare as prepare_module
from efs_csi_node.efs_utils.prepare import (
    CONF_NAME,
    MIGRATION_MARKER,
    prepare_config_dir,
    write_atomically,
)


def make_legacy(root: Path) -> Path:
    legacy = root / "legacy"
    (legacy / "certs" / "fs-1").mkdir(parents=True)
    (legacy / "certs" / "fs-1" / "key.pem").write_text("legacy key")
    (legacy / "efs-utils.crt").write_text("legacy ca")
    (legacy / CONF_NAME).write_text("[mount]\nold = 1\n")
    return legacy


def test_fresh_directory_gets_the_rendered_file(tmp_path: Path) -> None:
    config = tmp_path / "var" / "amazon" / "efs"
    prepared = prepare_config_dir(config, "[mount]\nx = 1\n")
    assert prepared.conf_path == config / CONF_NAME
    assert (config / CONF_NAME).read_text() == "[mount]\nx = 1\n"
    assert (config / CONF_NAME).stat().st_mode & 0o777 == 0o644
    assert prepared.migrated_from is None
    assert sorted(p.name for p in config.iterdir()) == [CONF_NAME]


def test_legacy_state_is_migrated_once_and_the_conf_is_ours(tmp_path: Path) -> None:
    legacy = make_legacy(tmp_path)
    config = tmp_path / "new"
    prepared = prepare_config_dir(config, "[mount]\nnew = 1\n", legacy_dir=legacy)
    assert prepared.migrated_from == legacy
    assert (config / "certs" / "fs-1" / "key.pem").read_text() == "legacy key"
    assert (config / "efs-utils.crt").read_text() == "legacy ca"
    assert (config / CONF_NAME).read_text() == "[mount]\nnew = 1\n"
    assert not (config / MIGRATION_MARKER).exists()
    assert (legacy / "certs" / "fs-1" / "key.pem").exists()  # legacy left alone

    # Later changes in the legacy place are not copied again.
    (legacy / "late").write_text("late")
    (config / "certs" / "fs-1" / "key.pem").write_text("rotated")
    again = prepare_config_dir(config, "[mount]\nnew = 2\n", legacy_dir=legacy)
    assert again.migrated_from is None
    assert not (config / "late").exists()
    assert (config / "certs" / "fs-1" / "key.pem").read_text() == "rotated"


def test_existing_state_in_the_new_place_wins_over_legacy(tmp_path: Path) -> None:
    legacy = make_legacy(tmp_path)
    config = tmp_path / "new"
    config.mkdir()
    (config / "efs-utils.crt").write_text("current ca")
    assert prepare_config_dir(config, "x", legacy_dir=legacy).migrated_from is None
    assert (config / "efs-utils.crt").read_text() == "current ca"
    assert not (config / "certs").exists()


def test_an_interrupted_migration_resumes(tmp_path: Path) -> None:
    legacy = make_legacy(tmp_path)
    config = tmp_path / "new"
    config.mkdir()
    (config / MIGRATION_MARKER).touch()
    (config / "efs-utils.crt").write_text("half-wri")
    prepared = prepare_config_dir(config, "x", legacy_dir=legacy)
    assert prepared.migrated_from == legacy
    assert (config / "efs-utils.crt").read_text() == "legacy ca"
    assert (config / "certs" / "fs-1" / "key.pem").read_text() == "legacy key"
    assert not (config / MIGRATION_MARKER).exists()


def test_missing_or_same_legacy_directory_is_ignored(tmp_path: Path) -> None:
    config = tmp_path / "new"
    assert prepare_config_dir(config, "x", legacy_dir=tmp_path / "none").migrated_from is None
    assert prepare_config_dir(config, "y", legacy_dir=config).migrated_from is None


def test_static_files_fill_gaps_without_overwriting(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "efs-utils.crt").write_text("image ca")
    (static / "extra.txt").write_text("extra")
    config = tmp_path / "new"
    config.mkdir()
    (config / "extra.txt").write_text("kept")
    prepared = prepare_config_dir(config, "x", static_dir=static)
    assert prepared.static_files_copied == ("efs-utils.crt",)
    assert (config / "efs-utils.crt").read_text() == "image ca"
    assert (config / "extra.txt").read_text() == "kept"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / CONF_NAME
    target.write_text("old")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    # A fault a real file system will not produce on demand.
    monkeypatch.setattr(prepare_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == [CONF_NAME]
