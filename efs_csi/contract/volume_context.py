"""The volume context the node accepts, parsed into a typed value (pure, no I/O).

Keys are matched case-insensitively (as the reference driver does) and every value is
checked here, because the values end up in mount options: an unknown key or a malformed
value is INVALID_ARGUMENT naming the key, never passed through.
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
PROVISIONER_IDENTITY = "storage.kubernetes.io/csiProvisionerIdentity"
# Agreed with the controller: the PV's requested size, remembered per volume for stats.
CAPACITY_BYTES = "capacityBytes"

KNOWN_KEYS = (ENCRYPT_IN_TRANSIT, MOUNT_TARGET_IP, MOUNT_TARGET_IP_MAP, CROSS_ACCOUNT,
              PROVISIONER_IDENTITY, CAPACITY_BYTES)
_CANONICAL = {key.lower(): key for key in KNOWN_KEYS}


@dataclass(frozen=True)
class VolumeContext:
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
