"""efs-utils.conf: parsing ``--efs-utils-conf-overrides`` and rendering the file (pure, no I/O).

The layout follows the file efs-utils ships (sections ``[DEFAULT]``, ``[mount]``, the
per-partition ``[mount.<region>]`` sections, ``[mount-watchdog]``, ``[client-info]``,
``[cloudwatch-log]``) so that mount.efs and the watchdog find every key they look up and do
not print "config file does not have ... item" warnings into every mount's output.

Overrides are ``section:key=value`` items separated by commas. Decisions, and why:
- Unknown sections are rejected: efs-utils silently ignores a section it does not read, so a
  typo (``mount_watchdog``) would otherwise be a setting that quietly does nothing. Accepted:
  the sections above, ``proxy``, and ``mount.<region>``.
- Unknown keys inside a known section are accepted: efs-utils reads optional keys that its
  shipped file leaves commented out (``stunnel_logs_file``, ``region``...), and new releases
  add more.
- Values may not contain control characters (a newline would inject arbitrary lines into the
  file), ``%`` (efs-utils reads the file with interpolation, so a lone ``%`` breaks parsing)
  or ``,`` (the item separator). Empty values are rejected as almost certainly a mistake.
- The same section:key twice is rejected rather than silently keeping one.
- Overrides are applied last, so they win over values derived from the other flags.
- An override that weakens TLS to EFS (``efs_csi_node.tls_policy``: the host-name check off,
  another CA file, other DNS names, FIPS off under --fips) is refused, naming the item and
  ``--allow-insecure-efs-utils-conf``, unless that flag is given: it is never made by accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from efs_csi_node.tls_policy import CONF_FLAG, CONF_VALUE, weakening_key

OVERRIDES_FLAG = "--efs-utils-conf-overrides"
DEFAULT_PORT_RANGE_LOWER_BOUND = 20049
DEFAULT_PORT_RANGE_UPPER_BOUND = 20449
MAX_PORT = 65535

_BASE_SECTIONS = ("DEFAULT", "mount", "mount-watchdog", "client-info", "cloudwatch-log", "proxy")
_REGION = re.compile(r"^[a-z]{2,4}(-[a-z]+)+-\d+$")
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_REGIONAL_SECTION = re.compile(r"^mount\.(?P<region>.+)$")
# efs-utils' own default for where the TLS tunnel (efs-proxy) finds the Amazon CA bundle; in
# the partitions below it uses the system trust store instead.
_CA_FILE = "/etc/amazon/efs/efs-utils.crt"
_SYSTEM_CA_BUNDLE = "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"


class ConfigError(ValueError):
    """A setting cannot be rendered; the message names the flag (or variable) at fault."""


@dataclass(frozen=True)
class Override:
    section: str
    key: str
    value: str


@dataclass(frozen=True)
class EfsUtilsSettings:
    """Everything the rendered file depends on."""

    region: str | None = None
    fips: bool = False
    port_range_upper_bound: int = DEFAULT_PORT_RANGE_UPPER_BOUND
    debug: bool = False
    overrides: tuple[Override, ...] = field(default_factory=tuple)
    # --allow-insecure-efs-utils-conf: overrides may weaken TLS (tls_policy.WEAKENING_KEYS).
    allow_insecure: bool = False


def _check_section(section: str, item: str) -> None:
    if section in _BASE_SECTIONS:
        return
    regional = _REGIONAL_SECTION.match(section)
    if regional and _REGION.match(regional.group("region")):
        return
    allowed = ", ".join((*_BASE_SECTIONS, "mount.<region>"))
    raise ConfigError(f"{OVERRIDES_FLAG}: unknown section {section!r} in {item!r} "
                      f"(allowed: {allowed})")


def _check_value(value: str, item: str) -> None:
    if not value:
        raise ConfigError(f"{OVERRIDES_FLAG}: empty value in {item!r}")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ConfigError(f"{OVERRIDES_FLAG}: control character in the value of {item!r}")
    if "%" in value:
        raise ConfigError(f"{OVERRIDES_FLAG}: '%' is not allowed in the value of {item!r} "
                          "(efs-utils reads the file with interpolation)")


def parse_override(item: str) -> Override:
    """Parse one ``section:key=value`` item."""
    section, colon, rest = item.partition(":")
    key, equals, value = rest.partition("=")
    section, key, value = section.strip(), key.strip(), value.strip()
    if not colon or not equals or not section or not key:
        raise ConfigError(f"{OVERRIDES_FLAG}: expected section:key=value, got {item!r}")
    _check_section(section, item)
    if not _KEY.match(key):
        raise ConfigError(f"{OVERRIDES_FLAG}: invalid key {key!r} in {item!r} "
                          "(lower-case letters, digits and '_')")
    _check_value(value, item)
    return Override(section, key, value)


def parse_overrides(text: str) -> tuple[Override, ...]:
    """Parse the whole flag value; an empty string means no overrides."""
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        raise ConfigError(f"{OVERRIDES_FLAG}: control characters are not allowed")
    if not text.strip():
        return ()
    overrides: list[Override] = []
    seen: set[tuple[str, str]] = set()
    for item in text.split(","):
        if not item.strip():
            raise ConfigError(f"{OVERRIDES_FLAG}: empty item in {text!r}")
        override = parse_override(item)
        if (override.section, override.key) in seen:
            raise ConfigError(f"{OVERRIDES_FLAG}: {override.section}:{override.key} "
                              "is given more than once")
        seen.add((override.section, override.key))
        overrides.append(override)
    return tuple(overrides)


# One entry of a section: a key and value, with an optional comment line above it.
_Entry = tuple[str, str, str | None]


def _base_layout(settings: EfsUtilsSettings) -> dict[str, list[_Entry]]:
    mount: list[_Entry] = [
        ("dns_name_format", "{az}.{fs_id}.efs.{region}.{dns_name_suffix}", None),
        ("dns_name_suffix", "amazonaws.com", None),
    ]
    if settings.region:
        mount.append(("region", settings.region,
                      "region of the file systems (set by --region / AWS_REGION)"))
    mount += [
        ("stunnel_debug_enabled", _bool(settings.debug),
         "set by --efs-utils-debug: efs-proxy's debug log (stunnel's in stunnel mode)"),
        ("stunnel_cafile", _CA_FILE, None),
        ("stunnel_check_cert_hostname", "true", "efs-proxy checks the mount target's name"),
        ("stunnel_check_cert_validity", "false",
         "OCSP: true makes efs-utils use stunnel instead of efs-proxy"),
        ("fips_mode_enabled", _bool(settings.fips), "set by --fips: efs-proxy's FIPS policy"),
        ("port_range_lower_bound", str(DEFAULT_PORT_RANGE_LOWER_BOUND),
         "local ports the TLS tunnels may listen on (upper bound: --port-range-upper-bound)"),
        ("port_range_upper_bound", str(settings.port_range_upper_bound), None),
        ("optimize_readahead", "true", None),
        ("fall_back_to_mount_target_ip_address_enabled", "true", None),
        ("disable_fetch_ec2_metadata_token", "false", None),
        ("retry_nfs_mount_command", "true", None),
        ("retry_nfs_mount_command_count", "3", None),
        ("retry_nfs_mount_command_timeout_sec", "15", None),
    ]
    layout: dict[str, list[_Entry]] = {
        "DEFAULT": [
            ("logging_level", "DEBUG" if settings.debug else "INFO", "set by --efs-utils-debug"),
            ("logging_max_bytes", "1048576", None),
            ("logging_file_count", "10", None),
            ("state_file_dir_mode", "750", "octal mode of the state directory"),
        ],
        "mount": mount,
    }
    for region, suffix in _PARTITION_SUFFIXES:
        entries: list[_Entry] = [("dns_name_suffix", suffix, None)]
        if not region.startswith("cn-"):
            entries.append(("stunnel_cafile", _SYSTEM_CA_BUNDLE, None))
        layout[f"mount.{region}"] = entries
    layout["mount-watchdog"] = [
        ("enabled", "true", None),
        ("poll_interval_sec", "1", None),
        ("unmount_count_for_consistency", "5", None),
        ("unmount_grace_period_sec", "30", None),
        ("tls_cert_renewal_interval_min", "60", None),
        ("stunnel_health_check_enabled", "true", None),
        ("stunnel_health_check_interval_min", "5", None),
        ("stunnel_health_check_command_timeout_sec", "30", None),
    ]
    # efs-utils reports this as the client kind in its user agent and metrics.
    layout["client-info"] = [("source", "k8s", None)]
    layout["cloudwatch-log"] = [
        ("enabled", "false", None),
        ("log_group_name", "/aws/efs/utils", None),
        ("retention_in_days", "14", None),
    ]
    return layout


# Partitions outside the commercial one: their DNS suffix differs.
_PARTITION_SUFFIXES = (
    ("cn-north-1", "amazonaws.com.cn"),
    ("cn-northwest-1", "amazonaws.com.cn"),
    ("eu-isoe-west-1", "cloud.adc-e.uk"),
    ("eusc-de-east-1", "amazonaws.eu"),
    ("us-iso-east-1", "c2s.ic.gov"),
    ("us-iso-west-1", "c2s.ic.gov"),
    ("us-isob-east-1", "sc2s.sgov.gov"),
    ("us-isob-west-1", "sc2s.sgov.gov"),
    ("us-isof-east-1", "csp.hci.ic.gov"),
    ("us-isof-south-1", "csp.hci.ic.gov"),
)


def _bool(value: bool) -> str:
    return "true" if value else "false"


def tls_weakening(settings: EfsUtilsSettings) -> list[str]:
    """The overrides that weaken TLS, each with what it does: compared with what the node
    writes itself, in the same section, else in [mount] (efs-utils falls back to it from a
    regional section, and [DEFAULT] is what [mount] would otherwise supply)."""
    layout = _base_layout(settings)

    def ours(section: str, key: str) -> str | None:
        return next((value for name, value, _ in layout.get(section, ()) if name == key), None)

    weakening = []
    for override in settings.overrides:
        written = ours(override.section, override.key)
        if written is None:
            written = ours("mount", override.key)
        entry = weakening_key(override.section, override.key, override.value, written)
        if entry is not None:
            weakening.append(f"{override.section}:{override.key}={override.value} "
                             f"({entry.effect})")
    return weakening


def _check_tls(settings: EfsUtilsSettings) -> None:
    refused = [] if settings.allow_insecure else tls_weakening(settings)
    if refused:
        raise ConfigError(f"{OVERRIDES_FLAG}: weakens TLS to EFS: {'; '.join(refused)}. Refused "
                          f"unless the operator allows it: {CONF_FLAG} on the node (chart: "
                          f"{CONF_VALUE}: true)")


def _apply(layout: dict[str, list[_Entry]], overrides: Iterable[Override]) -> None:
    for override in overrides:
        entries = layout.setdefault(override.section, [])
        for index, (key, _, comment) in enumerate(entries):
            if key == override.key:
                entries[index] = (key, override.value, comment)
                break
        else:
            entries.append((override.key, override.value, "from " + OVERRIDES_FLAG))


def _validate(settings: EfsUtilsSettings, layout: dict[str, list[_Entry]]) -> None:
    if settings.region is not None and not _REGION.match(settings.region):
        raise ConfigError(f"--region / AWS_REGION: not a region name: {settings.region!r}")
    mount = {key: value for key, value, _ in layout["mount"]}
    try:
        lower = int(mount["port_range_lower_bound"])
        upper = int(mount["port_range_upper_bound"])
    except ValueError:
        raise ConfigError(f"{OVERRIDES_FLAG}: mount:port_range_lower_bound and "
                          "mount:port_range_upper_bound must be integers") from None
    if not 0 < lower < upper <= MAX_PORT:
        raise ConfigError(f"--port-range-upper-bound: {upper} must be above the lower bound "
                          f"{lower} and at most {MAX_PORT}")


def render(settings: EfsUtilsSettings) -> str:
    """The full text of efs-utils.conf for these settings."""
    _check_tls(settings)
    layout = _base_layout(settings)
    _apply(layout, settings.overrides)
    _validate(settings, layout)
    lines = ["# Written by efs-csi-node at start; edits are overwritten.",
             f"# Add settings with {OVERRIDES_FLAG} section:key=value,...", ""]
    for section, entries in layout.items():
        lines.append(f"[{section}]")
        for key, value, comment in entries:
            if comment:
                lines.append(f"# {comment}")
            lines.append(f"{key} = {value}")
        lines.append("")
    return "\n".join(lines)
