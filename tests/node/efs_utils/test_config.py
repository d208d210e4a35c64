"""Tables for the efs-utils.conf renderer and the overrides grammar."""

from __future__ import annotations

import configparser

import pytest

from efs_csi_node.efs_utils.config import (
    ConfigError,
    EfsUtilsSettings,
    Override,
    parse_overrides,
    render,
)


def parsed(settings: EfsUtilsSettings) -> configparser.ConfigParser:
    """Read the rendered text the way efs-utils does (interpolation on)."""
    parser = configparser.ConfigParser()
    parser.read_string(render(settings))
    return parser


def test_defaults_have_every_section_and_key_efs_utils_reads() -> None:
    conf = parsed(EfsUtilsSettings())
    assert conf.sections()[:2] == ["mount", "mount.cn-north-1"]
    for section in ("mount", "mount-watchdog", "client-info", "cloudwatch-log",
                    "mount.us-iso-east-1"):
        assert conf.has_section(section)
    assert conf.get("DEFAULT", "logging_level") == "INFO"
    mount = conf["mount"]
    assert mount["stunnel_debug_enabled"] == "false"
    assert mount["fips_mode_enabled"] == "false"
    assert mount["port_range_lower_bound"] == "20049"
    assert mount["port_range_upper_bound"] == "20449"
    assert mount["retry_nfs_mount_command"] == "true"
    assert mount["dns_name_format"] == "{az}.{fs_id}.efs.{region}.{dns_name_suffix}"
    assert not conf.has_option("mount", "region")
    assert conf.get("mount-watchdog", "enabled") == "true"
    assert conf.get("client-info", "source") == "k8s"
    assert conf.get("cloudwatch-log", "enabled") == "false"
    assert conf.get("mount.cn-north-1", "dns_name_suffix") == "amazonaws.com.cn"


@pytest.mark.parametrize(("settings", "section", "key", "expected"), [
    (EfsUtilsSettings(region="eu-west-1"), "mount", "region", "eu-west-1"),
    (EfsUtilsSettings(fips=True), "mount", "fips_mode_enabled", "true"),
    (EfsUtilsSettings(port_range_upper_bound=21049), "mount", "port_range_upper_bound", "21049"),
    (EfsUtilsSettings(debug=True), "mount", "stunnel_debug_enabled", "true"),
    (EfsUtilsSettings(debug=True), "DEFAULT", "logging_level", "DEBUG"),
    (EfsUtilsSettings(debug=True), "mount-watchdog", "logging_level", "DEBUG"),
    (EfsUtilsSettings(overrides=(Override("mount", "stunnel_check_cert_validity", "true"),)),
     "mount", "stunnel_check_cert_validity", "true"),
    (EfsUtilsSettings(overrides=(Override("mount", "stunnel_logs_file", "/var/log/x.log"),)),
     "mount", "stunnel_logs_file", "/var/log/x.log"),
    # A partition the node does not know (weakening TLS unless allowed: tests/node/test_tls_policy)
    (EfsUtilsSettings(overrides=(Override("mount.eu-west-9", "dns_name_suffix", "x.y"),),
                      allow_insecure=True),
     "mount.eu-west-9", "dns_name_suffix", "x.y"),
    # Overrides win over the flags.
    (EfsUtilsSettings(fips=True, overrides=(Override("mount", "fips_mode_enabled", "false"),),
                      allow_insecure=True),
     "mount", "fips_mode_enabled", "false"),
    (EfsUtilsSettings(overrides=(Override("cloudwatch-log", "enabled", "true"),)),
     "cloudwatch-log", "enabled", "true"),
])
def test_settings_are_rendered(settings: EfsUtilsSettings, section: str, key: str,
                               expected: str) -> None:
    assert parsed(settings).get(section, key) == expected


def test_an_override_replaces_the_key_in_place_not_twice() -> None:
    text = render(EfsUtilsSettings(overrides=(Override("mount", "optimize_readahead", "false"),)))
    assert text.count("optimize_readahead") == 1


@pytest.mark.parametrize(("text", "expected"), [
    ("", ()),
    ("   ", ()),
    ("mount:stunnel_debug_enabled=true",
     (Override("mount", "stunnel_debug_enabled", "true"),)),
    (" mount : a = b , mount-watchdog:poll_interval_sec=2",
     (Override("mount", "a", "b"), Override("mount-watchdog", "poll_interval_sec", "2"))),
    ("DEFAULT:logging_level=DEBUG", (Override("DEFAULT", "logging_level", "DEBUG"),)),
    ("mount:dns_name_format={fs_id}.efs.{region}.x",
     (Override("mount", "dns_name_format", "{fs_id}.efs.{region}.x"),)),
    ("mount:k=a=b", (Override("mount", "k", "a=b"),)),
    ("mount.cn-north-1:dns_name_suffix=c", (Override("mount.cn-north-1", "dns_name_suffix", "c"),)),
])
def test_overrides_grammar(text: str, expected: tuple[Override, ...]) -> None:
    assert parse_overrides(text) == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("mount", "expected section:key=value"),
    ("mount:key", "expected section:key=value"),
    (":key=v", "expected section:key=value"),
    ("mount:=v", "expected section:key=value"),
    ("mount:a=b,", "empty item"),
    ("mount:a=b,,mount:c=d", "empty item"),
    ("mount:a=", "empty value"),
    ("mount_watchdog:enabled=false", "unknown section 'mount_watchdog'"),
    ("mount.nowhere:a=b", "unknown section"),
    ("mount:Bad-Key=1", "invalid key"),
    ("mount:a=b\nmalicious=1", "control characters"),
    ("mount:a=b\r", "control characters"),
    ("mount:a=\tb", "control characters"),
    ("mount:a=b\x00", "control characters"),
    ("mount:a=50%", "'%'"),
    ("mount:a=1,mount:a=2", "more than once"),
])
def test_bad_overrides_are_rejected_naming_the_flag(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_overrides(text)
    assert "--efs-utils-conf-overrides" in str(raised.value)
    assert fragment in str(raised.value)


@pytest.mark.parametrize(("settings", "fragment"), [
    (EfsUtilsSettings(port_range_upper_bound=20049), "--port-range-upper-bound"),
    (EfsUtilsSettings(port_range_upper_bound=70000), "--port-range-upper-bound"),
    (EfsUtilsSettings(overrides=(Override("mount", "port_range_lower_bound", "30000"),)),
     "--port-range-upper-bound"),
    (EfsUtilsSettings(overrides=(Override("mount", "port_range_upper_bound", "many"),)),
     "--efs-utils-conf-overrides"),
    (EfsUtilsSettings(region="us-east-1\n[mount]"), "--region"),
    (EfsUtilsSettings(region="US_EAST"), "--region"),
])
def test_settings_that_cannot_be_rendered(settings: EfsUtilsSettings, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        render(settings)
