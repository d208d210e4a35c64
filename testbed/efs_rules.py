"""What real EFS and efs-utils check that moto and a fake mount do not, written from their own
documentation and source, so tests judge the driver by those rules rather than by leniency.

Tags: the ``Tag`` type of the EFS API reference (``API_Tag``): a key is 1-128 characters
matching ``^(?![aA]{1}[wW]{1}[sS]{1}:)([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+)$``, a value 0-256
characters matching ``^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$``. The patterns are used verbatim
through the ``regex`` package (Python's ``re`` has no ``\\p{..}`` classes), independently of
how the driver implements the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import regex

TAG_KEY = regex.compile(r"^(?![aA]{1}[wW]{1}[sS]{1}:)([\p{L}\p{Z}\p{N}_.:/=+\-@]+)$")
TAG_VALUE = regex.compile(r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$")
MAX_KEY, MAX_VALUE = 128, 256


def tag_violations(tags: Mapping[str, str]) -> list[str]:
    """Every way ``tags`` break EFS's Tag rules (empty when EFS would accept them)."""
    problems = []
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_KEY or TAG_KEY.match(key) is None:
            problems.append(f"key {key!r}")
        if len(value) > MAX_VALUE or TAG_VALUE.match(value) is None:
            problems.append(f"value {value!r} of {key!r}")
    return problems


# efs-utils' mount.efs -------------------------------------------------------------------------
#
# Written from reading efs-utils (github aws/efs-utils, src/efs_utils_common/mount_options.py:
# parse_options, check_unsupported_options, check_options_validity; constants.py), as a second
# implementation to judge the driver's options by. Keys are case-sensitive there.

_EFS_UTILS_ACCESS_POINT = re.compile(r"^fsap-[0-9a-f]{17}$")
_EFS_UTILS_UNSUPPORTED = ("capath",)


def efs_utils_refusal(options: Sequence[str]) -> str | None:
    """Why ``mount -t efs -o <",".join(options)>`` would stop in mount.efs before mounting
    (None when its option checks pass)."""
    parsed: dict[str, str | None] = {}
    for option in ",".join(options).split(","):
        if "=" in option:
            pieces = option.split("=")
            if len(pieces) != 2:  # parse_options unpacks exactly two: a traceback
                return f"cannot parse {option!r}"
            parsed[pieces[0]] = pieces[1]
        else:
            parsed[option] = None
    unsupported = [name for name in _EFS_UTILS_UNSUPPORTED if name in parsed]
    if unsupported:
        return f"unsupported mount options {unsupported}"
    if "tls" in parsed:
        if "port" in parsed:
            return "port and tls are mutually exclusive"
        if "tlsport" in parsed:
            try:
                int(parsed["tlsport"] or "")
            except ValueError:
                return "tlsport is not an integer"
        if "ocsp" in parsed and "noocsp" in parsed:
            return "ocsp and noocsp are mutually exclusive"
        if "notls" in parsed:
            return "tls and notls are mutually exclusive"
    if "accesspoint" in parsed:
        if "tls" not in parsed:
            return "tls is required when mounting via accesspoint"
        if not _EFS_UTILS_ACCESS_POINT.match(parsed["accesspoint"] or ""):
            return "access point id is malformed"
    if "iam" in parsed and "tls" not in parsed:
        return "tls is required when mounting via iam"
    if "awsprofile" in parsed and "iam" not in parsed:
        return "iam is required with awsprofile"
    if "awscredsuri" in parsed:
        if "iam" not in parsed:
            return "iam is required with awscredsuri"
        if "awsprofile" in parsed:
            return "awscredsuri and awsprofile are mutually exclusive"
        if not (parsed["awscredsuri"] or "").startswith("/"):
            return "awscredsuri is malformed"
    return None
