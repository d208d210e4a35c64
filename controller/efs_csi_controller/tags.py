"""Tags put on every access point in its create call (pure).

``--tags`` is ``key:value`` pairs separated by spaces; ``\\:`` and ``\\ `` escape a colon and a
space (``\\\\`` a backslash, which EFS refuses in tags). A malformed value is a startup error,
not a per-volume one.

EFS refuses a whole CreateAccessPoint whose tags break its Tag rules (the API's ``Tag``
type): a key is 1-128 characters, a value 0-256, both made only of letters, numbers and white
space (Unicode categories L, N and Z) and ``_ . : / = + - @``, and a key must not start with
``aws:``. A tag must never be why a volume cannot be created, so:
- operator tags (``--tags``) are checked at startup and the controller refuses to start;
- values the driver copies from a request (basePath, PV/PVC names) go through ``tag_value``,
  which escapes every other character as ``@`` and its UTF-8 bytes in hex (``(`` is ``@28``,
  ``@`` itself ``@40``), and replaces a value still too long by ``sha256:`` and its hash. The
  result is deterministic, so a retried create sends the same tags.

The cluster tag (``efs.csi.aws.com/cluster``) carries ``--cluster-id``: a value unique to one
cluster, which the IAM policy (docs/iam-policy.json) requires on every create and on every
access point the controller may delete, and which deletion of a directory requires too
(``efs_csi_controller.ownership``). Releases before it, and the reference driver, wrote the
constant ``true`` (``LEGACY_CLUSTER_ID``), which every cluster in an account shares.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping

from efs_csi.errors import InvalidArgument
from efs_csi_controller.params import ENABLE_TAGGING, PvcMetadata

CLUSTER_TAG = "efs.csi.aws.com/cluster"
#: The cluster tag's value before --cluster-id (and the reference driver's): shared by every
#: cluster, so it proves nothing about which cluster made an access point.
LEGACY_CLUSTER_ID = "true"
PV_NAME_TAG = "kubernetes.io/created-for/pv/name"
PVC_NAME_TAG = "kubernetes.io/created-for/pvc/name"
PVC_NAMESPACE_TAG = "kubernetes.io/created-for/pvc/namespace"
# Lets a retried CreateVolume with another capacity be told apart after a restart.
CAPACITY_TAG = "efs.csi.aws.com/capacity-bytes"
BASE_PATH_TAG = "efs.csi.aws.com/base-path"
_MAX_KEY, _MAX_VALUE = 128, 256
_SYMBOLS = frozenset("_.:/=+-@")
_ESCAPE = "@"


def allowed_in_tag(char: str) -> bool:
    """True for a character EFS accepts in tag keys and values."""
    return char in _SYMBOLS or unicodedata.category(char)[0] in "LNZ"


def tag_value(text: str) -> str:
    """``text`` as a valid EFS tag value (see the module docstring); the identity for
    text made only of allowed characters other than ``@``."""
    escaped = "".join(
        char if allowed_in_tag(char) and char != _ESCAPE
        else "".join(f"{_ESCAPE}{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        for char in text)
    if len(escaped) <= _MAX_VALUE:
        return escaped
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _disallowed(text: str) -> str:
    return "".join(sorted({char for char in text if not allowed_in_tag(char)}))


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
        if key == CLUSTER_TAG:
            raise ValueError(f"--tags: {key!r} is the controller's own cluster tag; set its "
                             "value with --cluster-id")
        for what, part in (("key", key), ("value", value)):
            bad = _disallowed(part)
            if bad:
                raise ValueError(f"--tags: {what} {part!r} holds {bad!r}, which EFS does not "
                                 "allow in tags (allowed: letters, numbers, spaces and "
                                 "_ . : / = + - @)")
        tags[key] = value
    return tags


def parse_cluster_id(text: str) -> str:
    """Check ``--cluster-id``; ValueError with the reason on bad input."""
    if not text:
        raise ValueError("--cluster-id must not be empty")
    if len(text) > _MAX_VALUE:
        raise ValueError(f"--cluster-id exceeds the EFS tag value limit ({_MAX_VALUE} "
                         "characters)")
    bad = _disallowed(text)
    if bad:
        raise ValueError(f"--cluster-id {text!r} holds {bad!r}, which EFS does not allow in "
                         "tags (allowed: letters, numbers, spaces and _ . : / = + - @)")
    return text


def access_point_tags(*, enabled: bool, extra: Mapping[str, str], metadata: PvcMetadata,
                      capacity_bytes: int, base_path: str,
                      cluster_id: str = LEGACY_CLUSTER_ID) -> dict[str, str]:
    """The tags for one create call; none at all when the StorageClass disables tagging."""
    if not enabled:
        if extra:
            raise InvalidArgument(f"parameter {ENABLE_TAGGING}=false conflicts with the "
                                  "controller's --tags; remove one of them")
        return {}
    tags = {**extra, CLUSTER_TAG: cluster_id, CAPACITY_TAG: str(capacity_bytes),
            BASE_PATH_TAG: tag_value(base_path)}
    for key, value in ((PV_NAME_TAG, metadata.pv_name), (PVC_NAME_TAG, metadata.pvc_name),
                       (PVC_NAMESPACE_TAG, metadata.pvc_namespace)):
        if value:
            tags[key] = tag_value(value)
    return tags


def is_base_path_tag_of(tag: str, path: str) -> bool:
    """Whether a ``BASE_PATH_TAG`` value names ``path`` (normalised, absolute): written by
    ``tag_value``, or raw by releases before it (whose paths needed no escaping)."""
    return tag in (path, tag_value(path))
