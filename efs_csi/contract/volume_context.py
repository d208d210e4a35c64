"""The volume context: what a volume carries from the controller (or a static PV) to the node.

``write_volume_context`` is the controller's writer: a ``VolumeContext`` as the string map of
CreateVolume's answer, only the entries that differ from the defaults. ``parse_volume_context``
is the node's parser (pure, no I/O): keys are matched case-insensitively (as the reference
driver does) and every value is checked, because the values end up in mount options: an
unknown key or a malformed value is INVALID_ARGUMENT naming the key, never passed through.
``parse_volume_context(write_volume_context(context)) == context`` for every context.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from efs_csi.booleans import EXPECTED, parse_bool_text
from efs_csi.errors import InvalidArgument

ENCRYPT_IN_TRANSIT = "encryptInTransit"
MOUNT_TARGET_IP = "mounttargetip"
MOUNT_TARGET_IP_MAP = "mounttargetipmap"
CROSS_ACCOUNT = "crossaccount"
# Added by csi-provisioner to every volume it provisions; accepted and ignored.
PROVISIONER_IDENTITY = "storage.kubernetes.io/csiProvisionerIdentity"
# The PV's requested size, which NodeGetVolumeStats reports as the capacity (EFS itself reports
# ~8 EiB). The controller also keeps it in an access point tag; see efs_csi_controller.tags.
CAPACITY_BYTES = "capacityBytes"

KNOWN_KEYS = (ENCRYPT_IN_TRANSIT, MOUNT_TARGET_IP, MOUNT_TARGET_IP_MAP, CROSS_ACCOUNT,
              PROVISIONER_IDENTITY, CAPACITY_BYTES)
_CANONICAL = {key.lower(): key for key in KNOWN_KEYS}


@dataclass(frozen=True)
class VolumeContext:
    """The volume context's values; the defaults are what an absent key means."""

    encrypt_in_transit: bool = True
    mount_target_ip: str | None = None
    mount_target_ip_map: Mapping[str, str] = field(default_factory=dict)
    cross_account: bool = False
    capacity_bytes: int | None = None

    def mount_target_for(self, zone: str | None) -> tuple[str | None, str | None]:
        """(IP to mount through, the other zone it is in when it is not this node's).

        This node's zone in the map wins, then the single IP; a map without this node's zone
        falls back to another zone's mount target, as the reference driver does (cross-account
        mounts depend on it): the first zone in name order, so every node picks the same.
        """
        if zone is not None and zone in self.mount_target_ip_map:
            return self.mount_target_ip_map[zone], None
        if self.mount_target_ip is not None or not self.mount_target_ip_map:
            return self.mount_target_ip, None
        fallback = min(self.mount_target_ip_map)
        return self.mount_target_ip_map[fallback], fallback


def _bool(key: str, value: str) -> bool:
    parsed = parse_bool_text(value)
    if parsed is None:
        raise InvalidArgument(f"volume_context[{key!r}]: expected {EXPECTED}, got {value!r}")
    return parsed


def _ip(key: str, value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise InvalidArgument(f"volume_context[{key!r}]: {value!r} is not an IP address") from None


def _ip_map(key: str, value: str) -> dict[str, str]:
    try:
        decoded = json.loads(value)
    except ValueError:
        raise InvalidArgument(f"volume_context[{key!r}]: not valid JSON "
                              "(expected an object of zone to IP)") from None
    if not isinstance(decoded, dict):
        raise InvalidArgument(f"volume_context[{key!r}]: expected a JSON object of zone to IP")
    result: dict[str, str] = {}
    for zone, ip in decoded.items():
        if not isinstance(ip, str) or not zone:
            raise InvalidArgument(f"volume_context[{key!r}]: zone {zone!r} needs an IP string")
        result[zone] = _ip(f"{key}.{zone}", ip)
    return result


def _capacity(key: str, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidArgument(f"volume_context[{key!r}]: {value!r} is not an integer") from None
    if number < 0:
        raise InvalidArgument(f"volume_context[{key!r}]: must not be negative")
    return number


def parse_volume_context(context: Mapping[str, str]) -> VolumeContext:
    """Parse and validate a NodeStage/NodePublish volume context."""
    values: dict[str, str] = {}
    for raw_key, value in context.items():
        key = _CANONICAL.get(raw_key.lower())
        if key is None:
            raise InvalidArgument(f"volume_context key {raw_key!r} is not supported "
                                  f"(supported: {', '.join(KNOWN_KEYS)})")
        values[key] = value
    return VolumeContext(
        encrypt_in_transit=(_bool(ENCRYPT_IN_TRANSIT, values[ENCRYPT_IN_TRANSIT])
                            if ENCRYPT_IN_TRANSIT in values else True),
        mount_target_ip=(_ip(MOUNT_TARGET_IP, values[MOUNT_TARGET_IP])
                         if values.get(MOUNT_TARGET_IP, "").strip() else None),
        mount_target_ip_map=(_ip_map(MOUNT_TARGET_IP_MAP, values[MOUNT_TARGET_IP_MAP])
                             if values.get(MOUNT_TARGET_IP_MAP, "").strip() else {}),
        cross_account=(_bool(CROSS_ACCOUNT, values[CROSS_ACCOUNT])
                       if CROSS_ACCOUNT in values else False),
        capacity_bytes=(_capacity(CAPACITY_BYTES, values[CAPACITY_BYTES])
                        if CAPACITY_BYTES in values else None),
    )


def write_volume_context(context: VolumeContext) -> dict[str, str]:
    """The volume context entries for ``context``: a key only where its value is not the
    default (the map of mount targets as compact JSON, its zones in name order)."""
    entries: dict[str, str] = {}
    if context.capacity_bytes is not None:
        entries[CAPACITY_BYTES] = str(context.capacity_bytes)
    if not context.encrypt_in_transit:
        entries[ENCRYPT_IN_TRANSIT] = "false"
    if context.cross_account:
        entries[CROSS_ACCOUNT] = "true"
    if context.mount_target_ip is not None:
        entries[MOUNT_TARGET_IP] = context.mount_target_ip
    if context.mount_target_ip_map:
        entries[MOUNT_TARGET_IP_MAP] = json.dumps(dict(sorted(context.mount_target_ip_map.items())),
                                                  separators=(",", ":"))
    return entries
