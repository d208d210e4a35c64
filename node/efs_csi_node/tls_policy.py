"""What weakens TLS to EFS: the one table of the mount options and efs-utils.conf keys that do
(pure, no I/O). ``mount_options`` refuses the options and ``efs_utils.config`` the keys, unless
the operator allows them (``--allow-insecure-mount-options``, ``--allow-insecure-efs-utils-conf``).

Why these: efs-utils (v3.2.0) trusts the Amazon root CAs of ``efs-utils.crt`` (Amazon Root CA
1-4, the roots of every public ACM certificate), checks the server's certificate (``verify=2``),
and checks that it names the mount target's DNS name (``checkHost``). Anyone can get a public
ACM certificate for a domain they own, so the host-name check is what binds the tunnel to EFS:
whatever turns off verification, swaps the trust anchor, or changes the name that is checked,
lets a server that is not EFS read and write the volume's data.

Mount options (a PV's ``mountOptions`` or ``volumeAttributes``, so a tenant's choice):

| option | weakens? | why |
|---|---|---|
| ``notls``, or no ``tls`` (``encryptInTransit: "false"``) | yes: ``notls`` | NFS in plaintext |
| ``verify=N`` | yes unless ``N`` is ``2`` | ``verify=0`` turns certificate checks off |
| ``cafile=PATH`` | yes | any file on the node becomes the trust anchor |
| ``netns=PATH`` | yes | the tunnel runs in a network namespace the PV picks (another pod's) |
| ``noocsp`` | yes | turns off the revocation check ``mount:stunnel_check_cert_validity`` turns on |
| ``tls``, ``ocsp``, ``iam`` | no | they add checks |
| ``tlsport``, ``stunnel`` | no | a local port; stunnel checks as efs-proxy does |
| ``mounttargetip``, ``region``, ``az``, ``azid`` | no | where to connect; EFS's name is checked |
| ``accesspoint``, ``awsprofile``, ``rolearn`` | no | not TLS (credential sources: dropped) |

efs-utils.conf keys (``--efs-utils-conf-overrides``, the operator's own choice, refused so that
it is never made by accident), in ``[mount]``, ``[mount.<region>]`` and ``[DEFAULT]``: only a
change of the value the node writes counts, and only in the weaker direction.

| key | weakens when |
|---|---|
| ``stunnel_check_cert_hostname`` | not true: no host-name check at all |
| ``stunnel_cafile`` | another file than the node's: another trust anchor |
| ``dns_name_format``, ``dns_name_suffix`` | changed: another host name is connected and checked |
| ``fips_mode_enabled`` | not true while the node runs with ``--fips`` |

Not weakening: ``stunnel_check_cert_validity`` (OCSP, off by default), everything else efs-utils
reads (logging, ports, retries, the watchdog, CloudWatch, ``[proxy]`` tuning).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

MOUNT_OPTIONS_FLAG = "--allow-insecure-mount-options"
MOUNT_OPTIONS_VALUE = "node.allowInsecureMountOptions"
CONF_FLAG = "--allow-insecure-efs-utils-conf"
CONF_VALUE = "node.allowInsecureEfsUtilsConf"


@dataclass(frozen=True)
class WeakeningOption:
    """A mount option that weakens TLS: ``name`` is how the operator allows it."""

    name: str
    effect: str
    harmless_value: str | None = None  # efs-utils' default: given explicitly, it changes nothing


WEAKENING_OPTIONS: dict[str, WeakeningOption] = {option.name: option for option in (
    WeakeningOption("notls", "NFS in plaintext, without TLS"),
    WeakeningOption("verify", "verify=0 turns off the check of EFS's certificate",
                    harmless_value="2"),
    WeakeningOption("cafile", "a file on the node replaces the Amazon CA bundle as the trust "
                              "anchor"),
    WeakeningOption("netns", "the TLS tunnel runs in a network namespace the volume picks"),
    WeakeningOption("noocsp", "turns off the certificate revocation check (OCSP)"),
)}

# Every other option efs-utils itself reads (not passed on to mount.nfs4), judged not to weaken
# TLS (the table above says why); tests check efs-utils' list is covered by the two.
NOT_WEAKENING_OPTIONS = frozenset({
    "tls", "tlsport", "ocsp", "stunnel", "iam", "accesspoint", "mounttargetip", "region", "az",
    "azid", "awsprofile", "rolearn", "awscredsuri", "jwtpath", "crossaccount",
    "nodirects3read", "nos3readcache"})


def weakening_option(option: str) -> WeakeningOption | None:
    """The table's entry for ``option`` (``key`` or ``key=value``, any case), if it weakens."""
    key, _, value = option.partition("=")
    entry = WEAKENING_OPTIONS.get(key.strip().lower())
    if entry is None or (entry.harmless_value is not None and value == entry.harmless_value):
        return None
    return entry


def parse_allowed_options(text: str) -> frozenset[str]:
    """``--allow-insecure-mount-options``: names from the table, comma-separated ('' = none);
    ValueError naming the unknown ones."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(WEAKENING_OPTIONS))
    if unknown:
        raise ValueError(f"unknown mount option(s) {', '.join(unknown)}; the ones that weaken "
                         f"TLS are {', '.join(WEAKENING_OPTIONS)}")
    return frozenset(names)


def allow_hint(names: Iterable[str]) -> str:
    """How the operator would allow these options: the node flag and the chart value."""
    listed = sorted(set(names))
    return (f"{MOUNT_OPTIONS_FLAG}={','.join(listed)} on the node (chart: "
            f"{MOUNT_OPTIONS_VALUE}: [{', '.join(listed)}])")


# efs-utils.conf ------------------------------------------------------------------------------

_TRUE = frozenset({"1", "yes", "true", "on"})  # what configparser's getboolean reads as true


def _is_true(value: str) -> bool:
    return value.strip().lower() in _TRUE


@dataclass(frozen=True)
class WeakeningKey:
    """An efs-utils.conf key, and when a value weakens TLS compared with the node's own."""

    key: str
    effect: str
    weakens: Callable[[str, str | None], bool]  # (override, value the node writes) -> bool


WEAKENING_KEYS: dict[str, WeakeningKey] = {entry.key: entry for entry in (
    WeakeningKey("stunnel_check_cert_hostname",
                 "the tunnel no longer checks that the certificate names the mount target",
                 lambda value, _ours: not _is_true(value)),
    WeakeningKey("stunnel_cafile", "another file replaces the node's trust anchor",
                 lambda value, ours: value != ours),
    WeakeningKey("dns_name_format", "the tunnel connects to, and checks, a host name of this "
                                    "setting's choosing instead of EFS's",
                 lambda value, ours: value != ours),
    WeakeningKey("dns_name_suffix", "the tunnel connects to, and checks, a host name outside "
                                    "EFS's domain",
                 lambda value, ours: value != ours),
    WeakeningKey("fips_mode_enabled", "turns off FIPS mode that --fips turns on",
                 lambda value, ours: ours is not None and _is_true(ours) and not _is_true(value)),
)}

# Every other key efs-utils reads from [DEFAULT], [mount] and [mount.<region>], judged not to
# weaken TLS; tests check efs-utils' own file is covered by the two.
NOT_WEAKENING_KEYS = frozenset({
    "stunnel_check_cert_validity", "stunnel_debug_enabled", "stunnel_logs_file", "region",
    "az_id", "port_range_lower_bound", "port_range_upper_bound", "optimize_readahead",
    "fall_back_to_mount_target_ip_address_enabled", "disable_fetch_ec2_metadata_token",
    "retry_nfs_mount_command", "retry_nfs_mount_command_count",
    "retry_nfs_mount_command_timeout_sec", "logging_level", "logging_max_bytes",
    "logging_file_count", "state_file_dir_mode"})

# Sections whose keys efs-utils reads for a mount ([DEFAULT] applies to every section).
TLS_SECTIONS = ("DEFAULT", "mount")
TLS_SECTION_PREFIX = "mount."


def weakening_key(section: str, key: str, value: str, ours: str | None) -> WeakeningKey | None:
    """The table's entry when ``section:key=value`` weakens TLS, given the value the node would
    write there itself (``ours``; None when it writes none)."""
    if section not in TLS_SECTIONS and not section.startswith(TLS_SECTION_PREFIX):
        return None
    entry = WEAKENING_KEYS.get(key)
    if entry is None or not entry.weakens(value, ours):
        return None
    return entry
