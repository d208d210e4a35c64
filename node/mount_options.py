"""Building the efs-utils mount options of a volume (pure, no I/O).

Options come from three places: the volume handle (``accesspoint=``), the volume context
(``tls``, ``crossaccount``, ``mounttargetip=``) and the PV's ``mountOptions``, passed through
with their case kept. The user's options are checked first because they end up in one
comma-separated ``-o`` argument: an option holding a ``,``, whitespace or a control character
could smuggle in another option, so it is rejected rather than escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from efs_csi.errors import InvalidArgument
from efs_csi.volume_id import VolumeHandle, is_access_point_id
from node.volume_context import VolumeContext

_FIELD = "volume_capability.mount.mount_flags"


def _key(option: str) -> str:
    return option.split("=", 1)[0].strip().lower()


def check_user_option(option: str) -> None:
    """Reject an option that is empty or could inject another option."""
    if not option:
        raise InvalidArgument(f"{_FIELD}: empty mount option")
    if "," in option:
        raise InvalidArgument(f"{_FIELD}: mount option {option!r} must not contain ','")
    for char in option:
        if char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F or not char.isprintable():
            raise InvalidArgument(f"{_FIELD}: mount option {option!r} contains whitespace "
                                  "or a control character")


def build_mount_options(handle: VolumeHandle, context: VolumeContext,
                        user_options: Sequence[str], *, read_only: bool,
                        zone: str | None) -> list[str]:
    """The ``-o`` options for staging ``handle``, or INVALID_ARGUMENT naming the problem."""
    options: list[str] = []

    def add(option: str) -> None:
        if option not in options:
            options.append(option)

    if context.encrypt_in_transit:
        add("tls")
    if handle.access_point_id:
        add(f"accesspoint={handle.access_point_id}")
    if context.cross_account:
        add("crossaccount")
    ip = context.mount_target_ip_for(zone)
    if ip is not None:
        add(f"mounttargetip={ip}")
    if read_only:
        add("ro")

    for option in user_options:
        check_user_option(option)
        key = _key(option)
        if key == "crossaccount":
            raise InvalidArgument(f"{_FIELD}: 'crossaccount' cannot be set as a mount option; "
                                  "use the volume context key crossaccount")
        if key == "tls" and not context.encrypt_in_transit:
            raise InvalidArgument(f"{_FIELD}: 'tls' conflicts with encryptInTransit=false")
        if key == "accesspoint":
            value = option.split("=", 1)[1] if "=" in option else ""
            if not is_access_point_id(value):
                raise InvalidArgument(f"{_FIELD}: {option!r} is not a valid access point id")
            if handle.access_point_id and value != handle.access_point_id:
                raise InvalidArgument(f"{_FIELD}: {option!r} conflicts with the volume "
                                      f"handle's access point {handle.access_point_id}")
        if key == "mounttargetip" and ip is not None:
            raise InvalidArgument(f"{_FIELD}: {option!r} conflicts with the volume context's "
                                  "mount target IP")
        if key in ("tls", "ro") and key in (_key(o) for o in options):
            continue
        add(option)
    return options
