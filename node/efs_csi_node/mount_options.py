"""Building the efs-utils mount options of a volume (pure, no I/O).

Options come from three places: the volume handle (``accesspoint=``), the volume context
(``tls``, ``crossaccount``, ``mounttargetip=``) and the PV's ``mountOptions``, kept with their
case. A PV mount flag may hold several options separated by commas (``"iam,noresvport"``), as
the reference driver allows: each is taken on its own, and checked as if given alone, because
all of them end up in one comma-separated ``-o`` argument.

What efs-utils' ``mount.efs`` would refuse is refused here first, with INVALID_ARGUMENT naming
the options, instead of a failed mount later (its rules, as of efs-utils 2.x): ``tls`` is
required by ``accesspoint`` and ``iam``; ``tls`` excludes ``port`` and ``notls``; ``ocsp``
excludes ``noocsp``; ``tlsport`` is an integer; ``awsprofile`` needs ``iam``; ``capath`` is not
supported; an option is ``key`` or ``key=value``. An access point therefore always brings
``tls``, as the reference driver does, even with ``encryptInTransit: "false"``.

Options that would let a PV's author choose where the node gets AWS credentials from are
dropped with a note for the log (the reference drops ``awscredsuri``; ``jwtpath`` names a
token file on the node, such as another pod's service account token, just as well).

Options that weaken TLS to EFS (``efs_csi_node.tls_policy``: ``notls`` or no TLS at all,
``verify``, ``cafile``, ``netns``, ``noocsp``) are refused with INVALID_ARGUMENT naming each one
and the node flag that would allow it, unless the operator allowed them by name
(``allowed_insecure``); an allowed one is kept, with a note for the log. The reference driver
passes them all through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from efs_csi.contract.volume_context import VolumeContext
from efs_csi.contract.volume_id import VolumeHandle, is_access_point_id
from efs_csi.errors import InvalidArgument
from efs_csi_node.tls_policy import allow_hint, weakening_option

_FIELD = "volume_capability.mount.mount_flags"
_ENCRYPT_FIELD = "volume_context.encryptInTransit"
CREDENTIAL_SOURCES = frozenset({"awscredsuri", "jwtpath"})
_UNSUPPORTED = frozenset({"capath"})


@dataclass
class MountOptions:
    options: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was dropped or implied, and why

    def add(self, option: str) -> None:
        if option not in self.options:
            self.options.append(option)

    def has(self, key: str) -> bool:
        """Whether an option of this key (any case) is there."""
        return any(_key(option) == key for option in self.options)


def _key(option: str) -> str:
    return option.split("=", 1)[0].strip().lower()


def check_user_option(option: str) -> None:
    """Reject an option that is empty, malformed or could inject another option."""
    if not option:
        raise InvalidArgument(f"{_FIELD}: empty mount option")
    for char in option:
        if char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F or not char.isprintable():
            raise InvalidArgument(f"{_FIELD}: mount option {option!r} contains whitespace "
                                  "or a control character")
    if option.count("=") > 1 or option.startswith("="):
        raise InvalidArgument(f"{_FIELD}: mount option {option!r} is not key or key=value")


def split_user_options(flags: Sequence[str]) -> list[str]:
    """Each option of each PV mount flag (a flag may hold several, comma-separated)."""
    options: list[str] = []
    for flag in flags:
        if not flag:
            raise InvalidArgument(f"{_FIELD}: empty mount option")
        for part in flag.split(","):
            if not part:
                raise InvalidArgument(f"{_FIELD}: {flag!r} holds an empty option")
            check_user_option(part)
            options.append(part)
    return options


def build_mount_options(handle: VolumeHandle, context: VolumeContext,
                        user_flags: Sequence[str], *, read_only: bool,
                        zone: str | None,
                        allowed_insecure: frozenset[str] = frozenset()) -> MountOptions:
    """The ``-o`` options for staging ``handle``, or INVALID_ARGUMENT naming the problem.

    ``allowed_insecure``: the TLS-weakening options the operator allows, by their names in
    ``efs_csi_node.tls_policy.WEAKENING_OPTIONS``."""
    built = MountOptions()
    user_options = split_user_options(user_flags)
    through_access_point = bool(handle.access_point_id) or any(
        _key(option) == "accesspoint" for option in user_options)
    tls = context.encrypt_in_transit or through_access_point
    if tls:
        built.add("tls")
        if not context.encrypt_in_transit:
            built.notes.append("encryptInTransit=false ignored: efs-utils mounts an access "
                               "point only over TLS")
    if handle.access_point_id:
        built.add(f"accesspoint={handle.access_point_id}")
    if context.cross_account:
        built.add("crossaccount")
    ip, fallback_zone = context.mount_target_for(zone)
    if ip is not None:
        built.add(f"mounttargetip={ip}")
    if fallback_zone is not None:
        built.notes.append(f"no mount target IP for this node's zone {zone or '(unknown)'}; "
                           f"using the one in {fallback_zone}")
    if read_only:
        built.add("ro")

    for option in user_options:
        key = _key(option)
        if key in CREDENTIAL_SOURCES:
            built.notes.append(f"mount option {key!r} dropped: a PV may not choose where the "
                               "node gets its AWS credentials")
            continue
        if key == "crossaccount":
            raise InvalidArgument(f"{_FIELD}: 'crossaccount' cannot be set as a mount option; "
                                  "use the volume context key crossaccount")
        if key == "tls" and not tls:
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
        if key in ("tls", "ro") and built.has(key):
            continue
        built.add(option)
    _check_efs_utils_rules(built)
    _check_tls_policy(built, allowed_insecure, plaintext_by_context=not tls)
    return built


def _check_tls_policy(built: MountOptions, allowed: frozenset[str], *,
                      plaintext_by_context: bool) -> None:
    """Refuse what weakens TLS unless allowed; name every such option at once, and the exact
    flag value that would allow them all."""
    weakening: list[tuple[str, str, str]] = []  # (what the user wrote, table name, effect)
    if plaintext_by_context and not built.has("notls"):
        weakening.append(('encryptInTransit: "false"', "notls", "NFS in plaintext, without TLS"))
    for option in built.options:
        entry = weakening_option(option)
        if entry is not None:
            weakening.append((repr(option), entry.name, entry.effect))
    refused = [item for item in weakening if item[1] not in allowed]
    if refused:
        field = _ENCRYPT_FIELD if all(item[0].startswith("encryptInTransit")
                                      for item in refused) else _FIELD
        details = "; ".join(f"{given} ({effect})" for given, _, effect in refused)
        raise InvalidArgument(f"{field}: weakens TLS to EFS: {details}. Refused unless the "
                              f"operator allows it: {allow_hint(name for _, name, _ in refused)}")
    for given, name, _ in weakening:
        built.notes.append(f"{given} weakens TLS to EFS; allowed by the node's "
                           f"--allow-insecure-mount-options ({name})")


def _check_efs_utils_rules(built: MountOptions) -> None:
    """What mount.efs would refuse, refused before any mount runs (its keys are
    case-sensitive: ``IAM`` is not ``iam`` there)."""
    values = dict(option.partition("=")[::2] for option in built.options)
    keys = set(values)

    def conflict(message: str) -> InvalidArgument:
        return InvalidArgument(f"{_FIELD}: {message} (efs-utils refuses this mount)")

    if "tls" in keys:
        for other in ("port", "notls"):
            if other in keys:
                raise conflict(f"'{other}' cannot be combined with TLS (encryptInTransit, an "
                               "access point or 'tls')" + ("; use tlsport" if other == "port"
                                                          else ""))
    if "ocsp" in keys and "noocsp" in keys:
        raise conflict("'ocsp' and 'noocsp' exclude each other")
    tls_port = values.get("tlsport")
    if tls_port is not None and not tls_port.isdigit():
        raise conflict(f"tlsport={tls_port!r} is not an integer")
    if "iam" in keys and "tls" not in keys:
        raise conflict("'iam' needs TLS; remove encryptInTransit=false")
    if "awsprofile" in keys and "iam" not in keys:
        raise conflict("'awsprofile' needs 'iam'")
    unsupported = sorted(keys & _UNSUPPORTED)
    if unsupported:
        raise conflict(f"{', '.join(repr(key) for key in unsupported)} is not supported")
