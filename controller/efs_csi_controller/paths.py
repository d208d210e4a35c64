"""An access point's root directory from basePath, subPathPattern and the volume name (pure).

The result must be accepted by EFS (absolute, at most 100 characters and 4 components, no
component starting with '.', none of the characters EFS forbids) and must be the same every
time the same CreateVolume is retried, so the uniqueness suffix is derived from the volume
name rather than drawn at random.
"""

from __future__ import annotations

import hashlib
import re

from efs_csi.errors import InvalidArgument, shown
from efs_csi_controller.params import BASE_PATH, SUB_PATH_PATTERN, PvcMetadata

MAX_ROOT_PATH_CHARS = 100
MAX_ROOT_PATH_COMPONENTS = 4
# Characters EFS rejects in an access point root path component, plus control characters.
_FORBIDDEN = frozenset("$#<>;`|&?{}^*\\\"'\n\r\t")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
VARIABLES = ("${.PVC.name}", "${.PVC.namespace}", "${.PV.name}")
_SUFFIX_CHARS = 12


def unique_suffix(volume_name: str) -> str:
    """A stable suffix for ensureUniqueDirectory: same volume name, same directory."""
    return hashlib.sha256(volume_name.encode()).hexdigest()[:_SUFFIX_CHARS]


def _variable_value(variable: str, metadata: PvcMetadata) -> str:
    values = {
        ".PVC.name": (metadata.pvc_name, "csi.storage.k8s.io/pvc/name"),
        ".PVC.namespace": (metadata.pvc_namespace, "csi.storage.k8s.io/pvc/namespace"),
        ".PV.name": (metadata.pv_name, "csi.storage.k8s.io/pv/name"),
    }
    if variable not in values:
        raise InvalidArgument(f"parameter {SUB_PATH_PATTERN}: unknown variable ${{{variable}}}; "
                              f"allowed: {', '.join(VARIABLES)}")
    value, source = values[variable]
    if not value:
        raise InvalidArgument(f"parameter {SUB_PATH_PATTERN} uses ${{{variable}}} but the "
                              f"request has no {source} (run csi-provisioner with "
                              "--extra-create-metadata)")
    return value


def expand_pattern(pattern: str, metadata: PvcMetadata) -> str:
    """Substitute the allowed variables; anything else that looks like one is rejected."""
    return _VARIABLE.sub(lambda m: _variable_value(m.group(1), metadata), pattern)


def _components(path: str, parameter: str) -> list[str]:
    parts = [part for part in path.split("/") if part]
    for part in parts:
        if part.startswith("."):
            raise InvalidArgument(f"parameter {parameter}: path component {part!r} must not "
                                  "start with '.'")
        bad = sorted(set(part) & _FORBIDDEN) or [ch for ch in part if ord(ch) < 0x20]
        if bad:
            raise InvalidArgument(f"parameter {parameter}: path component {part!r} contains "
                                  f"forbidden character(s) {''.join(bad)!r}")
    return parts


def base_components(base_path: str) -> list[str]:
    return _components(base_path, BASE_PATH)


def _shortened(parts: list[str], stem: str, volume_name: str) -> list[str]:
    """Shorten the last component to fit the length limit, keeping it unique per volume."""
    head = "".join("/" + part for part in parts[:-1])
    room = MAX_ROOT_PATH_CHARS - len(head) - 1
    if room < _SUFFIX_CHARS + 2:
        return parts
    return [*parts[:-1], f"{stem[:room - _SUFFIX_CHARS - 1]}-{unique_suffix(volume_name)}"]


def root_path(*, base_path: str, sub_path_pattern: str, metadata: PvcMetadata,
              ensure_unique_directory: bool, volume_name: str,
              shorten_to_fit: bool = False) -> str:
    """The access point root for a volume, validated against the limits of EFS.

    ``shorten_to_fit`` (used for the default pattern, whose only input is the volume name, up
    to 128 characters) cuts the last component to fit the 100-character limit and adds the
    volume name's hash, so the directory stays unique and stable across retries.
    """
    if "$" in _VARIABLE.sub("", sub_path_pattern):
        raise InvalidArgument(f"parameter {SUB_PATH_PATTERN}={sub_path_pattern!r}: '$' is only "
                              f"allowed in the variables {', '.join(VARIABLES)}")
    base = base_components(base_path)
    sub = _components(expand_pattern(sub_path_pattern, metadata), SUB_PATH_PATTERN)
    if ensure_unique_directory:
        suffix = unique_suffix(volume_name)
        sub = [*sub[:-1], f"{sub[-1]}-{suffix}"] if sub else [suffix]
    parts = base + sub
    stem = sub[-1].removesuffix(f"-{unique_suffix(volume_name)}") if sub else ""
    if shorten_to_fit and sub and len("/" + "/".join(parts)) > MAX_ROOT_PATH_CHARS:
        parts = _shortened(parts, stem, volume_name)
    path = "/" + "/".join(parts)
    where = f"{BASE_PATH} + {SUB_PATH_PATTERN}"
    if len(parts) > MAX_ROOT_PATH_COMPONENTS:
        raise InvalidArgument(f"{where} give {shown(path)} with {len(parts)} components; "
                              f"EFS allows at most {MAX_ROOT_PATH_COMPONENTS}")
    if len(path) > MAX_ROOT_PATH_CHARS:
        raise InvalidArgument(f"{where} give {shown(path)} with {len(path)} characters; EFS allows "
                              f"at most {MAX_ROOT_PATH_CHARS}")
    return path


def normalised_base_path(base_path: str) -> str:
    """basePath as an absolute path without trailing slash ("/" when empty)."""
    return "/" + "/".join(base_components(base_path))
