"""StorageClass parameters -> a typed, fully validated provisioning request (pure, no I/O).

Everything a CreateVolume needs from ``parameters`` is checked here, before any AWS or
Kubernetes call, so a bad StorageClass is answered with INVALID_ARGUMENT naming the parameter
and what it allows, and never leaves a half-made access point behind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from efs_csi.booleans import EXPECTED, parse_bool_text
from efs_csi.contract.volume_id import FILE_SYSTEM_ID, is_file_system_id
from efs_csi.errors import InvalidArgument

PROVISIONING_MODE = "provisioningMode"
FILE_SYSTEM_ID_KEY = "fileSystemId"
FILE_SYSTEM_ID_CONFIG_REF = "fileSystemIdConfigRef"
FILE_SYSTEM_ID_SECRET_REF = "fileSystemIdSecretRef"
DIRECTORY_PERMS = "directoryPerms"
UID = "uid"
GID = "gid"
GID_RANGE_START = "gidRangeStart"
GID_RANGE_END = "gidRangeEnd"
BASE_PATH = "basePath"
SUB_PATH_PATTERN = "subPathPattern"
ENSURE_UNIQUE_DIRECTORY = "ensureUniqueDirectory"
AZ = "az"
REUSE_ACCESS_POINT = "reuseAccessPoint"
# With reuseAccessPoint: the namespace whose PVCs may adopt the access points the reference
# driver made (it keys them by PVC name alone, with no namespace to check).
REFERENCE_ACCESS_POINTS_NAMESPACE = "referenceAccessPointsNamespace"
ENFORCE_ZONE_AFFINITY = "enforceZoneAffinity"
ENABLE_TAGGING = "enableTagging"

# Passed by csi-provisioner with --extra-create-metadata; any other csi.storage.k8s.io/* key
# (e.g. the secret references) is accepted and ignored.
PVC_NAME = "csi.storage.k8s.io/pvc/name"
PVC_NAMESPACE = "csi.storage.k8s.io/pvc/namespace"
PV_NAME = "csi.storage.k8s.io/pv/name"
_PROVISIONER_PREFIX = "csi.storage.k8s.io/"

KNOWN_KEYS = (
    PROVISIONING_MODE, FILE_SYSTEM_ID_KEY, FILE_SYSTEM_ID_CONFIG_REF, FILE_SYSTEM_ID_SECRET_REF,
    DIRECTORY_PERMS, UID, GID, GID_RANGE_START, GID_RANGE_END, BASE_PATH, SUB_PATH_PATTERN,
    ENSURE_UNIQUE_DIRECTORY, AZ, REUSE_ACCESS_POINT, REFERENCE_ACCESS_POINTS_NAMESPACE,
    ENFORCE_ZONE_AFFINITY, ENABLE_TAGGING,
)
PROVISIONING_MODES = ("efs-ap",)
DEFAULT_GID_RANGE = (50000, 7000000)
DEFAULT_SUB_PATH_PATTERN = "${.PV.name}"
# POSIX ids are 32-bit unsigned.
MAX_POSIX_ID = 2**32 - 1
_PERMS = re.compile(r"[0-7]{3,4}")
# Kubernetes object names: DNS subdomain / label rules are stricter; this only keeps a
# reference parseable and free of path tricks.
_REF_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
# A Kubernetes namespace name (an RFC 1123 label).
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class ObjectKeyRef:
    """``namespace/name/key`` of a ConfigMap or Secret holding the file system id."""

    namespace: str
    name: str
    key: str


@dataclass(frozen=True)
class FileSystemSource:
    """Exactly one of: the id itself, a ConfigMap key, or a Secret key."""

    file_system_id: str | None = None
    config_map: ObjectKeyRef | None = None
    secret: ObjectKeyRef | None = None


@dataclass(frozen=True)
class GidRange:
    start: int
    end: int  # inclusive

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


@dataclass(frozen=True)
class PvcMetadata:
    pvc_name: str | None = None
    pvc_namespace: str | None = None
    pv_name: str | None = None


@dataclass(frozen=True)
class ProvisionParams:
    file_system: FileSystemSource
    directory_perms: str
    uid: int | None
    gid: int | None
    gid_range: GidRange
    base_path: str
    sub_path_pattern: str
    ensure_unique_directory: bool
    az: str | None
    reuse_access_point: bool
    # Only PVCs of this namespace adopt the reference driver's access points by PVC name.
    reference_namespace: str | None
    enforce_zone_affinity: bool
    enable_tagging: bool
    metadata: PvcMetadata


def _bool(parameters: Mapping[str, str], key: str, default: bool) -> bool:
    raw = parameters.get(key)
    if raw is None:
        return default
    value = parse_bool_text(raw)
    if value is None:
        raise InvalidArgument(f"parameter {key}={raw!r}: expected {EXPECTED}")
    return value


def _posix_id(parameters: Mapping[str, str], key: str, minimum: int = 0) -> int | None:
    raw = parameters.get(key)
    if raw is None:
        return None
    if not raw.isdigit() or not minimum <= int(raw) <= MAX_POSIX_ID:
        raise InvalidArgument(f"parameter {key}={raw!r}: expected an integer from {minimum} "
                              f"to {MAX_POSIX_ID}")
    return int(raw)


def _object_ref(key: str, raw: str) -> ObjectKeyRef:
    parts = raw.split("/")
    if len(parts) != 3 or not all(_REF_PART.fullmatch(part) for part in parts):
        raise InvalidArgument(f"parameter {key}={raw!r}: expected namespace/name/key")
    return ObjectKeyRef(*parts)


def _file_system_source(parameters: Mapping[str, str]) -> FileSystemSource:
    given = [k for k in (FILE_SYSTEM_ID_KEY, FILE_SYSTEM_ID_CONFIG_REF, FILE_SYSTEM_ID_SECRET_REF)
             if parameters.get(k)]
    if len(given) != 1:
        raise InvalidArgument(
            f"exactly one of {FILE_SYSTEM_ID_KEY}, {FILE_SYSTEM_ID_CONFIG_REF}, "
            f"{FILE_SYSTEM_ID_SECRET_REF} is required (got {', '.join(given) or 'none'})")
    key = given[0]
    raw = parameters[key]
    if key == FILE_SYSTEM_ID_KEY:
        if not is_file_system_id(raw):
            raise InvalidArgument(f"parameter {key}={raw!r}: expected an id matching "
                                  f"{FILE_SYSTEM_ID.pattern}")
        return FileSystemSource(file_system_id=raw)
    if key == FILE_SYSTEM_ID_CONFIG_REF:
        return FileSystemSource(config_map=_object_ref(key, raw))
    return FileSystemSource(secret=_object_ref(key, raw))


def _gid_range(parameters: Mapping[str, str]) -> GidRange:
    start = _posix_id(parameters, GID_RANGE_START, minimum=1)
    end = _posix_id(parameters, GID_RANGE_END, minimum=1)
    if start is None and end is None:
        return GidRange(*DEFAULT_GID_RANGE)
    if start is None or end is None:
        raise InvalidArgument(f"parameters {GID_RANGE_START} and {GID_RANGE_END} must be "
                              "given together")
    if end <= start:
        raise InvalidArgument(f"parameter {GID_RANGE_END}={end} must be greater than "
                              f"{GID_RANGE_START}={start}")
    return GidRange(start, end)


def _reference_namespace(parameters: Mapping[str, str], reuse: bool) -> str | None:
    raw = parameters.get(REFERENCE_ACCESS_POINTS_NAMESPACE)
    if raw is None:
        return None
    if not reuse:
        raise InvalidArgument(f"parameter {REFERENCE_ACCESS_POINTS_NAMESPACE} needs "
                              f"{REUSE_ACCESS_POINT}=true")
    if not _NAMESPACE.fullmatch(raw):
        raise InvalidArgument(f"parameter {REFERENCE_ACCESS_POINTS_NAMESPACE}={raw!r}: expected "
                              "a namespace name (lowercase letters, digits and '-', at most "
                              "63 characters)")
    return raw


def _check_keys(parameters: Mapping[str, str]) -> None:
    unknown = sorted(k for k in parameters
                     if k not in KNOWN_KEYS and not k.startswith(_PROVISIONER_PREFIX))
    if unknown:
        raise InvalidArgument(f"unknown parameter(s) {', '.join(unknown)}; known parameters: "
                              f"{', '.join(KNOWN_KEYS)} and {_PROVISIONER_PREFIX}*")


def parse_parameters(parameters: Mapping[str, str],
                     volume_name: str | None = None) -> ProvisionParams:
    """Validate StorageClass parameters; raise InvalidArgument naming the first bad one. The
    CSI ``volume_name`` is the PV's name: the PV name when the provisioner passed none."""
    _check_keys(parameters)
    mode = parameters.get(PROVISIONING_MODE)
    if mode not in PROVISIONING_MODES:
        shown = "missing" if mode is None else repr(mode)
        raise InvalidArgument(f"parameter {PROVISIONING_MODE} is {shown}; allowed: "
                              f"{', '.join(PROVISIONING_MODES)}")
    perms = parameters.get(DIRECTORY_PERMS)
    if perms is None or not _PERMS.fullmatch(perms):
        shown = "missing" if perms is None else repr(perms)
        raise InvalidArgument(f"parameter {DIRECTORY_PERMS} is {shown}; expected 3 or 4 octal "
                              "digits such as 700 or 0755")
    tagging = _bool(parameters, ENABLE_TAGGING, True)
    reuse = _bool(parameters, REUSE_ACCESS_POINT, False)
    return ProvisionParams(
        file_system=_file_system_source(parameters),
        directory_perms=perms,
        uid=_posix_id(parameters, UID),
        gid=_posix_id(parameters, GID),
        gid_range=_gid_range(parameters),
        base_path=parameters.get(BASE_PATH, ""),
        sub_path_pattern=parameters.get(SUB_PATH_PATTERN, DEFAULT_SUB_PATH_PATTERN),
        ensure_unique_directory=_bool(parameters, ENSURE_UNIQUE_DIRECTORY, True),
        az=parameters.get(AZ) or None,
        reuse_access_point=reuse,
        reference_namespace=_reference_namespace(parameters, reuse),
        enforce_zone_affinity=_bool(parameters, ENFORCE_ZONE_AFFINITY, False),
        enable_tagging=tagging,
        metadata=PvcMetadata(
            pvc_name=parameters.get(PVC_NAME) or None,
            pvc_namespace=parameters.get(PVC_NAMESPACE) or None,
            pv_name=parameters.get(PV_NAME) or volume_name or None,
        ),
    )
