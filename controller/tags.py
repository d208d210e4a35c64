"""Tags put on every access point in its create call (pure).

``--tags`` is ``key:value`` pairs separated by spaces; ``\\:``, ``\\ `` and ``\\\\`` escape a
colon, a space and a backslash. A malformed value is a startup error, not a per-volume one.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.params import ENABLE_TAGGING, PvcMetadata
from efs_csi.errors import InvalidArgument

CLUSTER_TAG = "efs.csi.aws.com/cluster"
PV_NAME_TAG = "kubernetes.io/created-for/pv/name"
PVC_NAME_TAG = "kubernetes.io/created-for/pvc/name"
PVC_NAMESPACE_TAG = "kubernetes.io/created-for/pvc/namespace"
# Lets a retried CreateVolume with another capacity be told apart after a restart.
CAPACITY_TAG = "efs.csi.aws.com/capacity-bytes"
BASE_PATH_TAG = "efs.csi.aws.com/base-path"
_MAX_KEY, _MAX_VALUE = 128, 256


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not escaped; escapes are kept for the next pass."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        raise ValueError(f"--tags {text!r}: dangling backslash")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out, escaped = [], False
    for char in text:
        if escaped:
            if char not in ": \\":
                raise ValueError(f"--tags: unknown escape \\{char} (allowed: \\: \\  \\\\)")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)


def parse_tags(text: str) -> dict[str, str]:
    """Parse ``--tags``; ValueError with the reason on bad input."""
    tags: dict[str, str] = {}
    for pair in _split_unescaped(text, " "):
        if not pair:
            continue
        pieces = _split_unescaped(pair, ":")
        if len(pieces) != 2 or not pieces[0]:
            raise ValueError(f"--tags: {_unescape(pair)!r} is not key:value")
        key, value = _unescape(pieces[0]), _unescape(pieces[1])
        if len(key) > _MAX_KEY or len(value) > _MAX_VALUE:
            raise ValueError(f"--tags: {key!r} exceeds the EFS tag limits "
                             f"({_MAX_KEY}/{_MAX_VALUE} characters)")
        if key.lower().startswith("aws:"):
            raise ValueError(f"--tags: {key!r}: the aws: prefix is reserved")
        tags[key] = value
    return tags


def access_point_tags(*, enabled: bool, extra: Mapping[str, str], metadata: PvcMetadata,
                      capacity_bytes: int, base_path: str) -> dict[str, str]:
    """The tags for one create call; none at all when the StorageClass disables tagging."""
    if not enabled:
        if extra:
            raise InvalidArgument(f"parameter {ENABLE_TAGGING}=false conflicts with the "
                                  "controller's --tags; remove one of them")
        return {}
    tags = {CLUSTER_TAG: "true", **extra, CAPACITY_TAG: str(capacity_bytes),
            BASE_PATH_TAG: base_path}
    for key, value in ((PV_NAME_TAG, metadata.pv_name), (PVC_NAME_TAG, metadata.pvc_name),
                       (PVC_NAMESPACE_TAG, metadata.pvc_namespace)):
        if value:
            tags[key] = value
    return tags
