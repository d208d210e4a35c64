"""The config directory on a real file system: migration once, the image's files installed at
every start (never an old host copy of the CA bundle), atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from efs_csi_node.efs_utils import prepare as prepare_module
from efs_csi_node.efs_utils.prepare import (
    CA_BUNDLE_NAME,
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
    assert not (config / "efs-utils.crt").exists()  # the image's to give, never migrated
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
    (config / "state").write_text("current")
    assert prepare_config_dir(config, "x", legacy_dir=legacy).migrated_from is None
    assert (config / "state").read_text() == "current"
    assert not (config / "certs").exists()


def test_an_interrupted_migration_resumes(tmp_path: Path) -> None:
    legacy = make_legacy(tmp_path)
    config = tmp_path / "new"
    config.mkdir()
    (config / MIGRATION_MARKER).touch()
    (config / "certs" / "fs-1").mkdir(parents=True)
    (config / "certs" / "fs-1" / "key.pem").write_text("half-wri")
    prepared = prepare_config_dir(config, "x", legacy_dir=legacy)
    assert prepared.migrated_from == legacy
    assert (config / "certs" / "fs-1" / "key.pem").read_text() == "legacy key"
    assert not (config / MIGRATION_MARKER).exists()


def test_missing_or_same_legacy_directory_is_ignored(tmp_path: Path) -> None:
    config = tmp_path / "new"
    assert prepare_config_dir(config, "x", legacy_dir=tmp_path / "none").migrated_from is None
    assert prepare_config_dir(config, "y", legacy_dir=config).migrated_from is None


IMAGE_CA = "-----BEGIN CERTIFICATE-----\nimage\n-----END CERTIFICATE-----\n"
BOGUS_CA = "-----BEGIN CERTIFICATE-----\nattacker or stale\n-----END CERTIFICATE-----\n"


def image_static_dir(root: Path) -> Path:
    """What the node image ships in /etc/amazon/efs-static-files."""
    static = root / "static"
    static.mkdir()
    (static / CA_BUNDLE_NAME).write_text(IMAGE_CA)
    (static / CA_BUNDLE_NAME).chmod(0o444)
    (static / CONF_NAME).write_text("[mount]\nefs-utils' own = 1\n")
    return static


def test_the_image_ca_replaces_a_bogus_host_copy_at_every_start(tmp_path: Path) -> None:
    static = image_static_dir(tmp_path)
    config = tmp_path / "new"
    config.mkdir()
    (config / CA_BUNDLE_NAME).write_text(BOGUS_CA)
    (config / "state").write_text("kept")
    for start in range(2):
        prepared = prepare_config_dir(config, f"[mount]\nours = {start}\n", static_dir=static)
        assert prepared.static_files_installed == (CA_BUNDLE_NAME,)
        assert (config / CA_BUNDLE_NAME).read_text() == IMAGE_CA
        assert (config / CA_BUNDLE_NAME).stat().st_mode & 0o777 == 0o444  # the image's mode
        assert (config / CONF_NAME).read_text() == f"[mount]\nours = {start}\n"  # rendered
        assert (config / "state").read_text() == "kept"  # efs-utils' state stays
        (config / CA_BUNDLE_NAME).chmod(0o644)
        (config / CA_BUNDLE_NAME).write_text(BOGUS_CA)  # tampered again before the next start


def test_a_legacy_ca_is_never_migrated(tmp_path: Path) -> None:
    """The review's run E5: a bogus CA in the legacy directory survived every start."""
    static = image_static_dir(tmp_path)
    legacy = make_legacy(tmp_path)
    (legacy / CA_BUNDLE_NAME).write_text(BOGUS_CA)
    config = tmp_path / "new"
    for _ in range(2):
        prepare_config_dir(config, "x", legacy_dir=legacy, static_dir=static)
        assert (config / CA_BUNDLE_NAME).read_text() == IMAGE_CA
    assert (config / "certs" / "fs-1" / "key.pem").read_text() == "legacy key"  # state moves


def test_a_symlinked_host_ca_is_replaced_never_followed(tmp_path: Path) -> None:
    static = image_static_dir(tmp_path)
    config = tmp_path / "new"
    config.mkdir()
    elsewhere = tmp_path / "elsewhere.pem"
    elsewhere.write_text(BOGUS_CA)
    (config / CA_BUNDLE_NAME).symlink_to(elsewhere)
    prepare_config_dir(config, "x", static_dir=static)
    assert not (config / CA_BUNDLE_NAME).is_symlink()
    assert (config / CA_BUNDLE_NAME).read_text() == IMAGE_CA
    assert elsewhere.read_text() == BOGUS_CA  # what the link pointed at is untouched


def test_without_an_image_ca_the_host_copy_is_removed_not_trusted(tmp_path: Path) -> None:
    config = tmp_path / "new"
    config.mkdir()
    (config / CA_BUNDLE_NAME).write_text(BOGUS_CA)
    prepared = prepare_config_dir(config, "x", static_dir=tmp_path / "no-such-dir")
    assert prepared.removed_host_ca is True
    assert not (config / CA_BUNDLE_NAME).exists()
    assert prepare_config_dir(config, "x", static_dir=None).removed_host_ca is False


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
