"""The TLS policy as tables: which mount options and efs-utils.conf overrides weaken TLS to EFS,
refused unless the operator allows them, and efs-utils' own vocabulary fully classified.

The gRPC path through the real binary is in tests/node/test_tls_policy_binary.py.
"""

from __future__ import annotations

import pytest

from efs_csi.contract.volume_context import parse_volume_context
from efs_csi.contract.volume_id import parse_volume_id
from efs_csi.errors import InvalidArgument
from efs_csi_node.efs_utils.config import (
    ConfigError,
    EfsUtilsSettings,
    parse_overrides,
    render,
)
from efs_csi_node.mount_options import MountOptions, build_mount_options
from efs_csi_node.tls_policy import (
    NOT_WEAKENING_KEYS,
    NOT_WEAKENING_OPTIONS,
    WEAKENING_KEYS,
    WEAKENING_OPTIONS,
    parse_allowed_options,
)

FS = "fs-0123456789abcdef0"
AP = "fsap-0123456789abcdef0"
PLAINTEXT = {"encryptInTransit": "false"}


def built(user: tuple[str, ...] = (), context: dict[str, str] | None = None,
          handle: str = FS, allowed: frozenset[str] = frozenset()) -> MountOptions:
    return build_mount_options(parse_volume_id(handle), parse_volume_context(context or {}),
                               user, read_only=False, zone=None, allowed_insecure=allowed)


# (what a PV gives, the table's name for it, a word of the effect the error explains)
WEAKENING_CASES = [
    ((), PLAINTEXT, "notls", "plaintext"),
    (("notls",), PLAINTEXT, "notls", "plaintext"),
    (("verify=0",), None, "verify", "verify=0"),
    (("verify=1",), None, "verify", "verify=0"),
    (("verify=3",), None, "verify", "verify=0"),
    (("Verify=0",), None, "verify", "verify=0"),  # efs-utils' keys are case-sensitive; ours not
    (("cafile=/var/lib/kubelet/pods/evil/ca.pem",), None, "cafile", "trust anchor"),
    (("netns=/proc/1/ns/net",), None, "netns", "network namespace"),
    (("noocsp",), None, "noocsp", "revocation"),
    (("iam,cafile=/x",), None, "cafile", "trust anchor"),  # inside a comma-separated flag
]


@pytest.mark.parametrize(("user", "context", "name", "effect"), WEAKENING_CASES)
def test_weakening_is_refused_naming_the_option_and_the_flag(
        user: tuple[str, ...], context: dict[str, str] | None, name: str, effect: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        built(user, context)
    message = refused.value.message
    assert "weakens TLS" in message and effect in message
    assert f"--allow-insecure-mount-options={name}" in message
    assert f"node.allowInsecureMountOptions: [{name}]" in message
    given = [option for flag in user for option in flag.split(",")
             if option.split("=")[0].lower() == name]
    for option in given:
        assert repr(option) in message
    if not user:  # the plaintext comes from the volume context: that field is named
        assert message.startswith("volume_context.encryptInTransit:")
        assert 'encryptInTransit: "false"' in message
    else:
        assert message.startswith("volume_capability.mount.mount_flags:")


@pytest.mark.parametrize(("user", "context", "name", "effect"), WEAKENING_CASES)
def test_weakening_allowed_by_name_is_kept_with_a_note(
        user: tuple[str, ...], context: dict[str, str] | None, name: str, effect: str) -> None:
    result = built(user, context, allowed=frozenset({name}))
    expected = [option for flag in user for option in flag.split(",")]
    assert [option for option in result.options if option != "tls"] == expected
    assert ("tls" in result.options) is (context is None)
    assert any("weakens TLS" in note and f"({name})" in note for note in result.notes)


def test_every_weakening_option_is_named_at_once_with_the_flag_value_for_all() -> None:
    with pytest.raises(InvalidArgument) as refused:
        built(("verify=0,cafile=/x", "netns=/n"))
    message = refused.value.message
    for given in ("'verify=0'", "'cafile=/x'", "'netns=/n'"):
        assert given in message
    assert "--allow-insecure-mount-options=cafile,netns,verify" in message


def test_allowing_one_weakening_option_does_not_allow_another() -> None:
    with pytest.raises(InvalidArgument) as refused:
        built(("verify=0", "cafile=/x"), allowed=frozenset({"verify"}))
    message = refused.value.message
    assert "'cafile=/x'" in message and "'verify=0'" not in message
    assert "--allow-insecure-mount-options=cafile " in message
    with pytest.raises(InvalidArgument, match="encryptInTransit"):
        built(context=PLAINTEXT, allowed=frozenset({"verify", "cafile", "netns", "noocsp"}))


@pytest.mark.parametrize(("user", "context", "handle", "expected"), [
    # efs-utils' default verify level, given explicitly, changes nothing
    (("verify=2",), None, FS, ["tls", "verify=2"]),
    (("tlsport=20100",), None, FS, ["tls", "tlsport=20100"]),
    (("stunnel",), None, FS, ["tls", "stunnel"]),
    (("ocsp",), None, FS, ["tls", "ocsp"]),
    (("iam", "awsprofile=team"), None, FS, ["tls", "iam", "awsprofile=team"]),
    (("mounttargetip=10.0.0.7", "region=us-east-1", "az=us-east-1a"), None, FS,
     ["tls", "mounttargetip=10.0.0.7", "region=us-east-1", "az=us-east-1a"]),
    # an access point brings TLS whatever encryptInTransit says: nothing is weakened
    ((), PLAINTEXT, f"{FS}::{AP}", ["tls", f"accesspoint={AP}"]),
])
def test_what_does_not_weaken_tls_passes_without_any_allowance(
        user: tuple[str, ...], context: dict[str, str] | None, handle: str,
        expected: list[str]) -> None:
    result = built(user, context, handle=handle)
    assert result.options == expected
    assert not any("weakens TLS" in note for note in result.notes)


# efs-utils v3.2.0 (src/efs_utils_common/constants.py, NON_NFS_OPTIONS): every option mount.efs
# reads itself rather than passing to mount.nfs4. A new efs-utils adding one fails this test
# until the table decides about it.
EFS_UTILS_OPTIONS = {
    "accesspoint", "awscredsuri", "awsprofile", "az", "azid", "cafile", "iam",
    "mounttargetip", "netns", "noocsp", "notls", "ocsp", "region", "tls", "tlsport", "verify",
    "rolearn", "jwtpath", "crossaccount", "stunnel", "nodirects3read", "nos3readcache"}

# efs-utils v3.2.0's keys of [DEFAULT], [mount] and [mount.<region>] (dist/efs-utils.conf, and
# the optional ones its code reads: stunnel_logs_file, az_id, disable_fetch_ec2_metadata_token).
EFS_UTILS_MOUNT_KEYS = {
    "logging_level", "logging_max_bytes", "logging_file_count", "state_file_dir_mode",
    "dns_name_format", "dns_name_suffix", "region", "stunnel_debug_enabled", "stunnel_cafile",
    "stunnel_check_cert_hostname", "stunnel_check_cert_validity", "fips_mode_enabled",
    "port_range_lower_bound", "port_range_upper_bound", "optimize_readahead",
    "fall_back_to_mount_target_ip_address_enabled", "retry_nfs_mount_command",
    "retry_nfs_mount_command_count", "retry_nfs_mount_command_timeout_sec",
    "stunnel_logs_file", "az_id", "disable_fetch_ec2_metadata_token"}


def test_every_efs_utils_option_and_key_is_classified_once() -> None:
    assert not set(WEAKENING_OPTIONS) & NOT_WEAKENING_OPTIONS
    assert set(WEAKENING_OPTIONS) | NOT_WEAKENING_OPTIONS >= EFS_UTILS_OPTIONS
    assert not set(WEAKENING_KEYS) & NOT_WEAKENING_KEYS
    assert set(WEAKENING_KEYS) | NOT_WEAKENING_KEYS >= EFS_UTILS_MOUNT_KEYS


@pytest.mark.parametrize(("text", "expected"), [
    ("", frozenset()),
    ("notls", frozenset({"notls"})),
    ("notls, verify,cafile", frozenset({"notls", "verify", "cafile"})),
])
def test_allowed_options_flag_value(text: str, expected: frozenset[str]) -> None:
    assert parse_allowed_options(text) == expected


def test_allowed_options_flag_refuses_unknown_names_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match="tlsport") as refused:
        parse_allowed_options("notls,tlsport")
    for name in WEAKENING_OPTIONS:
        assert name in str(refused.value)


# efs-utils.conf overrides -------------------------------------------------------------------

@pytest.mark.parametrize(("override", "effect"), [
    ("mount:stunnel_check_cert_hostname=false", "certificate names the mount target"),
    ("mount:stunnel_check_cert_hostname=0", "certificate names the mount target"),
    ("mount:stunnel_check_cert_hostname=off", "certificate names the mount target"),
    ("DEFAULT:stunnel_check_cert_hostname=no", "certificate names the mount target"),
    ("mount:stunnel_cafile=/etc/ssl/certs/ca-certificates.crt", "trust anchor"),
    ("mount.us-east-1:stunnel_cafile=/tmp/ca.pem", "trust anchor"),
    ("DEFAULT:stunnel_cafile=/tmp/ca.pem", "trust anchor"),
    # the Amazon CA bundle where the node writes the system bundle (a partition), and back
    ("mount.us-iso-east-1:stunnel_cafile=/etc/amazon/efs/efs-utils.crt", "trust anchor"),
    ("mount:dns_name_suffix=example.com", "host name"),
    ("mount.us-east-1:dns_name_suffix=example.com", "host name"),
    ("mount:dns_name_format={fs_id}.example.com", "host name"),
])
def test_weakening_overrides_are_refused_naming_the_item_and_the_flag(override: str,
                                                                     effect: str) -> None:
    settings = EfsUtilsSettings(overrides=parse_overrides(override))
    with pytest.raises(ConfigError) as refused:
        render(settings)
    message = str(refused.value)
    assert message.startswith("--efs-utils-conf-overrides: weakens TLS")
    assert override in message and effect in message
    assert "--allow-insecure-efs-utils-conf" in message
    assert "node.allowInsecureEfsUtilsConf: true" in message
    allowed = EfsUtilsSettings(overrides=settings.overrides, allow_insecure=True)
    section, _, item = override.partition(":")
    key, _, value = item.partition("=")
    assert f"{key} = {value}" in _section(render(allowed), section)


def test_fips_off_is_weakening_only_under_fips() -> None:
    overrides = parse_overrides("mount:fips_mode_enabled=false")
    assert "fips_mode_enabled = false" in render(EfsUtilsSettings(overrides=overrides))
    with pytest.raises(ConfigError, match="FIPS"):
        render(EfsUtilsSettings(fips=True, overrides=overrides))


@pytest.mark.parametrize("override", [
    "mount:stunnel_check_cert_hostname=true",  # the node's own value
    "mount:stunnel_check_cert_hostname=yes",
    "mount:stunnel_cafile=/etc/amazon/efs/efs-utils.crt",
    "mount.us-iso-east-1:stunnel_cafile=/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "mount.cn-north-1:stunnel_cafile=/etc/amazon/efs/efs-utils.crt",  # [mount]'s, inherited
    "mount:dns_name_suffix=amazonaws.com",
    "mount.us-east-1:dns_name_suffix=amazonaws.com",
    "mount:stunnel_check_cert_validity=true",  # OCSP on: stronger
    "mount:fips_mode_enabled=true",
    "mount:stunnel_logs_file=/var/log/amazon/efs/{fs_id}.stunnel.log",
    "mount-watchdog:poll_interval_sec=2",
    "proxy:proxy_logging_level=debug",
])
def test_overrides_that_do_not_weaken_tls_need_no_allowance(override: str) -> None:
    render(EfsUtilsSettings(overrides=parse_overrides(override)))


def _section(text: str, name: str) -> str:
    """The lines of section ``[name]`` of a rendered file."""
    lines = text.splitlines()
    start = lines.index(f"[{name}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")),
               len(lines))
    return "\n".join(lines[start:end])
